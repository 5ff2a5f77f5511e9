//! Carrying out the control plane's commands (`POST /v1/commands`): cordon, uncordon,
//! drain, terminate and run_diagnostic.
//!
//! Each command id runs once. The record of every command received is kept in memory and,
//! when a state file is configured, on disk, so a command delivered again (a retry after a
//! lost answer, a poll of a long drain, a delivery after the agent restarted) is answered
//! with where that one run stands and has no second effect. Commands run on threads of
//! their own; the HTTP handler only records and answers.
//!
//! Cordon, uncordon and terminate run their hook to its end. A drain runs its hook and
//! watches the GPUs' compute processes; it completes as `commands.drain_until` says, or at
//! its timeout (a drain that times out still completes: the work had its chance). An
//! uncordon cancels a drain that is still running.

pub mod hook;

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use gpuwarden_wire::command::{canonical_kind, CommandRequest, CommandState, CommandStatus};
use serde_json::json;
use sha2::{Digest, Sha256};
use tracing::{info, warn};

use crate::collector::SharedSnapshot;
use crate::config::{CommandsConfig, DrainUntil};
use crate::plugin::manager::PluginManager;

/// Commands remembered (the oldest finished ones are forgotten first).
const KEEP: usize = 1000;

/// Who may send commands: the control plane, proving it with the SHA-256 digest (hex) of
/// the node token it issued to this agent. The control plane keeps only that digest, and
/// the digest does not authenticate as the node, so neither side holds the other's secret.
#[derive(Debug, Default)]
pub struct CommandAuth {
    expected: RwLock<Option<String>>,
}

impl CommandAuth {
    /// Accepts commands for the node token `token` from now on.
    pub fn set_token(&self, token: &str) {
        let digest: String = Sha256::digest(token.trim().as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        *self.expected.write().unwrap_or_else(|p| p.into_inner()) = Some(digest);
    }

    /// `None` when no node token is known yet; else whether `presented` is its digest.
    pub fn check(&self, presented: &str) -> Option<bool> {
        let guard = self.expected.read().unwrap_or_else(|p| p.into_inner());
        let want = guard.as_deref()?;
        let (a, b) = (want.as_bytes(), presented.as_bytes());
        // Compare in time that does not depend on where they differ.
        let diff = a
            .iter()
            .zip(b)
            .fold(u8::from(a.len() != b.len()), |d, (x, y)| d | (x ^ y));
        Some(diff == 0)
    }
}

/// What run_diagnostic needs: the plugins, their runtime, and the names the config gives.
#[derive(Debug, Clone)]
pub struct Diagnostics {
    /// The plugin manager.
    pub manager: Arc<PluginManager>,
    /// The runtime plugins run on.
    pub runtime: tokio::runtime::Handle,
    /// Plugin names in the agent's config at start.
    pub configured: Vec<String>,
}

/// Why a command was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The request makes no sense.
    #[error("{0}")]
    Invalid(String),
    /// The id was used before for another kind.
    #[error("command {id} was received before as a {kind}")]
    Conflict {
        /// The id.
        id: String,
        /// Its kind then.
        kind: String,
    },
}

struct Record {
    status: CommandStatus,
    cancel: Arc<AtomicBool>,
}

#[derive(Default)]
struct Records {
    map: HashMap<String, Record>,
    order: VecDeque<String>,
}

struct Inner {
    cfg: CommandsConfig,
    node: String,
    snapshot: SharedSnapshot,
    plugins: Option<Diagnostics>,
    state_file: Option<PathBuf>,
    records: Mutex<Records>,
    /// When the runner started (plugins load in the background after that).
    started: Instant,
    /// Notified when a command ends.
    ended: std::sync::Condvar,
}

/// The command runner; clones share it.
#[derive(Clone)]
pub struct Commands {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Commands {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Commands")
            .field("node", &self.inner.node)
            .finish()
    }
}

fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

impl Commands {
    /// A runner for node `node`. Commands found running in `state_file` are taken up again
    /// (a drain resumes; a terminate interrupted by the restart is reported failed).
    pub fn new(
        cfg: CommandsConfig,
        node: String,
        snapshot: SharedSnapshot,
        plugins: Option<Diagnostics>,
        state_file: Option<PathBuf>,
    ) -> Commands {
        let c = Commands {
            inner: Arc::new(Inner {
                cfg,
                node,
                snapshot,
                plugins,
                state_file,
                records: Mutex::new(Records::default()),
                started: Instant::now(),
                ended: std::sync::Condvar::new(),
            }),
        };
        c.restore();
        c
    }

