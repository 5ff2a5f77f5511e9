//! Hot reload: a change of the config file or of a plugin file re-applies the configured
//! list. The check runs when the kernel reports a change in their folders
//! ([`super::watch`]), or every `reload_interval` where a folder cannot be watched.

use std::path::PathBuf;
use std::sync::Arc;

use super::super::engine::UPKEEP_EVERY;
use super::watch::Wakeups;
use super::{lock, stamp, PluginManager};
use crate::config::reload::ReloadStatus;
use crate::config::{AgentConfig, Overrides};

impl PluginManager {
    /// Watches the config file and plugin files; reloads on change. Runs until the manager
    /// is dropped. Each reload of the config file is recorded in `status`. Sleeps while
    /// nothing changes (inotify), polling only where a folder cannot be watched.
    pub async fn watch(
        self: Arc<Self>,
        config_file: Option<PathBuf>,
        overrides: Overrides,
        status: Arc<ReloadStatus>,
    ) {
        let mut wakeups = Wakeups::new(self.defaults.reload_interval);
        let applied = Arc::clone(&self.applied);
        let me = Arc::downgrade(&self);
        drop(self);
        let mut last_config = config_file.as_deref().and_then(stamp);
        // The compile cache's upkeep: a long-running agent marks the entries it uses, so
        // agents sharing the folder never take them for unused.
        let mut upkeep_at = tokio::time::Instant::now() + UPKEEP_EVERY;
        loop {
            // The folders of the config file and of the plugins configured now; a folder
            // watched for the first time may hold a change made before: check at once.
            let fresh = {
                let Some(mgr) = me.upgrade() else { return };
                let mut files: Vec<PathBuf> = config_file.iter().cloned().collect();
                files.extend(lock(&mgr.desired).iter().map(|e| e.path.clone()));
                files.extend(lock(&mgr.slots).values().map(|s| s.entry.path.clone()));
                wakeups.follow(files.iter().map(PathBuf::as_path))
            };
            if !fresh {
                tokio::select! {
                    () = wakeups.wait() => {}
                    () = applied.notified() => {}
                    () = tokio::time::sleep_until(upkeep_at) => {}
                }
            }
            let Some(mgr) = me.upgrade() else { return };
            if tokio::time::Instant::now() >= upkeep_at {
                let m = Arc::clone(&mgr);
                let _ = tokio::task::spawn_blocking(move || m.cache_upkeep()).await;
                upkeep_at = tokio::time::Instant::now() + UPKEEP_EVERY;
            }
            let config_now = config_file.as_deref().and_then(stamp);
            let config_changed = config_now != last_config;
            let files_changed = lock(&mgr.slots)
                .values()
                .any(|s| stamp(&s.entry.path) != s.file);
            if !config_changed && !files_changed {
                continue;
            }
            last_config = config_now;
            let entries = if config_changed {
                match AgentConfig::load(config_file.as_deref(), &overrides) {
                    Ok(c) => {
                        tracing::info!("configuration changed: reloading plugins (other settings apply at restart)");
                        status.record(std::time::SystemTime::now(), Ok(()));
                        c.plugins
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "configuration reload failed; the running plugins are unchanged");
                        status.record(std::time::SystemTime::now(), Err(e.to_string()));
                        continue;
                    }
                }
            } else {
                lock(&mgr.desired).clone()
            };
            // A panic while applying must not end the watcher: later changes still apply.
            let applying = tokio::spawn(async move { mgr.apply(entries).await });
            if let Err(e) = applying.await {
                tracing::error!(error = %e, "applying the plugin list failed midway; the watcher carries on with the next change");
            }
        }
    }
}
