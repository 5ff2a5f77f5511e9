//! A node's actions in the console: cordon, uncordon, drain, diagnose and clear-health, each
//! confirmed on a page of its own (`GET /ui/nodes/{id}/actions/{action}`) before it is
//! posted (admin, CSRF token), and carried out and audited by the same code as the REST API.

use actix_web::{get, post, web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::common::{encode, page, see_other, Chrome, Signed, UiError};
use crate::api::{
    apply_step, clear_node_health, diagnose_node, load_node, node_json, AppState, DiagnoseRequest,
    StepRequest,
};

/// The actions the node page offers: `(path name, button, what it does)`.
pub const ACTIONS: [(&str, &str, &str); 5] = [
    (
        "cordon",
        "Cordon",
        "No new work is scheduled on the node; its agent runs the cordon hook.",
    ),
    (
        "uncordon",
        "Uncordon",
        "Work may be scheduled on the node again.",
    ),
    (
        "drain",
        "Drain",
        "The node's work is moved off (its agent runs the drain hook), then it stays cordoned.",
    ),
    (
        "diagnose",
        "Run diagnostics",
        "The node's agent runs its diagnostic plugin; the result appears under Commands.",
    ),
    (
        "clear-health",
        "Clear health",
        "A sticky unhealthy verdict is cleared and the health recomputed from what still holds.",
    ),
];

#[derive(Template)]
#[template(path = "console/confirm.html")]
struct ConfirmPage {
    chrome: Chrome,
    node: crate::model::Node,
    action: &'static str,
    label: &'static str,
    what: &'static str,
}

fn action_of(a: &str) -> Result<(&'static str, &'static str, &'static str), UiError> {
    ACTIONS
        .iter()
        .find(|(n, _, _)| *n == a)
        .copied()
        .ok_or_else(|| {
            UiError::Api(crate::api::ApiError::not_found(format!(
                "no action {:?}: use cordon, uncordon, drain, diagnose or clear-health",
                a.chars().take(64).collect::<String>()
            )))
        })
}

/// `GET /ui/nodes/{id}/actions/{action}`: asks to confirm.
#[get("/nodes/{id}/actions/{action}")]
pub async fn confirm(
    who: Signed,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, UiError> {
    let (id, action) = path.into_inner();
    let (action, label, what) = action_of(&action)?;
    if !who.0.can_act() {
        return Err(UiError::ReadOnly(format!(
            "{} may not {action}",
            who.0.actor
        )));
    }
    let row = load_node(&state, &id).await?;
    page(&ConfirmPage {
        chrome: who.chrome(format!("{label} {}?", row.name), "nodes"),
        node: node_json(&row, &state)?,
        action,
        label,
        what,
    })
}

/// The confirmation form.
#[derive(Debug, Deserialize)]
pub struct ActionForm {
    /// CSRF token.
    #[serde(default)]
    csrf: String,
    /// Why (cordon, uncordon, drain).
    #[serde(default)]
    reason: String,
    /// Drain only: how long it may take, like `30m`.
    #[serde(default)]
    timeout: String,
    /// Diagnose only: the plugin (default: the agent's).
    #[serde(default)]
    plugin: String,
}

fn opt(s: &str) -> Option<String> {
    let t = s.trim();
    (!t.is_empty()).then(|| t.to_string())
}

/// `POST /ui/nodes/{id}/actions/{action}`: carries it out (admin, CSRF token checked), then
/// back to the node page with what it did.
#[post("/nodes/{id}/actions/{action}")]
pub async fn act(
    req: HttpRequest,
    who: Signed,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    form: web::Form<ActionForm>,
) -> Result<HttpResponse, UiError> {
    let (id, action) = path.into_inner();
    let (action, _, _) = action_of(&action)?;
    let f = form.into_inner();
    who.act(&req, Some(&f.csrf), action)?;
    let actor = who.0.actor.as_str();
    let (node_id, command) = match action {
        "diagnose" => {
            let r = diagnose_node(
                &state,
                actor,
                &id,
                DiagnoseRequest {
                    plugin: opt(&f.plugin),
                    args: Default::default(),
                },
            )
            .await?;
            (r.node.id, Some(r.command.id))
        }
        "clear-health" => (clear_node_health(&state, actor, &id).await?.id, None),
        step => {
            let r = apply_step(
                &state,
                actor,
                &id,
                step,
                StepRequest {
                    reason: opt(&f.reason),
                    timeout: if step == "drain" {
                        opt(&f.timeout)
                    } else {
                        None
                    },
                },
            )
            .await?;
            (r.node.id, Some(r.command.id))
        }
    };
    let mut to = format!("/ui/nodes/{}?done={action}", encode(&node_id));
    if let Some(c) = command {
        to.push_str(&format!("&command={}", encode(&c)));
    }
    Ok(see_other(&to))
}
