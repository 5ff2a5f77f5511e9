//! The Lambda Cloud REST API (`/api/v1`) as the provider uses it: authenticated, paced
//! requests, and every answer that is not a 2xx mapped to an [`ErrorKind`] from its HTTP
//! status and the documented error code (`{"error": {"code", "message", "suggestion"}}`).
//! The API key goes in the `Authorization` header only; errors never carry it.

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::pace::Pace;
use crate::pool::provider::{ErrorKind, ProviderError};

/// Most bytes read from one answer.
pub const MAX_ANSWER: u64 = 8 << 20;

/// The documented error codes this provider tells apart.
pub mod codes {
    /// The API key is invalid, expired or deleted.
    pub const INVALID_API_KEY: &str = "global/invalid-api-key";
    /// The account is inactive.
    pub const ACCOUNT_INACTIVE: &str = "global/account-inactive";
    /// The request's parameters are invalid.
    pub const INVALID_PARAMETERS: &str = "global/invalid-parameters";
    /// The object does not exist.
    pub const OBJECT_DOES_NOT_EXIST: &str = "global/object-does-not-exist";
    /// The account's quota is used up.
    pub const QUOTA_EXCEEDED: &str = "global/quota-exceeded";
    /// No capacity for the instance type in the region.
    pub const INSUFFICIENT_CAPACITY: &str = "instance-operations/launch/insufficient-capacity";
}

#[derive(Deserialize)]
struct ErrorAnswer {
    error: ErrorBody,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    suggestion: Option<String>,
}

/// A client of one account.
pub struct Api {
    base: String,
    key: String,
    http: ureq::Agent,
    pace: Pace,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("base", &self.base)
            .field("key", &"[redacted]")
            .field("pace", &self.pace)
            .finish()
    }
}

