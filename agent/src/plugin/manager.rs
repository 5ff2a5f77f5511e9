//! The configured plugins: loading (sha256-pinned), scheduling with jitter, results as
//! metrics and events, on-demand runs, and hot reload.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::engine::{kind_name, world_name, Compiled, PluginEngine, PluginError};
use super::host::{HostView, RunLimits};
use super::runner::{self, Limits, Outcome, Status};
use crate::collector::{Msg, SharedSnapshot};
use crate::config::{AgentConfig, Overrides, PluginDefaults, PluginEntry, PluginKind};
use crate::events::{EventLog, NewEvent};
use crate::render::ExtraMetrics;
use crate::text::{labels, Kind, Text};

/// Plugin files larger than this are refused.
const MAX_PLUGIN_FILE: u64 = 64 * 1024 * 1024;

/// The sha256 of a file, hex.
pub fn digest_file(path: &Path) -> Result<String, PluginError> {
    let bytes = read_plugin(path)?;
    Ok(hex(&Sha256::digest(&bytes)))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn read_plugin(path: &Path) -> Result<Vec<u8>, PluginError> {
    let io = |source| PluginError::Io {
        path: path.to_path_buf(),
        source,
    };
    let len = std::fs::metadata(path).map_err(io)?.len();
    if len > MAX_PLUGIN_FILE {
        return Err(io(std::io::Error::other(format!(
            "{len} bytes, over the {MAX_PLUGIN_FILE}-byte limit"
        ))));
    }
    std::fs::read(path).map_err(io)
}

/// A loaded plugin.
#[derive(Debug)]
pub struct Loaded {
    /// Its digest.
    pub sha256: String,
    /// Compiled and linked.
    pub compiled: Compiled,
    /// How long loading took.
    pub load_seconds: f64,
}

/// Reads, verifies, compiles (or loads from the cache) and links one plugin.
pub fn load(engine: &PluginEngine, entry: &PluginEntry) -> Result<Loaded, PluginError> {
    let started = Instant::now();
    let bytes = read_plugin(&entry.path)?;
    let actual = hex(&Sha256::digest(&bytes));
    let expected = entry.sha256.to_ascii_lowercase();
    if actual != expected {
        return Err(PluginError::DigestMismatch {
            path: entry.path.clone(),
            expected,
            actual,
        });
    }
    let (component, from_cache) = engine.compile(&bytes, &actual)?;
    let compiled = engine.prepare(&component, entry.kind, from_cache)?;
    Ok(Loaded {
        sha256: actual,
        compiled,
        load_seconds: started.elapsed().as_secs_f64(),
    })
}

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
    /// CPU deadline.
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
        }))
    }

    /// Where to ask for a re-render of `/metrics` after each run.
    pub fn set_notify(&self, tx: std::sync::mpsc::Sender<Msg>) {
        *lock(&self.notify) = Some(tx);
    }

    /// The engine.
    pub fn engine(&self) -> &PluginEngine {
        &self.engine
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
                    let replaced = slots.remove(&entry.name).is_some();
                    if replaced {
                        tracing::info!(plugin = %entry.name, "plugin replaced by the new version");
                    }
                    let mut slot = Slot {
                        entry: entry.clone(),
                        loaded: Some(Arc::clone(&loaded)),
                        load_error: None,
                        file,
                        state: Arc::new(Mutex::new(RunState::default())),
                        task: None,
                    };
                    if loaded.compiled.kind == PluginKind::Check {
                        let interval = entry.interval.unwrap_or(self.defaults.interval);
                        let me = Arc::downgrade(self);
                        let name = entry.name.clone();
                        slot.task = Some(self.runtime.spawn(check_loop(me, name, interval)));
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

    fn refresh(&self) {
        if let Some(tx) = lock(&self.notify).as_ref() {
            let _ = tx.send(Msg::Refresh);
        }
    }

    /// Runs `name` now with `params` (diagnostics; a health check may be run too). The
    /// outcome of a diagnostic is kept as its last result.
    pub async fn run_now(
        self: &Arc<Self>,
        name: &str,
        params: Vec<(String, String)>,
    ) -> Result<Outcome, RunError> {
        let (loaded, entry, state) = {
            let slots = lock(&self.slots);
            let slot = slots
                .get(name)
                .ok_or_else(|| RunError::NotFound(name.into()))?;
            let loaded = slot.loaded.clone().ok_or_else(|| {
                RunError::NotLoaded(name.into(), slot.load_error.clone().unwrap_or_default())
            })?;
            (loaded, slot.entry.clone(), Arc::clone(&slot.state))
        };
        let me = Arc::clone(self);
        let outcome = self
            .runtime
            .spawn(async move { me.execute(&loaded, &entry, &state, params, false).await })
            .await
            .unwrap_or_else(|e| {
                let r = runner::Report::unknown(format!("run aborted: {e}"));
                Outcome {
                    report: r,
                    duration_seconds: 0.0,
                    at: String::new(),
                    failure: Some("run aborted".into()),
                }
            });
        Ok(outcome)
    }

    async fn execute(
        &self,
        loaded: &Loaded,
        entry: &PluginEntry,
        state: &Mutex<RunState>,
        params: Vec<(String, String)>,
        scheduled: bool,
    ) -> Outcome {
        let snapshot = Arc::clone(&self.snapshot.read().unwrap_or_else(|p| p.into_inner()));
        let cursor_now = {
            let log = self.events.lock().unwrap_or_else(|p| p.into_inner());
            log.last_seq()
        };
        let (previous, previous_cursor) = {
            let s = lock(state);
            (s.previous.clone(), s.previous_cursor)
        };
        // A diagnostic's parameters override its configured values; it sees both as `config`
        // and as the parameters of `run`.
        let mut config: Vec<(String, String)> = entry
            .config
            .iter()
            .map(|(k, v)| (k.clone(), v.to_string()))
            .collect();
        config.extend(params);
        let run_params = config.clone();
        let view = HostView {
            plugin: entry.name.clone(),
            snapshot: Arc::clone(&snapshot),
            previous,
            events: Arc::clone(&self.events),
            previous_cursor,
            config,
        };
        let limits = self.limits(entry, loaded.compiled.kind);
        let outcome = runner::run(
            &self.engine,
            &loaded.compiled.prepared,
            view,
            limits,
            run_params,
        )
        .await;
        let record = scheduled || loaded.compiled.kind == PluginKind::Diagnostic;
        if record {
            let new_events = {
                let mut s = lock(state);
                *s.runs.entry(outcome.report.status.as_str()).or_default() += 1;
                if outcome.failure.is_some() {
                    s.failures += 1;
                }
                s.previous = Some(snapshot);
                s.previous_cursor = cursor_now;
                let mut new = Vec::new();
                if outcome.failure.is_none() {
                    let active: BTreeSet<(Option<u32>, u8)> = outcome
                        .report
                        .findings
                        .iter()
                        .filter(|f| matches!(f.status, Status::Degraded | Status::Unhealthy))
                        .map(|f| (f.gpu, f.status.code()))
                        .collect();
                    for f in outcome.report.findings.iter() {
                        let key = (f.gpu, f.status.code());
                        if active.contains(&key)
                            && !s.active.contains(&key)
                            && !new.iter().any(|(k, _): &((Option<u32>, u8), _)| *k == key)
                        {
                            new.push((key, f.clone()));
                        }
                    }
                    s.active = active;
                }
                s.last = Some(outcome.clone());
                new
            };
            if !new_events.is_empty() {
                self.raise_events(entry, &snapshot_uuids(&self.snapshot), new_events);
            }
            if scheduled {
                let mut logged = lock(&self.first_result_logged);
                if !*logged {
                    *logged = true;
                    tracing::info!(plugin = %entry.name, since_start_ms = self.started.elapsed().as_secs_f64() * 1e3, "first plugin result");
                }
            }
            self.refresh();
        }
        outcome
    }

    fn raise_events(
        &self,
        entry: &PluginEntry,
        uuids: &[(u32, String)],
        new: Vec<((Option<u32>, u8), runner::Finding)>,
    ) {
        let mut log = self.events.lock().unwrap_or_else(|p| p.into_inner());
        for (_, f) in new {
            let severity = if f.status == Status::Unhealthy {
                gpuwarden_wire::Severity::Fatal
            } else {
                gpuwarden_wire::Severity::Warning
            };
            let action = match f.action {
                "ignore" => Some(gpuwarden_wire::Action::Ignore),
                "restart_app" => Some(gpuwarden_wire::Action::RestartApp),
                "reset_gpu" => Some(gpuwarden_wire::Action::ResetGpu),
                "reboot_node" => Some(gpuwarden_wire::Action::RebootNode),
                "contact_support" => Some(gpuwarden_wire::Action::ContactSupport),
                _ => None,
            };
            let e = NewEvent {
                gpu: f.gpu,
                uuid: f
                    .gpu
                    .and_then(|g| uuids.iter().find(|(i, _)| *i == g).map(|(_, u)| u.clone())),
                kind: gpuwarden_wire::EventKind::Plugin,
                code: None,
                message: format!("{}: {} ({})", entry.name, f.message, f.status.as_str()),
                severity,
                action,
                source: format!("plugin:{}", entry.name),
            };
            tracing::info!(plugin = %entry.name, gpu = ?e.gpu, severity = severity.as_str(), message = %e.message, "health event");
            log.push(e, SystemTime::now());
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

    /// Watches the config file and plugin files; reloads on change. Runs until the manager
    /// is dropped.
    pub async fn watch(self: Arc<Self>, config_file: Option<PathBuf>, overrides: Overrides) {
        let every = self.defaults.reload_interval;
        let me = Arc::downgrade(&self);
        drop(self);
        let mut last_config = config_file.as_deref().and_then(stamp);
        loop {
            tokio::time::sleep(every).await;
            let Some(mgr) = me.upgrade() else { return };
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
                        c.plugins
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "configuration reload failed; the running plugins are unchanged");
                        continue;
                    }
                }
            } else {
                lock(&mgr.desired).clone()
            };
            mgr.apply(entries).await;
        }
    }
}

