//! The gpuwarden control plane.
//!
//! Not built yet: this crate holds its place in the workspace. It will scrape the agents'
//! `/metrics` and `/v1/events`, evaluate CEL health policies, keep state through diesel
//! (SQLite by default, PostgreSQL for production), drive node pools, and serve the REST
//! admin API and the `gpuwarden` CLI (see `DESIGN.md`). Until then it exports nothing, so
//! nothing can mistake it for a working control plane.
#![deny(missing_docs)]
