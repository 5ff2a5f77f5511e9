//! The OpenAPI document (`GET /v1/openapi.json`): generated from the handlers and types by
//! utoipa, then completed with what every operation shares, so that the document says
//! everything the server answers: the JSON error shape `{"error":{"code","message"}}` on
//! every error response, 401 on every authenticated operation, 400 wherever there are
//! parameters or a body, 413/415 wherever there is a body, 404 wherever there is an `{id}`.
//! `controlplane/tests/openapi.rs` checks it and `.ci/schemathesis` tests the server
//! against it.

use std::sync::OnceLock;

use actix_web::{get, HttpResponse};
use serde_json::{json, Value};
use utoipa::OpenApi;

use super::auth::BearerScheme;
use super::{
    commands, expected, history, instances, join, meta, node_token, nodes, notify, plugins,
    policies, pools, remedy, steps, tokens,
};

/// The OpenAPI document, generated from the handlers and types.
#[derive(OpenApi)]
#[openapi(
    info(title = "gpuwarden control plane", description = "REST admin API of gpuwarden."),
    paths(
        nodes::create,
        nodes::list,
        nodes::get,
        nodes::delete,
        node_token::issue_token,
        steps::clear_health,
        expected::set,
        steps::step,
        commands::diagnose,
        commands::get,
        history::events,
        history::transitions,
        history::commands,
        history::observation,
        join::register,
        notify::notify,
        meta::healthz,
        meta::readyz,
        meta::metrics,
        meta::service_discovery,
        meta::audit,
        openapi_json,
        policies::validate,
        policies::get,
        policies::put,
        policies::simulate,
        pools::list,
        pools::create,
        pools::get,
        pools::update,
        pools::delete,
        pools::scale,
        pools::demand,
        instances::list,
        instances::get,
        remedy::release,
        remedy::get_budget,
        remedy::set_budget,
        remedy::clear_budget,
        tokens::create,
        tokens::list,
        tokens::revoke,
        plugins::push,
        plugins::list,
        plugins::remove,
        plugins::blobs::blob,
        plugins::drift::drift_status,
        plugins::drift::get_pool,
        plugins::set_pool,
        plugins::assign,
        plugins::unassign,
        plugins::sync::sync,
    ),
    components(schemas(
        crate::model::Node,
        crate::model::Event,
        crate::model::Transition,
        crate::model::Command,
        crate::model::AuditEntry,
        crate::model::Capabilities,
        crate::model::GpuInfo,
        crate::model::ScrapeInfo,
        gpuwarden_wire::join::RegisterRequest,
        gpuwarden_wire::notice::UrgentNotice,
        gpuwarden_wire::notice::NoticeAccepted,
        expected::ExpectedGpus,
        crate::model::pool::PoolSpec,
        crate::model::pool::InstanceState,
    )),
    modifiers(&BearerScheme),
    security(("bearer" = []))
)]
pub struct ApiDoc;

/// The shared error responses an operation lacks, with a description each.
fn shared_errors(path: &str, op: &Value) -> Vec<(&'static str, &'static str)> {
    let mut add = Vec::new();
    let secured = op.get("security") != Some(&json!([]));
    let has_params = op["parameters"].as_array().is_some_and(|p| !p.is_empty());
    let body = op.get("requestBody");
    if has_params || body.is_some() {
        add.push(("400", "Malformed parameters or body"));
    }
    if secured {
        add.push(("401", "No or wrong token"));
    }
    if path.contains("{id}") {
        add.push(("404", "No such node or command"));
    }
    if let Some(b) = body {
        add.push(("413", "The body is larger than 1 MiB"));
        if b["content"].get("application/json").is_some() {
            add.push(("415", "The body is not JSON"));
        }
    }
    add
}

