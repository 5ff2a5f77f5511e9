//! An instance: one machine a provider was asked for, from the request to its end.
//!
//! ```text
//! provisioning ─► registering ─► running ─► terminating ─► terminated
//!      │               │            │            │   ▲
//!      └───────────────┴────────────┴──► failed ─┴───┘ (terminate it, or the provider says gone)
//! ```
//!
//! `provisioning`: recorded, the provider is being asked (a record comes first, so a crash
//! leaves no orphan); `registering`: the provider answered, its agent has not joined yet;
//! `running`: matched to the node that joined with its join token. Any live state may fail
//! (the provider refused, the registration timed out, the terminate failed); a failed
//! instance is terminated. Every state may also be cancelled straight to `terminating`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;
use utoipa::ToSchema;

/// Where an instance is in its life.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum InstanceState {
    /// Recorded; the provider is being asked for it.
    Provisioning,
    /// The provider created it; its agent has not registered yet.
    Registering,
    /// Its agent registered; it is a node of the pool.
    Running,
    /// Being shut down.
    Terminating,
    /// Gone; kept for the retention period.
    Terminated,
    /// Something went wrong; it is to be terminated.
    Failed,
}

impl InstanceState {
    /// Every state, in lifecycle order.
    pub const ALL: &'static [InstanceState] = &[
        InstanceState::Provisioning,
        InstanceState::Registering,
        InstanceState::Running,
        InstanceState::Terminating,
        InstanceState::Terminated,
        InstanceState::Failed,
    ];

    /// The name used in JSON and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            InstanceState::Provisioning => "provisioning",
            InstanceState::Registering => "registering",
            InstanceState::Running => "running",
            InstanceState::Terminating => "terminating",
            InstanceState::Terminated => "terminated",
            InstanceState::Failed => "failed",
        }
    }

    /// Still booting: asked for, its node not there yet. Counts toward the pool's size.
    pub fn is_booting(self) -> bool {
        matches!(
            self,
            InstanceState::Provisioning | InstanceState::Registering
        )
    }

    /// Whether `self → to` is allowed; staying in the same state is (it is idempotent).
    pub fn can_become(self, to: InstanceState) -> bool {
        use InstanceState::*;
        self == to
            || matches!(
                (self, to),
                (Provisioning, Registering | Running)
                    | (Registering, Running)
                    | (Provisioning | Registering | Running | Failed, Terminating)
                    | (Provisioning | Registering | Running | Terminating, Failed)
                    | (Terminating | Failed, Terminated)
            )
    }

    /// The state after `self → to`, or why not.
    pub fn transition(self, to: InstanceState) -> Result<InstanceState, InstanceTransitionError> {
        if self.can_become(to) {
            Ok(to)
        } else {
            Err(InstanceTransitionError { from: self, to })
        }
    }
}

/// A change of state an instance cannot make.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("an instance cannot go from {from} to {to}")]
pub struct InstanceTransitionError {
    /// Its state.
    pub from: InstanceState,
    /// The refused state.
    pub to: InstanceState,
}

impl fmt::Display for InstanceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for InstanceState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        InstanceState::ALL
            .iter()
            .copied()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| {
                let all: Vec<_> = InstanceState::ALL.iter().map(|s| s.as_str()).collect();
                format!(
                    "unknown instance state {s:?}: expected one of {}",
                    all.join(", ")
                )
            })
    }
}
