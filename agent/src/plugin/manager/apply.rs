//! Applying a plugin list: load new plugins, reload changed ones (a bad new version leaves
//! the old one running), stop removed ones, and start each health check's loop.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use super::super::engine::{kind_name, PluginError};
use super::super::host::RunLimits;
use super::super::runner::Limits;
use super::loader::{digest_file, load};
use super::{lock, stamp, PluginManager, RunState, Slot};
use crate::config::{PluginEntry, PluginKind};

/// The longest first run of a new assigned version: the assignment (and the agent's stop)
/// waits for it.
pub const TRIAL_MAX: std::time::Duration = std::time::Duration::from_secs(30);

impl PluginManager {
    pub(super) fn limits(&self, entry: &PluginEntry, kind: PluginKind) -> Limits {
        let timeout = entry.timeout.unwrap_or(match kind {
            PluginKind::Check => self.defaults.check_timeout,
            PluginKind::Diagnostic => self.defaults.diagnostic_timeout,
        });
        Limits {
            timeout,
            run: RunLimits {
                memory_bytes: entry
                    .memory_limit_mib
                    .unwrap_or(self.defaults.memory_limit_mib)
                    as usize
                    * 1024
                    * 1024,
                log_max_lines: self.defaults.log_max_lines,
                output_max_bytes: self.defaults.output_max_bytes,
            },
            report_max_bytes: self.defaults.report_max_bytes,
        }
    }

    /// Makes the configured plugins `entries` (the agent's config file), beside those the
    /// control plane assigns: loads new plugins, reloads changed ones (a bad new version
    /// leaves the old one running), stops removed ones. Other plugins are not touched.
    pub async fn apply(self: &Arc<Self>, entries: Vec<PluginEntry>) {
        let _one_at_a_time = self.applying.lock().await;
        *lock(&self.desired) = entries;
        self.applied.notify_one();
        self.apply_merged().await;
    }

    /// Makes `entries` the plugins the control plane assigns ([`super::super::sync`]), beside
    /// the configured ones: as [`PluginManager::apply`], and a new version of a health check
    /// must also pass a first run; one that fails to load or to run is refused (reported,
    /// not tried again while it is the one assigned) and the previous version keeps running.
    /// A configured plugin of the same name wins (the assigned one is refused).
    pub async fn apply_assigned(self: &Arc<Self>, entries: Vec<PluginEntry>) {
        let _one_at_a_time = self.applying.lock().await;
        *lock(&self.assigned) = entries;
        self.apply_merged().await;
    }

    async fn apply_merged(self: &Arc<Self>) {
        let mut entries = lock(&self.desired).clone();
        let assigned = lock(&self.assigned).clone();
        {
            let mut rejected = lock(&self.rejected);
            rejected
                .retain(|name, sha| assigned.iter().any(|a| &a.name == name && &a.sha256 == sha));
        }
        for a in assigned {
            if entries.iter().any(|e| e.name == a.name) {
                continue; // reported as local: the control plane shows the clash
            }
            entries.push(a);
        }
        self.apply_list(entries).await;
    }

