//! The configured plugins: loading (sha256-pinned), scheduling with jitter, results as
//! metrics and events, on-demand runs, and hot reload.

mod loader;
mod metrics;
mod reload;
mod run;

pub use loader::{digest_file, load, Loaded};

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime};

use serde::Serialize;

use super::engine::{kind_name, world_name, PluginEngine, PluginError, MAX_INSTANCES};
use super::host::RunLimits;
use super::runner::{Limits, Outcome};
use crate::collector::{Msg, SharedSnapshot};
use crate::config::{PluginDefaults, PluginEntry, PluginKind};
use crate::events::EventLog;

#[derive(Debug, Default)]
struct RunState {
    last: Option<Outcome>,
    runs: BTreeMap<&'static str, u64>,
    failures: u64,
    previous: Option<Arc<crate::collector::Snapshot>>,
    previous_cursor: u64,
    /// (gpu, status) of the non-healthy findings of the last successful run.
    active: BTreeSet<(Option<u32>, u8)>,
}

type FileStamp = Option<(SystemTime, u64)>;

/// Instances that on-demand runs (`POST /v1/plugins/{name}/run`, `run-diagnostic`) may
/// hold together; the other [`MAX_INSTANCES`] − this are kept for the scheduled health
/// checks, so diagnostics can never take them all.
pub const ON_DEMAND_INSTANCES: u32 = 16;

fn stamp(path: &Path) -> FileStamp {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

struct Slot {
    entry: PluginEntry,
    loaded: Option<Arc<Loaded>>,
    load_error: Option<String>,
    file: FileStamp,
    state: Arc<Mutex<RunState>>,
    task: Option<tokio::task::JoinHandle<()>>,
    /// On-demand runs of this plugin in progress (`[plugin] max_concurrent_runs` permits);
    /// kept across reloads so a new version does not reset the count.
    on_demand: Arc<tokio::sync::Semaphore>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

/// `GET /v1/plugins` entry.
#[derive(Debug, Serialize)]
pub struct PluginInfo {
    /// Name.
    pub name: String,
    /// `check` or `diagnostic` (absent when never loaded).
    pub kind: Option<PluginKind>,
    /// WIT world.
    pub world: Option<&'static str>,
    /// Contract version the plugin was built against.
    pub world_version: Option<String>,
    /// File.
    pub path: PathBuf,
    /// sha256 of the running version.
    pub sha256: Option<String>,
    /// Whether a version is loaded and running.
    pub loaded: bool,
    /// Why the configured version is not (or no longer) loaded.
    pub load_error: Option<String>,
    /// Whether the running version came from the compile cache.
    pub from_cache: Option<bool>,
    /// Run interval (checks).
    pub interval_seconds: Option<f64>,
    /// Wall-clock deadline of a run.
    pub timeout_seconds: f64,
    /// Memory cap.
    pub memory_limit_mib: u32,
    /// The last scheduled run's outcome.
    pub last_result: Option<Outcome>,
    /// Its duration.
    pub last_duration_seconds: Option<f64>,
    /// Runs by result.
    pub runs: BTreeMap<&'static str, u64>,
    /// Runs that failed (trap, deadline, memory, invalid report).
    pub failures: u64,
}

/// Why an on-demand run was refused.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// No plugin of that name.
    #[error("no plugin named \"{0}\"")]
    NotFound(String),
    /// Configured, but not loaded.
    #[error("plugin \"{0}\" is not loaded: {1}")]
    NotLoaded(String, String),
    /// As many runs as allowed are in progress (of this plugin, or on-demand runs of all).
    #[error("busy: {0}")]
    Busy(String),
}

/// The plugins of an agent.
pub struct PluginManager {
    engine: PluginEngine,
    defaults: PluginDefaults,
    snapshot: SharedSnapshot,
    events: Arc<Mutex<EventLog>>,
    notify: Mutex<Option<std::sync::mpsc::Sender<Msg>>>,
    slots: Mutex<BTreeMap<String, Slot>>,
    /// The configured entries, as last applied (the watcher re-applies these).
    desired: Mutex<Vec<PluginEntry>>,
    /// One `apply` at a time: the initial load and the watcher never interleave.
    applying: tokio::sync::Mutex<()>,
    runtime: tokio::runtime::Handle,
    started: Instant,
    first_result_logged: Mutex<bool>,
    /// Instance slots of on-demand runs, all plugins together.
    on_demand: Arc<tokio::sync::Semaphore>,
    /// Instance slots of scheduled health-check runs.
    scheduled: Arc<tokio::sync::Semaphore>,
}

impl std::fmt::Debug for PluginManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginManager")
            .field("engine", &self.engine)
            .finish()
    }
}

