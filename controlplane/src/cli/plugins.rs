//! `gpuwarden plugins push|list|assign|unassign|status|delete`: plugins distributed from the
//! control plane (`/v1/plugins`, `/v1/pools/{name}/plugins`; docs/plugins-distribution.md).

use std::path::PathBuf;

use clap::Subcommand;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::table::Table;
use super::views::s;
use super::{encode, query, CliError, Client, Output};

#[allow(missing_docs)]
#[derive(Debug, Subcommand)]
pub enum PluginsCommand {
    /// Upload a plugin component (.wasm); prints its digest. Pushing the same bytes again
    /// changes nothing.
    Push {
        /// The component, as `gpuwarden-agent plugin build` printed it.
        file: PathBuf,
        /// Its name on the agents [default: the file's name without .wasm].
        #[arg(long)]
        name: Option<String>,
    },
    /// The stored components, newest first, and where each is assigned.
    List,
    /// Run a plugin on the nodes of a pool (or of every node), pinned to a digest; replaces
    /// its earlier assignment there. The agents pick it up at their next check.
    Assign {
        /// The plugin's name (as pushed).
        name: String,
        /// The pool [required unless --all].
        #[arg(long, required_unless_present = "all", conflicts_with = "all")]
        pool: Option<String>,
        /// Every node (a pool's own assignment of this name wins over it).
        #[arg(long)]
        all: bool,
        /// The component's digest (sha256:…) [default: the newest pushed under NAME].
        #[arg(long)]
        digest: Option<String>,
        /// A config value, KEY=VALUE (repeatable).
        #[arg(long = "config", value_name = "KEY=VALUE")]
        config: Vec<String>,
        /// Run interval, e.g. 30s [default: the agent's].
        #[arg(long)]
        interval: Option<String>,
        /// Deadline of a run, e.g. 2s [default: the agent's].
        #[arg(long)]
        timeout: Option<String>,
        /// Memory cap, MiB (1 to 256) [default: the agent's].
        #[arg(long)]
        memory_limit_mib: Option<u32>,
    },
    /// Stop running a plugin on the nodes of a pool (or of every node).
    Unassign {
        /// The plugin's name.
        name: String,
        /// The pool [required unless --all].
        #[arg(long, required_unless_present = "all", conflicts_with = "all")]
        pool: Option<String>,
        /// The assignment to every node.
        #[arg(long)]
        all: bool,
    },
    /// Which node runs which version against what it is assigned: drift per node.
    Status {
        /// Only the nodes of this pool.
        #[arg(long)]
        pool: Option<String>,
    },
    /// Delete a stored component that is not assigned.
    Delete {
        /// Its digest (sha256:…).
        digest: String,
    },
}

fn short(d: &Value) -> String {
    let d = s(d);
    match d.strip_prefix("sha256:") {
        Some(h) if h.len() > 12 => format!("sha256:{}", &h[..12]),
        _ => d,
    }
}

fn list_view(v: &Value) -> String {
    let plugins = v["plugins"].as_array().cloned().unwrap_or_default();
    if plugins.is_empty() {
        return "no plugins pushed\n".into();
    }
    let mut t = Table::new(&["NAME", "DIGEST", "SIZE", "PUSHED", "BY", "ASSIGNED TO"]);
    for p in &plugins {
        let assigned: Vec<String> = p["assigned"]
            .as_array()
            .map(|a| a.iter().map(s).collect())
            .unwrap_or_default();
        t.row(vec![
            s(&p["name"]),
            s(&p["digest"]),
            format!("{:.1} MB", p["size"].as_f64().unwrap_or(0.0) / 1e6),
            s(&p["uploaded_at"]),
            s(&p["uploaded_by"]),
            if assigned.is_empty() {
                "-".into()
            } else {
                assigned.join(", ")
            },
        ]);
    }
    t.render()
}

/// The drift view of `GET /v1/pools/{name}/plugins` and `GET /v1/plugins/status`.
pub fn status_view(v: &Value) -> String {
    let mut out = String::new();
    let assigned = v["assigned"].as_array().cloned().unwrap_or_default();
    if !assigned.is_empty() {
        let mut t = Table::new(&["POOL", "PLUGIN", "DIGEST", "CONFIG", "INTERVAL"]);
        for a in &assigned {
            let config: Vec<String> = a["config"]
                .as_object()
                .map(|o| o.iter().map(|(k, v)| format!("{k}={}", s(v))).collect())
                .unwrap_or_default();
            t.row(vec![
                s(&a["pool"]),
                s(&a["name"]),
                short(&a["digest"]),
                if config.is_empty() {
                    "-".into()
                } else {
                    config.join(",")
                },
                a["interval"].as_str().unwrap_or("default").to_string(),
            ]);
        }
        out += &t.render();
        out.push('\n');
    }
    let nodes = v["nodes"].as_array().cloned().unwrap_or_default();
    if nodes.is_empty() {
        out += "no nodes\n";
        return out;
    }
    let mut t = Table::new(&[
        "NODE", "POOL", "PLUGIN", "STATE", "ASSIGNED", "RUNNING", "LAST", "NOTE",
    ]);
    for n in &nodes {
        let plugins = n["plugins"].as_array().cloned().unwrap_or_default();
        if plugins.is_empty() {
            t.row(vec![
                s(&n["node"]),
                s(&n["pool"]),
                "-".into(),
                "in_sync".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
            ]);
        }
        for p in &plugins {
            let note = p["error"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| s(&p["message"]));
            t.row(vec![
                s(&n["node"]),
                s(&n["pool"]),
                s(&p["name"]),
                s(&p["state"]),
                short(&p["assigned"]),
                short(&p["running"]),
                s(&p["status"]),
                note.chars().take(60).collect(),
            ]);
        }
    }
    out += &t.render();
    out += &format!(
        "{} node(s) in sync, {} drifted\n",
        v["in_sync"].as_u64().unwrap_or(0),
        v["drifted"].as_u64().unwrap_or(0)
    );
    out
}

