//! `lambda`: Lambda Cloud's public REST API (`https://cloud.lambdalabs.com/api/v1`).
//!
//! - provision: `POST /instance-operations/launch` with one instance, named after the
//!   node, tagged `gpuwarden-instance-id` (and `gpuwarden-pool`) so that `list` maps it
//!   back, and a `user_data` script that starts the agent with the join token; after a
//!   launch whose outcome is unknown (timeout, 5xx, unreadable answer) the next provision
//!   of the same instance looks for its machine first instead of launching twice;
//! - terminate: `POST /instance-operations/terminate`; a 404 (or
//!   `global/object-does-not-exist`) means already gone, which is success;
//! - list: `GET /instances`, the instances tagged by gpuwarden only (an account's other
//!   machines are not ours to reconcile), `booting` → pending, `active`/`unhealthy` →
//!   running, `terminating` → terminating, `terminated`/`preempted` → gone;
//! - offerings: `GET /instance-types`, the price from each entry's `instance_type`
//!   object (`data.NAME.instance_type.price_cents_per_hour`, not the entry itself) and
//!   the regions from `regions_with_capacity_available`.
//!
//! Requests are paced to the documented limits ([`pace`]). The API key is read from the
//! environment variable named by `api_key_env`, sent only in the `Authorization` header,
//! and never logged or put in an error.
//!
//! Params: `api_key_env` (required), `ssh_key_names` (required by the API: at least one),
//! `file_system_names`, `base_url` (default the public API), `install_command` (run by
//! `user_data` before the agent starts), `agent_path` (default
//! `/usr/local/bin/gpuwarden-agent`), `timeout` (each request, default 30s),
//! `request_interval` (1s), `launch_interval` (12s), `max_wait` (2s).

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::params::Params;
use super::{
    ErrorKind, Listed, ListedState, Offering, Provider, ProviderEnv, ProviderError,
    ProvisionRequest, Provisioned,
};

pub mod api;
pub mod pace;
pub mod user_data;

use api::Api;
use pace::{Limits, Pace};

/// The public API.
pub const DEFAULT_BASE_URL: &str = "https://cloud.lambdalabs.com/api/v1";

/// The tag that carries our instance id.
pub const INSTANCE_TAG: &str = "gpuwarden-instance-id";

/// The tag that carries the pool.
pub const POOL_TAG: &str = "gpuwarden-pool";

/// Most instance ids remembered with an uncertain launch.
const MAX_UNCERTAIN: usize = 1024;

/// The Lambda Cloud provider.
#[derive(Debug)]
pub struct LambdaProvider {
    api: Api,
    /// Instances whose last launch may have happened without our knowing (a timeout, a
    /// 5xx, an unreadable answer): their next provision looks for the machine first.
    uncertain: Mutex<HashSet<String>>,
    ssh_key_names: Vec<String>,
    file_system_names: Vec<String>,
    install_command: Option<String>,
    agent_path: String,
}

#[derive(Deserialize)]
struct Tag {
    key: String,
    value: String,
}

#[derive(Deserialize)]
struct Instance {
    id: String,
    status: String,
    #[serde(default)]
    tags: Vec<Tag>,
}

#[derive(Deserialize)]
struct TypeEntry {
    instance_type: InstanceType,
    #[serde(default)]
    regions_with_capacity_available: Vec<Region>,
}

#[derive(Deserialize)]
struct InstanceType {
    name: String,
    /// An integer in the API's answers; a numeric string in some of its examples.
    #[serde(default)]
    price_cents_per_hour: Option<Value>,
}

#[derive(Deserialize)]
struct Region {
    name: String,
}

fn bad(path: &str, e: impl std::fmt::Display) -> ProviderError {
    ProviderError::new(
        ErrorKind::BadAnswer,
        format!("{path}: unexpected answer: {e}"),
    )
}

/// `data` of an answer, read as `T`.
fn data<T: serde::de::DeserializeOwned>(path: &str, mut v: Value) -> Result<T, ProviderError> {
    let d = v
        .get_mut("data")
        .map(Value::take)
        .ok_or_else(|| bad(path, "no \"data\""))?;
    serde_json::from_value(d).map_err(|e| bad(path, e))
}