impl PluginManager {
    /// A manager with no plugins yet; runs go on `runtime`.
    pub fn new(
        defaults: PluginDefaults,
        snapshot: SharedSnapshot,
        events: Arc<Mutex<EventLog>>,
        runtime: tokio::runtime::Handle,
    ) -> Result<Arc<Self>, PluginError> {
        let cache =
            (!defaults.cache_dir.as_os_str().is_empty()).then(|| defaults.cache_dir.clone());
        let engine = PluginEngine::new(defaults.pooling, cache)?;
        Ok(Arc::new(PluginManager {
            engine,
            defaults,
            snapshot,
            events,
            notify: Mutex::new(None),
            slots: Mutex::new(BTreeMap::new()),
            desired: Mutex::new(Vec::new()),
            applying: tokio::sync::Mutex::new(()),
            runtime,
            started: Instant::now(),
            first_result_logged: Mutex::new(false),
            on_demand: Arc::new(tokio::sync::Semaphore::new(ON_DEMAND_INSTANCES as usize)),
            scheduled: Arc::new(tokio::sync::Semaphore::new(
                (MAX_INSTANCES - ON_DEMAND_INSTANCES) as usize,
            )),
        }))
    }

    /// Where to ask for a re-render of `/metrics` after each run.
    pub fn set_notify(&self, tx: std::sync::mpsc::Sender<Msg>) {
        *lock(&self.notify) = Some(tx);
    }

    fn limits(&self, entry: &PluginEntry, kind: PluginKind) -> Limits {
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

    /// Makes the running set match `entries`: loads new plugins, reloads changed ones (a bad
    /// new version leaves the old one running), stops removed ones. Other plugins are not
    /// touched.
    pub async fn apply(self: &Arc<Self>, entries: Vec<PluginEntry>) {
        let _one_at_a_time = self.applying.lock().await;
        *lock(&self.desired) = entries.clone();
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
            // A file rewritten with the same content (a rebuild, a copy) needs no reload.
            let same_content = {
                let slots = lock(&self.slots);
                slots.get(&entry.name).and_then(|s| {
                    let l = s.loaded.as_ref()?;
                    (s.entry == entry).then(|| l.sha256.clone())
                })
            }
            .is_some_and(|sha| digest_file(&entry.path).is_ok_and(|d| d == sha));
            if same_content {
                if let Some(s) = lock(&self.slots).get_mut(&entry.name) {
                    s.file = file;
                }
                continue;
            }
            changed = true;
            let engine_self = Arc::clone(self);
            let e2 = entry.clone();
            let result = tokio::task::spawn_blocking(move || load(&engine_self.engine, &e2))
                .await
                .unwrap_or_else(|e| Err(PluginError::Engine(format!("loader panicked: {e}"))));
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
                        slot.task = Some(self.runtime.spawn(run::check_loop(me, name, interval)));
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
        }
    }

    fn per_plugin_runs(&self) -> Arc<tokio::sync::Semaphore> {
        Arc::new(tokio::sync::Semaphore::new(
            self.defaults.max_concurrent_runs as usize,
        ))
    }

    fn refresh(&self) {
        if let Some(tx) = lock(&self.notify).as_ref() {
            let _ = tx.send(Msg::Refresh);
        }
    }

    /// The `GET /v1/plugins` listing.
    pub fn list(&self) -> Vec<PluginInfo> {
        let slots = lock(&self.slots);
        slots
            .iter()
            .map(|(name, s)| {
                let st = lock(&s.state);
                let kind = s.loaded.as_ref().map(|l| l.compiled.kind);
                let limits = self.limits(&s.entry, kind.unwrap_or(PluginKind::Check));
                PluginInfo {
                    name: name.clone(),
                    kind,
                    world: kind.map(world_name),
                    world_version: s.loaded.as_ref().map(|l| l.compiled.world_version.clone()),
                    path: s.entry.path.clone(),
                    sha256: s.loaded.as_ref().map(|l| l.sha256.clone()),
                    loaded: s.loaded.is_some(),
                    load_error: s.load_error.clone(),
                    from_cache: s.loaded.as_ref().map(|l| l.compiled.from_cache),
                    interval_seconds: (kind == Some(PluginKind::Check)).then(|| {
                        s.entry
                            .interval
                            .unwrap_or(self.defaults.interval)
                            .as_secs_f64()
                    }),
                    timeout_seconds: limits.timeout.as_secs_f64(),
                    memory_limit_mib: (limits.run.memory_bytes / (1024 * 1024)) as u32,
                    last_duration_seconds: st.last.as_ref().map(|o| o.duration_seconds),
                    last_result: st.last.clone(),
                    runs: st.runs.clone(),
                    failures: st.failures,
                }
            })
            .collect()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
