//! Acting on verdicts: [`remediate`] plans the next step for each unhealthy node (cordon,
//! drain, terminate) within the remediation budget, [`deliver`] carries the stored commands to
//! the agents, [`webhooks`] tells operators' systems, and [`wake`] lets the scraper and the API
//! wake these loops at once instead of at their next pass.
//!
//! Every status transition itself is decided in [`crate::model::lifecycle`] and written by the
//! [`crate::store`] with its command and audit entry in one transaction.

pub mod deliver;
pub mod managed;
pub mod remediate;
pub mod wake;
pub mod webhooks;
