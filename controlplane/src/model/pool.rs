//! A pool's declaration (docs/POOLS.md): the same [`PoolSpec`] is read from the config file
//! (`[[pools]]`, TOML) and from the REST API (`POST /v1/pools`, JSON).
//!
//! The spec is the *raw* form: serde only checks its shape, and values that need parsing
//! (durations, clock times, time zones) stay text, so [`PoolSpec::validate`] can report
//! every problem at once, each with its field path. `crate::pool::Pool::build` turns a valid
//! spec into the compiled form the pool manager runs.
//!
//! The contract scripts depend on: `{"name":"p","provider":"local","min_nodes":2,
//! "max_nodes":4,"auto_replace":true}` parses, and every field but `name`, `min_nodes` and
//! `max_nodes` has a default.

mod autoscaler;
mod check;
mod duration;
mod instance;
mod locate;
mod plan;
mod provider;
mod spec;
#[cfg(test)]
mod tests;

pub use autoscaler::{
    AutoscalerSpec, CompositeMode, CompositeSpec, PredictiveSpec, QueueSpec, ReactiveSpec,
    ScheduledSpec, WindowSpec, WEEKDAYS,
};
pub use check::{PoolError, MAX_AUTOSCALERS, MAX_CHILDREN, MAX_PARAMS_BYTES};
pub use check::{MAX_POOL_NODES, MAX_PROVIDERS, MAX_WINDOWS, MAX_ZONES};
pub use duration::DurationText;
pub use instance::{InstanceState, InstanceTransitionError};
pub use locate::autoscaler_error;
pub use plan::Plan;
pub use provider::{ProviderSpec, Strategy, PROVIDER_KINDS};
pub use spec::{BudgetSpec, PoolSpec, RemediationSpec};
