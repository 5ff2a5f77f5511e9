//! `POST /v1/nodes/{id}/expected-gpus`: an operator sets how many GPUs a node is expected to
//! have. Registrations only ever raise the count (a GPU that vanished must be noticed, not
//! forgotten by the next registration), so lowering it after a GPU was removed on purpose
//! is this act, audited.

use actix_web::{post, web, HttpResponse};
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

use super::body::Json;
use super::caller::Admin;
use super::error::ApiError;
use super::nodes::{load, node_json};
use super::state::{audited, blocking, AppState};
use crate::model::Node;

/// Most GPUs a node may be expected to have (as at registration).
const MAX_GPUS: usize = 1024;

/// Body of `POST /v1/nodes/{id}/expected-gpus`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpectedGpus {
    /// GPUs the node is expected to have, 1 to 1024.
    pub gpus: usize,
}

#[utoipa::path(
    post, path = "/v1/nodes/{id}/expected-gpus", request_body = ExpectedGpus,
    params(("id" = String, Path, description = "Node id or name")),
    description = "Sets the GPUs the node is expected to have (audited as `node.expected_gpus`). Registrations keep the most GPUs a node ever registered with; this is how an operator lowers the count after removing a GPU on purpose. The `gpu-missing` rule compares the GPUs observed with this count.",
    responses((status = 200, body = Node), (status = 400, description = "Malformed body"), (status = 401), (status = 404), (status = 422, description = "gpus is not between 1 and 1024"))
)]
#[post("/v1/nodes/{id}/expected-gpus")]
pub(super) async fn set(
    admin: Admin,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: Json<ExpectedGpus>,
) -> Result<HttpResponse, ApiError> {
    let key = id.into_inner();
    let gpus = body.0.gpus;
    // Refusals (out of range, unknown node) are audited like every refused admin action.
    let row = audited(
        &state,
        &admin.0,
        "node.expected_gpus",
        &key,
        json!({ "gpus": gpus }),
        async {
            if !(1..=MAX_GPUS).contains(&gpus) {
                return Err(ApiError::invalid(format!(
                    "gpus: {gpus} is not between 1 and {MAX_GPUS}"
                )));
            }
            load(&state, &key).await
        },
    )
    .await?;
    let now = state.clock.now_ms();
    let (store, nid, who) = (state.store.clone(), row.id.clone(), admin.0);
    let row = blocking(move || store.set_expected_gpus(&nid, gpus, &who, now)).await?;
    state.fleet.set_expected_gpus(&row.id, gpus);
    tracing::info!(node = %row.id, gpus, "expected GPUs set by an operator");
    Ok(HttpResponse::Ok().json(node_json(&row, &state)?))
}
