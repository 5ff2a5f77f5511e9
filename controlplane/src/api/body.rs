//! Request bodies: the one extractor every body-taking endpoint uses, so each refuses a bad
//! body the same way before its handler runs (and so before anything is written):
//!
//! - larger than [`BODY_LIMIT`]: 413 `too_large`;
//! - a `Content-Type` other than JSON (`application/json` or `…+json`; none is taken as
//!   JSON): 415 `unsupported_media_type`;
//! - not JSON, JSON of the wrong shape or type, an unknown field (every request type has
//!   `deny_unknown_fields`), a missing required field, a key given twice in one object
//!   ([`crate::validate::dupes`]): 400 `bad_request` naming the problem;
//! - a body that cannot be read or decoded (bad gzip under `Content-Encoding: gzip`, cut
//!   short): 400 `bad_request` saying so in words.
//!
//! [`Json`] requires a body; [`OptJson`] takes an empty body (or JSON `null`) as the
//! type's default (the lifecycle steps, join tokens, diagnostics) but refuses a malformed
//! one. Text bodies
//! (policy documents) go through [`Text`]: the same limit, and UTF-8.

use std::future::Future;
use std::pin::Pin;

use actix_web::http::StatusCode;
use actix_web::{dev::Payload, web, FromRequest, HttpRequest};
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// Largest request body, in bytes (1 MiB).
pub const BODY_LIMIT: usize = 1 << 20;

type Fut<T> = Pin<Box<dyn Future<Output = Result<T, ApiError>>>>;

/// The raw body, at most [`BODY_LIMIT`] bytes; 413 (JSON) beyond it.
fn read(req: &HttpRequest, payload: &mut Payload) -> Fut<web::Bytes> {
    let fut = web::Bytes::from_request(req, payload);
    let req_encoding = req
        .headers()
        .get(actix_web::http::header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | ',' | ' '))
        .take(40)
        .collect::<String>();
    Box::pin(async move {
        fut.await.map_err(|e| {
            let status = e.as_response_error().status_code();
            if status == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    status,
                    "too_large",
                    format!("the request body is larger than {BODY_LIMIT} bytes"),
                )
            } else {
                ApiError::bad_request(unreadable(&req_encoding, &e))
            }
        })
    })
}

/// Why the body could not be read, for people: never the Rust debug text of the decoder's
/// error (`Incomplete(Some(Custom { kind: InvalidInput … }))`).
fn unreadable(encoding: &str, e: &actix_web::Error) -> String {
    use actix_web::error::PayloadError as P;
    let decoding = || {
        match encoding {
        "" => "the request body could not be read".to_string(),
        enc => format!("the request body could not be decoded: it is not valid {enc} data (Content-Encoding: {enc})"),
    }
    };
    match e.as_error::<P>() {
        Some(P::EncodingCorrupted) => decoding(),
        Some(P::Incomplete(Some(io)) | P::Io(io))
            if matches!(
                io.kind(),
                std::io::ErrorKind::InvalidInput | std::io::ErrorKind::InvalidData
            ) =>
        {
            decoding()
        }
        Some(P::Incomplete(_)) => "the request body ended before its announced length".into(),
        Some(P::UnknownLength) => "the request body has no length".into(),
        _ if !encoding.is_empty() => decoding(),
        _ => "the request body could not be read".into(),
    }
}

/// 415 unless the request's `Content-Type` is JSON (or missing).
fn json_content_type(req: &HttpRequest) -> Result<(), ApiError> {
    let Some(ct) = req.headers().get(actix_web::http::header::CONTENT_TYPE) else {
        return Ok(());
    };
    let ct = ct.to_str().unwrap_or("").to_ascii_lowercase();
    let essence = ct.split(';').next().unwrap_or("").trim();
    if essence == "application/json" || essence.ends_with("+json") {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!(
                "the request body must be JSON (Content-Type: application/json), not {essence:?}"
            ),
        ))
    }
}

fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // Every request type is an object; serde would also build a struct from an array.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::bad_request(
            "request body: expected a JSON object",
        ));
    }
    let parsed = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("request body: {e}")))?;
    // Valid JSON of the right shape: only now is it read again, for keys given twice.
    crate::validate::dupes::check(bytes)
        .map_err(|e| ApiError::bad_request(format!("request body: {e}")))?;
    Ok(parsed)
}

/// A required JSON body of type `T`.
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for Json<T> {
    type Error = ApiError;
    type Future = Fut<Self>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let typed = json_content_type(req);
        let body = read(req, payload);
        Box::pin(async move {
            let bytes = body.await?;
            if bytes.iter().all(u8::is_ascii_whitespace) {
                return Err(ApiError::bad_request("a JSON request body is required"));
            }
            typed?;
            parse(&bytes).map(Json)
        })
    }
}

/// A JSON body of type `T` that may be left out: an empty body is `T::default()`.
#[derive(Debug)]
pub struct OptJson<T>(pub T);

impl<T: DeserializeOwned + Default + 'static> FromRequest for OptJson<T> {
    type Error = ApiError;
    type Future = Fut<Self>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let typed = json_content_type(req);
        let body = read(req, payload);
        Box::pin(async move {
            let bytes = body.await?;
            if bytes.iter().all(u8::is_ascii_whitespace) || bytes.trim_ascii() == b"null" {
                return Ok(OptJson(T::default()));
            }
            typed?;
            parse(&bytes).map(OptJson)
        })
    }
}

/// A UTF-8 text body (a policy document), at most [`BODY_LIMIT`] bytes.
#[derive(Debug)]
pub struct Text(pub String);

impl FromRequest for Text {
    type Error = ApiError;
    type Future = Fut<Self>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = read(req, payload);
        Box::pin(async move {
            let bytes = body.await?;
            String::from_utf8(bytes.to_vec())
                .map(Text)
                .map_err(|e| ApiError::bad_request(format!("the body is not UTF-8: {e}")))
        })
    }
}

/// The body of an endpoint that takes none: empty, or `{}`.
#[derive(Debug, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoBody {}
