//! Pools at start: the config file's `[[pools]]` applied to the database (created,
//! updated, taken over from the API, removed when no longer declared), and every stored
//! pool's remediation plan put over `[remediation.pools.NAME]` (the pool's wins; a warning
//! says which). The control plane's config is not reloaded while it runs: a changed
//! `[[pools]]` applies at the next start.

use tracing::{info, warn};

use crate::config::{ControlPlaneConfig, PoolRemediation};
use crate::serve::error::ServeError;
use crate::store::{Store, StoreError};

/// Refuses config pools whose providers' params are invalid (a configuration loaded with
/// [`ControlPlaneConfig::load_checked`] has none: this is for one loaded without).
pub(super) fn check(cfg: &ControlPlaneConfig) -> Result<(), ServeError> {
    let problems = cfg.checked_pools(crate::pool::rules::param_problems);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ServeError::Config(problems))
    }
}

/// Applies the config pools, then merges every stored pool's remediation into
/// `cfg.remediation.pools`. Logs what changed and each warning.
pub(super) fn apply(
    cfg: &mut ControlPlaneConfig,
    store: &Store,
    now: i64,
) -> Result<(), StoreError> {
    for w in &cfg.warnings {
        warn!("{w}");
    }
    // Without a config file nothing declares pools: the stored ones (a file's included) are
    // left as they are, instead of removed because an operator started without `--config`.
    let Some(file) = cfg.file.as_ref().map(|f| f.display().to_string()) else {
        if !cfg.pools.is_empty() {
            warn!("[[pools]] from the environment only are not applied: declare pools in a config file");
        }
        return merge_remediation(cfg, store);
    };
    let done = store.apply_config_pools(&cfg.pools, &file, now)?;
    for spec in &cfg.pools {
        if let Some(list) = &spec.plugins {
            store.apply_spec_plugins(&spec.name, list, "config", now)?;
        }
    }
    if !done.created.is_empty()
        || !done.updated.is_empty()
        || !done.removed.is_empty()
        || !done.handed_back.is_empty()
    {
        info!(file = %file, created = ?done.created, updated = ?done.updated, removed = ?done.removed, "config pools applied");
        for pool in &done.handed_back {
            warn!(pool = %pool, file = %file, "a pool no longer in the config file still has nodes or instances: it is kept, now managed through the API (scale it to 0 and delete it to give the machines back)");
        }
    }
    for name in &done.taken_over {
        warn!(pool = %name, file = %file, "a pool created through the API is now declared in the config file: the file's spec wins, and the pool is read-only through the API");
    }
    merge_remediation(cfg, store)
}

/// Puts every stored API pool's remediation plan over `[remediation.pools.NAME]`.
fn merge_remediation(cfg: &mut ControlPlaneConfig, store: &Store) -> Result<(), StoreError> {
    for row in store.pools()? {
        if row.from_config() {
            continue; // merged when the config was loaded
        }
        let spec = match row.spec() {
            Ok(s) => s,
            Err(e) => {
                warn!(pool = %row.name, error = %e, "stored pool unreadable; its remediation is the global one");
                continue;
            }
        };
        if spec.remediation.action.is_none() {
            continue; // no plan of its own: `[remediation.pools.NAME]` or the global one
        }
        let plan = PoolRemediation {
            action: spec.remediation.action,
            drain_timeout: spec.remediation.drain_timeout.parse().ok(),
        };
        if cfg
            .remediation
            .pools
            .insert(row.name.clone(), plan)
            .is_some()
        {
            warn!(pool = %row.name, "remediation.pools.{}: overridden by the remediation of pool {:?} (the pool's wins); move it into the pool (docs/POOLS.md, \"Config\")", row.name, row.name);
        }
    }
    Ok(())
}
