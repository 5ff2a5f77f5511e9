//! The node commands (`gpuwarden nodes …`; policies are in `policies`): their arguments and
//! what each sends to the REST API and prints.

use clap::{Args, Subcommand};
use serde_json::{json, Value};

use super::{query, CliError, Client, Output, Render};

#[allow(missing_docs)]
#[derive(Debug, Subcommand)]
pub enum NodesCommand {
    /// Nodes, by name, with filters.
    List {
        /// Only this pool.
        #[arg(long)]
        pool: Option<String>,
        /// Only this status (pending, active, cordoned, draining, terminating, terminated).
        #[arg(long)]
        status: Option<String>,
        /// Only this health (healthy, degraded, unhealthy, unknown).
        #[arg(long)]
        health: Option<String>,
        /// Only this connectivity (online, offline).
        #[arg(long)]
        connectivity: Option<String>,
        /// Page size.
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Nodes to skip.
        #[arg(long, default_value_t = 0)]
        offset: u32,
    },
    /// One node (by id or name): state, scrape, GPUs.
    Get {
        /// Node id or name.
        node: String,
    },
    /// A node's health events, newest first.
    Events {
        /// Node id or name.
        node: String,
        /// Only events since this time (RFC 3339) or this long ago (e.g. 1h).
        #[arg(long)]
        since: Option<String>,
        /// How many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// A node's history: status, health and connectivity changes with their reasons.
    History {
        /// Node id or name.
        node: String,
    },
    /// Commands sent to a node's agent.
    Commands {
        /// Node id or name.
        node: String,
    },
    /// Create a node in `pending`, ready for a join token.
    Create {
        /// Node name (its agent's node.id).
        name: String,
        /// Pool.
        #[arg(long)]
        pool: Option<String>,
        /// Label key=value (repeatable).
        #[arg(long = "label", value_name = "KEY=VALUE")]
        labels: Vec<String>,
        /// Agent URL, if known (http://host:9410).
        #[arg(long)]
        address: Option<String>,
    },
    /// Issue a join token and print the install script (agent config and systemd unit)
    /// that uses it.
    Token {
        /// Node id or name.
        node: String,
        /// Lifetime (e.g. 24h).
        #[arg(long)]
        ttl: Option<String>,
        /// Print only the install script, to pipe to the node:
        /// `gpuwarden nodes token gpu-01 --script | ssh gpu-01 sudo sh`.
        #[arg(long)]
        script: bool,
    },
    /// Stop scheduling work on a node.
    Cordon(StepArgs),
    /// Allow scheduling again.
    Uncordon(StepArgs),
    /// Move work off a node.
    Drain {
        #[command(flatten)]
        step: StepArgs,
        /// How long the drain may take (e.g. 30m).
        #[arg(long)]
        timeout: Option<String>,
    },
    /// Shut a node down.
    Terminate(StepArgs),
    /// Run a diagnostic plugin on a node's agent; `nodes commands` shows its report.
    Diagnose {
        /// Node id or name.
        node: String,
        /// The plugin (default: the agent's `commands.diagnostic`).
        #[arg(long)]
        plugin: Option<String>,
        /// Plugin parameter key=value (repeatable).
        #[arg(long = "arg", value_name = "KEY=VALUE")]
        args: Vec<String>,
    },
    /// Release a node the remediation budget holds: it is remediated now, past the budget
    /// (audited).
    Release {
        /// Node id or name.
        node: String,
    },
    /// Clear a node's health verdict (a sticky `unhealthy`); it is recomputed from what
    /// still holds.
    ClearHealth {
        /// Node id or name.
        node: String,
    },
    /// Set how many GPUs a node is expected to have (audited). Registrations keep the most
    /// a node ever had, so a vanished GPU is noticed; lower it after removing one on purpose.
    SetGpus {
        /// Node id or name.
        node: String,
        /// GPUs expected (1 to 1024).
        gpus: usize,
    },
    /// Delete a node and its records (the audit log keeps the deletion).
    Delete {
        /// Node id or name.
        node: String,
    },
}

#[allow(missing_docs)]
#[derive(Debug, Args)]
pub struct StepArgs {
    /// Node id or name.
    node: String,
    /// Why (kept with the transition and in the audit log).
    #[arg(long)]
    reason: Option<String>,
}

fn since_param(s: Option<String>) -> Result<Option<String>, CliError> {
    let Some(s) = s else { return Ok(None) };
    if let Ok(d) = humantime::parse_duration(&s) {
        let t = std::time::SystemTime::now()
            .checked_sub(d)
            .ok_or_else(|| CliError::Usage(format!("--since {s}: too far back")))?;
        return Ok(Some(humantime::format_rfc3339_millis(t).to_string()));
    }
    if crate::clock::parse_rfc3339(&s).is_none() {
        return Err(CliError::Usage(format!(
            "--since {s:?}: neither a duration like 1h nor an RFC 3339 time like 2026-11-30T08:00:00Z"
        )));
    }
    Ok(Some(s))
}

fn seg(s: &str) -> String {
    super::encode(s)
}

/// Runs a `nodes` command; the text to print.
pub fn nodes(cmd: NodesCommand, client: &Client, out: Output) -> Result<String, CliError> {
    let (v, render): (Value, Render) = match cmd {
        NodesCommand::List {
            pool,
            status,
            health,
            connectivity,
            limit,
            offset,
        } => {
            let q = query(&[
                ("pool", pool),
                ("status", status),
                ("health", health),
                ("connectivity", connectivity),
                ("limit", Some(limit.to_string())),
                ("offset", Some(offset.to_string())),
            ]);
            (
                client.call("GET", &format!("/v1/nodes{q}"), None)?,
                super::nodes_table,
            )
        }
        NodesCommand::Get { node } => (
            client.call("GET", &format!("/v1/nodes/{}", seg(&node)), None)?,
            super::node_view,
        ),
        NodesCommand::Events { node, since, limit } => {
            let q = query(&[
                ("since", since_param(since)?),
                ("limit", Some(limit.to_string())),
            ]);
            (
                client.call("GET", &format!("/v1/nodes/{}/events{q}", seg(&node)), None)?,
                super::events_table,
            )
        }
        NodesCommand::History { node } => (
            client.call(
                "GET",
                &format!("/v1/nodes/{}/transitions", seg(&node)),
                None,
            )?,
            super::transitions_table,
        ),
        NodesCommand::Commands { node } => (
            client.call("GET", &format!("/v1/nodes/{}/commands", seg(&node)), None)?,
            super::commands_table,
        ),
        NodesCommand::Create {
            name,
            pool,
            labels,
            address,
        } => {
            let mut map = serde_json::Map::new();
            for l in labels {
                let (k, v) = l
                    .split_once('=')
                    .ok_or_else(|| CliError::Usage(format!("--label {l:?}: expected KEY=VALUE")))?;
                map.insert(k.to_string(), json!(v));
            }
            let body = json!({"name": name, "pool": pool, "labels": map, "address": address});
            (
                client.call("POST", "/v1/nodes", Some(body))?,
                super::node_view,
            )
        }
        NodesCommand::Token { node, ttl, script } => {
            let v = client.call(
                "POST",
                &format!("/v1/nodes/{}/token", seg(&node)),
                Some(json!({"ttl": ttl})),
            )?;
            if script {
                (v, |v| {
                    v["install_script"]
                        .as_str()
                        .unwrap_or("")
                        .trim_end()
                        .to_string()
                })
            } else {
                (v, |v| {
                    format!(
                        "join token for node {} (expires {}); shown once:\n\n{}\n\n\
                         Install script (run as root on the node; `--script` prints it alone,\n\
                         `ROOT=DIR sh` writes under DIR to look first):\n\n{}",
                        v["node_id"].as_str().unwrap_or("-"),
                        v["expires_at"].as_str().unwrap_or("-"),
                        v["token"].as_str().unwrap_or("-"),
                        v["install_script"].as_str().unwrap_or("").trim_end()
                    )
                })
            }
        }
        NodesCommand::Cordon(a) => step(client, "cordon", a, None)?,
        NodesCommand::Uncordon(a) => step(client, "uncordon", a, None)?,
        NodesCommand::Drain { step: a, timeout } => step(client, "drain", a, timeout)?,
        NodesCommand::Terminate(a) => step(client, "terminate", a, None)?,
        NodesCommand::Diagnose { node, plugin, args } => {
            let mut map = serde_json::Map::new();
            for a in args {
                let (k, v) = a
                    .split_once('=')
                    .ok_or_else(|| CliError::Usage(format!("--arg {a:?}: expected KEY=VALUE")))?;
                map.insert(k.to_string(), json!(v));
            }
            let v = client.call(
                "POST",
                &format!("/v1/nodes/{}/diagnose", seg(&node)),
                Some(json!({"plugin": plugin, "args": map})),
            )?;
            (v, |v| {
                format!(
                    "diagnostic queued for node {} as command {}; see `gpuwarden nodes commands {}`\n",
                    v["node"]["name"].as_str().unwrap_or("-"),
                    v["command"]["id"].as_str().unwrap_or("-"),
                    v["node"]["name"].as_str().unwrap_or("-"),
                )
            })
        }
        NodesCommand::Release { node } => super::remedy::release(client, &node)?,
        NodesCommand::ClearHealth { node } => (
            client.call(
                "POST",
                &format!("/v1/nodes/{}/clear-health", seg(&node)),
                None,
            )?,
            |v| {
                format!(
                    "node {} is {}\n",
                    v["name"].as_str().unwrap_or("-"),
                    v["health"].as_str().unwrap_or("-")
                )
            },
        ),
        NodesCommand::SetGpus { node, gpus } => (
            client.call(
                "POST",
                &format!("/v1/nodes/{}/expected-gpus", seg(&node)),
                Some(json!({ "gpus": gpus })),
            )?,
            |v| {
                format!(
                    "node {} is expected to have {} GPUs\n",
                    v["name"].as_str().unwrap_or("-"),
                    v["expected_gpus"]
                )
            },
        ),
        NodesCommand::Delete { node } => {
            client.call("DELETE", &format!("/v1/nodes/{}", seg(&node)), None)?;
            (json!({"deleted": node}), |v| {
                format!("deleted node {}\n", v["deleted"].as_str().unwrap_or("-"))
            })
        }
    };
    Ok(out.render(&v, render))
}

fn step(
    client: &Client,
    action: &str,
    a: StepArgs,
    timeout: Option<String>,
) -> Result<(Value, Render), CliError> {
    let body = json!({"reason": a.reason, "timeout": timeout});
    let v = client.call(
        "POST",
        &format!("/v1/nodes/{}/{action}", seg(&a.node)),
        Some(body),
    )?;
    Ok((v, super::step_view))
}
