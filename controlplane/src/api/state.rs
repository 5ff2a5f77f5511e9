//! What every handler shares ([`AppState`]), and the helpers every handler uses: database
//! work off the actix workers ([`blocking`]) and the audit of refused actions ([`audited`]).

use std::sync::Arc;
use std::time::Duration;

use actix_web::web;

use super::auth::Auth;
use super::error::ApiError;
use crate::clock::SharedClock;
use crate::metrics::Metrics;
use crate::scrape::fleet::Fleet;
use crate::store::{Store, StoreError};

/// Settings the handlers need.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// URL agents use to reach the control plane (install snippets).
    pub external_url: String,
    /// Scrape interval, told to agents at registration.
    pub scrape_interval: Duration,
    /// Lifetime of join tokens.
    pub join_token_ttl: Duration,
    /// Lifetime of node tokens issued at registration (zero: none).
    pub node_token_ttl: Duration,
}

/// What every handler shares.
pub struct AppState {
    /// The database.
    pub store: Arc<Store>,
    /// The scraper's targets.
    pub fleet: Arc<Fleet>,
    /// Time.
    pub clock: SharedClock,
    /// Own metrics.
    pub metrics: Metrics,
    /// Token checks.
    pub auth: Auth,
    /// The running health policy.
    pub policy: crate::judge::policy::SharedPolicy,
    /// Where `PUT /v1/policies` keeps the new policy (empty: memory only).
    pub policy_file: std::path::PathBuf,
    /// Settings.
    pub settings: ApiSettings,
    /// The dispatcher, remediation and webhooks.
    pub links: crate::act::wake::Links,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").finish_non_exhaustive()
    }
}

/// Runs database work off the actix workers.
pub async fn blocking<T, F>(f: F) -> Result<T, ApiError>
where
    F: FnOnce() -> Result<T, StoreError> + Send + 'static,
    T: Send + 'static,
{
    Ok(web::block(f).await??)
}

/// At most `max` characters of `s` (audit details keep what was asked, bounded).
pub(crate) fn clip(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// Runs an admin action and audits it when it is refused: the entry's result is
/// `refused (CODE): MESSAGE`, its details what was asked. Successful actions audit
/// themselves, in the transaction that makes the change. A failure to write the refusal
/// is logged; the caller gets the refusal either way.
pub async fn audited<T>(
    state: &AppState,
    actor: &str,
    action: &str,
    target: &str,
    details: serde_json::Value,
    work: impl std::future::Future<Output = Result<T, ApiError>>,
) -> Result<T, ApiError> {
    let e = match work.await {
        Ok(v) => return Ok(v),
        Err(e) => e,
    };
    let entry = crate::store::rows::NewAudit {
        result: clip(&format!("refused ({}): {}", e.code, e.message), 1024),
        ..crate::store::rows::NewAudit::ok(
            actor,
            action,
            &clip(target, 128),
            details,
            state.clock.now_ms(),
        )
    };
    let store = state.store.clone();
    if let Err(w) = blocking(move || store.audit(entry)).await {
        tracing::warn!(%action, error = %w.message, "auditing a refused action failed");
    }
    Err(e)
}
