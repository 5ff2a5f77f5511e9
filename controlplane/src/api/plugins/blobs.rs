//! Components as bytes: the checks of names and digests, the cache and the budgets that bound
//! the memory of serving them (`[plugin_store]`), and `GET /v1/blobs/{digest}`.

use std::collections::VecDeque;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{get, web, HttpRequest, HttpResponse};
use gpuwarden_wire::plugin_sync::valid_digest;
use sha2::{Digest, Sha256};

use super::super::caller::caller;
use super::super::error::ApiError;
use super::super::state::{blocking, clip, AppState};
use crate::model::plugin::valid_name;

/// Uploads (`POST /v1/plugins`) read at once; more wait their turn.
pub const MAX_UPLOADS: usize = 2;

/// `[plugin_store]` limits, and the cache of components served to agents.
#[derive(Debug)]
pub struct PluginBlobs {
    pub(super) max_bytes: usize,
    cache_bytes: usize,
    cache: Mutex<(VecDeque<(String, web::Bytes)>, usize)>,
    reads: tokio::sync::Semaphore,
    /// Uploads read at once (each up to `max_bytes`).
    pub(super) uploads: tokio::sync::Semaphore,
    /// MiB of components being sent: a response holds its size's permits until done.
    sending: std::sync::Arc<tokio::sync::Semaphore>,
    send_mib: u32,
}

impl PluginBlobs {
    /// Uploads up to `max_bytes`; served components cached up to `cache_bytes` in all
    /// (the most recently used kept); at most `reads` database reads of components at once;
    /// at most `send_bytes` of components being sent at once.
    pub fn new(max_bytes: usize, cache_bytes: usize, reads: usize, send_bytes: usize) -> Self {
        let send_mib = u32::try_from(send_bytes.div_ceil(1 << 20))
            .unwrap_or(u32::MAX)
            .max(1);
        Self {
            sending: std::sync::Arc::new(tokio::sync::Semaphore::new(send_mib as usize)),
            send_mib,
            max_bytes,
            cache_bytes,
            cache: Mutex::default(),
            reads: tokio::sync::Semaphore::new(reads.max(1)),
            uploads: tokio::sync::Semaphore::new(MAX_UPLOADS),
        }
    }

    fn cached(&self, digest: &str) -> Option<web::Bytes> {
        let mut c = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let i = c.0.iter().position(|(d, _)| d == digest)?;
        let hit = c.0.remove(i)?;
        let bytes = hit.1.clone();
        c.0.push_back(hit);
        Some(bytes)
    }

    fn keep(&self, digest: &str, bytes: &web::Bytes) {
        if bytes.len() > self.cache_bytes {
            return;
        }
        let mut c = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if c.0.iter().any(|(d, _)| d == digest) {
            return;
        }
        c.1 += bytes.len();
        c.0.push_back((digest.to_string(), bytes.clone()));
        while c.1 > self.cache_bytes {
            match c.0.pop_front() {
                Some((_, b)) => c.1 -= b.len(),
                None => break,
            }
        }
    }

    pub(super) fn forget(&self, digest: &str) {
        let mut c = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = c.0.iter().position(|(d, _)| d == digest) {
            if let Some((_, b)) = c.0.remove(i) {
                c.1 -= b.len();
            }
        }
    }
}

/// The control plane's [`PluginBlobs`], or the defaults where none was configured (tests
/// that build the API alone).
pub(super) fn blobs(req: &HttpRequest) -> web::Data<PluginBlobs> {
    static DEFAULT: OnceLock<web::Data<PluginBlobs>> = OnceLock::new();
    req.app_data::<web::Data<PluginBlobs>>()
        .cloned()
        .unwrap_or_else(|| {
            DEFAULT
                .get_or_init(|| {
                    let d = crate::config::PluginStoreConfig::default();
                    web::Data::new(PluginBlobs::new(
                        d.max_component_bytes,
                        d.blob_cache_bytes,
                        d.blob_reads,
                        d.blob_send_bytes,
                    ))
                })
                .clone()
        })
}

