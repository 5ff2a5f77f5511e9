//! The gpuwarden control plane.
//!
//! Being built (step 3 of the first build). What exists is the pure logic the scraper needs,
//! with no I/O: turning an agent's `/metrics` body into a per-node [observation], deciding
//! from two observations whether the agent's counters grew (so its `/v1/events` must be read),
//! spreading scrape targets over the interval ([schedule]), and issuing and checking node,
//! bootstrap and admin tokens ([token]). The server, store (diesel),
//! REST API and CLI of `DESIGN.md` are not here yet, and nothing here pretends to be them.
#![deny(missing_docs)]

pub mod observation;
pub mod schedule;
pub mod token;
