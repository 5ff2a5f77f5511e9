//! "Add a node" (`POST /ui/nodes`) and "issue a join token" (`POST /ui/nodes/{id}/join-token`):
//! the join token and install script shown once. A refused form shows the nodes page again,
//! with the form as typed and the reason.

use std::collections::BTreeMap;

use actix_web::{post, web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::common::{html_with, page, Chrome, Signed, UiError};
use super::nodes::{render_list, AddForm, NodesQuery};
use crate::api::{
    create_node, issue_join_token, join_ttl, AppState, CreateNode, IssuedToken, TokenRequest,
};

#[derive(Template)]
#[template(path = "console/node_added.html")]
struct AddedPage {
    chrome: Chrome,
    name: String,
    issued: IssuedToken,
    expires: String,
}

fn parse_labels(s: &str) -> Result<BTreeMap<String, String>, UiError> {
    let mut m = BTreeMap::new();
    for part in s
        .split([',', '\n'])
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| UiError::BadRequest(format!("label {part:?}: write key=value")))?;
        if m.insert(k.trim().to_string(), v.trim().to_string())
            .is_some()
        {
            return Err(UiError::BadRequest(format!(
                "label {:?} is given twice",
                k.trim()
            )));
        }
    }
    Ok(m)
}

/// The nodes page again, with the form as typed and why it was refused.
async fn refused(
    who: &Signed,
    state: &AppState,
    e: UiError,
    f: AddForm,
) -> Result<HttpResponse, UiError> {
    let status = match &e {
        UiError::Api(a) => a.status,
        _ => actix_web::http::StatusCode::BAD_REQUEST,
    };
    let body = render_list(who, state, NodesQuery::default(), Some(e.to_string()), f).await?;
    Ok(html_with(status, body))
}

/// `POST /ui/nodes`: creates a node (admin) and shows its join token and install script,
/// once. A refused form is shown again with the reason.
#[post("/nodes")]
pub async fn add(
    req: HttpRequest,
    who: Signed,
    state: web::Data<AppState>,
    form: web::Form<AddForm>,
) -> Result<HttpResponse, UiError> {
    let f = form.into_inner();
    who.act(&req, Some(&f.csrf), "add nodes")?;
    let labels = match parse_labels(&f.labels) {
        Ok(l) => l,
        Err(e) => return refused(&who, &state, e, f).await,
    };
    // The token's lifetime is checked before the node is made: a refused form leaves nothing.
    let ttl = (!f.ttl.trim().is_empty()).then(|| f.ttl.trim().to_string());
    if let Some(t) = &ttl {
        if let Err(e) = join_ttl(t) {
            return refused(&who, &state, e.into(), f).await;
        }
    }
    let create = CreateNode {
        name: f.name.trim().to_string(),
        pool: (!f.pool.trim().is_empty()).then(|| f.pool.trim().to_string()),
        labels,
        address: None,
    };
    let node = match create_node(&state, &who.0.actor, create).await {
        Ok(n) => n,
        Err(e) => return refused(&who, &state, e.into(), f).await,
    };
    let issued = match issue_join_token(&state, &who.0.actor, &node.id, TokenRequest { ttl }).await
    {
        Ok(i) => i,
        Err(e) => {
            let msg = format!(
                "node {} was created, but no join token was issued: {}; issue one from its page (Issue a join token)",
                node.name, e.message
            );
            return refused(&who, &state, UiError::BadRequest(msg), f).await;
        }
    };
    let mut chrome = who.chrome(format!("Node {} added", node.name), "nodes");
    chrome.notice = Some(format!("Node {} created in pool {}.", node.name, node.pool));
    let expires = super::common::when_rfc3339(&issued.expires_at);
    page(&AddedPage {
        chrome,
        name: node.name,
        issued,
        expires,
    })
}

/// The form of "issue a join token" on a node's page.
#[derive(Debug, Default, Deserialize)]
pub struct TokenForm {
    /// CSRF token.
    #[serde(default)]
    pub csrf: String,
    /// Lifetime, like `24h` (default `auth.join_token_ttl`).
    #[serde(default)]
    pub ttl: String,
}

/// `POST /ui/nodes/{id}/join-token`: a new join token for an existing node (admin), shown
/// once with its install script, like "add a node". 409 for a terminated node.
#[post("/nodes/{id}/join-token")]
pub async fn join_token(
    req: HttpRequest,
    who: Signed,
    state: web::Data<AppState>,
    id: web::Path<String>,
    form: web::Form<TokenForm>,
) -> Result<HttpResponse, UiError> {
    let f = form.into_inner();
    who.act(&req, Some(&f.csrf), "issue join tokens")?;
    let ttl = (!f.ttl.trim().is_empty()).then(|| f.ttl.trim().to_string());
    let issued = issue_join_token(&state, &who.0.actor, &id, TokenRequest { ttl }).await?;
    let row = crate::api::load_node(&state, &issued.node_id).await?;
    let mut chrome = who.chrome(format!("Join token for {}", row.name), "nodes");
    chrome.notice = Some(format!("A join token for node {} was issued.", row.name));
    let expires = super::common::when_rfc3339(&issued.expires_at);
    page(&AddedPage {
        chrome,
        name: row.name,
        issued,
        expires,
    })
}
