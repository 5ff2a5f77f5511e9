//! Plugins distributed from the control plane (docs/plugins-distribution.md):
//!
//! - `POST /v1/plugins?name=N[&digest=sha256:HEX]` stores a WebAssembly component (the raw
//!   bytes as the body) by its SHA-256; `GET /v1/plugins` lists them; `DELETE
//!   /v1/plugins/{digest}` removes one that is not assigned.
//! - `GET|PUT /v1/pools/{name}/plugins` reads and replaces the plugins of a pool (`*`: of
//!   every node), each pinned to a digest with its config, interval and limits;
//!   `PUT|DELETE /v1/pools/{name}/plugins/{plugin}` change one.
//! - `POST /v1/nodes/{id}/plugins` (the node's token): the agent reports what it runs and is
//!   answered what it should run; `GET /v1/blobs/{digest}` (a node token, or an admin or
//!   viewer token) serves a component.
//! - `GET /v1/plugins/status[?pool=P]`: what every node runs against what it is assigned.
//!
//! Memory is bounded by `[plugin_store]`: an upload is read up to `max_component_bytes`; served
//! components are kept in a cache of `blob_cache_bytes`, and at most `blob_reads` are read
//! from the database at once.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{delete, get, post, put, web, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use gpuwarden_wire::plugin_sync::{
    valid_digest, AssignedPlugin, PluginAssignment, PluginReport, MAX_PLUGINS, SOURCE_ASSIGNED,
    SOURCE_LOCAL,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};

use super::body::Json;
use super::caller::{allow_node, caller, Admin, Caller};
use super::error::ApiError;
use super::state::{audited, blocking, clip, AppState};
use crate::clock::rfc3339;
use crate::model::plugin::{valid_name, PluginAssign};
use crate::store::plugins::{AssignmentRow, NodePluginRow, ALL_NODES};
use crate::store::rows::NewAudit;

/// Uploads (`POST /v1/plugins`) read at once; more wait their turn.
pub const MAX_UPLOADS: usize = 2;

/// `[plugin_store]` limits, and the cache of components served to agents.
#[derive(Debug)]
pub struct PluginBlobs {
    max_bytes: usize,
    cache_bytes: usize,
    cache: Mutex<(VecDeque<(String, web::Bytes)>, usize)>,
    reads: tokio::sync::Semaphore,
    /// Uploads read at once (each up to `max_bytes`).
    uploads: tokio::sync::Semaphore,
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

    fn forget(&self, digest: &str) {
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
fn blobs(req: &HttpRequest) -> web::Data<PluginBlobs> {
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
fn plugin_name(s: &str) -> Result<(), ApiError> {
    if valid_name(s) {
        Ok(())
    } else {
        Err(ApiError::invalid(format!(
            "plugin name {:?}: use 1 to 64 letters, digits, '-' and '_'",
            clip(s, 80)
        )))
    }
}

fn digest_of(bytes: &[u8]) -> String {
    let h = Sha256::digest(bytes);
    let mut s = String::with_capacity(71);
    s.push_str("sha256:");
    for b in h {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

fn check_digest(d: &str) -> Result<(), ApiError> {
    if valid_digest(d) {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "digest {:?}: expected sha256: and 64 lower-case hex digits",
            clip(d, 80)
        )))
    }
}

/// Why `bytes` is not a WebAssembly component a gpuwarden agent could load, if it is not.
fn component_problem(bytes: &[u8]) -> Option<String> {
    const MAGIC: &[u8] = b"\0asm";
    if bytes.len() < 8 || &bytes[..4] != MAGIC {
        return Some("not WebAssembly (no \\0asm header)".into());
    }
    if bytes[4..8] == [1, 0, 0, 0] {
        return Some(
            "a core WebAssembly module, not a component: build it with `gpuwarden-agent plugin \
             build` (cargo for wasm32-wasip2, componentize-py, componentize-js)"
                .into(),
        );
    }
    if bytes[6..8] != [1, 0] {
        return Some("not a WebAssembly component (unknown layer)".into());
    }
    let mut v = wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all());
    v.validate_all(bytes)
        .err()
        .map(|e| format!("not a valid component: {e}"))
}

/// Query of `POST /v1/plugins`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PushQuery {
    /// The plugin's name (what `assign` and the agents call it).
    pub name: String,
    /// The digest the sender computed (`sha256:<hex>`): a body that differs is refused.
    pub digest: Option<String>,
}

