//! `POST /v1/nodes/{id}/notify`: an agent says it recorded an urgent (fatal) event, so its
//! events are read now rather than at the next scrape. Authenticated with the node's token
//! (or an admin token); the read itself is the scraper's ([`crate::scrape::Urgent`]), so this
//! answers at once, whatever the agent's state.

use actix_web::http::StatusCode;
use actix_web::{post, web, FromRequest, HttpRequest, HttpResponse};
use gpuwarden_wire::notice::{NoticeAccepted, UrgentNotice, MAX_INSTANCE_BYTES};

use super::body::Json;
use super::caller::{allow_node, caller, Caller};
use super::error::ApiError;
use super::state::AppState;
use crate::scrape::Urgent;

#[utoipa::path(
    post, path = "/v1/nodes/{id}/notify", request_body = UrgentNotice,
    params(("id" = String, Path, description = "Node id (as returned at registration) or name")),
    description = "An agent's urgent-event notice: it recorded an event of severity `fatal` whose sequence is `seq`. The control plane reads the node's `/v1/events` from its stored cursor soon after (coalesced per node: many notices before the read are one read; at most `scrape.notice_concurrency` reads at once); nothing is read when events up to `seq` of this agent run are stored already. A lost notice falls back to the next scrape. Takes the node's own token (or an admin token).",
    responses(
        (status = 202, body = NoticeAccepted),
        (status = 401),
        (status = 403, description = "Another node's token"),
        (status = 404, description = "No such node"),
        (status = 409, description = "The node is not scraped (no agent address: pending, deregistered, terminated)"),
        (status = 422, description = "instance is empty, longer than 128 bytes, or not printable ASCII; seq above 2^63-1"),
    )
)]
#[post("/v1/nodes/{id}/notify")]
pub(super) async fn notify(
    req: HttpRequest,
    state: web::Data<AppState>,
    urgent: Option<web::Data<Urgent>>,
    id: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let answer = async {
        // The caller first, the body after: a request without a valid token is 401 whatever
        // its body (the body extractor would otherwise answer 400/413/415 first).
        let who = caller(&req, &state).await?;
        let body = Json::<UrgentNotice>::from_request(&req, &mut payload.into_inner()).await?;
        take(
            &state,
            urgent.as_ref().map(|u| u.get_ref()),
            &id,
            who,
            &body.0,
        )
        .await
    }
    .await;
    if answer.is_err() {
        state.metrics.notices.with_label_values(&["refused"]).inc();
    }
    answer
}

async fn take(
    state: &AppState,
    urgent: Option<&Urgent>,
    id: &str,
    who: Caller,
    n: &UrgentNotice,
) -> Result<HttpResponse, ApiError> {
    // Agents send their node id (a node's token acts for its id only); an admin trying it by
    // hand may give the name, as every other `/v1/nodes/{id}` path takes (one database read,
    // only for a name).
    if matches!(who, Caller::Node(_)) {
        allow_node(&who, id)?;
    }
    let id = if state.fleet.contains(id) || matches!(who, Caller::Node(_)) {
        id.to_string()
    } else {
        super::nodes::load(state, id).await?.id
    };
    let id = id.as_str();
    allow_node(&who, id)?;
    if n.instance.is_empty()
        || n.instance.len() > MAX_INSTANCE_BYTES
        || !n.instance.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(ApiError::invalid(format!(
            "instance: must be 1 to {MAX_INSTANCE_BYTES} printable ASCII characters (the `instance` of the agent's /v1/events)"
        )));
    }
    if i64::try_from(n.seq).is_err() {
        return Err(ApiError::invalid(format!(
            "seq: {} is above {} (the event sequences the control plane stores are 64-bit signed)",
            n.seq,
            i64::MAX
        )));
    }
    let urgent = urgent.ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "urgent-event notices are not taken by this server",
        )
    })?;
    let Some(outcome) = urgent.notice(&state.fleet, &state.metrics, id, n) else {
        // Not scraped: unknown (404), or known without an address to read (409).
        let node = super::nodes::load(state, id).await?;
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_scraped",
            format!(
                "node {} is {} and not scraped (no agent address): there are no events to read",
                node.id, node.status
            ),
        ));
    };
    tracing::debug!(node = %id, seq = n.seq, outcome = outcome.as_str(), "urgent-event notice");
    Ok(HttpResponse::Accepted().json(NoticeAccepted { accepted: true }))
}
