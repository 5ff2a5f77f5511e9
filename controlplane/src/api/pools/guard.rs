//! Checks a pool request passes before its body is read: the name's form, and whether the
//! pool is declared in the config file (read-only here) or already taken.

use super::super::error::ApiError;
use super::super::state::{blocking, clip, AppState};
use crate::store::StoreError;
use crate::validate;

/// 409 naming the file when `name` is declared in the config file: asked before the body
/// or the query is looked at, so a change of a config pool is refused as such whatever it
/// carries. A pool that does not exist (or an invalid name) passes: the handler says so.
pub(super) async fn not_from_config(state: &AppState, name: &str) -> Result<(), ApiError> {
    if validate::name(name).is_err() {
        return Ok(());
    }
    let (store, name) = (state.store.clone(), name.to_string());
    let row = blocking(move || match store.pool(&name) {
        Ok(r) => Ok(Some(r)),
        Err(StoreError::NotFound(_)) => Ok(None),
        Err(e) => Err(e),
    })
    .await?;
    match row.and_then(|r| r.config_conflict()) {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

pub(super) fn check_name(name: &str) -> Result<(), ApiError> {
    validate::name(name).map_err(|e| ApiError::not_found(format!("pool {}: {e}", clip(name, 64))))
}

/// 409 when a pool named `name` exists (naming the config file of a config pool); asked
/// before a create's body is looked at. An empty or unknown name passes.
pub(super) async fn taken(state: &AppState, name: &str) -> Result<(), ApiError> {
    if name.is_empty() {
        return Ok(());
    }
    let (store, n) = (state.store.clone(), name.to_string());
    match blocking(move || store.pool(&n)).await {
        Ok(row) => Err(row
            .config_conflict()
            .unwrap_or_else(|| StoreError::Conflict(format!("a pool named {:?} exists", row.name)))
            .into()),
        Err(_) => Ok(()),
    }
}
