//! `/healthz`, `/readyz`, `/metrics`, `/v1/sd` (Prometheus HTTP service
//! discovery) and `/v1/audit`.

use std::collections::BTreeMap;

use actix_web::{get, web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::caller::Admin;
use super::error::ApiError;
use super::state::{blocking, AppState};
use crate::model::AuditEntry;

#[utoipa::path(get, path = "/healthz", security(), responses((status = 200, description = "The process serves")))]
#[get("/healthz")]
pub(super) async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

#[utoipa::path(get, path = "/readyz", security(), responses((status = 200, description = "The database answers"), (status = 503)))]
#[get("/readyz")]
pub(super) async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let store = state.store.clone();
    match blocking(move || store.ping()).await {
        Ok(()) => HttpResponse::Ok().json(serde_json::json!({"status": "ready"})),
        Err(e) => HttpResponse::ServiceUnavailable().json(serde_json::json!({
            "error": {"code": "unavailable", "message": format!("database: {}", e.message)}
        })),
    }
}

#[utoipa::path(get, path = "/metrics", security(), responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain")))]
#[get("/metrics")]
pub(super) async fn metrics(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let store = state.store.clone();
    let counts = blocking(move || store.node_counts()).await?;
    state.metrics.nodes.reset();
    for (s, h, c, n) in counts {
        state.metrics.nodes.with_label_values(&[&s, &h, &c]).set(n);
    }
    let (up, down) = state.fleet.up_counts();
    state.metrics.targets.with_label_values(&["true"]).set(up);
    state
        .metrics
        .targets
        .with_label_values(&["false"])
        .set(down);
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render()))
}

/// One target group of Prometheus HTTP service discovery.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TargetGroup {
    /// `host:port` of the agent.
    pub targets: Vec<String>,
    /// `node`, `node_id`, `pool`, the node's labels, and `__scheme__`/`__metrics_path__`.
    pub labels: BTreeMap<String, String>,
}

/// `host:port`, scheme and metrics path of an agent base URL; credentials never reach it.
fn split_address(address: &str) -> Option<(String, &'static str, String)> {
    let scheme = if address.starts_with("https://") {
        "https"
    } else {
        "http"
    };
    let host = crate::validate::host_port(address)?;
    let rest = &address[address.find("://")? + 3..];
    let path = rest
        .find('/')
        .map_or("", |i| rest[i..].trim_end_matches('/'));
    Some((host.to_string(), scheme, format!("{path}/metrics")))
}

/// The SD labels of one target: its valid labels (a label Prometheus would refuse, stored
/// before the rules were shared, is left out with a warning: one bad label would make
/// Prometheus drop the whole answer), then `node`, `node_id`, `pool`, scheme and path.
fn sd_labels(
    t: &crate::scrape::fleet::Target,
    scheme: &str,
    path: String,
) -> BTreeMap<String, String> {
    let mut labels: BTreeMap<String, String> = t
        .labels
        .iter()
        .filter(|(k, v)| {
            let ok =
                crate::validate::label_name(k).and_then(|()| crate::validate::label_value(k, v));
            if let Err(e) = &ok {
                tracing::warn!(node = %t.node_id, error = %e, "label left out of /v1/sd");
            }
            ok.is_ok()
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    labels.insert("node".into(), t.name.clone());
    labels.insert("node_id".into(), t.node_id.clone());
    labels.insert("pool".into(), t.pool.clone());
    labels.insert("__scheme__".into(), scheme.into());
    labels.insert("__metrics_path__".into(), path);
    labels
}

#[utoipa::path(
    get, path = "/v1/sd",
    description = "Every scraped agent in Prometheus HTTP SD format; point `http_sd_configs` here with the admin token as `authorization.credentials`.",
    responses((status = 200, body = [TargetGroup]), (status = 401))
)]
#[get("/v1/sd")]
pub(super) async fn service_discovery(_admin: Admin, state: web::Data<AppState>) -> HttpResponse {
    let groups: Vec<TargetGroup> = state
        .fleet
        .all()
        .into_iter()
        .filter_map(|t| {
            let (host, scheme, path) = split_address(&t.address)?;
            Some(TargetGroup {
                targets: vec![host],
                labels: sd_labels(&t, scheme, path),
            })
        })
        .collect();
    HttpResponse::Ok().json(groups)
}

/// Query of `GET /v1/audit`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// At most this many, newest first (default 100, at most 10000).
    #[param(minimum = 1, maximum = 10000)]
    limit: Option<i64>,
}

/// Answer of `GET /v1/audit`.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditList {
    /// Newest first.
    pub entries: Vec<AuditEntry>,
}

#[utoipa::path(get, path = "/v1/audit", params(AuditQuery), responses((status = 200, body = AuditList), (status = 401)))]
#[get("/v1/audit")]
pub(super) async fn audit(
    _admin: Admin,
    state: web::Data<AppState>,
    q: web::Query<AuditQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError::bad_request("limit must be between 1 and 10000"));
    }
    let store = state.store.clone();
    let rows = blocking(move || store.audit_log(limit)).await?;
    Ok(HttpResponse::Ok().json(AuditList {
        entries: rows.into_iter().map(AuditEntry::from).collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_split_into_sd_targets() {
        assert_eq!(
            split_address("http://10.0.0.5:9410"),
            Some(("10.0.0.5:9410".into(), "http", "/metrics".into()))
        );
        assert_eq!(
            split_address("https://n1.example:443/agent/"),
            Some(("n1.example:443".into(), "https", "/agent/metrics".into()))
        );
        assert_eq!(split_address("ftp://x"), None);
        assert_eq!(
            split_address("http://user:s3cret@10.0.0.5:9410/"),
            Some(("10.0.0.5:9410".into(), "http", "/metrics".into())),
            "credentials stored before they were refused never reach Prometheus"
        );
    }
}
