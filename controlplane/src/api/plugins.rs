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

pub mod blobs;
pub mod drift;
pub mod sync;

use std::collections::{BTreeMap, BTreeSet};

use actix_web::http::StatusCode;
use actix_web::{delete, get, post, put, web, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use gpuwarden_wire::plugin_sync::MAX_PLUGINS;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use super::body::Json;
use super::caller::Admin;
use super::error::ApiError;
use super::state::{audited, blocking, clip, AppState};
use crate::clock::rfc3339;
use crate::model::plugin::PluginAssign;
use crate::store::plugins::{AssignmentRow, ALL_NODES};
use crate::store::rows::NewAudit;
pub use blobs::PluginBlobs;
use blobs::{blobs, check_digest, digest_of, plugin_name};
use drift::{known_pool, pool_view, PoolPlugins};
use sync::{answer, MAX_ASSIGNMENT_BYTES};

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
}
