//! Why a provider call failed: a kind the pool manager branches on (retry or not), a
//! message for the pool's status, and how long the provider asked us to wait.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Why a provider call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// No capacity for this instance type or region now.
    Capacity,
    /// The account's quota is used up.
    Quota,
    /// Credentials missing, invalid, or the account inactive.
    Auth,
    /// Too many requests: slow down.
    RateLimited,
    /// No answer in time (the machine may exist: [`super::Provider::list`] finds it).
    Timeout,
    /// The provider refused the request as invalid.
    InvalidRequest,
    /// The machine does not exist.
    NotFound,
    /// The provider is unreachable or failing (5xx, connection refused).
    Unavailable,
    /// The provider answered something that cannot be read.
    BadAnswer,
    /// Anything else.
    Other,
}

impl ErrorKind {
    /// Every kind, in declaration order.
    pub const ALL: &'static [ErrorKind] = &[
        ErrorKind::Capacity,
        ErrorKind::Quota,
        ErrorKind::Auth,
        ErrorKind::RateLimited,
        ErrorKind::Timeout,
        ErrorKind::InvalidRequest,
        ErrorKind::NotFound,
        ErrorKind::Unavailable,
        ErrorKind::BadAnswer,
        ErrorKind::Other,
    ];

    /// The name in JSON, the exec contract and the pool's status.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Capacity => "capacity",
            ErrorKind::Quota => "quota",
            ErrorKind::Auth => "auth",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::Timeout => "timeout",
            ErrorKind::InvalidRequest => "invalid_request",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::BadAnswer => "bad_answer",
            ErrorKind::Other => "other",
        }
    }

    /// The kind named `s` ([`ErrorKind::as_str`]).
    pub fn parse(s: &str) -> Option<ErrorKind> {
        ErrorKind::ALL.iter().copied().find(|k| k.as_str() == s)
    }

    /// Whether the same call may succeed later without anyone changing anything.
    pub fn retryable(self) -> bool {
        matches!(
            self,
            ErrorKind::Capacity
                | ErrorKind::RateLimited
                | ErrorKind::Timeout
                | ErrorKind::Unavailable
        )
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed provider call: its kind, a message for the pool's status (never a secret),
/// and how long the provider asked us to wait.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct ProviderError {
    /// What went wrong.
    pub kind: ErrorKind,
    /// What the provider said, in words.
    pub message: String,
    /// Wait at least this long before the next call (a 429's `Retry-After`, a pacing limit).
    pub retry_after: Option<Duration>,
}

impl ProviderError {
    /// An error of `kind`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            retry_after: None,
        }
    }

    /// The same error, asking the caller to wait `d` first.
    pub fn with_retry_after(mut self, d: Duration) -> Self {
        self.retry_after = Some(d);
        self
    }

    /// Whether the call may be retried (with backoff): capacity, rate limits, timeouts and
    /// an unavailable provider; not auth, quota, invalid requests or unreadable answers.
    pub fn retryable(&self) -> bool {
        self.kind.retryable()
    }
}