/// Plugin names, as the agent takes them: 1–64 letters, digits, `-` and `_`.
pub(super) fn plugin_name(s: &str) -> Result<(), ApiError> {
    if valid_name(s) {
        Ok(())
    } else {
        Err(ApiError::invalid(format!(
            "plugin name {:?}: use 1 to 64 letters, digits, '-' and '_'",
            clip(s, 80)
        )))
    }
}

pub(super) fn digest_of(bytes: &[u8]) -> String {
    let h = Sha256::digest(bytes);
    let mut s = String::with_capacity(71);
    s.push_str("sha256:");
    for b in h {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

pub(super) fn check_digest(d: &str) -> Result<(), ApiError> {
    if valid_digest(d) {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "digest {:?}: expected sha256: and 64 lower-case hex digits",
            clip(d, 80)
        )))
    }
}

#[utoipa::path(
    get, path = "/v1/blobs/{digest}", operation_id = "get_blob",
    params(("digest" = String, Path, description = "`sha256:<64 hex>`")),
    description = "A stored component's bytes (`application/wasm`), for agents (their node token) and operators. The receiver must check the digest before using them.",
    responses(
        (status = 200, content_type = "application/wasm", body = Vec<u8>),
        (status = 404, description = "No such component"),
    )
)]
#[get("/v1/blobs/{digest}")]
pub(crate) async fn blob(
    req: HttpRequest,
    state: web::Data<AppState>,
    digest: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller(&req, &state).await?;
    let digest = digest.into_inner();
    check_digest(&digest)?;
    let cache = blobs(&req);
    let bytes = match cache.cached(&digest) {
        Some(b) => b,
        None => {
            let _permit = cache
                .reads
                .acquire()
                .await
                .map_err(|_| ApiError::internal("closing"))?;
            match cache.cached(&digest) {
                Some(b) => b,
                None => {
                    let store = state.store.clone();
                    let d = digest.clone();
                    let data = blocking(move || store.plugin_blob(&d))
                        .await?
                        .ok_or_else(|| ApiError::not_found(format!("no component {digest}")))?;
                    let b = web::Bytes::from(data);
                    cache.keep(&digest, &b);
                    b
                }
            }
        }
    };
    // This response's share of what is being sent, held until its last byte is written.
    let mib = u32::try_from(bytes.len().div_ceil(1 << 20))
        .unwrap_or(u32::MAX)
        .clamp(1, cache.send_mib);
    let permit = tokio::time::timeout(
        Duration::from_secs(30),
        std::sync::Arc::clone(&cache.sending).acquire_many_owned(mib),
    )
    .await
    .map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "as many components as [plugin_store] blob_send_bytes allows are being sent; try again later",
        )
    })?
    .map_err(|_| ApiError::internal("closing"))?;
    let chunks = futures_util::stream::unfold(
        (bytes, 0usize, Some(permit)),
        |(b, at, permit)| async move {
            if at >= b.len() {
                drop(permit);
                return None;
            }
            let end = (at + (1 << 20)).min(b.len());
            let chunk = b.slice(at..end);
            Some((Ok::<_, actix_web::Error>(chunk), (b, end, permit)))
        },
    );
    Ok(HttpResponse::Ok()
        .content_type("application/wasm")
        .insert_header(("ETag", format!("\"{digest}\"")))
        .insert_header(("Cache-Control", "private, max-age=31536000, immutable"))
        .streaming(chunks))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_blob_cache_keeps_the_most_recent_within_its_budget() {
        let c = PluginBlobs::new(100, 10, 1, 100);
        c.keep("a", &web::Bytes::from_static(b"12345"));
        c.keep("b", &web::Bytes::from_static(b"12345"));
        assert!(c.cached("a").is_some());
        c.keep("c", &web::Bytes::from_static(b"123"));
        assert!(c.cached("b").is_none(), "b was the least recently used");
        assert!(c.cached("a").is_some() && c.cached("c").is_some());
        c.keep("big", &web::Bytes::from_static(b"12345678901"));
        assert!(
            c.cached("big").is_none(),
            "over the whole budget: not cached"
        );
        c.forget("a");
        assert!(c.cached("a").is_none());
    }
}
