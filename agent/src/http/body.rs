//! The raw request body of the agent's POST endpoints ([`Body`]): like `web::Bytes`, but a
//! body that cannot be read gets a JSON error in words, never the Rust debug text of the
//! decoder's error (a bad gzip body under `Content-Encoding: gzip` gave
//! `Some(Custom { kind: InvalidInput … })`).

use std::future::Future;
use std::ops::Deref;
use std::pin::Pin;

use actix_web::error::PayloadError;
use actix_web::http::StatusCode;
use actix_web::{dev::Payload, web, FromRequest, HttpRequest};

use super::ApiError;

/// The request body's bytes (after `Content-Encoding` decoding), within `PayloadConfig`'s
/// limit (actix's default, 256 KiB); 413 `too_large` or 400 `bad_request` otherwise.
#[derive(Debug)]
pub struct Body(pub web::Bytes);

impl Deref for Body {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl FromRequest for Body {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Body, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let fut = web::Bytes::from_request(req, payload);
        Box::pin(async move { fut.await.map(Body).map_err(|e| unreadable(&e)) })
    }
}

/// Why the body could not be read, for people.
pub(super) fn unreadable(e: &actix_web::Error) -> ApiError {
    let bad = |m: &str| ApiError::new(StatusCode::BAD_REQUEST, "bad_request", m.to_string());
    if e.as_response_error().status_code() == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            "the request body is too large".to_string(),
        );
    }
    match e.as_error::<PayloadError>() {
        Some(PayloadError::Incomplete(None)) => {
            bad("the request body ended before its announced length")
        }
        _ => bad("the request body could not be read or decoded (is its Content-Encoding right?)"),
    }
}
