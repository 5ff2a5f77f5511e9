//! The gpuwarden control plane: joins and scrapes agents, keeps the fleet's state in a
//! database (diesel: SQLite or PostgreSQL), and serves the REST admin API that the
//! `gpuwarden` CLI drives.
//!
//! Data flow: [`scrape`] pulls each agent's `/metrics` on a stable per-target phase
//! ([`schedule`]), turns the body into an [`observation`], reads new health events from the
//! agent when its counters moved, and keeps the latest state in [`fleet`] (memory), which
//! persists observations in batches and transitions as they happen to the [`store`]. The
//! [`api`] serves nodes, tokens, events, commands and audit; [`lifecycle`] is the one place
//! node status transitions are decided. Every observation and new event is judged by the
//! CEL [`policy`], and [`health`] turns the verdicts into each node's health (step 4, in
//! progress: remediation through the agents is not built yet).
#![deny(missing_docs)]

pub mod api;
pub mod cli;
pub mod clock;
pub mod config;
pub mod deliver;
pub mod fleet;
pub mod health;
pub mod lifecycle;
pub mod metrics;
pub mod model;
pub mod notify;
pub mod observation;
pub mod policy;
pub mod remediate;
pub mod schedule;
pub mod scrape;
pub mod serve;
pub mod simulate;
pub mod store;
pub mod token;
pub mod validate;
pub mod wake;
