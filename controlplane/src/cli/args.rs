//! The `gpuwarden` command line (clap): global flags, the `serve` command and the admin
//! commands over the REST API.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use super::commands::NodesCommand;
use super::db::DbCommand;
use super::policies::PoliciesCommand;
use super::pools::{InstancesCommand, PoolsCommand};
use super::Output;

/// gpuwarden keeps fleets of GPU machines healthy. `serve` runs the control plane; the other
/// commands drive it over its REST API.
#[derive(Debug, Parser)]
#[command(name = "gpuwarden", version, about)]
pub struct Cli {
    #[command(flatten)]
    /// The global flags.
    pub conn: Conn,
    #[command(subcommand)]
    /// What to do.
    pub command: Command,
}

/// The global flags: before or after the subcommand.
#[derive(Debug, Args)]
pub struct Conn {
    /// Control-plane URL [env GPUWARDEN_SERVER; CLI config; default http://127.0.0.1:8410].
    #[arg(long, global = true, value_name = "URL")]
    pub server: Option<String>,
    /// Admin token [env GPUWARDEN_ADMIN_TOKEN; CLI config; ./admin-token].
    #[arg(long, global = true, value_name = "TOKEN")]
    pub token: Option<String>,
    /// Output format.
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

/// The commands. (Doc comments here are clap's help text; the subcommand fields have none.)
#[derive(Debug, Subcommand)]
#[allow(missing_docs)]
pub enum Command {
    /// Run the control plane (SQLite ./gpuwarden.db on 127.0.0.1:8410 with no config).
    Serve {
        /// Configuration file (TOML); GPUWARDEN_<SECTION>__<KEY> variables override it.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Address of the API [default: 127.0.0.1:8410].
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
        /// Database: sqlite://PATH or postgres://USER:PASS@HOST/DB [default: sqlite://gpuwarden.db].
        #[arg(long, value_name = "URL")]
        database: Option<String>,
        /// Check a configuration file and exit (0 valid; 2 invalid, every problem listed).
        #[arg(long, value_name = "FILE", conflicts_with = "config")]
        check_config: Option<PathBuf>,
    },
    /// The whole product on this machine: a control plane, a pool of 4 local agents with
    /// fake GPUs, a fatal XID injected into one, and a live view while it is replaced.
    /// Ctrl-C stops everything it started.
    Demo {
        /// Folder to run in (created; must be empty) [default: ./gpuwarden-demo-UNIXTIME].
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// One line per change instead of the live view; exit 0 once the faulty node has been
        /// replaced, 1 with the reason after --time-limit.
        #[arg(long)]
        ci: bool,
        /// Agents in the pool (1 to 16).
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=16))]
        nodes: u32,
        /// How long the healthy pool runs before the fatal XID (e.g. 10s).
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        fault_after: std::time::Duration,
        /// Without the live view (--ci, or no terminal): give up after this long (e.g. 5m).
        #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
        time_limit: std::time::Duration,
        /// Stop what a killed demo left running in --dir (its control plane and agents).
        #[arg(long, requires = "dir")]
        stop: bool,
    },
    /// Run a scenario (config/scenarios/*.toml) against a real control plane and a simulated
    /// fleet, and report detection and remediation latencies, false positives and
    /// expectations (docs/simulate.md). Exit status: 0 passed, 1 an expectation failed, 2
    /// invalid scenario, 3 could not run, 130 interrupted.
    Simulate {
        /// The scenario file (TOML).
        file: PathBuf,
        /// Scale the scenario's fleet templates to N nodes in all, keeping their proportions
        /// (1 to 20000); refused for a scenario with pools.
        #[arg(long, value_name = "N")]
        nodes: Option<u32>,
        /// The seed of the fake GPUs, chaos and pool-fault picks (overrides the scenario's).
        #[arg(long, value_name = "S")]
        seed: Option<u64>,
        /// Write the JSON report to this file.
        #[arg(long, value_name = "OUT.json")]
        report: Option<PathBuf>,
        /// Run in this folder (created; must be empty) and keep it [default: a new folder
        /// under $TMPDIR, removed after a run that passed].
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Check the scenario and exit (0 valid, 2 invalid).
        #[arg(long)]
        check: bool,
    },
    /// List, inspect, join and act on nodes.
    Nodes {
        #[command(subcommand)]
        command: NodesCommand,
    },
    /// List, inspect, create, change, scale and delete pools.
    Pools {
        #[command(subcommand)]
        command: PoolsCommand,
    },
    /// The machines pools asked of their providers.
    Instances {
        #[command(subcommand)]
        command: InstancesCommand,
    },
    /// API tokens: admin (can act) or viewer (can only read); create, list, revoke.
    Tokens {
        #[command(subcommand)]
        command: super::tokens::TokensCommand,
    },
    /// Plugins distributed from the control plane: push components, assign them to pools,
    /// see which node runs which version.
    Plugins {
        #[command(subcommand)]
        command: super::plugins::PluginsCommand,
    },
    /// The remediation budget: raise or clear it by hand, see the nodes it holds.
    Remediation {
        #[command(subcommand)]
        command: super::remedy::RemediationCommand,
    },
    /// Show, check, replace and try out health policies.
    Policies {
        #[command(subcommand)]
        command: PoliciesCommand,
    },
    /// The database itself: `db copy` moves it from SQLite to PostgreSQL.
    Db {
        #[command(subcommand)]
        command: DbCommand,
    },
    /// The audit log of admin actions, newest first.
    Audit {
        /// How many entries.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
}

/// Whether the raw arguments ask for JSON output (`-o json`, `-ojson`, `--output json`,
/// `--output=json`): how a command-line error is shown before clap could parse the flags.
pub fn wants_json(args: &[String]) -> bool {
    args.iter().enumerate().any(|(i, a)| {
        let next = args.get(i + 1).map(String::as_str);
        matches!(a.as_str(), "-ojson" | "--output=json")
            || (matches!(a.as_str(), "-o" | "--output") && next == Some("json"))
    })
}
