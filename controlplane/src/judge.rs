//! Judging what the scraper observed: the CEL health [`policy`] (compiled once, hot-reloaded),
//! each node's [`health`] state machine over the policy's verdicts, and the what-if
//! [`simulate`] of a candidate policy over stored observations.
//!
//! Reads the observation types of [`crate::model`] and stored rows of [`crate::store`]; it
//! knows nothing of how observations are fetched (`scrape`) or what is done about a verdict
//! (`act`).

pub mod health;
pub mod policy;
pub mod simulate;
