//! The gpuwarden control plane: joins and scrapes agents, judges them with CEL health
//! policies, acts on the verdicts, keeps the fleet's state in a database (diesel: SQLite or
//! PostgreSQL), and serves the REST admin API that the `gpuwarden` CLI drives.
//!
//! The folders follow the data flow (docs/ARCHITECTURE.md), and imports only run downwards
//! in this order (checked by `tests/layers.rs`):
//!
//! | layer | what |
//! |---|---|
//! | [`serve`] | wires the loops and the API together for `gpuwarden serve` |
//! | [`cli`] | the admin CLI over the REST API |
//! | [`api`] | the REST API (actix-web) |
//! | [`pool`] | the pool manager: autoscaling, providers, instances (being built) |
//! | [`scrape`] | schedule and fetch `/metrics` and `/v1/events`; the in-memory [`scrape::fleet`] |
//! | [`act`] | remediation, command delivery, webhooks, wake-ups |
//! | [`config`] | the configuration file, validated |
//! | [`judge`] | health policy, node health, simulation |
//! | [`store`] | the database |
//! | [`model`], [`validate`], [`clock`], [`metrics`], [`token`] | vocabulary, observation types, shared rules |
#![deny(missing_docs)]

pub mod act;
pub mod api;
pub mod cli;
pub mod clock;
pub mod config;
pub mod console;
pub mod demo;
pub mod judge;
pub mod metrics;
pub mod model;
pub mod pool;
pub mod scrape;
pub mod serve;
pub mod simulate;
pub mod store;
pub mod token;
pub mod validate;
