//! Types shared by the gpuwarden agent and control plane.
//!
//! This crate holds what crosses the network or must mean the same thing on both sides:
//! the [XID table](xid) (the single source of truth for XID severities and recommended
//! actions), the [health event](event) shape served at `GET /v1/events`, and the
//! [metric names](metric) the agent exposes and the control plane reads, and a strict,
//! zero-copy parser of the Prometheus [text exposition format](exposition), and the
//! [registration](join) an agent sends to join the control plane, and the [notice](notice)
//! it sends when it records an urgent event, and the [plugins](plugin_sync) it runs and is
//! asked to run.
//!
//! It has no I/O and depends only on `serde` and `memchr`, so the agent stays free of the control
//! plane's dependencies and the other way round.
#![deny(missing_docs)]

pub mod command;
pub mod event;
pub mod exposition;
pub mod join;
pub mod metric;
pub mod notice;
pub mod plugin_sync;
pub mod xid;

pub use event::{Action, EventKind, EventsPage, HealthEvent, Severity};
pub use xid::{XidInfo, XID_TABLE};
