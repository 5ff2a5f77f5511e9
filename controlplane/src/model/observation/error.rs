//! Why an agent's `/metrics` body could not be turned into an observation.

use gpuwarden_wire::exposition::ParseError;

/// Why a body could not be observed.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ObserveError {
    /// Not valid Prometheus text.
    #[error("invalid metrics body: {0}")]
    Parse(#[from] ParseError),
    /// More samples than the per-target limit (reading stops there).
    #[error("more than {limit} samples (scrape.sample_limit)")]
    TooManySamples {
        /// The limit.
        limit: usize,
    },
    /// More distinct items of one kind than a gpuwarden agent ever sends (GPUs, links per
    /// GPU, plugin checks, …; see [`super::limits`]): the body is refused whole, so one target
    /// cannot make the control plane's memory grow without bound.
    #[error("more than {limit} {what} in one scrape (a gpuwarden agent never sends so many)")]
    TooMany {
        /// What there are too many of, e.g. `GPUs`, `NVLink links on GPU 0`.
        what: String,
        /// The limit.
        limit: usize,
    },
    /// A label value (or metric name) the observation keeps is longer than `max`
    /// (`limits::MAX_VALUE_BYTES`).
    #[error("{metric}: the {label} is {len} bytes long; at most {max} are kept")]
    TooLong {
        /// The series.
        metric: String,
        /// The label (or `metric name`).
        label: String,
        /// Its length in bytes.
        len: usize,
        /// The most bytes kept.
        max: usize,
    },
    /// The body has no gpuwarden series at all (an empty body, another exporter): the
    /// target is not a gpuwarden agent, and nothing can be judged from it.
    #[error("not a gpuwarden agent: the body has no gpuwarden_ series")]
    NotAnAgent,
    /// A per-GPU series without a usable `gpu` label.
    #[error("{metric}: the gpu label is missing or not a number in its one decimal spelling (0, 1, … not +0 or 01)")]
    BadGpuLabel {
        /// The series.
        metric: String,
    },
}
