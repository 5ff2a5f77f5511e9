//! The admin and bootstrap tokens `gpuwarden serve` starts with: from the config file, the
//! environment and the database; one generated (and written to `DATA_DIR/admin-token`, mode
//! 0600) when there is none anywhere.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tracing::warn;

use super::error::{redact, ServeError};
use crate::api::{auth_digest, AppState};
use crate::config::ControlPlaneConfig;
use crate::store::rows::AdminTokenRow;
use crate::store::Store;
use crate::token::{self, TokenKind};

/// Tokens given through the environment (`GPUWARDEN_ADMIN_TOKEN`, `GPUWARDEN_BOOTSTRAP_TOKEN`).
#[derive(Debug, Clone, Default)]
pub struct EnvTokens {
    /// Admin token.
    pub admin: Option<String>,
    /// Bootstrap token.
    pub bootstrap: Option<String>,
}

impl EnvTokens {
    /// Reads the two variables.
    pub fn from_env() -> Self {
        let get = |k| {
            std::env::var(k)
                .ok()
                .filter(|v: &String| !v.trim().is_empty())
        };
        Self {
            admin: get("GPUWARDEN_ADMIN_TOKEN"),
            bootstrap: get("GPUWARDEN_BOOTSTRAP_TOKEN"),
        }
    }

    /// Checks both tokens by the rule of `auth.*_tokens` ([`crate::validate::token`]: at
    /// least 16 characters, or `sha256:<64 hex>`); every problem, naming its variable.
    pub fn check(&self) -> Result<(), Vec<String>> {
        let problems: Vec<String> = [
            ("GPUWARDEN_ADMIN_TOKEN", &self.admin),
            ("GPUWARDEN_BOOTSTRAP_TOKEN", &self.bootstrap),
        ]
        .into_iter()
        .filter_map(|(var, t)| {
            let e = crate::validate::token(t.as_deref()?).err()?;
            Some(format!("{var}: {e}"))
        })
        .collect();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

fn write_secret(path: &Path, secret: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    writeln!(f, "{secret}")
}

/// An admin token generated at start: the secret and the file it was written to.
pub type Generated = (String, PathBuf);

/// The admin token digests to accept; generates one when there are none anywhere.
pub(super) fn admin_tokens(
    cfg: &ControlPlaneConfig,
    env: &EnvTokens,
    store: &Store,
    now: i64,
) -> Result<(Vec<String>, Option<Generated>), ServeError> {
    let store_err = |source| ServeError::Store {
        url: redact(&cfg.database.url),
        source,
    };
    let mut digests: Vec<String> = cfg
        .auth
        .admin_tokens
        .iter()
        .map(|t| auth_digest(t))
        .collect();
    digests.extend(env.admin.iter().map(|t| auth_digest(t)));
    let stored = store.admin_token_digests().map_err(store_err)?;
    let mut generated = None;
    if digests.is_empty() && stored.is_empty() {
        let t = token::issue(TokenKind::Admin)?;
        let path = cfg.server.data_dir.join("admin-token");
        store
            .add_admin_token(&AdminTokenRow {
                digest: t.digest.clone(),
                name: "generated".into(),
                created_at: now,
            })
            .map_err(store_err)?;
        write_secret(&path, &t.secret).map_err(|source| ServeError::Io {
            what: format!("writing {}", path.display()),
            source,
        })?;
        digests.push(t.digest);
        generated = Some((t.secret, path));
    }
    digests.extend(stored);
    Ok((digests, generated))
}

/// Every `every`, reads the tokens created through the API from the store and makes them the
/// ones [`crate::api::Auth`] accepts ([`crate::api::Auth::replace_api_tokens`]): a token
/// created or revoked on another control plane over the same database is accepted or refused
/// here within `every`. A failed read is logged and changes nothing. Runs until aborted.
pub(super) async fn refresh_api_tokens(state: Arc<AppState>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await; // the first tick is now: the start has just read them
    loop {
        tick.tick().await;
        let changes = state.auth.api_token_changes();
        let store = state.store.clone();
        match tokio::task::spawn_blocking(move || store.api_tokens()).await {
            Ok(Ok(rows)) => {
                state.auth.replace_api_tokens(
                    changes,
                    rows.iter().map(|t| {
                        (
                            t.id.as_str(),
                            t.name.as_str(),
                            t.role.as_str(),
                            t.digest.as_str(),
                        )
                    }),
                );
            }
            Ok(Err(e)) => {
                warn!(error = %e, "reading the API tokens again failed: the ones held stay");
            }
            Err(e) => warn!(error = %e, "reading the API tokens again failed"),
        }
    }
}