/// Answer of `POST /v1/plugins`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Pushed {
    /// `sha256:<64 hex>` of the component.
    pub digest: String,
    /// Its name.
    pub name: String,
    /// Bytes.
    pub size: usize,
    /// False when this digest was stored already.
    pub created: bool,
}

#[utoipa::path(
    post, path = "/v1/plugins", operation_id = "push_plugin",
    params(PushQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The WebAssembly component (any content type is taken: application/wasm, application/octet-stream)"),
    description = "Stores a plugin component by its SHA-256. The body must be a valid WebAssembly component, at most `[plugin_store] max_component_bytes`; with `digest`, it must also have that digest (a corrupt upload is refused, nothing stored). Audited.",
    responses(
        (status = 201, body = Pushed, description = "Stored"),
        (status = 200, body = Pushed, description = "That digest was stored already"),
        (status = 413, description = "Over max_component_bytes"),
        (status = 422, description = "Not a component, or not the digest given"),
    )
)]
#[post("/v1/plugins")]
pub(super) async fn push(
    req: HttpRequest,
    admin: Admin,
    state: web::Data<AppState>,
    query: web::Query<PushQuery>,
    mut body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let details =
        json!({"name": clip(&q.name, 64), "digest": q.digest.as_deref().map(|d| clip(d, 80))});
    let target = format!("plugin:{}", clip(&q.name, 64));
    let limits = blobs(&req);
    let work = async {
        plugin_name(&q.name)?;
        if let Some(d) = &q.digest {
            check_digest(d)?;
        }
        let _turn = limits
            .uploads
            .acquire()
            .await
            .map_err(|_| ApiError::internal("closing"))?;
        let mut data = web::BytesMut::new();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| ApiError::bad_request(format!("the body: {e}")))?;
            if data.len() + chunk.len() > limits.max_bytes {
                return Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "too_large",
                    format!(
                        "the component is over {} bytes ([plugin_store] max_component_bytes)",
                        limits.max_bytes
                    ),
                ));
            }
            data.extend_from_slice(&chunk);
        }
        let data = data.freeze();
        let digest = digest_of(&data);
        if let Some(want) = &q.digest {
            if *want != digest {
                return Err(ApiError::invalid(format!(
                    "the body's digest is {digest}, not {want}: the upload is corrupt; nothing was stored"
                )));
            }
        }
        let check = data.clone();
        if let Some(p) = blocking(move || Ok(component_problem(&check))).await? {
            return Err(ApiError::invalid(format!("{p}; nothing was stored")));
        }
        let now = state.clock.now_ms();
        let entry = NewAudit::ok(
            &admin.0,
            "plugin.push",
            &format!("plugin:{}", q.name),
            json!({"digest": digest, "size": data.len()}),
            now,
        );
        let store = state.store.clone();
        let (d2, n2, a2, body2) = (
            digest.clone(),
            q.name.clone(),
            admin.0.clone(),
            data.clone(),
        );
        let created =
            blocking(move || store.put_plugin_blob(&d2, &n2, &body2, &a2, now, entry)).await?;
        let out = Pushed {
            digest,
            name: q.name.clone(),
            size: data.len(),
            created,
        };
        Ok(if created {
            HttpResponse::Created().json(out)
        } else {
            HttpResponse::Ok().json(out)
        })
    };
    audited(&state, &admin.0, "plugin.push", &target, details, work).await
}

/// A stored component, as listed.
#[derive(Debug, Serialize, ToSchema)]
pub struct StoredPlugin {
    /// `sha256:<64 hex>`.
    pub digest: String,
    /// The name it was pushed under.
    pub name: String,
    /// Bytes.
    pub size: i64,
    /// Who pushed it.
    pub uploaded_by: String,
    /// When (RFC 3339).
    pub uploaded_at: String,
    /// Where it is assigned: `POOL/NAME` (`*` for every node).
    pub assigned: Vec<String>,
}

/// `GET /v1/plugins`.
#[derive(Debug, Serialize, ToSchema)]
pub struct StoredPlugins {
    /// Newest first.
    pub plugins: Vec<StoredPlugin>,
}

#[utoipa::path(
    get, path = "/v1/plugins", operation_id = "list_plugins",
    description = "The stored plugin components, newest first, with where each is assigned.",
    responses((status = 200, body = StoredPlugins))
)]
#[get("/v1/plugins")]
pub(super) async fn list(
    _admin: Admin,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let store = state.store.clone();
    let (blobs, assigned) =
        blocking(move || Ok((store.plugin_blobs()?, store.plugin_assignments(None)?))).await?;
    let plugins = blobs
        .into_iter()
        .map(|b| StoredPlugin {
            assigned: assigned
                .iter()
                .filter(|a| a.digest == b.digest)
                .map(|a| format!("{}/{}", a.pool, a.name))
                .collect(),
            digest: b.digest,
            name: b.name,
            size: b.size,
            uploaded_by: b.uploaded_by,
            uploaded_at: rfc3339(b.uploaded_at),
        })
        .collect();
    Ok(HttpResponse::Ok().json(StoredPlugins { plugins }))
}

