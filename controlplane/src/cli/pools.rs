//! `gpuwarden pools …` and `gpuwarden instances …`: pools and the machines they asked of
//! their providers, over `/v1/pools` and `/v1/instances`.
//!
//! `pools create` builds the pool from `--file` (JSON, or TOML by the `.toml` extension: the
//! same fields as `POST /v1/pools` and a `[[pools]]` entry) and/or flags, the flags winning;
//! `pools update` starts from the pool as it is and changes what the file and flags give.
//! An invalid pool prints every problem, one line each.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};

use super::{query, CliError, Client, Output, Render};

#[allow(missing_docs)]
#[derive(Debug, Subcommand)]
pub enum PoolsCommand {
    /// Every pool: source, nodes, target, bounds, status.
    List,
    /// One pool: its spec, target, last decisions, cooldowns, budget, instances in flight.
    Get {
        /// Pool name.
        name: String,
    },
    /// Create a pool from flags and/or a file.
    Create(SpecArgs),
    /// Change a pool (created through the API): the file and flags over its spec.
    Update(SpecArgs),
    /// Delete a pool created through the API.
    Delete {
        /// Pool name.
        name: String,
        /// Even when it has nodes or instances in flight (they are left as they are).
        #[arg(long)]
        force: bool,
    },
    /// Keep a pool at N nodes (within its bounds), or hand it back to its autoscaler.
    Scale {
        /// Pool name.
        name: String,
        /// Nodes to keep it at.
        #[arg(required_unless_present = "auto")]
        nodes: Option<u32>,
        /// Clear the manual target: the autoscaler (or min_nodes) decides again.
        #[arg(long, conflicts_with = "nodes")]
        auto: bool,
    },
    /// Tell a pool how many jobs are waiting for it (the queue autoscaler uses it).
    Demand {
        /// Pool name.
        name: String,
        /// Pending jobs.
        pending_jobs: u64,
    },
}

#[allow(missing_docs)]
#[derive(Debug, Args)]
pub struct SpecArgs {
    /// Pool name (default: the file's `name`).
    name: Option<String>,
    /// The pool as JSON, or TOML (`.toml`): the fields of POST /v1/pools.
    #[arg(long, value_name = "FILE")]
    file: Option<PathBuf>,
    /// Provider kind (fake, local, exec, lambda): one provider of that kind.
    #[arg(long)]
    provider: Option<String>,
    /// Fewest serving nodes.
    #[arg(long = "min")]
    min_nodes: Option<u32>,
    /// Most nodes, booting ones included.
    #[arg(long = "max")]
    max_nodes: Option<u32>,
    /// Replace unhealthy nodes (true or false).
    #[arg(long, value_name = "BOOL")]
    auto_replace: Option<bool>,
    /// What to ask the provider for.
    #[arg(long)]
    instance_type: Option<String>,
    /// Where.
    #[arg(long)]
    region: Option<String>,
    /// A zone, in order of preference (repeatable).
    #[arg(long = "zone")]
    zones: Vec<String>,
    /// A label of the pool's nodes, KEY=VALUE (repeatable).
    #[arg(long = "label", value_name = "KEY=VALUE")]
    labels: Vec<String>,
    /// Least time between two scale-ups (e.g. 1m).
    #[arg(long)]
    scale_up_cooldown: Option<String>,
    /// Least time before the next scale-down (e.g. 5m).
    #[arg(long)]
    scale_down_cooldown: Option<String>,
    /// How long an instance may take to register (e.g. 10m).
    #[arg(long)]
    registration_timeout: Option<String>,
}

/// The fields of a pool spec in `GET /v1/pools/{name}` (the rest is state).
const SPEC_FIELDS: &[&str] = &[
    "name",
    "provider",
    "providers",
    "strategy",
    "instance_type",
    "region",
    "zones",
    "labels",
    "min_nodes",
    "max_nodes",
    "scale_up_cooldown",
    "scale_down_cooldown",
    "registration_timeout",
    "auto_replace",
    "autoscaler",
    "remediation",
    "budget",
];

