//! The fleet's vocabulary: node lifecycle, health and connectivity, commands, and the JSON
//! shapes of the REST API (docs/remediation.md, "Node states").

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $v:ident = $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($(#[$vm])* $v),+ }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$v),+];
            /// The name used in JSON, the database and metrics.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$v => $s),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($s => Ok($name::$v),)+
                    other => Err(format!(
                        "unknown {} {other:?}: expected one of {}",
                        stringify!($name).to_lowercase(),
                        [$($s),+].join(", ")
                    )),
                }
            }
        }
    };
}

string_enum! {
    /// Where a node is in its life.
    Status {
        /// Created by an operator; no agent has registered yet.
        Pending = "pending",
        /// Registered and schedulable.
        Active = "active",
        /// No new work is scheduled on it.
        Cordoned = "cordoned",
        /// Its work is being moved off.
        Draining = "draining",
        /// Being shut down.
        Terminating = "terminating",
        /// Gone; kept for its history.
        Terminated = "terminated",
    }
}

string_enum! {
    /// What the health policies make of a node.
    Health {
        /// No rule matched.
        Healthy = "healthy",
        /// A `degraded` rule matched.
        Degraded = "degraded",
        /// An `unhealthy` rule matched; sticks until cleared.
        Unhealthy = "unhealthy",
        /// Not evaluated yet.
        Unknown = "unknown",
    }
}

string_enum! {
    /// Whether the control plane can scrape the node.
    Connectivity {
        /// The last scrape succeeded within the grace period.
        Online = "online",
        /// No successful scrape for the grace period (or never).
        Offline = "offline",
    }
}

string_enum! {
    /// An operation carried out on a node by its agent.
    CommandKind {
        /// Stop scheduling new work.
        Cordon = "cordon",
        /// Allow scheduling again.
        Uncordon = "uncordon",
        /// Move work off the node.
        Drain = "drain",
        /// Shut the node down.
        Terminate = "terminate",
        /// Run a diagnostic plugin.
        RunDiagnostic = "run_diagnostic",
    }
}

string_enum! {
    /// Where a command is in its delivery.
    CommandState {
        /// Stored; not yet acknowledged by the agent.
        Pending = "pending",
        /// Accepted by the agent; running.
        Running = "running",
        /// Finished successfully.
        Succeeded = "succeeded",
        /// Finished with an error, or gave up.
        Failed = "failed",
        /// Superseded before delivery.
        Cancelled = "cancelled",
    }
}

string_enum! {
    /// How a node came to be known.
    Source {
        /// `POST /v1/nodes` by an operator.
        Created = "created",
        /// Self-registration with a bootstrap token.
        Registered = "registered",
        /// A static target in the control plane's config.
        Static = "static",
    }
}

pub use gpuwarden_wire::join::{Capabilities, GpuInfo};

/// Per-target scrape state, kept in memory.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ScrapeInfo {
    /// Whether the last scrape succeeded.
    pub up: bool,
    /// When the last scrape finished (RFC 3339).
    pub last_scrape: Option<String>,
    /// How long it took, in seconds.
    pub duration_seconds: f64,
    /// Samples in the last successful scrape.
    pub samples: usize,
    /// Why the last scrape failed.
    pub last_error: Option<String>,
    /// Failures since the last success.
    pub consecutive_failures: u32,
}

/// A node as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Node {
    /// Stable id.
    pub id: String,
    /// Unique name (the agent's node name).
    pub name: String,
    /// Pool it belongs to.
    pub pool: String,
    /// Labels (also given to Prometheus through `/v1/sd`).
    pub labels: BTreeMap<String, String>,
    /// Base URL the control plane scrapes (`http://host:9410`).
    pub address: Option<String>,
    /// Lifecycle status.
    pub status: Status,
    /// Health verdict.
    pub health: Health,
    /// Scrape connectivity.
    pub connectivity: Connectivity,
    /// GPUs reported at registration.
    pub gpus: Vec<GpuInfo>,
    /// GPUs the node is expected to have: the most it ever registered with, unless an
    /// operator lowered it (`POST /v1/nodes/{id}/expected-gpus`); for a node not scraped
    /// now, the GPUs its last registration listed; 0 when unknown.
    #[serde(default)]
    pub expected_gpus: usize,
    /// Everything else reported at registration.
    pub capabilities: Capabilities,
    /// Agent version.
    pub agent_version: Option<String>,
    /// How the node joined.
    pub source: Source,
    /// True when its agent shut down gracefully and is not scraped until it registers again.
    pub deregistered: bool,
    /// Created (RFC 3339).
    pub created_at: String,
    /// Last change (RFC 3339).
    pub updated_at: String,
    /// Last successful scrape (RFC 3339).
    pub last_seen: Option<String>,
    /// The pool instance it runs on, when a pool provisioned it (`GET /v1/instances/{id}`).
    #[serde(default)]
    pub instance_id: Option<String>,
    /// Scrape state, when the control plane scrapes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scrape: Option<ScrapeInfo>,
    /// Why the node is `degraded` or `unhealthy` (`GET /v1/nodes/{id}` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_reason: Option<HealthReason>,
    /// Why remediation leaves this unhealthy node in service: its pool's or the fleet's
    /// remediation budget is full (`GET /v1/nodes/{id}` only; docs/POOLS.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<String>,
}

