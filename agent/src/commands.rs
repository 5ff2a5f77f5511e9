//! Carrying out the control plane's commands (`POST /v1/commands`): cordon, uncordon,
//! drain, terminate and run_diagnostic.
//!
//! Each command id runs once. The record of every command received is kept in memory and,
//! when a state file is configured, on disk, so a command delivered again (a retry after a
//! lost answer, a poll of a long drain, a delivery after the agent restarted) is answered
//! with where that one run stands and has no second effect. Commands run on threads of
//! their own; the HTTP handler only records and answers.
//!
//! A hook runs at most once per command id, across restarts and crashes too: before a hook
//! is spawned the state file records that it started (written to a temporary file, synced,
//! renamed, and the folder synced). A command found running after a restart whose hook had
//! started is not run again: a cordon, uncordon or terminate is reported failed with
//! "outcome unknown", a drain goes back to waiting for idle GPUs (see [`state`]).
//!
//! Cordon, uncordon and terminate run their hook to its end. A drain runs its hook and
//! watches the GPUs' compute processes; it completes as `commands.drain_until` says, or at
//! its timeout (a drain that times out still completes: the work had its chance). An
//! uncordon cancels a drain that is still running.

mod auth;
pub mod hook;
mod run;
mod state;

pub use auth::CommandAuth;

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use gpuwarden_wire::command::{canonical_kind, CommandRequest, CommandState, CommandStatus};
use serde_json::json;
use tracing::{info, warn};

use crate::collector::SharedSnapshot;
use crate::config::CommandsConfig;
use crate::plugin::manager::PluginManager;

/// Commands remembered (the oldest finished ones are forgotten first).
const KEEP: usize = 1000;

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
    /// Held while the state file is written, so two writers never share the temporary file.
    writing: Mutex<()>,
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
    /// as the `state` module says: one whose hook never started runs; one whose hook had
    /// started is not run again (a drain waits for idle GPUs, the others are reported failed).
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
                writing: Mutex::new(()),
            }),
        };
        c.restore();
        c
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
        let _ = self.persist();
        let id = req.id.clone();
        self.spawn(req, None);
        self.status(&id)
            .ok_or_else(|| SubmitError::Invalid("the command was forgotten at once".into()))
    }

    /// Runs `req` on a thread of its own. `hook_started`: when the agent restarted after the
    /// command's hook had started (the hook is then not run again).
    fn spawn(&self, req: CommandRequest, hook_started: Option<SystemTime>) {
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
                let (state, message, result) = this.execute(&req, &cancel, hook_started);
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
        let _ = self.persist();
        self.inner.ended.notify_all();
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
