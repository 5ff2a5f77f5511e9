//! Pools: the machines gpuwarden provisions, keeps at the right size and replaces.
//!
//! [`provider`]: one trait over the infrastructure (in process, local processes, the
//! operator's programs, Lambda Cloud), called by the pool manager outside any lock.

pub mod provider;
