//! The pool manager's pure core (docs/POOLS.md): a pool compiled from its spec, the
//! autoscalers, provider selection, the remediation budget, and [`decide()`] — what a pool
//! needs now, as actions the caller's loop carries out. Nothing here does I/O or reads the
//! time: the caller passes Unix milliseconds from its injectable clock.

pub mod autoscale;
pub mod budget;
pub mod compile;
pub mod decide;
pub mod select;

pub use compile::Pool;
pub use decide::decide;