    fn restore(&self) {
        let Some(path) = &self.inner.state_file else {
            return;
        };
        let kept: Vec<CommandStatus> = match std::fs::read(path) {
            Ok(b) => match serde_json::from_slice(&b) {
                Ok(v) => v,
                Err(e) => {
                    warn!(file = %path.display(), error = %e, "the command state file is unreadable; starting with no record of earlier commands");
                    return;
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) => {
                warn!(file = %path.display(), error = %e, "cannot read the command state file");
                return;
            }
        };
        let mut resume = Vec::new();
        {
            let mut r = self.lock();
            for mut s in kept {
                if s.state == CommandState::Running {
                    if s.kind == "terminate" {
                        s.state = CommandState::Failed;
                        s.message =
                            "the agent restarted while the terminate hook ran; check the machine"
                                .into();
                        s.finished_at = Some(now_rfc3339());
                    } else {
                        resume.push(s.clone());
                    }
                }
                r.order.push_back(s.id.clone());
                r.map.insert(
                    s.id.clone(),
                    Record {
                        status: s,
                        cancel: Arc::new(AtomicBool::new(false)),
                    },
                );
            }
        }
        self.persist();
        for s in resume {
            info!(command = %s.id, kind = %s.kind, "taking up a command that was running when the agent stopped");
            let params =
                serde_json::from_value(s.result.get("params").cloned().unwrap_or_default())
                    .unwrap_or_default();
            self.spawn(CommandRequest {
                id: s.id,
                kind: s.kind,
                params,
            });
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Records> {
        self.inner.records.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Where command `id` stands.
    pub fn status(&self, id: &str) -> Option<CommandStatus> {
        self.lock().map.get(id).map(|r| r.status.clone())
    }

    /// Where command `id` stands once it has ended, or after `wait` if it is still running:
    /// a quick command (a cordon hook) is answered with its result in the same request.
    pub fn status_within(&self, id: &str, wait: Duration) -> Option<CommandStatus> {
        let deadline = Instant::now() + wait;
        let mut r = self.lock();
        loop {
            let s = r.map.get(id).map(|x| x.status.clone())?;
            let left = deadline.saturating_duration_since(Instant::now());
            if s.state.is_final() || left.is_zero() {
                return Some(s);
            }
            r = self
                .inner
                .ended
                .wait_timeout(r, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// The commands received, newest first.
    pub fn list(&self) -> Vec<CommandStatus> {
        let r = self.lock();
        r.order
            .iter()
            .rev()
            .filter_map(|id| r.map.get(id).map(|x| x.status.clone()))
            .collect()
    }

    /// Takes a command: starts it when its id is new, and answers where it stands.
    pub fn submit(&self, mut req: CommandRequest) -> Result<CommandStatus, SubmitError> {
        let id_ok = !req.id.is_empty()
            && req.id.len() <= 128
            && req
                .id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !id_ok {
            return Err(SubmitError::Invalid(
                "id must be 1 to 128 characters of [A-Za-z0-9_-]".into(),
            ));
        }
        let kind = canonical_kind(&req.kind).ok_or_else(|| {
            SubmitError::Invalid(format!(
                "unknown command kind {:?}: use cordon, uncordon, drain, terminate or run_diagnostic",
                req.kind
            ))
        })?;
        req.kind = kind.to_string();
        if let Some(t) = &req.params.timeout {
            humantime::parse_duration(t)
                .map_err(|e| SubmitError::Invalid(format!("params.timeout {t:?}: {e}")))?;
        }
        {
            let mut r = self.lock();
            if let Some(rec) = r.map.get(&req.id) {
                if rec.status.kind != kind {
                    return Err(SubmitError::Conflict {
                        id: req.id,
                        kind: rec.status.kind.clone(),
                    });
                }
                return Ok(rec.status.clone());
            }
            if kind == "uncordon" {
                // An uncordon ends a drain that is still under way.
                for rec in r.map.values() {
                    if rec.status.kind == "drain" && rec.status.state == CommandState::Running {
                        rec.cancel.store(true, Ordering::SeqCst);
                    }
                }
            }
            let status = CommandStatus {
                id: req.id.clone(),
                kind: kind.to_string(),
                state: CommandState::Running,
                message: "running".into(),
                result: json!({"params": req.params}),
                received_at: now_rfc3339(),
                finished_at: None,
            };
            r.order.push_back(req.id.clone());
            r.map.insert(
                req.id.clone(),
                Record {
                    status,
                    cancel: Arc::new(AtomicBool::new(false)),
                },
            );
            forget_old(&mut r);
        }
        info!(command = %req.id, kind, reason = req.params.reason.as_deref().unwrap_or(""), "command received");
        self.persist();
        let id = req.id.clone();
        self.spawn(req);
        self.status(&id)
            .ok_or_else(|| SubmitError::Invalid("the command was forgotten at once".into()))
    }

    fn spawn(&self, req: CommandRequest) {
        let this = self.clone();
        let id = req.id.clone();
        let started = std::thread::Builder::new()
            .name(format!("command-{}", req.kind))
            .spawn(move || {
                let cancel = this
                    .lock()
                    .map
                    .get(&req.id)
                    .map(|r| r.cancel.clone())
                    .unwrap_or_default();
                let (state, message, result) = this.execute(&req, &cancel);
                this.finish(&req.id, state, message, result);
            });
        if let Err(e) = started {
            self.finish(
                &id,
                CommandState::Failed,
                format!("cannot start a thread: {e}"),
                serde_json::Value::Null,
            );
        }
    }

    fn finish(&self, id: &str, state: CommandState, message: String, result: serde_json::Value) {
        {
            let mut r = self.lock();
            if let Some(rec) = r.map.get_mut(id) {
                rec.status.state = state;
                rec.status.message = message.clone();
                rec.status.result = result;
                rec.status.finished_at = Some(now_rfc3339());
                match state {
                    CommandState::Failed => {
                        warn!(command = %id, kind = %rec.status.kind, %message, "command failed")
                    }
                    _ => info!(command = %id, kind = %rec.status.kind, %message, "command done"),
                }
            }
        }
        self.persist();
        self.inner.ended.notify_all();
    }

    fn execute(
        &self,
        req: &CommandRequest,
        cancel: &AtomicBool,
    ) -> (CommandState, String, serde_json::Value) {
        let cfg = &self.inner.cfg;
        let reason = req.params.reason.as_deref().unwrap_or("");
        let vars = hook::Vars {
            node: &self.inner.node,
            reason,
            command: &req.id,
        };
        let simple = |template: &[String], required: bool| {
            if template.is_empty() {
                return if required {
                    (
                        CommandState::Failed,
                        format!("no commands.{} hook is configured", req.kind),
                        serde_json::Value::Null,
                    )
                } else {
                    (
                        CommandState::Succeeded,
                        format!("recorded; no commands.{} hook is configured", req.kind),
                        serde_json::Value::Null,
                    )
                };
            }
            let out = hook::run(hook::expand(template, &vars), cfg.hook_timeout, cancel);
            let state = if out.ok() {
                CommandState::Succeeded
            } else {
                CommandState::Failed
            };
            (state, out.summary(), json!({ "hook": out }))
        };
        match req.kind.as_str() {
            "cordon" => simple(&cfg.cordon, false),
            "uncordon" => simple(&cfg.uncordon, false),
            "terminate" => simple(&cfg.terminate, true),
            "drain" => self.drain(req, &vars, cancel),
            "run_diagnostic" => self.diagnose(req),
            other => (
                CommandState::Failed,
                format!("unknown kind {other}"),
                serde_json::Value::Null,
            ),
        }
    }

    /// Compute processes on the node's GPUs: `None` when NVML cannot tell.
    fn compute_processes(&self) -> Option<u32> {
        let snap = self
            .inner
            .snapshot
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if snap.gpus.is_empty() {
            return None;
        }
        snap.gpus.iter().try_fold(0u32, |n, (_, s)| match s {
            // A GPU that fell off the bus runs nothing.
            None => Some(n),
            Some(s) => s.compute_processes.map(|p| n + p),
        })
    }

    fn drain(
        &self,
        req: &CommandRequest,
        vars: &hook::Vars<'_>,
        cancel: &AtomicBool,
    ) -> (CommandState, String, serde_json::Value) {
        let cfg = &self.inner.cfg;
        let timeout = req
            .params
            .timeout
            .as_deref()
            .and_then(|t| humantime::parse_duration(t).ok())
            .unwrap_or(cfg.drain_timeout);
        let start = Instant::now();
        let mut running =
            (!cfg.drain.is_empty()).then(|| hook::Running::start(hook::expand(&cfg.drain, vars)));
        let mut hook_done: Option<hook::HookOutcome> = None;
        let until = if running.is_none() {
            DrainUntil::Idle
        } else {
            cfg.drain_until
        };
        let done =
            |how: &str, msg: String, hook: &Option<hook::HookOutcome>, procs: Option<u32>| {
                (
                    CommandState::Succeeded,
                    msg,
                    json!({"completed_by": how, "hook": hook, "compute_processes": procs,
                       "waited_seconds": start.elapsed().as_secs_f64()}),
                )
            };
        loop {
            if let Some(r) = running.as_mut() {
                if let Some(o) = r.poll() {
                    running = None;
                    if !o.ok() {
                        let procs = self.compute_processes();
                        return (
                            CommandState::Failed,
                            format!("drain {}", o.summary()),
                            json!({"hook": o, "compute_processes": procs}),
                        );
                    }
                    hook_done = Some(o);
                }
            }
            let procs = self.compute_processes();
            let idle = procs == Some(0);
            let hook_ok = hook_done.is_some();
            if matches!(until, DrainUntil::Hook | DrainUntil::Either) && hook_ok {
                return done(
                    "hook",
                    "drained: the drain hook exited 0".into(),
                    &hook_done,
                    procs,
                );
            }
            if idle
                && (until == DrainUntil::Either || (until == DrainUntil::Idle && running.is_none()))
            {
                if let Some(r) = running.as_mut() {
                    hook_done = Some(r.stop("stopped: the GPUs are idle".into()));
                }
                return done(
                    "idle",
                    "drained: no compute process is left on the GPUs".into(),
                    &hook_done,
                    procs,
                );
            }
            if cancel.load(Ordering::SeqCst) {
                if let Some(r) = running.as_mut() {
                    hook_done = Some(r.stop("cancelled".into()));
                }
                return (
                    CommandState::Failed,
                    "drain cancelled by an uncordon".into(),
                    json!({"hook": hook_done, "compute_processes": procs}),
                );
            }
            if start.elapsed() >= timeout {
                if let Some(r) = running.as_mut() {
                    hook_done = Some(r.stop("stopped at the drain timeout".into()));
                }
                let left = procs.map_or("an unknown number of".into(), |p| p.to_string());
                return done(
                    "timeout",
                    format!(
                        "drain timed out after {} with {left} compute processes left",
                        humantime::format_duration(timeout)
                    ),
                    &hook_done,
                    procs,
                );
            }
            std::thread::sleep(
                cfg.drain_poll
                    .min(timeout.saturating_sub(start.elapsed()))
                    .max(Duration::from_millis(10)),
            );
        }
    }

    fn diagnose(&self, req: &CommandRequest) -> (CommandState, String, serde_json::Value) {
        let name = req
            .params
            .plugin
            .clone()
            .unwrap_or_else(|| self.inner.cfg.diagnostic.clone());
        if name.is_empty() {
            return (
                CommandState::Failed,
                "no plugin named: give params.plugin or set commands.diagnostic".into(),
                serde_json::Value::Null,
            );
        }
        let Some(Diagnostics {
            manager: plugins,
            runtime: rt,
            configured,
        }) = &self.inner.plugins
        else {
            return (
                CommandState::Failed,
                "plugins are not available on this agent".into(),
                serde_json::Value::Null,
            );
        };
        let args: Vec<(String, String)> = req
            .params
            .args
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        // Plugins load in the background when the agent starts: a diagnostic asked for in
        // its first minute, of a plugin the config names, waits (up to 30 s) for it to load
        // instead of failing at once.
        let wait_until = Instant::now() + Duration::from_secs(30);
        let result = loop {
            let r = rt.block_on(plugins.run_now(&name, args.clone()));
            let early = self.inner.started.elapsed() < Duration::from_secs(60)
                && configured.contains(&name);
            match r {
                Err(crate::plugin::manager::RunError::NotFound(_))
                | Err(crate::plugin::manager::RunError::NotLoaded(..))
                    if early && Instant::now() < wait_until =>
                {
                    std::thread::sleep(Duration::from_millis(200));
                }
                other => break other,
            }
        };
        match result {
            Ok(outcome) => {
                let msg = match &outcome.failure {
                    Some(f) => format!("diagnostic {name} could not run to its end: {f}"),
                    None => format!("diagnostic {name}: {}", outcome.report.status.as_str()),
                };
                let state = if outcome.failure.is_some() {
                    CommandState::Failed
                } else {
                    CommandState::Succeeded
                };
                (
                    state,
                    msg,
                    serde_json::to_value(&outcome).unwrap_or_default(),
                )
            }
            Err(e) => (CommandState::Failed, e.to_string(), serde_json::Value::Null),
        }
    }

    fn persist(&self) {
        let Some(path) = &self.inner.state_file else {
            return;
        };
        let all: Vec<CommandStatus> = {
            let r = self.lock();
            r.order
                .iter()
                .filter_map(|id| r.map.get(id).map(|x| x.status.clone()))
                .collect()
        };
        let write = || -> std::io::Result<()> {
            let tmp = path.with_extension("json.tmp");
            std::fs::write(&tmp, serde_json::to_vec(&all).unwrap_or_default())?;
            std::fs::rename(&tmp, path)
        };
        if let Err(e) = write() {
            warn!(file = %path.display(), error = %e, "cannot write the command state file; a command delivered again after a restart could run twice");
        }
    }
}

fn forget_old(r: &mut Records) {
    while r.order.len() > KEEP {
        // The oldest finished command goes; running ones stay.
        let Some(pos) = r.order.iter().position(|id| {
            r.map
                .get(id)
                .is_none_or(|x| x.status.state != CommandState::Running)
        }) else {
            return;
        };
        if let Some(id) = r.order.remove(pos) {
            r.map.remove(&id);
        }
    }
}

#[cfg(test)]
mod tests;
