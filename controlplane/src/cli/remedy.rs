//! `gpuwarden remediation budget|set-budget|clear-budget` and `gpuwarden nodes release`: an
//! operator's hand on the remediation budget (docs/POOLS.md, "Budget").

use clap::Subcommand;
use serde_json::{json, Value};

use super::table::Table;
use super::views::s;
use super::{encode, query, CliError, Client, Output};

#[allow(missing_docs)]
#[derive(Debug, Subcommand)]
pub enum RemediationCommand {
    /// The budgets operators set (over the configured ones) and the nodes held now.
    Budget,
    /// Set the fleet's (no --pool) or a pool's budget at run time, until cleared (audited).
    SetBudget {
        /// The pool; without it, the whole fleet's budget.
        #[arg(long)]
        pool: Option<String>,
        /// The most nodes remediation may hold out of service at once.
        #[arg(long)]
        max_nodes: u32,
        /// Percentage of the nodes, more than 0 and at most 100 [default: 100, the count
        /// alone decides].
        #[arg(long, value_parser = finite)]
        max_percent: Option<f64>,
    },
    /// Remove an operator's budget: the configured one applies again (audited).
    ClearBudget {
        /// The pool; without it, the fleet's.
        #[arg(long)]
        pool: Option<String>,
    },
}

/// The view of `remediation budget`.
pub fn budget_view(v: &Value) -> String {
    let overrides = v["overrides"].as_array().cloned().unwrap_or_default();
    let mut t = Table::new(&[
        "SCOPE",
        "POOL",
        "MAX NODES",
        "MAX PERCENT",
        "SET BY",
        "SET AT",
    ]);
    for o in &overrides {
        t.row(vec![
            s(&o["scope"]),
            s(&o["pool"]),
            s(&o["max_nodes"]),
            s(&o["max_percent"]),
            s(&o["set_by"]),
            s(&o["set_at"]),
        ]);
    }
    let mut out = if overrides.is_empty() {
        "no budget set by an operator: the configured ones apply\n".to_string()
    } else {
        t.render()
    };
    let held = v["held"].as_array().cloned().unwrap_or_default();
    out.push('\n');
    if held.is_empty() {
        out.push_str("no node held\n");
    } else {
        let mut h = Table::new(&["HELD NODE", "POOL", "SINCE", "REASON"]);
        for n in &held {
            h.row(vec![
                s(&n["node"]),
                s(&n["pool"]),
                s(&n["since"]),
                s(&n["reason"]),
            ]);
        }
        out.push_str(&h.render());
    }
    out
}

/// Runs a `remediation` command; the text to print.
pub fn remediation(
    cmd: RemediationCommand,
    client: &Client,
    out: Output,
) -> Result<String, CliError> {
    Ok(match cmd {
        RemediationCommand::Budget => {
            let v = client.call("GET", "/v1/remediation/budget", None)?;
            out.render(&v, budget_view)
        }
        RemediationCommand::SetBudget {
            pool,
            max_nodes,
            max_percent,
        } => {
            let body = json!({"pool": pool, "max_nodes": max_nodes, "max_percent": max_percent});
            let v = client.call("PUT", "/v1/remediation/budget", Some(body))?;
            out.render(&v, |v| {
                format!(
                    "remediation budget of {} {}: {} nodes, {}%\n",
                    s(&v["scope"]),
                    v["pool"].as_str().unwrap_or(""),
                    s(&v["max_nodes"]),
                    s(&v["max_percent"])
                )
            })
        }
        RemediationCommand::ClearBudget { pool } => {
            let q = query(&[("pool", pool.clone())]);
            client.call("DELETE", &format!("/v1/remediation/budget{q}"), None)?;
            let v = json!({"cleared": pool.map_or("fleet".to_string(), |p| format!("pool {p}"))});
            out.render(&v, |v| {
                format!(
                    "the configured remediation budget of the {} applies again\n",
                    v["cleared"].as_str().unwrap_or("-")
                )
            })
        }
    })
}

/// `nodes release NODE`: the held node is remediated now, past the budget.
pub fn release(client: &Client, node: &str) -> Result<(Value, super::Render), CliError> {
    let v = client.call("POST", &format!("/v1/nodes/{}/release", encode(node)), None)?;
    Ok((v, |v| {
        format!(
            "node {} of pool {} released by {}: remediated now, past the budget (it was held: {})\n",
            s(&v["node"]),
            s(&v["pool"]),
            s(&v["released_by"]),
            s(&v["held_reason"])
        )
    }))
}

/// A number that is one: `nan` and `inf` parse as `f64` but would reach the API as `null`
/// (JSON has neither), which means "the default" there.
pub(super) fn finite(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        Ok(_) => Err(format!("{s:?} is not a finite number")),
        Err(e) => Err(format!("{s:?}: {e}")),
    }
}