/// Why a node has its health: the latest health change, from the node's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HealthReason {
    /// The policy rule that decided, when one did.
    pub rule: Option<String>,
    /// What matched (`rule fatal-xid: XID 79 on GPU 3 …`), or who cleared it.
    pub reason: String,
    /// Since when (RFC 3339).
    pub since: String,
    /// Who changed it: `policy:RULE`, `admin:…`.
    pub by: String,
}

/// A health event of a node, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Event {
    /// Control-plane id.
    pub id: i64,
    /// Node id.
    pub node_id: String,
    /// GPU index.
    pub gpu: Option<i32>,
    /// GPU UUID.
    pub uuid: Option<String>,
    /// `xid`, `ecc`, `thermal`, …
    pub kind: String,
    /// XID code or other code.
    pub code: Option<i64>,
    /// Human-readable detail.
    pub message: String,
    /// `info` | `warning` | `fatal`.
    pub severity: String,
    /// Recommended action.
    pub action: String,
    /// When it happened on the node (RFC 3339).
    pub time: String,
    /// The agent's sequence number.
    pub agent_seq: i64,
    /// Where the agent learned of it: `nvml`, `kmsg`, `collector`, `fake`, `plugin:<name>`
    /// (empty for events stored before it was kept).
    #[serde(default)]
    pub source: String,
}

/// A stored change of a node's status, health or connectivity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Transition {
    /// `status`, `health` or `connectivity`.
    pub field: String,
    /// Before.
    pub from: String,
    /// After.
    pub to: String,
    /// Why.
    pub reason: String,
    /// Who: `admin:…`, `agent`, `scraper`, `policy:RULE`.
    pub actor: String,
    /// When (RFC 3339).
    pub time: String,
}

/// A command for a node's agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Command {
    /// Id, also the idempotency id sent to the agent.
    pub id: String,
    /// Node id.
    pub node_id: String,
    /// What to do.
    pub kind: CommandKind,
    /// Parameters (JSON).
    #[schema(value_type = Object)]
    pub params: serde_json::Value,
    /// Delivery state.
    pub state: CommandState,
    /// Delivery attempts so far.
    pub attempts: i32,
    /// One line: what happened (the agent's message, or why delivery failed).
    pub message: Option<String>,
    /// The agent's whole answer: hook exit status and output, how a drain ended, a
    /// diagnostic report.
    #[schema(value_type = Option<Object>)]
    pub result: Option<serde_json::Value>,
    /// Who asked.
    pub requested_by: String,
    /// Created (RFC 3339).
    pub created_at: String,
    /// Finished (RFC 3339).
    pub completed_at: Option<String>,
}

/// An audit log entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditEntry {
    /// Id.
    pub id: i64,
    /// Who (`admin:<token prefix>`, `bootstrap`, `node:<id>`).
    pub actor: String,
    /// What (`node.create`, `node.cordon`, …).
    pub action: String,
    /// On what (a node id).
    pub target: String,
    /// Request details (JSON).
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
    /// `ok` or the error.
    pub result: String,
    /// When (RFC 3339).
    pub time: String,
}

pub mod lifecycle;
pub mod observation;
pub mod plugin;
pub mod pool;
pub mod workload;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_parse_and_print_the_contract_names() {
        for s in Status::ALL {
            assert_eq!(s.as_str().parse::<Status>(), Ok(*s));
        }
        assert_eq!(
            serde_json::to_string(&CommandKind::RunDiagnostic).unwrap(),
            "\"run_diagnostic\""
        );
        let e = "sick".parse::<Health>().unwrap_err();
        assert!(e.contains("healthy, degraded, unhealthy, unknown"), "{e}");
    }
}