fn price(v: Option<&Value>) -> Option<u64> {
    match v? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

impl LambdaProvider {
    /// From a pool spec's params (see the module docs).
    pub fn from_params(map: &Map<String, Value>, env: &ProviderEnv) -> Result<Self, Vec<String>> {
        let mut p = Params::new("lambda", map);
        let key_env = p.required_string(
            "api_key_env",
            "the environment variable that holds the API key",
        );
        let key = key_env.as_deref().and_then(|name| {
            let k = env.vars.get(name);
            if k.is_none() {
                p.problem(
                    "api_key_env",
                    format!("the environment variable {name} is not set"),
                );
            }
            k
        });
        let ssh_key_names = p.strings("ssh_key_names");
        if ssh_key_names.is_empty() {
            p.problem(
                "ssh_key_names",
                "required: the names of one or more SSH keys of the account",
            );
        }
        let file_system_names = p.strings("file_system_names");
        let base_url = p
            .string("base_url")
            .unwrap_or_else(|| DEFAULT_BASE_URL.into());
        if let Err(e) = crate::validate::base_url(&base_url) {
            p.problem("base_url", e);
        }
        let install_command = p.string("install_command");
        let agent_path = p
            .string("agent_path")
            .unwrap_or_else(|| "/usr/local/bin/gpuwarden-agent".into());
        if !agent_path.starts_with('/') || agent_path.chars().any(char::is_whitespace) {
            p.problem("agent_path", "must be an absolute path without spaces");
        }
        let s = Duration::from_secs(1);
        let timeout = p.duration("timeout", s * 30, s, s * 300);
        let limits = Limits {
            request: p.duration("request_interval", s, Duration::ZERO, s * 60),
            launch: p.duration("launch_interval", s * 12, Duration::ZERO, s * 600),
            max_wait: p.duration("max_wait", s * 2, Duration::ZERO, s * 60),
        };
        p.finish()?;
        let pace = Pace::new(limits, env.clock.clone(), env.sleep.clone());
        Ok(Self {
            api: Api::new(&base_url, key.unwrap_or_default(), timeout, pace),
            uncertain: Mutex::default(),
            ssh_key_names,
            file_system_names,
            install_command,
            agent_path,
        })
    }

    fn uncertain_set(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.uncertain.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One launch for `req`.
    fn launch(&self, req: &ProvisionRequest) -> Result<Provisioned, ProviderError> {
        let invalid = |m: String| Err(ProviderError::new(ErrorKind::InvalidRequest, m));
        if req.instance_type.is_empty() || req.region.is_empty() {
            return invalid("the pool names no instance_type or region".into());
        }
        let user_data = user_data::script(req, self.install_command.as_deref(), &self.agent_path);
        if user_data.len() > user_data::MAX_USER_DATA {
            return invalid(format!(
                "user_data of {} bytes is over 1 MiB",
                user_data.len()
            ));
        }
        let mut body = json!({
            "region_name": req.region,
            "instance_type_name": req.instance_type,
            "ssh_key_names": self.ssh_key_names,
            "quantity": 1,
            "name": req.node_name,
            "user_data": user_data,
            "tags": [
                {"key": INSTANCE_TAG, "value": req.instance_id},
                {"key": POOL_TAG, "value": req.pool},
            ],
        });
        if !self.file_system_names.is_empty() {
            body["file_system_names"] = json!(self.file_system_names);
        }
        let path = "/instance-operations/launch";
        #[derive(Deserialize)]
        struct Launched {
            instance_ids: Vec<String>,
        }
        let l: Launched = data(path, self.api.post(path, &body, true)?)?;
        match l.instance_ids.as_slice() {
            [id] if !id.is_empty() => Ok(Provisioned {
                provider_id: id.clone(),
                address: None,
            }),
            ids => Err(bad(
                path,
                format!("{} instance ids for one instance", ids.len()),
            )),
        }
    }
}

impl Provider for LambdaProvider {
    fn kind(&self) -> &'static str {
        "lambda"
    }

    fn provision(&self, req: &ProvisionRequest) -> Result<Provisioned, ProviderError> {
        let id = &req.instance_id;
        let was_uncertain = self.uncertain_set().contains(id);
        if was_uncertain {
            // The last launch may have made the machine: find it rather than launch twice.
            let found = self.list()?.into_iter().find(|l| {
                l.instance_id.as_deref() == Some(id.as_str()) && l.state != ListedState::Gone
            });
            if let Some(l) = found {
                self.uncertain_set().remove(id);
                return Ok(Provisioned {
                    provider_id: l.provider_id,
                    address: None,
                });
            }
        }
        let result = self.launch(req);
        let mut u = self.uncertain_set();
        match &result {
            Err(e)
                if matches!(
                    e.kind,
                    ErrorKind::Timeout | ErrorKind::Unavailable | ErrorKind::BadAnswer
                ) =>
            {
                if u.len() >= MAX_UNCERTAIN {
                    u.clear();
                }
                u.insert(id.clone());
            }
            _ => {
                u.remove(id);
            }
        }
        result
    }

    fn terminate(&self, provider_id: &str) -> Result<(), ProviderError> {
        let path = "/instance-operations/terminate";
        match self
            .api
            .post(path, &json!({"instance_ids": [provider_id]}), false)
        {
            Ok(_) => Ok(()),
            // Already gone: what terminate is for.
            Err(e) if e.kind == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn list(&self) -> Result<Vec<Listed>, ProviderError> {
        let path = "/instances";
        let all: Vec<Instance> = data(path, self.api.get(path)?)?;
        Ok(all
            .into_iter()
            .filter_map(|i| {
                let ours = i.tags.iter().find(|t| t.key == INSTANCE_TAG)?.value.clone();
                let state = match i.status.as_str() {
                    "booting" => ListedState::Pending,
                    "active" | "unhealthy" => ListedState::Running,
                    "terminating" => ListedState::Terminating,
                    "terminated" | "preempted" => ListedState::Gone,
                    // A status added after this was written: the machine exists.
                    _ => ListedState::Pending,
                };
                Some(Listed {
                    provider_id: i.id,
                    instance_id: Some(ours),
                    state,
                })
            })
            .collect())
    }

    fn offerings(&self) -> Result<Vec<Offering>, ProviderError> {
        let path = "/instance-types";
        let types: std::collections::BTreeMap<String, TypeEntry> = data(path, self.api.get(path)?)?;
        Ok(types
            .into_values()
            .map(|t| Offering {
                price_cents_per_hour: price(t.instance_type.price_cents_per_hour.as_ref()),
                instance_type: t.instance_type.name,
                regions_with_capacity: t
                    .regions_with_capacity_available
                    .into_iter()
                    .map(|r| r.name)
                    .collect(),
            })
            .collect())
    }
}