/// The rules of `crate::validate` that JSON Schema can say, on the request types that take
/// names, labels and addresses (a generated client or a schema-driven test then sends what
/// the server accepts).
fn constrain(doc: &mut Value) {
    let name = json!({"pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"});
    let labels = json!({
        "maxProperties": crate::validate::MAX_LABELS,
        "propertyNames": {"pattern": "^(?!__)[A-Za-z_][A-Za-z0-9_]{0,62}$"},
        "additionalProperties": {"type": "string", "maxLength": crate::validate::MAX_LABEL_VALUE, "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"}
    });
    let address = json!({"pattern": "^https?://[^\\s/?#@]+(/[^\\s?#]*)?$"});
    let gpu = &mut doc["components"]["schemas"]["GpuInfo"]["properties"];
    if gpu.is_object() {
        gpu["memory_bytes"]["maximum"] = json!(super::join::MAX_GPU_MEMORY);
        gpu["index"]["maximum"] = json!(super::join::MAX_GPUS - 1);
    }
    let caps = &mut doc["components"]["schemas"]["Capabilities"]["properties"]["gpus"];
    if caps.is_object() {
        caps["maxItems"] = json!(super::join::MAX_GPUS);
    }
    for schema in ["CreateNode", "RegisterRequest"] {
        let props = &mut doc["components"]["schemas"][schema]["properties"];
        if !props.is_object() {
            continue;
        }
        for (field, rule) in [
            ("name", &name),
            ("pool", &name),
            ("labels", &labels),
            ("address", &address),
        ] {
            if let (Some(p), Some(r)) = (props[field].as_object_mut(), rule.as_object()) {
                p.extend(r.clone());
            }
        }
    }
}

fn complete(mut doc: Value) -> Value {
    constrain(&mut doc);
    doc["components"]["schemas"]["Error"] = json!({
        "type": "object",
        "description": "Every error: a stable code and a message for people.",
        "required": ["error"],
        "properties": {"error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "description": "bad_request, unauthorized, forbidden, not_found, conflict, too_large, unsupported_media_type, invalid, invalid_pool, internal, unavailable"},
                "message": {"type": "string"},
                "details": {"type": "array", "description": "Every problem, when there are several (invalid_pool)", "items": {
                    "type": "object", "required": ["field", "message"],
                    "properties": {"field": {"type": "string"}, "message": {"type": "string"}}
                }}
            }
        }}
    });
    let error = json!({"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}});
    let Some(paths) = doc["paths"].as_object_mut() else {
        return doc;
    };
    for (path, item) in paths.iter_mut() {
        let Some(ops) = item.as_object_mut() else {
            continue;
        };
        for op in ops.values_mut() {
            let missing = shared_errors(path, op);
            let Some(responses) = op["responses"].as_object_mut() else {
                continue;
            };
            for (status, description) in missing {
                responses
                    .entry(status)
                    .or_insert_with(|| json!({"description": description}));
            }
            for (status, r) in responses.iter_mut() {
                if status.as_str() >= "400" && r.get("content").is_none() {
                    r["content"] = error.clone();
                }
            }
        }
    }
    doc
}

/// The OpenAPI document as served, built once.
pub fn document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| complete(serde_json::to_value(ApiDoc::openapi()).unwrap_or_default()))
}

/// The methods the document has for `path` (matched against its templates), or `None` when
/// no template matches: a known path asked with another method is 405, not 404.
pub fn methods_for(path: &str) -> Option<Vec<String>> {
    let segments: Vec<&str> = path.split('/').collect();
    let mut methods: Vec<String> = document()["paths"]
        .as_object()?
        .iter()
        .filter(|(template, _)| {
            let t: Vec<&str> = template.split('/').collect();
            t.len() == segments.len()
                && t.iter().zip(&segments).all(|(t, s)| {
                    (t.starts_with('{') && t.ends_with('}') && !s.is_empty()) || t == s
                })
        })
        .flat_map(|(_, item)| item.as_object().into_iter().flat_map(|o| o.keys()))
        .map(|m| m.to_ascii_uppercase())
        .collect();
    methods.sort();
    methods.dedup();
    (!methods.is_empty()).then_some(methods)
}

#[utoipa::path(get, path = "/v1/openapi.json", operation_id = "openapi", security(), responses((status = 200, description = "This document")))]
#[get("/v1/openapi.json")]
pub(super) async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok().json(document())
}