    async fn apply_list(self: &Arc<Self>, entries: Vec<PluginEntry>) {
        let wanted: BTreeSet<String> = entries.iter().map(|e| e.name.clone()).collect();
        let mut changed = false;
        {
            let mut slots = lock(&self.slots);
            let gone: Vec<String> = slots
                .keys()
                .filter(|n| !wanted.contains(*n))
                .cloned()
                .collect();
            for name in gone {
                changed = true;
                slots.remove(&name);
                tracing::info!(plugin = %name, "plugin removed");
            }
        }
        for entry in entries {
            let file = stamp(&entry.path);
            let unchanged = lock(&self.slots)
                .get(&entry.name)
                .is_some_and(|s| s.entry == entry && s.file == file && s.loaded.is_some());
            if unchanged {
                continue;
            }
            let tried = entry.assigned
                && lock(&self.rejected).get(&entry.name)
                    == Some(&entry.sha256.to_ascii_lowercase());
            if tried {
                continue;
            }
            // The entry is the one running, pinned to the running version: a rewritten file
            // (a rebuild, a copy, one caught half-written) can only hold that version or
            // another that its pin refuses, so nothing is loaded. Reading once and deciding
            // on that read keeps a half-written file from being loaded whole a moment later
            // (a reload for nothing) or its refusal from outliving it.
            let pinned = {
                let slots = lock(&self.slots);
                slots.get(&entry.name).and_then(|s| {
                    let l = s.loaded.as_ref()?;
                    (s.entry == entry && l.sha256 == entry.sha256.to_ascii_lowercase())
                        .then(|| l.sha256.clone())
                })
            };
            if let Some(sha) = pinned {
                // A read of up to 64 MiB and its hash: off the runtime's workers.
                let path = entry.path.clone();
                let now = tokio::task::spawn_blocking(move || digest_file(&path))
                    .await
                    .unwrap_or_else(|e| {
                        Err(PluginError::Io {
                            path: entry.path.clone(),
                            cause: std::io::Error::other(e.to_string()),
                        })
                    });
                let mut slots = lock(&self.slots);
                if let Some(s) = slots.get_mut(&entry.name) {
                    s.file = file;
                    s.load_error = match now {
                        Ok(d) if d == sha => None,
                        refused => {
                            let e = match refused {
                                Ok(d) => PluginError::DigestMismatch {
                                    path: entry.path.clone(),
                                    expected: sha,
                                    actual: d,
                                },
                                Err(e) => e,
                            };
                            tracing::error!(plugin = %entry.name, error = %e, "new plugin version refused; the previous version keeps running");
                            Some(format!("{e} (the previous version keeps running)"))
                        }
                    };
                }
                continue;
            }
            changed = true;
            let engine_self = Arc::clone(self);
            let e2 = entry.clone();
            let result = tokio::task::spawn_blocking(move || load(&engine_self.engine, &e2))
                .await
                .unwrap_or_else(|e| Err(PluginError::Engine(format!("loader panicked: {e}"))));
            let result = match result {
                Ok(l) if entry.assigned && l.compiled.kind == PluginKind::Check => {
                    let trial = Mutex::new(RunState::default());
                    // Its own deadline, at most TRIAL_MAX: applying waits for it.
                    let mut first = entry.clone();
                    first.timeout = Some(
                        self.limits(&entry, PluginKind::Check)
                            .timeout
                            .min(TRIAL_MAX),
                    );
                    let o = self.execute(&l, &first, &trial, Vec::new(), false).await;
                    match o.failure {
                        Some(f) => Err(PluginError::FirstRun(f)),
                        None => Ok(l),
                    }
                }
                r => r,
            };
            if result.is_err() && entry.assigned {
                lock(&self.rejected).insert(entry.name.clone(), entry.sha256.to_ascii_lowercase());
            }
            let mut slots = lock(&self.slots);
            match result {
                Ok(loaded) => {
                    let loaded = Arc::new(loaded);
                    tracing::info!(
                        plugin = %entry.name,
                        kind = kind_name(loaded.compiled.kind),
                        sha256 = %loaded.sha256,
                        world_version = %loaded.compiled.world_version,
                        from_cache = loaded.compiled.from_cache,
                        load_ms = loaded.load_seconds * 1e3,
                        "plugin loaded"
                    );
                    let replaced = slots.remove(&entry.name);
                    if replaced.is_some() {
                        tracing::info!(plugin = %entry.name, "plugin replaced by the new version");
                    }
                    let mut slot = Slot {
                        entry: entry.clone(),
                        loaded: Some(Arc::clone(&loaded)),
                        load_error: None,
                        file,
                        state: Arc::new(Mutex::new(RunState::default())),
                        task: None,
                        on_demand: replaced.map_or_else(
                            || self.per_plugin_runs(),
                            |old| Arc::clone(&old.on_demand),
                        ),
                    };
                    if loaded.compiled.kind == PluginKind::Check {
                        let interval = entry.interval.unwrap_or(self.defaults.interval);
                        let me = Arc::downgrade(self);
                        let name = entry.name.clone();
                        slot.task = Some(
                            self.runtime
                                .spawn(super::run::check_loop(me, name, interval)),
                        );
                    }
                    slots.insert(entry.name.clone(), slot);
                }
                Err(e) => {
                    let msg = e.to_string();
                    match slots.get_mut(&entry.name) {
                        Some(slot) if slot.loaded.is_some() => {
                            tracing::error!(plugin = %entry.name, error = %msg, "new plugin version refused; the previous version keeps running");
                            slot.load_error =
                                Some(format!("{msg} (the previous version keeps running)"));
                            slot.file = file;
                            slot.entry.sha256 = entry.sha256.clone();
                        }
                        _ => {
                            tracing::error!(plugin = %entry.name, error = %msg, "plugin refused");
                            slots.insert(
                                entry.name.clone(),
                                Slot {
                                    entry: entry.clone(),
                                    loaded: None,
                                    load_error: Some(msg),
                                    file,
                                    state: Arc::new(Mutex::new(RunState::default())),
                                    task: None,
                                    on_demand: self.per_plugin_runs(),
                                },
                            );
                        }
                    }
                }
            }
        }
        if changed {
            self.refresh();
            // File-system work, off the runtime's few worker threads.
            let me = Arc::clone(self);
            let _ = tokio::task::spawn_blocking(move || me.cache_upkeep()).await;
        }
        self.applied.notify_one();
    }

    /// Keeps the compile cache (after each change of the list, and every
    /// [`UPKEEP_EVERY`](super::super::engine::UPKEEP_EVERY) from the watcher): marks what
    /// the plugins now loaded or asked for use, and removes what no agent sharing the folder
    /// used for a week.
    pub(super) fn cache_upkeep(&self) {
        let mut in_use: BTreeSet<String> = lock(&self.slots)
            .values()
            .filter_map(|s| s.loaded.as_ref().map(|l| l.sha256.clone()))
            .collect();
        in_use.extend(lock(&self.desired).iter().map(|e| e.sha256.clone()));
        in_use.extend(lock(&self.assigned).iter().map(|e| e.sha256.clone()));
        let pruned = self.engine.cache_upkeep(&in_use);
        if pruned.entries > 0 {
            tracing::info!(
                removed = pruned.entries,
                "compile cache: removed entries no agent sharing the folder used for a week"
            );
        }
        if pruned.temporaries > 0 {
            tracing::info!(
                removed = pruned.temporaries,
                "compile cache: removed temporary files of writes that never finished"
            );
        }
    }
}