#[utoipa::path(
    delete, path = "/v1/plugins/{digest}", operation_id = "delete_plugin",
    params(("digest" = String, Path, description = "`sha256:<64 hex>`")),
    description = "Deletes a stored component that is not assigned. Audited.",
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such component"),
        (status = 409, description = "It is assigned"),
    )
)]
#[delete("/v1/plugins/{digest}")]
pub(super) async fn remove(
    req: HttpRequest,
    admin: Admin,
    state: web::Data<AppState>,
    digest: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let digest = digest.into_inner();
    let target = format!("plugin-digest:{}", clip(&digest, 80));
    let work = async {
        check_digest(&digest)?;
        let entry = NewAudit::ok(
            &admin.0,
            "plugin.delete",
            &target,
            json!({}),
            state.clock.now_ms(),
        );
        let store = state.store.clone();
        let d = digest.clone();
        if !blocking(move || store.delete_plugin_blob(&d, entry)).await? {
            return Err(ApiError::not_found(format!("no component {digest}")));
        }
        blobs(&req).forget(&digest);
        Ok(HttpResponse::NoContent().finish())
    };
    audited(&state, &admin.0, "plugin.delete", &target, json!({}), work).await
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
pub(super) async fn blob(
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

/// Body of `PUT /v1/pools/{name}/plugins`: the pool's plugins, all of them.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignBody {
    /// At most 256, names unique.
    pub plugins: Vec<PluginAssign>,
}

/// Body of `PUT /v1/pools/{name}/plugins/{plugin}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignOne {
    /// As in [`PluginAssign`].
    #[serde(default)]
    pub digest: Option<String>,
    /// As in [`PluginAssign`].
    #[serde(default)]
    #[schema(value_type = Object)]
    pub config: BTreeMap<String, serde_json::Value>,
    /// As in [`PluginAssign`].
    #[serde(default)]
    pub interval: Option<String>,
    /// As in [`PluginAssign`].
    #[serde(default)]
    pub timeout: Option<String>,
    /// As in [`PluginAssign`].
    #[serde(default)]
    pub memory_limit_mib: Option<u32>,
}

/// The row of one assignment, or every problem of it (`at`: where it is in the body); the
/// digest still to be resolved when absent.
fn spec_row(
    at: &str,
    pool: &str,
    s: &PluginAssign,
    by: &str,
    now: i64,
) -> Result<AssignmentRow, Vec<String>> {
    let c = s.check(false).map_err(|p| {
        p.into_iter()
            .map(|(f, m)| format!("{at}.{f}: {m}"))
            .collect::<Vec<_>>()
    })?;
    Ok(AssignmentRow::of(pool, &c, by, now))
}

/// 404 unless `pool` is `*`, a pool, or the pool of some node.
async fn known_pool(state: &AppState, pool: &str) -> Result<(), ApiError> {
    if pool == ALL_NODES {
        return Ok(());
    }
    let store = state.store.clone();
    let p = pool.to_string();
    if blocking(move || store.pool_known(&p)).await? {
        Ok(())
    } else {
        Err(ApiError::not_found(format!(
            "no pool {} (no pool of that name, and no node in it; * assigns to every node)",
            clip(pool, 64)
        )))
    }
}

/// 409 when `pool`'s spec declares its plugins (the config file's `[[pools]]`, or the
/// spec given to `POST /v1/pools`): they are changed there.
async fn api_owned(state: &AppState, pool: &str) -> Result<(), ApiError> {
    if pool == ALL_NODES {
        return Ok(());
    }
    let store = state.store.clone();
    let p = pool.to_string();
    let row = blocking(move || match store.pool(&p) {
        Ok(r) => Ok(Some(r)),
        Err(crate::store::StoreError::NotFound(_)) => Ok(None),
        Err(e) => Err(e),
    })
    .await?;
    let declared = match &row {
        Some(r) => r.spec()?.plugins.is_some(),
        None => false,
    };
    if !declared {
        return Ok(());
    }
    let place = match row.and_then(|r| r.source_file) {
        Some(f) => format!("its [[pools]] entry in {f}"),
        None => format!("its spec (PUT /v1/pools/{})", clip(pool, 64)),
    };
    Err(ApiError::new(
        StatusCode::CONFLICT,
        "conflict",
        format!(
            "pool {} declares its plugins in {place}: change them there",
            clip(pool, 64)
        ),
    ))
}