impl Api {
    /// A client of the API at `base` (e.g. `https://cloud.lambdalabs.com/api/v1`) with
    /// `key`, each request limited to `timeout`.
    pub fn new(base: &str, key: String, timeout: Duration, pace: Pace) -> Self {
        let http = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .user_agent(concat!("gpuwarden/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Self {
            base: base.trim_end_matches('/').to_string(),
            key,
            http,
            pace,
        }
    }

    /// `GET path`: the answer's JSON.
    pub fn get(&self, path: &str) -> Result<Value, ProviderError> {
        self.pace.acquire(false)?;
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .header("Authorization", format!("Bearer {}", self.key))
            .header("Accept", "application/json")
            .call();
        self.answer(path, r)
    }

    /// `POST path` with `body`; `launch` paces it as a launch.
    pub fn post(&self, path: &str, body: &Value, launch: bool) -> Result<Value, ProviderError> {
        self.pace.acquire(launch)?;
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .header("Authorization", format!("Bearer {}", self.key))
            .header("Accept", "application/json")
            .send_json(body);
        self.answer(path, r)
    }

    fn answer(
        &self,
        path: &str,
        r: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Value, ProviderError> {
        let mut r = r.map_err(|e| transport(path, &e))?;
        let status = r.status().as_u16();
        let retry_after = r
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let text = r
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER)
            .read_to_string()
            .map_err(|e| transport(path, &e))?;
        let text = redact_key(&text, &self.key);
        if (200..300).contains(&status) {
            return serde_json::from_str(&text).map_err(|e| {
                ProviderError::new(
                    ErrorKind::BadAnswer,
                    format!("{path}: HTTP {status} with an answer that is not JSON: {e}"),
                )
            });
        }
        let e = classify(path, status, &text, retry_after);
        if e.kind == ErrorKind::RateLimited {
            self.pace
                .back_off(e.retry_after.unwrap_or(Duration::from_secs(12)));
        }
        Err(e)
    }
}

fn redact_key(text: &str, key: &str) -> String {
    crate::pool::provider::redact(text, &[key])
}

/// A request that got no HTTP answer.
fn transport(path: &str, e: &ureq::Error) -> ProviderError {
    let kind = match e {
        ureq::Error::Timeout(_) => ErrorKind::Timeout,
        ureq::Error::BodyExceedsLimit(_) => ErrorKind::BadAnswer,
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => ErrorKind::Timeout,
        _ => ErrorKind::Unavailable,
    };
    ProviderError::new(kind, format!("{path}: {e}"))
}

/// The error an answer with HTTP `status` and body `text` stands for.
pub fn classify(
    path: &str,
    status: u16,
    text: &str,
    retry_after: Option<Duration>,
) -> ProviderError {
    let body = serde_json::from_str::<ErrorAnswer>(text)
        .ok()
        .map(|a| a.error);
    let code = body.as_ref().map_or("", |b| b.code.as_str());
    let kind = match (status, code) {
        (_, codes::INSUFFICIENT_CAPACITY) => ErrorKind::Capacity,
        (_, codes::QUOTA_EXCEEDED) => ErrorKind::Quota,
        (_, codes::INVALID_API_KEY | codes::ACCOUNT_INACTIVE) | (401 | 403, _) => ErrorKind::Auth,
        (429, _) => ErrorKind::RateLimited,
        (_, codes::OBJECT_DOES_NOT_EXIST) | (404, _) => ErrorKind::NotFound,
        (408 | 504, _) => ErrorKind::Timeout,
        (500..=599, _) => ErrorKind::Unavailable,
        (400..=499, _) => ErrorKind::InvalidRequest,
        _ => ErrorKind::BadAnswer,
    };
    let said = match &body {
        Some(b) => {
            let mut s = format!("{}: {}", b.code, b.message.trim());
            if let Some(hint) = b.suggestion.as_deref().filter(|h| !h.trim().is_empty()) {
                s.push_str(&format!(" ({})", hint.trim()));
            }
            s
        }
        None => super::super::run::one_line(&text.chars().take(300).collect::<String>()),
    };
    let mut e = ProviderError::new(kind, format!("{path}: HTTP {status}: {said}"));
    if kind == ErrorKind::RateLimited {
        e = e.with_retry_after(retry_after.unwrap_or(Duration::from_secs(12)));
    } else if let Some(d) = retry_after {
        e = e.with_retry_after(d);
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(code: &str) -> String {
        format!(r#"{{"error":{{"code":"{code}","message":"m","suggestion":null}}}}"#)
    }

    #[test]
    fn documented_codes_and_statuses_map_to_kinds() {
        let cases = [
            (400, body(codes::INSUFFICIENT_CAPACITY), ErrorKind::Capacity),
            (400, body(codes::QUOTA_EXCEEDED), ErrorKind::Quota),
            (401, body(codes::INVALID_API_KEY), ErrorKind::Auth),
            (403, body(codes::ACCOUNT_INACTIVE), ErrorKind::Auth),
            (
                400,
                body(codes::INVALID_PARAMETERS),
                ErrorKind::InvalidRequest,
            ),
            (404, body(codes::OBJECT_DOES_NOT_EXIST), ErrorKind::NotFound),
            (429, String::new(), ErrorKind::RateLimited),
            (500, body("global/unknown"), ErrorKind::Unavailable),
            (
                502,
                "<html>bad gateway</html>".into(),
                ErrorKind::Unavailable,
            ),
            (504, String::new(), ErrorKind::Timeout),
            (302, String::new(), ErrorKind::BadAnswer),
        ];
        for (status, text, kind) in cases {
            assert_eq!(
                classify("/x", status, &text, None).kind,
                kind,
                "{status} {text}"
            );
        }
        let e = classify("/x", 429, "", None);
        assert_eq!(e.retry_after, Some(Duration::from_secs(12)));
        let e = classify("/x", 429, "", Some(Duration::from_secs(3)));
        assert_eq!(e.retry_after, Some(Duration::from_secs(3)));
        let e = classify(
            "/instance-operations/launch",
            400,
            r#"{"error":{"code":"global/quota-exceeded","message":"Quota exceeded.","suggestion":"Contact support."}}"#,
            None,
        );
        assert_eq!(
            e.message,
            "/instance-operations/launch: HTTP 400: global/quota-exceeded: Quota exceeded. (Contact support.)"
        );
    }
}
