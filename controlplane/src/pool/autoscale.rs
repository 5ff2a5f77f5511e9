//! Autoscalers: each a small pure type behind [`Autoscale`], built once from its spec by
//! [`build`]. An autoscaler recommends a node count; the pool's bounds, cooldowns and
//! nodes in flight are [`decide`](super::decide())'s business, not theirs.

mod build;
mod composite;
mod metrics;
mod predictive;
mod queue;
mod reactive;
mod scheduled;

pub use build::build;
pub use composite::Composite;
pub use metrics::{Autoscale, Metrics, Recommendation};
pub use predictive::Predictive;
pub use queue::Queue;
pub use reactive::Reactive;
pub use scheduled::Scheduled;