/// The largest answer to `POST /v1/nodes/{id}/plugins` an assignment may make, bytes (the
/// agent reads at most 4 MiB).
pub const MAX_ASSIGNMENT_BYTES: usize = 1 << 20;

/// The answer a node of `pool` gets from these assignments.
fn answer(pool: &str, all: &[AssignmentRow]) -> PluginAssignment {
    let rows = crate::store::plugins::effective(
        pool,
        all.iter()
            .filter(|a| a.pool == pool || a.pool == ALL_NODES)
            .cloned()
            .collect(),
    );
    PluginAssignment {
        plugins: rows
            .into_iter()
            .map(|a| AssignedPlugin {
                config: serde_json::from_str(&a.config).unwrap_or_default(),
                interval_seconds: a.interval_ms.map(|m| m as f64 / 1e3),
                timeout_seconds: a.timeout_ms.map(|m| m as f64 / 1e3),
                memory_limit_mib: a.memory_limit_mib.and_then(|m| u32::try_from(m).ok()),
                name: a.name,
                digest: a.digest,
            })
            .collect(),
    }
}

/// 422 unless, with `pool`'s assignments made `rows`, what every node would be told (its
/// pool's plugins and those for every node) holds at most [`MAX_PLUGINS`] plugins and
/// [`MAX_ASSIGNMENT_BYTES`]: past either an agent could not take its whole assignment.
async fn fits(
    state: &AppState,
    pool: &str,
    rows: &[AssignmentRow],
    one: bool,
) -> Result<(), ApiError> {
    let store = state.store.clone();
    let (mut all, pools, nodes) = blocking(move || {
        Ok((
            store.plugin_assignments(None)?,
            store.pools()?,
            store.nodes_of(None)?,
        ))
    })
    .await?;
    if one {
        all.retain(|a| !rows.iter().any(|r| r.pool == a.pool && r.name == a.name));
    } else {
        all.retain(|a| a.pool != pool);
    }
    all.extend(rows.iter().cloned());
    let mut names: BTreeSet<String> = pools.into_iter().map(|p| p.name).collect();
    names.extend(nodes.into_iter().map(|(_, _, p)| p));
    names.insert(pool.to_string());
    // A pool of no node and no assignment of its own is told just the assignments for all.
    names.insert(String::new());
    for p in names.iter().filter(|p| p.as_str() != ALL_NODES) {
        let a = answer(p, &all);
        let bytes = serde_json::to_vec(&a)
            .map(|v| v.len())
            .unwrap_or(usize::MAX);
        let whose = if p.is_empty() {
            "every node".to_string()
        } else {
            format!("the nodes of pool {p}")
        };
        if a.plugins.len() > MAX_PLUGINS {
            return Err(ApiError::invalid(format!(
                "{whose} would run {} plugins (this pool's and those for every node), at most {MAX_PLUGINS}",
                a.plugins.len()
            )));
        }
        if bytes > MAX_ASSIGNMENT_BYTES {
            return Err(ApiError::invalid(format!(
                "what {whose} would be told is {bytes} bytes (mostly config values), at most {MAX_ASSIGNMENT_BYTES}"
            )));
        }
    }
    Ok(())
}

/// Fills in each row's digest left empty with the newest component pushed under its name.
async fn resolve(state: &AppState, rows: &mut [AssignmentRow]) -> Result<(), ApiError> {
    if rows.iter().all(|r| !r.digest.is_empty()) {
        return Ok(());
    }
    let store = state.store.clone();
    let blobs = blocking(move || store.plugin_blobs()).await?;
    for r in rows.iter_mut().filter(|r| r.digest.is_empty()) {
        r.digest = blobs
            .iter()
            .find(|b| b.name == r.name)
            .map(|b| b.digest.clone())
            .ok_or_else(|| {
                ApiError::not_found(format!(
                    "no component was pushed under the name {}: push it, or give its digest",
                    r.name
                ))
            })?;
    }
    Ok(())
}

