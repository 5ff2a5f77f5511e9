//! Control-plane integration tests: one binary, a module per area (see `tests/README.md`).
//!
//! - `store`: every store operation (the suites in `store_suite*`, pools and instances in
//!   `store_suite_pools`, the budget by hand and utilization history in
//!   `store_suite_remedy`) on SQLite and on a real PostgreSQL server the test starts.
//! - `api`: the REST API in-process (actix test service) over a real SQLite file: shared
//!   helpers and auth; `api_lifecycle`: a node's life through the API; `join_api`: node
//!   tokens, registration input, meta endpoints; `policy_api`: policies, simulation,
//!   clearing health, commands; `bodies`: every body-taking endpoint refusing bad bodies;
//!   `openapi`: the OpenAPI document; `node_api`: refused actions audited, why a node is
//!   unhealthy, pending nodes scraped.
//! - `remediate`: the full remediation plan on SQLite and PostgreSQL; `remediate_delivery`:
//!   backoff while the agent is away, a restart carrying on; `remediate_failures`: failures,
//!   operators and undeliverable commands stopping the plan.
//! - `scrape`: the scraper's rig and the scraper against stub HTTP servers (malformed, huge,
//!   slow, truncated, …); `scrape_offline`: offline/online transitions and phases on a fake
//!   clock; `scrape_writes`: events stored once, observations in batches; `scrape_health`:
//!   what the default policy makes of scraped bodies and agent events (absent data, XID
//!   actions), stored with its reason.
//! - `store_events`: stored events keep every field rules read (SQLite and PostgreSQL).
//! - `expected_gpus`: the expected GPU count across re-registrations and the operator's
//!   `POST /v1/nodes/{id}/expected-gpus`.
//! - `takeover`: what the bootstrap token may do to an existing node.
//! - `provider_exec`, `provider_local`, `provider_lambda`, `provider_lambda_http`: the pool
//!   providers against real programs, real agents and a stand-in of the Lambda Cloud API
//!   (`lambda_stub`).
//! - `pools_api`: pools through the REST API (contract body, every problem of an invalid
//!   pool, config pools read-only, scale bounds, demand); `instances_api`: deleting a pool,
//!   the instance listing and its filters, auth.
//! - `pools_breaker`: what a breaker sent the pools API (labels, list caps, keys given
//!   twice, a bad autoscaler field's path, config pools' 409 first, a clamped target).
//! - `pools_manager_api`: the REST API and a pool manager together: a change through the API
//!   acted on at once; a held node released and the budget raised, audited, shown by the CLI.
//! - `cli_pools`: `gpuwarden pools …` and `instances …` against a real control plane.
//! - `config_pools`: `[[pools]]` applied at start, removed when no longer declared, their
//!   remediation over `[remediation.pools.NAME]`, every problem by key and file.
//! - `config_reload`: `[[pools]]` applied on SIGHUP and when the file changes; an invalid
//!   edit changes nothing; other sections wait for a restart.
//! - `console`: the web console in-process: sign-in and its cookie, every page, actions
//!   with and without the CSRF token, viewers refused; `console_pages`: add a node, the
//!   policy check, charts, pools, odd requests.
//! - `plugins_api`: plugins distributed from the control plane: uploads checked and stored
//!   by digest, assignments with every problem named, what each agent is told, drift.
//! - `layers`: the crate's shape: imports run downwards between folders, no import circles.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod util;

mod api;
mod api_lifecycle;
mod bodies;
mod check_config;
mod cli;
mod cli_pools;
mod config_pools;
mod config_reload;
mod console;
mod console_pages;
mod db_copy;
mod expected_gpus;
mod instances_api;
mod join_api;
mod lambda_stub;
mod layers;
mod node_api;
mod node_listing;
mod notify;
mod openapi;
mod plugins_api;
mod policy_api;
mod policy_limits;
mod pools_api;
mod pools_breaker;
mod pools_invalid;
mod pools_local;
mod pools_manager_api;
mod provider_exec;
mod provider_lambda;
mod provider_lambda_http;
mod provider_local;
mod remediate;
mod remediate_delivery;
mod remediate_failures;
mod scrape;
mod scrape_events;
mod scrape_health;
mod scrape_offline;
mod scrape_writes;
mod store;
mod store_events;
mod store_suite;
mod store_suite_observations;
mod store_suite_plugins;
mod store_suite_pool_removal;
mod store_suite_pools;
mod store_suite_remedy;
mod takeover;
mod tokens_api;