fn snapshot_uuids(s: &SharedSnapshot) -> Vec<(u32, String)> {
    let snap = Arc::clone(&s.read().unwrap_or_else(|p| p.into_inner()));
    snap.gpus
        .iter()
        .map(|(i, _)| (i.index, i.uuid.clone()))
        .collect()
}

async fn check_loop(mgr: Weak<PluginManager>, name: String, interval: Duration) {
    // A first result soon after loading (spread a little so plugins loaded together do not
    // run together), then every interval with ±10% jitter.
    let first = interval
        .min(Duration::from_secs(10))
        .mul_f64(0.1 * fastrand::f64());
    tokio::time::sleep(first).await;
    loop {
        let Some(m) = mgr.upgrade() else { return };
        let work = {
            let slots = lock(&m.slots);
            slots.get(&name).and_then(|s| {
                s.loaded
                    .clone()
                    .map(|l| (l, s.entry.clone(), Arc::clone(&s.state)))
            })
        };
        let Some((loaded, entry, state)) = work else {
            return;
        };
        m.execute(&loaded, &entry, &state, Vec::new(), true).await;
        drop(m);
        tokio::time::sleep(interval.mul_f64(0.9 + 0.2 * fastrand::f64())).await;
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// name, kind, last outcome, runs by result, load failed.
type MetricRow = (
    String,
    Option<PluginKind>,
    Option<Outcome>,
    BTreeMap<&'static str, u64>,
    bool,
);

impl ExtraMetrics for PluginManager {
    fn render(&self, t: &mut Text) {
        let slots = lock(&self.slots);
        let rows: Vec<MetricRow> = slots
            .iter()
            .map(|(n, s)| {
                let st = lock(&s.state);
                (
                    n.clone(),
                    s.loaded.as_ref().map(|l| l.compiled.kind),
                    st.last.clone(),
                    st.runs.clone(),
                    s.load_error.is_some(),
                )
            })
            .collect();
        drop(slots);
        let checks: Vec<_> = rows
            .iter()
            .filter(|r| r.1 == Some(PluginKind::Check))
            .collect();
        t.family(
            "gpuwarden_health_check_status",
            "Last result of a health-check plugin: 0 healthy, 1 degraded, 2 unhealthy, 3 unknown.",
            Kind::Gauge,
        );
        for r in &checks {
            if let Some(o) = &r.2 {
                t.sample(
                    "gpuwarden_health_check_status",
                    &labels(&[("check", &r.0)]),
                    "",
                    f64::from(o.report.status.code()),
                );
            }
        }
        t.family(
            "gpuwarden_health_check_duration_seconds",
            "Duration of the last run of a health-check plugin.",
            Kind::Gauge,
        );
        for r in &checks {
            if let Some(o) = &r.2 {
                t.sample(
                    "gpuwarden_health_check_duration_seconds",
                    &labels(&[("check", &r.0)]),
                    "",
                    o.duration_seconds,
                );
            }
        }
        t.family(
            "gpuwarden_health_check_runs_total",
            "Runs of a health-check plugin by result.",
            Kind::Counter,
        );
        for r in &checks {
            for (result, n) in &r.3 {
                t.sample(
                    "gpuwarden_health_check_runs_total",
                    &labels(&[("check", &r.0), ("result", result)]),
                    "",
                    *n as f64,
                );
            }
        }
        t.family(
            "gpuwarden_plugin_value",
            "Named numbers reported by plugins.",
            Kind::Gauge,
        );
        for r in &rows {
            if let Some(o) = &r.2 {
                for (name, v) in &o.report.metrics {
                    t.sample(
                        "gpuwarden_plugin_value",
                        &labels(&[("plugin", &r.0), ("name", name)]),
                        "",
                        *v,
                    );
                }
            }
        }
        t.family(
            "gpuwarden_plugin_load_failed",
            "1 when the configured version of a plugin could not be loaded.",
            Kind::Gauge,
        );
        for r in &rows {
            t.sample(
                "gpuwarden_plugin_load_failed",
                &labels(&[("plugin", &r.0)]),
                "",
                if r.4 { 1.0 } else { 0.0 },
            );
        }
    }
}