#[utoipa::path(
    put, path = "/v1/pools/{name}/plugins", operation_id = "set_pool_plugins",
    params(("name" = String, Path, description = "A pool, or `*` for every node")),
    request_body = AssignBody,
    description = "Makes these the plugins of the pool's nodes (those not listed are removed from them at their agents' next check). Each is pinned to a digest (absent: the newest pushed under its name). Audited.",
    responses(
        (status = 200, body = PoolPlugins),
        (status = 404, description = "No such pool or component"),
        (status = 422, description = "Every problem of the body"),
    )
)]
#[put("/v1/pools/{name}/plugins")]
pub(super) async fn set_pool(
    admin: Admin,
    state: web::Data<AppState>,
    pool: web::Path<String>,
    body: Json<AssignBody>,
) -> Result<HttpResponse, ApiError> {
    let pool = pool.into_inner();
    let target = format!("pool:{}", clip(&pool, 64));
    let names: Vec<String> = body.0.plugins.iter().map(|p| clip(&p.name, 64)).collect();
    let details = json!({"plugins": names});
    let work = async {
        known_pool(&state, &pool).await?;
        api_owned(&state, &pool).await?;
        let now = state.clock.now_ms();
        let mut problems = Vec::new();
        let mut rows = Vec::new();
        if body.0.plugins.len() > MAX_PLUGINS {
            problems.push(format!(
                "plugins: {} entries, at most {MAX_PLUGINS}",
                body.0.plugins.len()
            ));
        }
        let mut seen = BTreeSet::new();
        for (i, s) in body.0.plugins.iter().enumerate() {
            if !seen.insert(s.name.clone()) {
                problems.push(format!(
                    "plugins[{i}].name: {} is listed twice",
                    clip(&s.name, 64)
                ));
            }
            match spec_row(&format!("plugins[{i}]"), &pool, s, &admin.0, now) {
                Ok(r) => rows.push(r),
                Err(p) => problems.extend(p),
            }
        }
        if !problems.is_empty() {
            return Err(ApiError::invalid(problems.join("; ")));
        }
        resolve(&state, &mut rows).await?;
        fits(&state, &pool, &rows, false).await?;
        let entry = NewAudit::ok(
            &admin.0,
            "plugins.assign",
            &format!("pool:{pool}"),
            json!({"plugins": rows.iter().map(|r| format!("{}@{}", r.name, r.digest)).collect::<Vec<_>>()}),
            now,
        );
        let store = state.store.clone();
        let p = pool.clone();
        blocking(move || store.set_plugin_assignments(&p, &rows, entry)).await?;
        Ok(HttpResponse::Ok().json(pool_view(&state, &pool).await?))
    };
    audited(&state, &admin.0, "plugins.assign", &target, details, work).await
}

#[utoipa::path(
    put, path = "/v1/pools/{name}/plugins/{plugin}", operation_id = "assign_plugin",
    params(
        ("name" = String, Path, description = "A pool, or `*` for every node"),
        ("plugin" = String, Path, description = "The plugin's name"),
    ),
    request_body = AssignOne,
    description = "Assigns one plugin to the pool's nodes (replacing its earlier assignment there), pinned to a digest (absent: the newest pushed under its name). Audited.",
    responses(
        (status = 200, body = PoolPlugins),
        (status = 404, description = "No such pool or component"),
        (status = 422, description = "Every problem of the body"),
    )
)]
#[put("/v1/pools/{name}/plugins/{plugin}")]
pub(super) async fn assign(
    admin: Admin,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: Json<AssignOne>,
) -> Result<HttpResponse, ApiError> {
    let (pool, name) = path.into_inner();
    let target = format!("pool:{}", clip(&pool, 64));
    let details =
        json!({"plugin": clip(&name, 64), "digest": body.0.digest.as_deref().map(|d| clip(d, 80))});
    let work = async {
        known_pool(&state, &pool).await?;
        api_owned(&state, &pool).await?;
        let b = body.0;
        let spec = PluginAssign {
            name: name.clone(),
            digest: b.digest,
            config: b.config,
            interval: b.interval,
            timeout: b.timeout,
            memory_limit_mib: b.memory_limit_mib,
        };
        let now = state.clock.now_ms();
        let mut rows = vec![spec_row("body", &pool, &spec, &admin.0, now)
            .map_err(|p| ApiError::invalid(p.join("; ")))?];
        resolve(&state, &mut rows).await?;
        fits(&state, &pool, &rows, true).await?;
        let row = rows.remove(0);
        let entry = NewAudit::ok(
            &admin.0,
            "plugins.assign",
            &format!("pool:{pool}"),
            json!({"plugin": row.name, "digest": row.digest, "config": row.config}),
            now,
        );
        let store = state.store.clone();
        blocking(move || store.put_plugin_assignment(&row, entry)).await?;
        Ok(HttpResponse::Ok().json(pool_view(&state, &pool).await?))
    };
    audited(&state, &admin.0, "plugins.assign", &target, details, work).await
}

