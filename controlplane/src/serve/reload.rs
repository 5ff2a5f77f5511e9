//! Reloading the config file's `[[pools]]` while the control plane runs (docs/POOLS.md,
//! "Config"): on SIGHUP, and when the file changes (looked at every
//! `server.config_reload_interval`; `0s`: SIGHUP only).
//!
//! A reload reads the file as the start did (file, environment, the same flags), with every
//! rule of the start ([`ControlPlaneConfig::load_checked`]: the spec's and each provider's
//! params). A valid file's pools are applied to the database as at start (created, updated,
//! taken over, removed: `Store::apply_config_pools`, audited `pools.apply`) and the pool
//! manager is woken; each pool's remediation plan is part of its stored spec, which the pool
//! manager reads at every evaluation. An invalid file changes nothing: every problem is
//! logged, counted (`gpuwarden_cp_pool_reloads_total{result="rejected"}`) and audited
//! (`pools.reload`). The other sections are not reloaded: when they differ from the running
//! ones, a warning names them once (they need a restart).

use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use prometheus::{IntCounterVec, Opts};
use tracing::{error, info, warn};

use crate::act::wake::Wake;
use crate::clock::SharedClock;
use crate::config::{ConfigError, ControlPlaneConfig};
use crate::metrics::Metrics;
use crate::pool::rules::param_problems;
use crate::store::rows::NewAudit;
use crate::store::{ConfigApplied, Store};

/// `result` of `gpuwarden_cp_pool_reloads_total`.
pub const POOL_RELOAD_RESULTS: &[&str] = &["applied", "unchanged", "rejected"];

/// What one reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PoolsReload {
    /// The file's pools are in the database; what changed.
    Applied(ConfigApplied),
    /// The file's pools were already those of the database.
    Unchanged,
    /// The file is invalid (every problem) or could not be applied: nothing changed.
    Rejected(Vec<String>),
    /// The control plane was started without a config file: nothing declares pools.
    NoFile,
}

/// Reads the config file again and applies its pools.
pub struct Reloader {
    file: Option<PathBuf>,
    started: ControlPlaneConfig,
    store: Arc<Store>,
    clock: SharedClock,
    counter: IntCounterVec,
    wake: Option<Arc<Wake>>,
    seen: Option<(SystemTime, u64)>,
    noted: Vec<String>,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader")
            .field("file", &self.file)
            .finish_non_exhaustive()
    }
}

fn stamp(path: &std::path::Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// The top-level sections of `b` that differ from `a`'s, `[[pools]]` (and the plans the
/// pools put into `remediation.pools`) left out.
fn changed_sections(a: &ControlPlaneConfig, b: &ControlPlaneConfig) -> Vec<String> {
    fn norm(c: &ControlPlaneConfig) -> serde_json::Value {
        let mut c = c.clone();
        for p in &c.pools {
            if p.remediation.action.is_some() {
                c.remediation.pools.remove(&p.name);
            }
        }
        c.pools.clear();
        serde_json::to_value(&c).unwrap_or_default()
    }
    let (a, b) = (norm(a), norm(b));
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return Vec::new();
    };
    b.iter()
        .filter(|(k, v)| a.get(k.as_str()) != Some(v))
        .map(|(k, _)| k.clone())
        .collect()
}

impl Reloader {
    /// A reloader of the file `started` was loaded from (as `serve` was started with it);
    /// `wake` wakes the pool manager after a change.
    pub fn new(
        started: ControlPlaneConfig,
        store: Arc<Store>,
        clock: SharedClock,
        metrics: &Metrics,
        wake: Option<Arc<Wake>>,
    ) -> Self {
        #[allow(clippy::expect_used)] // a constant definition: a failure is a programming error
        let counter = IntCounterVec::new(
            Opts::new(
                "gpuwarden_cp_pool_reloads_total",
                "Reloads of the config file's [[pools]] (SIGHUP or an edit), by result \
                 (applied, unchanged, rejected).",
            ),
            &["result"],
        )
        .expect("metric definition");
        for r in POOL_RELOAD_RESULTS {
            counter.with_label_values(&[r]);
        }
        metrics.register(Box::new(counter.clone()));
        let file = started.file.clone();
        let seen = file.as_deref().and_then(stamp);
        Reloader {
            file,
            started,
            store,
            clock,
            counter,
            wake,
            seen,
            noted: Vec::new(),
        }
    }

    /// Whether the file changed since it was last read.
    fn edited(&self) -> bool {
        self.file.as_deref().is_some_and(|f| stamp(f) != self.seen)
    }

