//! Running plugins: the scheduled loop of a health check, on-demand runs, and recording
//! results as state, metrics and health events.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime};

use super::super::engine::MAX_INSTANCES;
use super::super::host::HostView;
use super::super::runner::{self, Outcome, Status};
use super::{lock, Loaded, PluginManager, RunError, RunState};
use crate::collector::SharedSnapshot;
use crate::config::{PluginEntry, PluginKind};
use crate::events::NewEvent;

impl PluginManager {
    /// Runs `name` now with `params` (diagnostics; a health check may be run too). The
    /// outcome of a diagnostic is kept as its last result.
    ///
    /// Refused with [`RunError::Busy`], at once, when `[plugin] max_concurrent_runs` runs of
    /// this plugin, or [`ON_DEMAND_INSTANCES`](super::ON_DEMAND_INSTANCES) on-demand runs of
    /// all plugins, are in progress. Dropping the returned future (an HTTP caller that went
    /// away) stops the run; it ends at its deadline in any case.
    pub async fn run_now(
        self: &Arc<Self>,
        name: &str,
        params: Vec<(String, String)>,
    ) -> Result<Outcome, RunError> {
        let (loaded, entry, state, mine) = {
            let slots = lock(&self.slots);
            let slot = slots
                .get(name)
                .ok_or_else(|| RunError::NotFound(name.into()))?;
            let loaded = slot.loaded.clone().ok_or_else(|| {
                RunError::NotLoaded(name.into(), slot.load_error.clone().unwrap_or_default())
            })?;
            (
                loaded,
                slot.entry.clone(),
                Arc::clone(&slot.state),
                Arc::clone(&slot.on_demand),
            )
        };
        let mine = mine.try_acquire_owned().map_err(|_| {
            RunError::Busy(format!(
                "plugin \"{name}\" already has {} runs in progress ([plugin] max_concurrent_runs); try again when one ends",
                self.defaults.max_concurrent_runs
            ))
        })?;
        let slot = Arc::clone(&self.on_demand).try_acquire_owned().map_err(|_| {
            RunError::Busy(format!(
                "{} on-demand plugin runs are in progress on this agent (the rest of its {MAX_INSTANCES} instances are kept for health checks); try again when one ends",
                super::ON_DEMAND_INSTANCES
            ))
        })?;
        let me = Arc::clone(self);
        let task = AbortOnDrop(self.runtime.spawn(async move {
            let _permits = (mine, slot);
            me.execute(&loaded, &entry, &state, params, false).await
        }));
        let outcome = task.join().await.unwrap_or_else(|e| {
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

    pub(super) async fn execute(
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
}

/// A spawned run that is aborted when its waiter goes away.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> AbortOnDrop<T> {
    async fn join(mut self) -> Result<T, tokio::task::JoinError> {
        (&mut self.0).await
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn snapshot_uuids(s: &SharedSnapshot) -> Vec<(u32, String)> {
    let snap = Arc::clone(&s.read().unwrap_or_else(|p| p.into_inner()));
    snap.gpus
        .iter()
        .map(|(i, _)| (i.index, i.uuid.clone()))
        .collect()
}

pub(super) async fn check_loop(mgr: Weak<PluginManager>, name: String, interval: Duration) {
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
        // Health checks have instance slots of their own (on-demand runs cannot take them);
        // when all are in use, a check waits for one.
        let Ok(permit) = Arc::clone(&m.scheduled).acquire_owned().await else {
            return;
        };
        m.execute(&loaded, &entry, &state, Vec::new(), true).await;
        drop(permit);
        drop(m);
        tokio::time::sleep(interval.mul_f64(0.9 + 0.2 * fastrand::f64())).await;
    }
}