#[utoipa::path(
    delete, path = "/v1/pools/{name}/plugins/{plugin}", operation_id = "unassign_plugin",
    params(
        ("name" = String, Path, description = "A pool, or `*` for every node"),
        ("plugin" = String, Path, description = "The plugin's name"),
    ),
    description = "Removes a plugin from the pool's nodes (their agents stop it at their next check). Audited.",
    responses((status = 204, description = "Removed"), (status = 404, description = "Not assigned there"))
)]
#[delete("/v1/pools/{name}/plugins/{plugin}")]
pub(super) async fn unassign(
    admin: Admin,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (pool, name) = path.into_inner();
    let target = format!("pool:{}", clip(&pool, 64));
    let work = async {
        api_owned(&state, &pool).await?;
        let entry = NewAudit::ok(
            &admin.0,
            "plugins.unassign",
            &format!("pool:{pool}"),
            json!({"plugin": name}),
            state.clock.now_ms(),
        );
        let store = state.store.clone();
        let (p, n) = (pool.clone(), name.clone());
        if !blocking(move || store.delete_plugin_assignment(&p, &n, entry)).await? {
            return Err(ApiError::not_found(format!(
                "plugin {} is not assigned to {}",
                clip(&name, 64),
                clip(&pool, 64)
            )));
        }
        Ok(HttpResponse::NoContent().finish())
    };
    let details = json!({"plugin": clip(&name, 64)});
    audited(&state, &admin.0, "plugins.unassign", &target, details, work).await
}

/// An assignment, as shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct AssignmentView {
    /// The pool (`*`: every node).
    pub pool: String,
    /// The plugin's name.
    pub name: String,
    /// Its component.
    pub digest: String,
    /// Its config values.
    pub config: BTreeMap<String, String>,
    /// Run interval (absent: the agent's default).
    pub interval: Option<String>,
    /// Deadline of a run (absent: the agent's default).
    pub timeout: Option<String>,
    /// Memory cap, MiB (absent: the agent's default).
    pub memory_limit_mib: Option<u32>,
    /// Who assigned it.
    pub assigned_by: String,
    /// When (RFC 3339).
    pub assigned_at: String,
}

fn assignment_view(r: &AssignmentRow) -> AssignmentView {
    let dur = |ms: Option<i64>| {
        ms.map(|m| humantime::format_duration(Duration::from_millis(m.max(0) as u64)).to_string())
    };
    AssignmentView {
        pool: r.pool.clone(),
        name: r.name.clone(),
        digest: r.digest.clone(),
        config: serde_json::from_str(&r.config).unwrap_or_default(),
        interval: dur(r.interval_ms),
        timeout: dur(r.timeout_ms),
        memory_limit_mib: r.memory_limit_mib.and_then(|m| u32::try_from(m).ok()),
        assigned_by: r.assigned_by.clone(),
        assigned_at: rfc3339(r.assigned_at),
    }
}

/// One plugin on one node: what it should run against what it runs.
#[derive(Debug, Serialize, ToSchema)]
pub struct NodePluginView {
    /// The plugin's name.
    pub name: String,
    /// `assigned` or `local` (the agent's own config); `assigned` too for one not yet
    /// reported.
    pub source: String,
    /// The digest assigned to this node (absent: none is, e.g. a local plugin).
    pub assigned: Option<String>,
    /// The digest it runs (absent: none loaded, or not reported yet).
    pub running: Option<String>,
    /// `in_sync` (runs what is assigned), `pending` (not yet: the agent has not caught
    /// up), `refused` (the agent refused the assigned version: see `error`), `stale` (runs
    /// but is no longer assigned), `local` (the node's own plugin).
    pub state: String,
    /// The last result's status.
    pub status: Option<String>,
    /// The last result's message.
    pub message: String,
    /// Why the assigned version is not running.
    pub error: Option<String>,
}

/// A node's plugins.
#[derive(Debug, Serialize, ToSchema)]
pub struct NodePlugins {
    /// The node's id.
    pub node_id: String,
    /// Its name.
    pub node: String,
    /// Its pool.
    pub pool: String,
    /// Whether it runs exactly what it is assigned.
    pub in_sync: bool,
    /// When its agent last reported (RFC 3339; absent: never).
    pub reported_at: Option<String>,
    /// By name.
    pub plugins: Vec<NodePluginView>,
}

