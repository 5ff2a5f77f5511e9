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
//!   and offline/online transitions driven by a fake clock; `scrape_health`: what the
//!   default policy makes of scraped bodies and agent events (absent data, XID actions).
//! - `store_events`: stored events keep every field rules read (SQLite and PostgreSQL).
//! - `expected_gpus`: the expected GPU count across re-registrations and the operator's
//!   `POST /v1/nodes/{id}/expected-gpus`.
//! - `takeover`: what the bootstrap token may do to an existing node.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod util;

mod api;
mod bodies;
mod check_config;
mod cli;
mod expected_gpus;
mod join_api;
mod node_api;
mod notify;
mod openapi;
mod policy_api;
mod policy_limits;
mod remediate;
mod scrape;
mod scrape_events;
mod scrape_health;
mod store;
mod store_events;
mod takeover;
