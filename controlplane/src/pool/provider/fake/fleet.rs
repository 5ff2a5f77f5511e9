//! A fake provider's machines made real as simulated agents: with the `fleet` param, each
//! provision adds a node to a `gpuwarden-agent fleet` through its control API
//! (`POST {fleet}/v1/fleet/nodes`, the agent's `fleet::control`), which joins the control
//! plane with the instance's own join token as a real machine's agent would, and each
//! terminate removes it (`DELETE {fleet}/v1/fleet/nodes/{node}`). This is how
//! `gpuwarden simulate` runs pools, autoscaling and replacement against one fake.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;

use crate::pool::provider::{ErrorKind, ProviderError, ProvisionRequest};

/// Whether `url` is the base URL of a control API on this machine: `http://HOST:PORT` (a
/// trailing `/` allowed) with HOST in 127.0.0.0/8, `localhost` or `[::1]`.
pub(super) fn loopback_base(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains(['/', '?', '#', '@']) {
        return false;
    }
    let Some((host, port)) = rest.rsplit_once(':') else {
        return false;
    };
    let loopback = host == "localhost"
        || host == "[::1]"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback());
    loopback && port.parse::<u16>().is_ok_and(|p| p > 0)
}

/// The link to a fleet's control API and what its nodes are made of.
#[derive(Debug, Clone)]
pub(super) struct FleetLink {
    /// The control API's base URL (`http://127.0.0.1:PORT`).
    pub(super) url: String,
    /// Fake GPUs per node.
    pub(super) gpus: u32,
    /// GPU model.
    pub(super) model: String,
    /// Racks the machines are spread over, round robin by their number (label `rack`).
    pub(super) racks: u64,
    /// Zones the racks are spread over (label `zone`).
    pub(super) zones: u64,
    http: ureq::Agent,
}

impl FleetLink {
    pub(super) fn new(url: String, gpus: u32, model: String, racks: u64, zones: u64) -> FleetLink {
        let http = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(30)))
            .http_status_as_error(false)
            .build()
            .into();
        FleetLink {
            url: url.trim_end_matches('/').to_string(),
            gpus,
            model,
            racks: racks.max(1),
            zones: zones.max(1),
            http,
        }
    }

    /// Machine number `n`'s (from 1) labels: the pool's, with `rack` and `zone`.
    pub(super) fn labels(&self, req: &ProvisionRequest, n: u64) -> BTreeMap<String, String> {
        let rack = (n.saturating_sub(1)) % self.racks;
        let mut l = req.labels.clone();
        l.insert("rack".into(), format!("r{rack}"));
        l.insert("zone".into(), format!("z{}", rack % self.zones));
        l
    }

    /// Adds the node; its base URL.
    pub(super) fn add(&self, req: &ProvisionRequest, n: u64) -> Result<String, ProviderError> {
        let body = json!({
            "name": req.node_name, "pool": req.pool, "gpus": self.gpus, "model": self.model,
            "labels": self.labels(req, n), "token": req.join_token,
        });
        let url = format!("{}/v1/fleet/nodes", self.url);
        let r = self.http.post(&url).send_json(&body);
        let (status, text) = read(r, &url)?;
        match status {
            201 => serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v["address"].as_str().map(str::to_string))
                .ok_or_else(|| {
                    ProviderError::new(ErrorKind::Other, format!("fleet: no address in {text:?}"))
                }),
            // The node is there already: a retry after a lost answer.
            409 => Ok(String::new()),
            503 => Err(ProviderError::new(
                ErrorKind::Capacity,
                format!("fleet: {text}"),
            )),
            s => Err(ProviderError::new(
                ErrorKind::InvalidRequest,
                format!("fleet: HTTP {s}: {}", clip(&text)),
            )),
        }
    }

    /// The names of the nodes the fleet has now (a machine whose node it lost, to a restart
    /// or a crash of the fleet, is gone).
    pub(super) fn names(&self) -> Result<std::collections::HashSet<String>, ProviderError> {
        let url = format!("{}/v1/fleet/nodes", self.url);
        let (status, text) = read(self.http.get(&url).call(), &url)?;
        let v: serde_json::Value = match status {
            200 => serde_json::from_str(&text).map_err(|e| {
                ProviderError::new(ErrorKind::Unavailable, format!("fleet {url}: {e}"))
            })?,
            s => {
                return Err(ProviderError::new(
                    ErrorKind::Unavailable,
                    format!("fleet {url}: HTTP {s}: {}", clip(&text)),
                ))
            }
        };
        Ok(v["nodes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|n| n["name"].as_str().map(str::to_string))
            .collect())
    }

    /// Removes the node; a node the fleet does not have is gone already.
    pub(super) fn remove(&self, node: &str) -> Result<(), ProviderError> {
        let url = format!("{}/v1/fleet/nodes/{node}", self.url);
        let (status, text) = read(self.http.delete(&url).call(), &url)?;
        match status {
            204 | 404 => Ok(()),
            s => Err(ProviderError::new(
                ErrorKind::Unavailable,
                format!("fleet: HTTP {s}: {text}"),
            )),
        }
    }
}

/// At most 512 characters of an answer, for an error.
fn clip(text: &str) -> String {
    text.chars().take(512).collect()
}

fn read(
    r: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    url: &str,
) -> Result<(u16, String), ProviderError> {
    match r {
        Ok(mut r) => {
            let status = r.status().as_u16();
            let text = r
                .body_mut()
                .with_config()
                .limit(64 * 1024)
                .read_to_string()
                .unwrap_or_default();
            Ok((status, text))
        }
        Err(e) => Err(ProviderError::new(
            ErrorKind::Unavailable,
            format!("fleet {url}: {e}"),
        )),
    }
}
