//! The pool manager: one loop per control plane that keeps each pool at its target with
//! healthy machines (docs/POOLS.md). Each tick, for each pool: its state is read from the
//! database (nodes, instances, cooldowns, targets, demand) and the scraper's latest
//! observations (workload slots, utilization, compute processes), decided ([`crate::pool::decide()`]),
//! the decision stored, and the actions carried out idempotently.
//!
//! - Provider calls run on threads of their own, outside any lock, under a timeout; an
//!   instance is recorded (with its pre-created node and join token) before its provider is
//!   called, so a crash in between leaves a record the [`crate::pool::reconcile`] loop resumes.
//! - Node steps (cordon, drain, an agent's terminate) go through the command queue like
//!   remediation's. For the nodes of a managed pool the pool manager is the only decider:
//!   remediation skips them ([`crate::act::managed::ManagedPools`]), so a node is never
//!   remediated twice, and the pool's budget holds what it must ([`crate::act::managed::Held`]).
//! - Registration matching: an instance whose pre-created node was registered by its agent
//!   (with the instance's join token) becomes `running`.
//!
//! Both loops take a [`Leader`] guard: always yes today; over one PostgreSQL, only the
//! leader will act.

mod calls;
mod carry;
mod context;
mod ending;
mod gather;
mod hand;
mod run;
mod save;
#[cfg(test)]
pub(crate) mod tests;
#[cfg(test)]
mod tests_calls;
#[cfg(test)]
mod tests_hand;
#[cfg(test)]
mod tests_replace;

pub use calls::{call, ProviderCache};
pub use carry::{request, start_provision, ACTOR};
pub use context::{AlwaysLeader, Ctx, InFlight, Leader, ManagerSettings, Observations};
pub use ending::{fail_instance, node_gone, terminate_instance};
pub use run::{ManagerHandle, PoolManager, TickReport};
