//! The remediation plan: what happens to an unhealthy node. Defined here, at the bottom
//! layer, because both a pool's spec and the `[remediation]` config use it
//! (`crate::config::Plan` re-exports it, so older configs keep working).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What to do when a node turns unhealthy. Each plan includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Plan {
    /// Record the verdict and notify; change nothing on the node.
    Nothing,
    /// Stop new work landing on the node.
    Cordon,
    /// Cordon, then move the work off.
    CordonDrain,
    /// Cordon, drain, then shut the node down.
    CordonDrainTerminate,
}

impl Plan {
    /// The config name.
    pub fn as_str(self) -> &'static str {
        match self {
            Plan::Nothing => "nothing",
            Plan::Cordon => "cordon",
            Plan::CordonDrain => "cordon_drain",
            Plan::CordonDrainTerminate => "cordon_drain_terminate",
        }
    }
}