pub(super) fn read_file(file: &Path) -> Result<Map<String, Value>, CliError> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", file.display())))?;
    let bad = |e: String| CliError::Usage(format!("{}: {e}", file.display()));
    let v: Value = if file.extension().is_some_and(|x| x == "toml") {
        let t: toml::Value = toml::from_str(&text).map_err(|e| bad(e.to_string()))?;
        serde_json::to_value(t).map_err(|e| bad(e.to_string()))?
    } else {
        {
            // As the API does: a key given twice is refused, not silently one of the two.
            crate::validate::dupes::check(text.as_bytes()).map_err(bad)?;
            serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?
        }
    };
    match v {
        Value::Object(m) => Ok(m),
        _ => Err(bad("not a table of pool fields".into())),
    }
}

/// The pool body: `base`, then the file, then the flags.
fn spec_body(mut base: Map<String, Value>, a: SpecArgs) -> Result<Value, CliError> {
    if let Some(f) = &a.file {
        base.extend(read_file(f)?);
    }
    if let Some(n) = a.name {
        base.insert("name".into(), json!(n));
    }
    if let Some(p) = a.provider {
        base.remove("providers");
        base.insert("provider".into(), json!(p));
    }
    let mut set = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            base.insert(k.into(), v);
        }
    };
    set("min_nodes", a.min_nodes.map(|v| json!(v)));
    set("max_nodes", a.max_nodes.map(|v| json!(v)));
    set("auto_replace", a.auto_replace.map(|v| json!(v)));
    set("instance_type", a.instance_type.map(|v| json!(v)));
    set("region", a.region.map(|v| json!(v)));
    set("scale_up_cooldown", a.scale_up_cooldown.map(|v| json!(v)));
    set(
        "scale_down_cooldown",
        a.scale_down_cooldown.map(|v| json!(v)),
    );
    set(
        "registration_timeout",
        a.registration_timeout.map(|v| json!(v)),
    );
    if !a.zones.is_empty() {
        base.insert("zones".into(), json!(a.zones));
    }
    if !a.labels.is_empty() {
        let mut map = base
            .get("labels")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        for l in a.labels {
            let (k, v) = l
                .split_once('=')
                .ok_or_else(|| CliError::Usage(format!("--label {l:?}: expected KEY=VALUE")))?;
            map.insert(k.to_string(), json!(v));
        }
        base.insert("labels".into(), Value::Object(map));
    }
    if !base.contains_key("name") {
        return Err(CliError::Usage(
            "a pool needs a name: give it, or a --file with `name`".into(),
        ));
    }
    Ok(Value::Object(base))
}

/// An API error with every problem of an invalid pool in its text (`-o json` keeps the
/// API's document).
fn with_details(e: CliError) -> CliError {
    match e {
        CliError::Api {
            status,
            code,
            message,
            body,
        } => {
            let lines: Vec<String> = body["error"]["details"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|d| {
                    format!(
                        "\n  {}: {}",
                        d["field"].as_str().unwrap_or("-"),
                        d["message"].as_str().unwrap_or("-")
                    )
                })
                .collect();
            let message = if lines.is_empty() {
                message
            } else {
                format!("the pool is invalid:{}\n", lines.concat())
            };
            CliError::Api {
                status,
                code,
                message,
                body,
            }
        }
        other => other,
    }
}

fn seg(s: &str) -> String {
    super::encode(s)
}

