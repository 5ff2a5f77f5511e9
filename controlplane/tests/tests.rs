//! Control-plane integration tests: one binary, a module per area (see `tests/README.md`).
//!
//! - `store`: every store operation on SQLite and on a real PostgreSQL server the test starts.
//! - `api`: the REST API in-process (actix test service) over a real SQLite file: auth and
//!   the node lifecycle; `join_api`: node tokens, registration input, meta endpoints;
//!   `policy_api`: policies, simulation, clearing health, commands; `bodies`: every
//!   body-taking endpoint refusing bad bodies; `openapi`: the OpenAPI document;
//!   `node_api`: refused actions audited, why a node is unhealthy, pending nodes scraped.
//! - `remediate`: remediation and command delivery on SQLite and PostgreSQL.
//! - `scrape`: the scraper against stub HTTP servers (malformed, huge, slow, truncated, …)
//!   and offline/online transitions driven by a fake clock.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod util;

mod api;
mod bodies;
mod cli;
mod join_api;
mod node_api;
mod openapi;
mod policy_api;
mod remediate;
mod scrape;
mod store;