    /// Reads the file and applies its pools (`why`: what asked, for the log).
    pub fn reload(&mut self, why: &str) -> PoolsReload {
        let Some(file) = self.file.clone() else {
            warn!(%why, "no config file was given at start: there are no [[pools]] to reload");
            return PoolsReload::NoFile;
        };
        self.seen = stamp(&file);
        let name = file.display().to_string();
        let cfg = match ControlPlaneConfig::load_checked(
            Some(&file),
            &self.started.overrides,
            param_problems,
        ) {
            Ok(c) => c,
            Err(ConfigError::Invalid { problems, .. }) => return self.rejected(&name, problems),
        };
        for w in &cfg.warnings {
            warn!("{w}");
        }
        let changed = changed_sections(&self.started, &cfg);
        if !changed.is_empty() && changed != self.noted {
            warn!(file = %name, sections = %changed.join(", "), "config sections other than [[pools]] changed: they take effect at the next start");
        }
        self.noted = changed;
        let now = self.clock.now_ms();
        let applied = self
            .store
            .apply_config_pools(&cfg.pools, &name, now)
            .and_then(|done| {
                let mut plugins = false;
                for spec in &cfg.pools {
                    if let Some(list) = &spec.plugins {
                        plugins |= self
                            .store
                            .apply_spec_plugins(&spec.name, list, "config", now)?;
                    }
                }
                Ok((done, plugins))
            });
        let applied = applied.map(|(mut done, plugins)| {
            if plugins && done == ConfigApplied::default() {
                done.updated.push("(plugins)".into());
            }
            done
        });
        match applied {
            Err(e) => self.rejected(&name, vec![format!("applying the pools: {e}")]),
            Ok(done) if done == ConfigApplied::default() => {
                info!(file = %name, %why, "config reloaded: the pools are unchanged");
                self.counter.with_label_values(&["unchanged"]).inc();
                PoolsReload::Unchanged
            }
            Ok(done) => {
                info!(file = %name, %why, created = ?done.created, updated = ?done.updated, taken_over = ?done.taken_over, removed = ?done.removed, clamped = ?done.clamped, "config reloaded: pools applied");
                for pool in &done.handed_back {
                    warn!(pool = %pool, file = %name, "a pool no longer in the config file still has nodes or instances: it is kept, now managed through the API (scale it to 0 and delete it to give the machines back)");
                }
                self.counter.with_label_values(&["applied"]).inc();
                if let Some(w) = &self.wake {
                    w.notify();
                }
                PoolsReload::Applied(done)
            }
        }
    }

    fn rejected(&self, file: &str, problems: Vec<String>) -> PoolsReload {
        error!(file, problems = %problems.join("; "), "the config file is invalid: the running pools stay");
        self.counter.with_label_values(&["rejected"]).inc();
        let entry = NewAudit {
            result: format!(
                "rejected: {} problem(s); the running pools stay",
                problems.len()
            ),
            ..NewAudit::ok(
                "config",
                "pools.reload",
                file,
                serde_json::json!({ "problems": problems }),
                self.clock.now_ms(),
            )
        };
        if let Err(e) = self.store.audit(entry) {
            warn!(error = %e, "auditing a rejected config reload failed");
        }
        PoolsReload::Rejected(problems)
    }
}

enum Msg {
    Reload(&'static str, Option<Sender<PoolsReload>>),
    Stop,
}

/// The reload thread and the SIGHUP watch.
#[derive(Debug)]
pub struct ReloadHandle {
    tx: Sender<Msg>,
    thread: JoinHandle<()>,
    hup: Option<tokio::task::JoinHandle<()>>,
}

impl ReloadHandle {
    /// Reloads now and waits for the outcome (what SIGHUP does).
    pub fn reload(&self) -> Option<PoolsReload> {
        let (tx, rx) = mpsc::channel();
        self.tx.send(Msg::Reload("request", Some(tx))).ok()?;
        rx.recv_timeout(Duration::from_secs(60)).ok()
    }

    /// Ends the thread and the SIGHUP watch.
    pub fn stop(self) {
        if let Some(h) = self.hup {
            h.abort();
        }
        let _ = self.tx.send(Msg::Stop);
        let _ = self.thread.join();
    }
}

/// Starts the reload thread: on SIGHUP (watched from inside the tokio runtime, so a SIGHUP
/// no longer ends the process) and, with a non-zero `every`, when the file changes.
pub fn spawn(mut r: Reloader, every: Duration) -> std::io::Result<ReloadHandle> {
    let (tx, rx): (Sender<Msg>, Receiver<Msg>) = mpsc::channel();
    let hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(mut s) => {
            let tx = tx.clone();
            Some(tokio::spawn(async move {
                while s.recv().await.is_some() {
                    if tx.send(Msg::Reload("SIGHUP", None)).is_err() {
                        break;
                    }
                }
            }))
        }
        Err(e) => {
            warn!(error = %e, "cannot watch SIGHUP: the config's pools reload only when the file changes");
            None
        }
    };
    let thread = std::thread::Builder::new()
        .name("config-reload".into())
        .spawn(move || {
            let mut last = Instant::now();
            // Without a period the thread only waits for SIGHUP and stop.
            let tick = if every.is_zero() {
                Duration::from_secs(3600)
            } else {
                every.min(Duration::from_secs(1))
            };
            loop {
                match rx.recv_timeout(tick) {
                    Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => return,
                    Ok(Msg::Reload(why, reply)) => {
                        let out = r.reload(why);
                        if let Some(reply) = reply {
                            let _ = reply.send(out);
                        }
                    }
                    Err(RecvTimeoutError::Timeout) => {
                        if !every.is_zero() && last.elapsed() >= every && r.edited() {
                            r.reload("file changed");
                        }
                    }
                }
                if last.elapsed() >= every {
                    last = Instant::now();
                }
            }
        })?;
    Ok(ReloadHandle { tx, thread, hup })
}