/// Runs a `pools` command; the text to print.
pub fn pools(cmd: PoolsCommand, client: &Client, out: Output) -> Result<String, CliError> {
    let (v, render): (Value, Render) = match cmd {
        PoolsCommand::List => (
            client.call("GET", "/v1/pools", None)?,
            super::pool_views::pools_table,
        ),
        PoolsCommand::Get { name } => (
            client.call("GET", &format!("/v1/pools/{}", seg(&name)), None)?,
            super::pool_views::pool_view,
        ),
        PoolsCommand::Create(a) => {
            let body = spec_body(Map::new(), a)?;
            (
                client
                    .call("POST", "/v1/pools", Some(body))
                    .map_err(with_details)?,
                |v| format!("created pool {}\n", super::views::s(&v["name"])),
            )
        }
        PoolsCommand::Update(a) => {
            let name = match (&a.name, &a.file) {
                (Some(n), _) => n.clone(),
                (None, Some(f)) => read_file(f)?
                    .get("name")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .ok_or_else(|| CliError::Usage("the pool to update: give its name".into()))?,
                (None, None) => {
                    return Err(CliError::Usage("the pool to update: give its name".into()))
                }
            };
            let path = format!("/v1/pools/{}", seg(&name));
            let now = client.call("GET", &path, None)?;
            let base: Map<String, Value> = now
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(k, _)| SPEC_FIELDS.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let body = spec_body(base, a)?;
            (
                client
                    .call("PUT", &path, Some(body))
                    .map_err(with_details)?,
                |v| format!("updated pool {}\n", super::views::s(&v["name"])),
            )
        }
        PoolsCommand::Delete { name, force } => {
            let q = query(&[("force", force.then(|| "true".to_string()))]);
            client.call("DELETE", &format!("/v1/pools/{}{q}", seg(&name)), None)?;
            (json!({"deleted": name}), |v| {
                format!("deleted pool {}\n", super::views::s(&v["deleted"]))
            })
        }
        PoolsCommand::Scale { name, nodes, auto } => {
            let nodes = if auto { None } else { nodes };
            (
                client.call(
                    "POST",
                    &format!("/v1/pools/{}/scale", seg(&name)),
                    Some(json!({ "nodes": nodes })),
                )?,
                |v| {
                    if v["manual_target"].is_null() {
                        // The target shown is the last one; the next evaluation sets the new.
                        format!(
                            "pool {}: handed back to its autoscaler (min_nodes without one); the next evaluation sets its target\n",
                            super::views::s(&v["name"]),
                        )
                    } else {
                        format!(
                            "pool {}: target {} (manual)\n",
                            super::views::s(&v["name"]),
                            super::views::s(&v["target"]),
                        )
                    }
                },
            )
        }
        PoolsCommand::Demand { name, pending_jobs } => {
            client.call(
                "PUT",
                &format!("/v1/pools/{}/demand", seg(&name)),
                Some(json!({ "pending_jobs": pending_jobs })),
            )?;
            (json!({"pool": name, "pending_jobs": pending_jobs}), |v| {
                format!(
                    "pool {}: {} pending jobs\n",
                    super::views::s(&v["pool"]),
                    v["pending_jobs"]
                )
            })
        }
    };
    Ok(out.render(&v, render))
}

#[allow(missing_docs)]
#[derive(Debug, Subcommand)]
pub enum InstancesCommand {
    /// Instances, oldest first, with filters.
    List {
        /// Only this pool.
        #[arg(long)]
        pool: Option<String>,
        /// Only these states, comma-separated (provisioning, registering, running,
        /// terminating, terminated, failed).
        #[arg(long)]
        state: Option<String>,
        /// Page size.
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Instances to skip.
        #[arg(long, default_value_t = 0)]
        offset: u32,
    },
    /// One instance.
    Get {
        /// Instance id.
        id: String,
    },
}

/// Runs an `instances` command; the text to print.
pub fn instances(cmd: InstancesCommand, client: &Client, out: Output) -> Result<String, CliError> {
    let (v, render): (Value, Render) = match cmd {
        InstancesCommand::List {
            pool,
            state,
            limit,
            offset,
        } => {
            let q = query(&[
                ("pool", pool),
                ("state", state),
                ("limit", Some(limit.to_string())),
                ("offset", Some(offset.to_string())),
            ]);
            (
                client.call("GET", &format!("/v1/instances{q}"), None)?,
                super::pool_views::instances_table,
            )
        }
        InstancesCommand::Get { id } => (
            client.call("GET", &format!("/v1/instances/{}", seg(&id)), None)?,
            super::pool_views::instance_view,
        ),
    };
    Ok(out.render(&v, render))
}
