//! Request bodies: the one extractor every body-taking agent endpoint uses
//! (`/v1/commands`, `/v1/plugins/{name}/run`, `/v1/fake/inject`, `/v1/fake/clear`), so each
//! refuses a bad body the same way, as JSON, before its handler runs:
//!
//! - larger than [`BODY_LIMIT`]: 413 `too_large`;
//! - not all sent within [`BODY_TIMEOUT`] of the head: 408 `request_timeout` (a client that
//!   announces a body and stalls would otherwise hold its connection, and a file
//!   descriptor, for ever: the head alone has hyper's 5 s limit);
//! - not empty, with a `Content-Type` other than JSON (`application/json` or `…+json`;
//!   none is taken as JSON): 415 `unsupported_media_type`, as the control plane answers.
//!   An empty body is allowed whatever its label (`curl -XPOST` without `-d`), and so is
//!   `application/x-www-form-urlencoded`, the label `curl -d` puts on any body (the README's
//!   quick start): these endpoints take no form, so the body is parsed as the JSON it is.
//!
//! The handlers then parse the bytes into their own types (400 `bad_request` naming the
//! problem).

use std::io::Read;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderMap, StatusCode};
use http_body_util::{BodyExt, LengthLimitError, Limited};

use super::state::ApiError;

/// Largest request body the agent takes, in bytes (64 KiB): commands, fault injections and
/// diagnostic parameters are a few hundred bytes. With a `Content-Encoding`, the limit is
/// on the decoded body too.
pub const BODY_LIMIT: usize = 64 * 1024;

/// How long a request's body may take to arrive once its head has (10 s: the largest
/// body, 64 KiB, is sent in well under that on any link an agent is reached over).
pub const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A request body of at most [`BODY_LIMIT`] bytes, labelled JSON unless it is empty.
#[derive(Debug)]
pub struct JsonBody(pub Bytes);

impl JsonBody {
    /// Whether the body is empty or only whitespace.
    pub fn is_blank(&self) -> bool {
        self.0.iter().all(u8::is_ascii_whitespace)
    }
}

/// 415 unless `Content-Type` is missing or JSON.
fn json_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(ct) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let ct = String::from_utf8_lossy(ct.as_bytes()).to_ascii_lowercase();
    let essence = ct.split(';').next().unwrap_or("").trim();
    if essence == "application/json"
        || essence.ends_with("+json")
        || essence == "application/x-www-form-urlencoded"
    {
        return Ok(());
    }
    let shown: String = essence.chars().take(100).collect();
    Err(ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        format!("the request body must be JSON (Content-Type: application/json), not {shown:?}"),
    ))
}

fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        format!("the request body is larger than {BODY_LIMIT} bytes"),
    )
}

fn undecodable() -> ApiError {
    // Not the decoder's debug text: what an operator can act on.
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "bad_request",
        "the request body could not be read or decoded (is its Content-Encoding right?)",
    )
}

/// The body decoded as its `Content-Encoding` says: gzip and deflate (zlib) as the agent
/// took them before (actix-web's `compress-gzip`), none and `identity` as they are; any
/// other coding gets 415.
fn decode(headers: &HeaderMap, raw: Bytes) -> Result<Bytes, ApiError> {
    let coding = headers.get(header::CONTENT_ENCODING).map(|v| {
        String::from_utf8_lossy(v.as_bytes())
            .trim()
            .to_ascii_lowercase()
    });
    let reader: Box<dyn Read + '_> = match coding.as_deref() {
        None | Some("" | "identity") => return Ok(raw),
        Some("gzip" | "x-gzip") => Box::new(flate2::read::GzDecoder::new(&raw[..])),
        Some("deflate") => Box::new(flate2::read::ZlibDecoder::new(&raw[..])),
        Some(other) => {
            let shown: String = other.chars().take(100).collect();
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!(
                    "the request body's Content-Encoding {shown:?} is not taken (gzip, deflate or none)"
                ),
            ));
        }
    };
    let mut out = Vec::new();
    // One byte past the limit tells a body at the limit from a larger one.
    reader
        .take(BODY_LIMIT as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|_| undecodable())?;
    if out.len() > BODY_LIMIT {
        return Err(too_large());
    }
    Ok(out.into())
}

