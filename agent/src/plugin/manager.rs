//! The configured plugins: loading (sha256-pinned), scheduling with jitter, results as
//! metrics and events, on-demand runs, and hot reload.

mod apply;
mod loader;
mod metrics;
mod reload;
mod run;
mod watch;

pub use loader::{digest_file, load, read_component, Loaded};

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime};

use serde::Serialize;

use super::engine::{world_name, PluginEngine, PluginError, MAX_INSTANCES};
use super::runner::Outcome;
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
    /// The entries the control plane assigns (`sync`), run beside the configured ones.
    assigned: Mutex<Vec<PluginEntry>>,
    /// Assigned plugins the agent refused before loading them (fetch, digest), by name:
    /// (digest asked for, why).
    refused: Mutex<BTreeMap<String, (String, String)>>,
    /// Assigned versions that failed to load or their first run, by name (sha256): not
    /// tried again while the assignment stays on them.
    rejected: Mutex<BTreeMap<String, String>>,
    /// One `apply` at a time: the initial load and the watcher never interleave.
    applying: tokio::sync::Mutex<()>,
    /// Told when an `apply` starts and ends: the watcher follows the folders of a new list,
    /// and checks again for a file that changed while it was being loaded.
    applied: Arc<tokio::sync::Notify>,
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
            assigned: Mutex::new(Vec::new()),
            refused: Mutex::default(),
            rejected: Mutex::default(),
            applying: tokio::sync::Mutex::new(()),
            applied: Arc::default(),
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

impl PluginManager {
    /// Records the assigned plugins refused before loading (the fetch failed, the digest
    /// did not match), by name: (digest asked for, why). Replaces the earlier list.
    pub fn set_refused(&self, refused: BTreeMap<String, (String, String)>) {
        *lock(&self.refused) = refused;
    }

    /// The entry of assigned plugin `name` as it runs now (its loaded version), to keep it
    /// running when a new version is refused before loading.
    pub fn assigned_entry(&self, name: &str) -> Option<PluginEntry> {
        let slots = lock(&self.slots);
        let s = slots.get(name)?;
        let l = s.loaded.as_ref()?;
        if !s.entry.assigned {
            return None;
        }
        let mut e = s.entry.clone();
        e.sha256 = l.sha256.clone();
        Some(e)
    }

    /// Whether plugin `name` runs the component of sha256 `hex`.
    pub fn runs(&self, name: &str, hex: &str) -> bool {
        lock(&self.slots)
            .get(name)
            .and_then(|s| s.loaded.as_ref())
            .is_some_and(|l| l.sha256 == hex)
    }

    /// The files every plugin loaded or asked for reads (so that a clean-up keeps them).
    pub fn files_in_use(&self) -> BTreeSet<PathBuf> {
        let mut f: BTreeSet<PathBuf> = lock(&self.slots)
            .values()
            .map(|s| s.entry.path.clone())
            .collect();
        f.extend(lock(&self.assigned).iter().map(|e| e.path.clone()));
        f
    }

    /// What the agent runs, for the control plane (`POST /v1/nodes/{id}/plugins`): every
    /// plugin, configured (`local`) or assigned, with the digest running, its last result
    /// and why the version asked for is not running.
    pub fn report(&self) -> Vec<gpuwarden_wire::plugin_sync::RunningPlugin> {
        use gpuwarden_wire::plugin_sync::{RunningPlugin, SOURCE_ASSIGNED, SOURCE_LOCAL};
        let local: BTreeSet<String> = lock(&self.desired).iter().map(|e| e.name.clone()).collect();
        let refused = lock(&self.refused).clone();
        let mut out: Vec<RunningPlugin> = lock(&self.slots)
            .iter()
            .map(|(name, s)| {
                let st = lock(&s.state);
                let last = st.last.as_ref();
                RunningPlugin {
                    name: name.clone(),
                    source: if local.contains(name) {
                        SOURCE_LOCAL
                    } else {
                        SOURCE_ASSIGNED
                    }
                    .to_string(),
                    running: s.loaded.as_ref().map(|l| format!("sha256:{}", l.sha256)),
                    status: last.map(|o| o.report.status.as_str().to_string()),
                    message: last.map(|o| o.report.message.clone()).unwrap_or_default(),
                    error: refused
                        .get(name)
                        .map(|(_, why)| why.clone())
                        .or_else(|| s.load_error.clone()),
                }
            })
            .collect();
        for (name, (_, why)) in refused {
            if !out.iter().any(|p| p.name == name) {
                out.push(RunningPlugin {
                    name,
                    source: SOURCE_ASSIGNED.into(),
                    running: None,
                    status: None,
                    message: String::new(),
                    error: Some(why),
                });
            }
        }
        out.truncate(gpuwarden_wire::plugin_sync::MAX_PLUGINS);
        out
    }
}

impl Drop for PluginManager {
    fn drop(&mut self) {
        // The watcher holds no strong reference: woken, it finds the manager gone and ends.
        self.applied.notify_one();
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