/// `GET /v1/pools/{name}/plugins`, `GET /v1/plugins/status`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PoolPlugins {
    /// The pool (`*`: every node; absent: every pool).
    pub pool: Option<String>,
    /// Its assignments (of the pool itself; with `*`'s for every node when listing all).
    pub assigned: Vec<AssignmentView>,
    /// Its nodes, by name.
    pub nodes: Vec<NodePlugins>,
    /// Nodes that run exactly what they are assigned.
    pub in_sync: usize,
    /// Nodes that do not (yet).
    pub drifted: usize,
}

/// What the nodes of `pool` (None or `*`: every node) run against what they are assigned.
async fn pool_view(state: &AppState, pool: &str) -> Result<PoolPlugins, ApiError> {
    let filter = (pool != ALL_NODES).then(|| pool.to_string());
    drift(state, filter, Some(pool.to_string())).await
}

async fn drift(
    state: &AppState,
    filter: Option<String>,
    shown: Option<String>,
) -> Result<PoolPlugins, ApiError> {
    let store = state.store.clone();
    let f = filter.clone();
    let (assigned, nodes, reports) = blocking(move || {
        Ok((
            store.plugin_assignments(None)?,
            store.nodes_of(f.as_deref())?,
            store.node_plugins(f.as_deref())?,
        ))
    })
    .await?;
    let mut by_node: BTreeMap<String, Vec<NodePluginRow>> = BTreeMap::new();
    for (_, _, r) in reports {
        by_node.entry(r.node_id.clone()).or_default().push(r);
    }
    let mut out = Vec::new();
    for (id, name, node_pool) in nodes {
        let want: BTreeMap<String, String> = crate::store::plugins::effective(
            &node_pool,
            assigned
                .iter()
                .filter(|a| a.pool == node_pool || a.pool == ALL_NODES)
                .cloned()
                .collect(),
        )
        .into_iter()
        .map(|a| (a.name, a.digest))
        .collect();
        let got = by_node.remove(&id).unwrap_or_default();
        let reported_at = got.iter().map(|r| r.reported_at).max();
        let mut plugins = Vec::new();
        for (pname, digest) in &want {
            let r = got.iter().find(|r| &r.name == pname);
            let (st, running, last, message, error, source) = match r {
                None => ("pending", None, None, String::new(), None, SOURCE_ASSIGNED),
                Some(r) => {
                    let st = if r.source == SOURCE_LOCAL || r.error.is_some() {
                        "refused"
                    } else if r.running.as_deref() == Some(digest) {
                        "in_sync"
                    } else {
                        "pending"
                    };
                    let error = if r.source == SOURCE_LOCAL {
                        Some(
                            "a plugin of this name is configured locally on the node: the local one runs"
                                .to_string(),
                        )
                    } else {
                        r.error.clone()
                    };
                    (
                        st,
                        r.running.clone(),
                        r.status.clone(),
                        r.message.clone(),
                        error,
                        SOURCE_ASSIGNED,
                    )
                }
            };
            plugins.push(NodePluginView {
                name: pname.clone(),
                source: source.to_string(),
                assigned: Some(digest.clone()),
                running,
                state: st.to_string(),
                status: last,
                message,
                error,
            });
        }
        for r in got.iter().filter(|r| !want.contains_key(&r.name)) {
            plugins.push(NodePluginView {
                name: r.name.clone(),
                source: r.source.clone(),
                assigned: None,
                running: r.running.clone(),
                state: if r.source == SOURCE_LOCAL {
                    "local"
                } else {
                    "stale"
                }
                .to_string(),
                status: r.status.clone(),
                message: r.message.clone(),
                error: r.error.clone(),
            });
        }
        plugins.sort_by(|a, b| a.name.cmp(&b.name));
        let in_sync = plugins
            .iter()
            .all(|p| p.state == "in_sync" || p.state == "local");
        out.push(NodePlugins {
            node_id: id,
            node: name,
            pool: node_pool,
            in_sync,
            reported_at: reported_at.map(rfc3339),
            plugins,
        });
    }
    let in_sync = out.iter().filter(|n| n.in_sync).count();
    let assigned = assigned
        .iter()
        .filter(|a| match &shown {
            Some(p) => &a.pool == p,
            None => true,
        })
        .map(assignment_view)
        .collect();
    Ok(PoolPlugins {
        pool: shown,
        assigned,
        drifted: out.len() - in_sync,
        in_sync,
        nodes: out,
    })
}