/// A digest as the API takes it: `sha256:HEX`, also from a bare `HEX` (as `gpuwarden-agent
/// plugin digest` prints it).
fn full_digest(d: String) -> String {
    if d.len() == 64 && !d.contains(':') {
        format!("sha256:{}", d.to_ascii_lowercase())
    } else {
        d
    }
}

fn pool_of(pool: Option<String>, all: bool) -> String {
    if all {
        "*".into()
    } else {
        pool.unwrap_or_default()
    }
}

/// Runs a `plugins` command; the text to print.
pub fn plugins(cmd: PluginsCommand, client: &Client, out: Output) -> Result<String, CliError> {
    Ok(match cmd {
        PluginsCommand::Push { file, name } => {
            let len = std::fs::metadata(&file)
                .map_err(|e| CliError::Usage(format!("{}: {e}", file.display())))?
                .len();
            if len > 1 << 30 {
                return Err(CliError::Usage(format!(
                    "{}: {len} bytes; a component is at most 1 GiB (the control plane's \
                     [plugin_store] max_component_bytes, 64 MiB by default)",
                    file.display()
                )));
            }
            let bytes = std::fs::read(&file)
                .map_err(|e| CliError::Usage(format!("{}: {e}", file.display())))?;
            let name = match name {
                Some(n) => n,
                None => file
                    .file_stem()
                    .map(|s| s.to_string_lossy().replace('.', "-"))
                    .ok_or_else(|| CliError::Usage("name the plugin with --name".into()))?,
            };
            let digest = format!(
                "sha256:{}",
                Sha256::digest(&bytes)
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>()
            );
            let path = format!(
                "/v1/plugins{}",
                query(&[("name", Some(name)), ("digest", Some(digest))])
            );
            let v = client.call_bytes("POST", &path, bytes, "application/wasm")?;
            out.render(&v, |v| {
                format!(
                    "{} {} ({:.1} MB){}\n",
                    s(&v["name"]),
                    s(&v["digest"]),
                    v["size"].as_f64().unwrap_or(0.0) / 1e6,
                    if v["created"] == json!(false) {
                        ": already stored"
                    } else {
                        ": pushed"
                    }
                )
            })
        }
        PluginsCommand::List => {
            let v = client.call("GET", "/v1/plugins", None)?;
            out.render(&v, list_view)
        }
        PluginsCommand::Assign {
            name,
            pool,
            all,
            digest,
            config,
            interval,
            timeout,
            memory_limit_mib,
        } => {
            let pool = pool_of(pool, all);
            let mut values = Map::new();
            for kv in &config {
                let (k, v) = kv.split_once('=').ok_or_else(|| {
                    CliError::Usage(format!("--config {kv:?}: expected KEY=VALUE"))
                })?;
                values.insert(k.to_string(), Value::String(v.to_string()));
            }
            let mut body = json!({"config": values});
            for (k, v) in [
                ("digest", digest.map(|d| Value::String(full_digest(d)))),
                ("interval", interval.map(Value::String)),
                ("timeout", timeout.map(Value::String)),
                ("memory_limit_mib", memory_limit_mib.map(|m| json!(m))),
            ] {
                if let Some(v) = v {
                    body[k] = v;
                }
            }
            let v = client.call(
                "PUT",
                &format!("/v1/pools/{}/plugins/{}", encode(&pool), encode(&name)),
                Some(body),
            )?;
            let mut v = v;
            let d = v["assigned"]
                .as_array()
                .and_then(|a| a.iter().find(|a| a["name"] == json!(name)))
                .map(|a| s(&a["digest"]))
                .unwrap_or_default();
            v["assigned_now"] = json!({"name": name, "digest": d, "pool": pool});
            out.render(&v, |v| {
                let a = &v["assigned_now"];
                let whom = if a["pool"] == json!("*") {
                    "every node".to_string()
                } else {
                    format!("pool {}", s(&a["pool"]))
                };
                format!(
                    "{} {} assigned to {whom}; agents pick it up at their next check\n\n{}",
                    s(&a["name"]),
                    s(&a["digest"]),
                    status_view(v)
                )
            })
        }
        PluginsCommand::Unassign { name, pool, all } => {
            let pool = pool_of(pool, all);
            client.call(
                "DELETE",
                &format!("/v1/pools/{}/plugins/{}", encode(&pool), encode(&name)),
                None,
            )?;
            let v = json!({"unassigned": name, "pool": pool});
            out.render(&v, |v| {
                format!(
                    "{} unassigned from {}\n",
                    s(&v["unassigned"]),
                    s(&v["pool"])
                )
            })
        }
        PluginsCommand::Status { pool } => {
            let path = match &pool {
                Some(p) => format!("/v1/pools/{}/plugins", encode(p)),
                None => "/v1/plugins/status".to_string(),
            };
            let v = client.call("GET", &path, None)?;
            out.render(&v, status_view)
        }
        PluginsCommand::Delete { digest } => {
            let digest = full_digest(digest);
            client.call("DELETE", &format!("/v1/plugins/{}", encode(&digest)), None)?;
            let v = json!({"deleted": digest});
            out.render(&v, |v| format!("{} deleted\n", s(&v["deleted"])))
        }
    })
}
