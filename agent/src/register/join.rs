//! What an agent joins with: the URL to advertise, the credentials to try, the host facts.

use std::net::SocketAddr;
use std::path::Path;

use gpuwarden_wire::join::Capabilities;

use crate::config::ControlPlaneConfig;

/// The URL the control plane should scrape: `advertise`, else the bound address (an
/// unspecified IP becomes the host name).
pub fn advertise_url(advertise: &str, bound: SocketAddr, hostname: &str) -> String {
    if !advertise.is_empty() {
        return advertise.trim_end_matches('/').to_string();
    }
    if bound.ip().is_unspecified() {
        format!("http://{hostname}:{}", bound.port())
    } else {
        format!("http://{bound}")
    }
}

/// The credentials to try, in order: the node token kept in `token_file`, the configured
/// token, the bootstrap token (config, else `GPUWARDEN_BOOTSTRAP_TOKEN`).
pub fn credentials(
    cfg: &ControlPlaneConfig,
    token_file: Option<&Path>,
    env_bootstrap: Option<String>,
) -> Vec<String> {
    let mut c = Vec::new();
    if let Some(f) = token_file {
        if let Ok(t) = std::fs::read_to_string(f) {
            let t = t.trim();
            if !t.is_empty() {
                c.push(t.to_string());
            }
        }
    }
    for t in [
        Some(cfg.token.clone()),
        Some(cfg.bootstrap_token.clone()),
        env_bootstrap,
    ]
    .into_iter()
    .flatten()
    {
        if !t.trim().is_empty() && !c.contains(&t) {
            c.push(t.trim().to_string());
        }
    }
    c
}

/// Host facts for the registration.
pub fn host_capabilities() -> Capabilities {
    Capabilities {
        hostname: sysinfo::System::host_name().ok(),
        os: sysinfo::System::long_os_version().ok(),
        agent_version: Some(env!("CARGO_PKG_VERSION").to_string()),
        ips: sysinfo::Networks::new_with_refreshed_list()
            .ok()
            .map(|n| {
                let mut ips: Vec<String> = n
                    .values()
                    .flat_map(|d| d.ip_networks().iter().map(|i| i.addr))
                    .filter(|a| !a.is_loopback())
                    .map(|a| a.to_string())
                    .collect();
                ips.sort();
                ips.dedup();
                ips
            })
            .unwrap_or_default(),
        ..Capabilities::default()
    }
}