#[utoipa::path(
    get, path = "/v1/pools/{name}/plugins", operation_id = "get_pool_plugins",
    params(("name" = String, Path, description = "A pool, or `*` for every node")),
    description = "The pool's plugins, and what each of its nodes runs against them (drift).",
    responses((status = 200, body = PoolPlugins), (status = 404, description = "No such pool"))
)]
#[get("/v1/pools/{name}/plugins")]
pub(super) async fn get_pool(
    _admin: Admin,
    state: web::Data<AppState>,
    pool: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let pool = pool.into_inner();
    known_pool(&state, &pool).await?;
    Ok(HttpResponse::Ok().json(pool_view(&state, &pool).await?))
}

/// Query of `GET /v1/plugins/status`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StatusQuery {
    /// Only the nodes of this pool.
    pub pool: Option<String>,
}

#[utoipa::path(
    get, path = "/v1/plugins/status", operation_id = "plugin_status",
    params(StatusQuery),
    description = "What every node (or those of `pool`; `*`: every node) runs against what it is assigned: drift per node, counts of nodes in sync and drifted.",
    responses((status = 200, body = PoolPlugins), (status = 404, description = "No such pool"))
)]
#[get("/v1/plugins/status")]
pub(super) async fn drift_status(
    _admin: Admin,
    state: web::Data<AppState>,
    query: web::Query<StatusQuery>,
) -> Result<HttpResponse, ApiError> {
    match query.into_inner().pool {
        None => Ok(HttpResponse::Ok().json(drift(&state, None, None).await?)),
        Some(pool) => {
            known_pool(&state, &pool).await?;
            Ok(HttpResponse::Ok().json(pool_view(&state, &pool).await?))
        }
    }
}

#[utoipa::path(
    post, path = "/v1/nodes/{id}/plugins", operation_id = "sync_node_plugins",
    params(("id" = String, Path, description = "Node id")),
    request_body = PluginReport,
    description = "The agent's report of what it runs (its node token); the answer is what it should run: its pool's plugins and those assigned to every node.",
    responses(
        (status = 200, body = PluginAssignment),
        (status = 403, description = "Another node's token"),
        (status = 422, description = "A bad report"),
    )
)]
#[post("/v1/nodes/{id}/plugins")]
pub(super) async fn sync(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: Json<PluginReport>,
) -> Result<HttpResponse, ApiError> {
    let who = caller(&req, &state).await?;
    let id = id.into_inner();
    allow_node(&who, &id)?;
    if matches!(who, Caller::Admin(_)) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "only the node's agent reports its plugins (its node token)",
        ));
    }
    let report = body.0;
    if report.plugins.len() > MAX_PLUGINS {
        return Err(ApiError::invalid(format!(
            "{} plugins, at most {MAX_PLUGINS}",
            report.plugins.len()
        )));
    }
    let now = state.clock.now_ms();
    let mut rows: Vec<NodePluginRow> = Vec::new();
    for p in report.plugins {
        plugin_name(&p.name)?;
        if p.source != SOURCE_ASSIGNED && p.source != SOURCE_LOCAL {
            return Err(ApiError::invalid(format!(
                "plugin {}: source must be assigned or local",
                p.name
            )));
        }
        if rows.iter().any(|r| r.name == p.name) {
            return Err(ApiError::invalid(format!(
                "plugin {} is reported twice",
                p.name
            )));
        }
        rows.push(NodePluginRow {
            node_id: id.clone(),
            name: p.name,
            source: p.source,
            running: p.running.filter(|d| valid_digest(d)),
            status: p.status.map(|s| clip(&s, 16)),
            message: clip(&p.message, 1024),
            error: p.error.map(|e| clip(&e, 1024)),
            reported_at: now,
        });
    }
    let store = state.store.clone();
    let key = id.clone();
    let (pool, all) = blocking(move || {
        let node = store.node(&key)?;
        store.record_node_plugins(&node.id, &rows)?;
        Ok((node.pool.clone(), store.plugin_assignments(None)?))
    })
    .await?;
    Ok(HttpResponse::Ok().json(answer(&pool, &all)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_components_pass_the_upload_check() {
        assert!(component_problem(b"hello world")
            .unwrap()
            .contains("not WebAssembly"));
        let core = b"\0asm\x01\0\0\0";
        assert!(component_problem(core).unwrap().contains("core"));
        // An empty component: the header alone is a valid component.
        let empty = b"\0asm\x0d\0\x01\0";
        assert_eq!(component_problem(empty), None);
        // A truncated section.
        let cut = b"\0asm\x0d\0\x01\0\x01\x10\0";
        assert!(component_problem(cut).unwrap().contains("not a valid"));
    }

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
