//! Pools: the machines gpuwarden provisions, keeps at the right size and replaces
//! (docs/POOLS.md).
//!
//! The pure core: a pool compiled from its spec, the autoscalers, provider selection, the
//! remediation budget, and [`decide()`] — what a pool needs now, as actions the caller's loop
//! carries out. Nothing there does I/O or reads the time: the caller passes Unix milliseconds
//! from its injectable clock.
//!
//! [`provider`]: one trait over the infrastructure (in process, local processes, the
//! operator's programs, Lambda Cloud), called by the pool manager outside any lock.

pub mod autoscale;
pub mod budget;
pub mod compile;
pub mod decide;
pub mod manager;
pub mod provider;
pub mod reconcile;
pub mod rules;
pub mod select;

pub use compile::Pool;
pub use decide::decide;