/// Whether reading a body failed because the client stopped sending before the length it
/// announced (hyper: an `UnexpectedEof` under its body error).
fn ended_early(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut at = Some(e);
    while let Some(e) = at {
        if e.downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_incomplete_message)
            || e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::UnexpectedEof)
        {
            return true;
        }
        at = e.source();
    }
    false
}

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, _: &S) -> Result<Self, ApiError> {
        let (parts, body) = req.into_parts();
        let typed = json_content_type(&parts.headers);
        // A declared length over the limit is refused before anything is read; a streamed
        // body ends the read at the limit.
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok());
        if declared.is_some_and(|n| n > BODY_LIMIT as u64) {
            return Err(too_large());
        }
        let collected =
            tokio::time::timeout(BODY_TIMEOUT, Limited::new(body, BODY_LIMIT).collect())
                .await
                .map_err(|_| {
                    ApiError::new(
                        StatusCode::REQUEST_TIMEOUT,
                        "request_timeout",
                        format!(
                            "the request body did not arrive within {}",
                            humantime::format_duration(BODY_TIMEOUT)
                        ),
                    )
                })?;
        let raw = collected
            .map_err(|e| {
                if e.is::<LengthLimitError>() {
                    return too_large();
                }
                if ended_early(&*e) {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "bad_request",
                        "the request body ended before its announced length",
                    )
                } else {
                    undecodable()
                }
            })?
            .to_bytes();
        let body = JsonBody(decode(&parts.headers, raw)?);
        if !body.is_blank() {
            typed?;
        }
        Ok(body)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::router;
    use super::super::tests::{call as answer, request, state};
    use super::*;
    use crate::backend::fake::{FakeBackend, DEFAULT_MODEL};

    /// Every agent endpoint that takes a body.
    const BODY_ROUTES: [&str; 4] = [
        "/v1/fake/inject",
        "/v1/fake/clear",
        "/v1/commands",
        "/v1/plugins/diag/run",
    ];

    async fn call(
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> (StatusCode, serde_json::Value) {
        let fake = Arc::new(FakeBackend::new(1, DEFAULT_MODEL, 1));
        let app = router(state(Some(fake)));
        let headers: Vec<(&str, &str)> = content_type
            .map(|ct| ("Content-Type", ct))
            .into_iter()
            .collect();
        let resp = answer(&app, request("POST", path, &headers, None, body)).await;
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .expect("the body");
        let json = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!(
                "{path}: {status} is not JSON ({e}): {}",
                String::from_utf8_lossy(&bytes)
            )
        });
        (status, json)
    }

    /// Regression (hardening follow-up): a 5 MB body got a plain-text "payload reached size
    /// limit", and the run endpoint took `text/plain`.
    #[tokio::test]
    async fn every_body_taking_endpoint_refuses_bad_bodies_in_json() {
        for path in BODY_ROUTES {
            let big = vec![b' '; 5 << 20];
            let (s, j) = call(path, Some("application/json"), big).await;
            assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{path}: {j}");
            assert_eq!(j["error"]["code"], "too_large", "{path}: {j}");

            for ct in [
                "text/plain",
                "multipart/form-data; boundary=x",
                "application/xml",
            ] {
                let (s, j) = call(path, Some(ct), b"{}".to_vec()).await;
                assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{path} {ct}: {j}");
                assert_eq!(j["error"]["code"], "unsupported_media_type", "{path}: {j}");
            }

            // An empty body is not refused for its label; what comes next is the
            // endpoint's own answer (auth, a default), in JSON.
            let (s, j) = call(path, Some("text/plain"), Vec::new()).await;
            assert_ne!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{path}: {j}");

            // A JSON label with parameters, `+json`, and `curl -d`'s default are taken.
            for ct in [
                "application/json; charset=utf-8",
                "application/merge-patch+json",
                "application/x-www-form-urlencoded",
            ] {
                let (s, j) = call(path, Some(ct), b"{}".to_vec()).await;
                assert_ne!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{path} {ct}: {j}");
            }
        }
    }

    #[tokio::test]
    async fn query_errors_are_json() {
        let fake = Arc::new(FakeBackend::new(1, DEFAULT_MODEL, 1));
        let app = router(state(Some(fake)));
        for uri in [
            "/v1/events?after=-1",
            "/v1/events?limit=x",
            "/v1/events?bogus=1",
        ] {
            let resp = answer(
                &app,
                request("GET", uri, &[], None, axum::body::Body::empty()),
            )
            .await;
            assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{uri}");
            let j = super::super::tests::json(resp).await;
            assert_eq!(j["error"]["code"], "bad_request", "{uri}: {j}");
        }
    }

    /// A body that sends one byte and then nothing, for ever.
    struct Stall(bool);

    impl hyper::body::Body for Stall {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
            if self.0 {
                return std::task::Poll::Pending;
            }
            self.0 = true;
            std::task::Poll::Ready(Some(Ok(hyper::body::Frame::data(Bytes::from_static(b"{")))))
        }
    }

    /// A client that announces a body and stalls gets 408 after [`BODY_TIMEOUT`] (the
    /// connection then closes) instead of holding its connection for ever.
    #[tokio::test(start_paused = true)]
    async fn a_body_that_stalls_is_refused_after_the_body_timeout() {
        let fake = Arc::new(FakeBackend::new(1, DEFAULT_MODEL, 1));
        let app = router(state(Some(fake)));
        for path in BODY_ROUTES {
            let req = axum::http::Request::builder()
                .method("POST")
                .uri(path)
                .header("Content-Type", "application/json")
                .header("Content-Length", "100")
                .body(axum::body::Body::new(Stall(false)))
                .unwrap();
            let started = tokio::time::Instant::now();
            let resp = answer(&app, req).await;
            assert_eq!(resp.status(), StatusCode::REQUEST_TIMEOUT, "{path}");
            assert_eq!(started.elapsed(), BODY_TIMEOUT, "{path}");
            let body = super::super::tests::json(resp).await;
            assert_eq!(body["error"]["code"], "request_timeout", "{path}");
        }
    }
}
