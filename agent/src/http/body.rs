//! Request bodies: the one extractor every body-taking agent endpoint uses
//! (`/v1/commands`, `/v1/plugins/{name}/run`, `/v1/fake/inject`, `/v1/fake/clear`), so each
//! refuses a bad body the same way, as JSON, before its handler runs:
//!
//! - larger than [`BODY_LIMIT`]: 413 `too_large`;
//! - not empty, with a `Content-Type` other than JSON (`application/json` or `…+json`;
//!   none is taken as JSON): 415 `unsupported_media_type`, as the control plane answers.
//!   An empty body is allowed whatever its label (`curl -XPOST` without `-d`), and so is
//!   `application/x-www-form-urlencoded`, the label `curl -d` puts on any body (the README's
//!   quick start): these endpoints take no form, so the body is parsed as the JSON it is.
//!
//! The handlers then parse the bytes into their own types (400 `bad_request` naming the
//! problem).

use std::future::Future;
use std::pin::Pin;

use actix_web::http::{header, StatusCode};
use actix_web::{dev::Payload, web, FromRequest, HttpRequest};

use super::state::ApiError;

/// Largest request body the agent takes, in bytes (64 KiB): commands, fault injections and
/// diagnostic parameters are a few hundred bytes.
pub const BODY_LIMIT: usize = 64 * 1024;

/// A request body of at most [`BODY_LIMIT`] bytes, labelled JSON unless it is empty.
#[derive(Debug)]
pub struct JsonBody(pub web::Bytes);

impl JsonBody {
    /// Whether the body is empty or only whitespace.
    pub fn is_blank(&self) -> bool {
        self.0.iter().all(u8::is_ascii_whitespace)
    }
}

/// 415 unless `Content-Type` is missing or JSON.
fn json_content_type(req: &HttpRequest) -> Result<(), ApiError> {
    let Some(ct) = req.headers().get(header::CONTENT_TYPE) else {
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

impl FromRequest for JsonBody {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let typed = json_content_type(req);
        // The limit is the app's `PayloadConfig` ([`BODY_LIMIT`]); a larger body (declared or
        // streamed) ends the read.
        let fut = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            let bytes = fut.await.map_err(|e| {
                let status = e.as_response_error().status_code();
                if status == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::new(
                        status,
                        "too_large",
                        format!("the request body is larger than {BODY_LIMIT} bytes"),
                    )
                } else if matches!(
                    e.as_error::<actix_web::error::PayloadError>(),
                    Some(actix_web::error::PayloadError::Incomplete(None))
                ) {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "bad_request",
                        "the request body ended before its announced length",
                    )
                } else {
                    // Not the decoder's debug text: what an operator can act on.
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "bad_request",
                        "the request body could not be read or decoded (is its Content-Encoding right?)",
                    )
                }
            })?;
            let body = JsonBody(bytes);
            if !body.is_blank() {
                typed?;
            }
            Ok(body)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use actix_web::{test, App};

    use super::super::{configure, tests::state};
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
        let app = test::init_service(App::new().configure(configure(state(Some(fake))))).await;
        let mut req = test::TestRequest::post().uri(path).set_payload(body);
        if let Some(ct) = content_type {
            req = req.insert_header((header::CONTENT_TYPE, ct));
        }
        let resp = test::call_service(&app, req.to_request()).await;
        let status = resp.status();
        let bytes = test::read_body(resp).await;
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
    #[actix_web::test]
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

    #[actix_web::test]
    async fn query_errors_are_json() {
        let fake = Arc::new(FakeBackend::new(1, DEFAULT_MODEL, 1));
        let app = test::init_service(App::new().configure(configure(state(Some(fake))))).await;
        for uri in [
            "/v1/events?after=-1",
            "/v1/events?limit=x",
            "/v1/events?bogus=1",
        ] {
            let resp =
                test::call_service(&app, test::TestRequest::get().uri(uri).to_request()).await;
            assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{uri}");
            let j: serde_json::Value = test::read_body_json(resp).await;
            assert_eq!(j["error"]["code"], "bad_request", "{uri}: {j}");
        }
    }
}
