//! The command state file: every command received and where it stands, written durably, and
//! read back when the agent starts.
//!
//! The one rule it keeps: a hook runs at most once per command id. Before a hook is spawned,
//! [`Commands::hook_starting`] records `hook_started_at` in the command's `result` and
//! writes the file durably (temporary file, `fsync`, rename, `fsync` of the folder), so a
//! crash at any point after the spawn (SIGKILL, power loss, between the hook's exit and the
//! record of its end) leaves a record that says the hook may have run. When the agent
//! starts again, a command still `running` in the file is taken up as follows:
//!
//! | kind | hook never started | hook started, end not recorded |
//! |---|---|---|
//! | cordon, uncordon, terminate | runs now | `failed`: "outcome unknown", not run again |
//! | drain | runs now | waits for idle GPUs again, hook not run again (`drain_until = "hook"`: `failed`, outcome unknown) |
//! | run_diagnostic | runs again (it has no side effects) | — |

use std::io::Write;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::SystemTime;

use gpuwarden_wire::command::{CommandRequest, CommandState, CommandStatus};
use tracing::{info, warn};

use super::{now_rfc3339, Commands, Record};

/// The key in a running command's `result` that says when its hook was started.
pub(super) const HOOK_STARTED: &str = "hook_started_at";

/// Writes `bytes` to `path` so that after a crash the file holds either the old or the new
/// content, and the new content once this returns `Ok`.
fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    // The rename itself is durable once the folder is synced.
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

impl Commands {
    /// Writes every command to the state file (when one is configured).
    pub(super) fn persist(&self) -> std::io::Result<()> {
        let Some(path) = &self.inner.state_file else {
            return Ok(());
        };
        let _writing = self.inner.writing.lock().unwrap_or_else(|p| p.into_inner());
        let all: Vec<CommandStatus> = {
            let r = self.lock();
            r.order
                .iter()
                .filter_map(|id| r.map.get(id).map(|x| x.status.clone()))
                .collect()
        };
        let bytes = serde_json::to_vec(&all).map_err(std::io::Error::other)?;
        let out = write_durably(path, &bytes);
        if let Err(e) = &out {
            warn!(file = %path.display(), error = %e, "cannot write the command state file; a command delivered again after a restart could run twice");
        }
        out
    }

    /// Records, durably, that command `id`'s hook is about to start. An error means the
    /// record could not be written: the hook must not start, since after a crash nobody
    /// could tell whether it ran.
    pub(super) fn hook_starting(&self, id: &str) -> Result<(), String> {
        {
            let mut r = self.lock();
            if let Some(rec) = r.map.get_mut(id) {
                if let Some(obj) = rec.status.result.as_object_mut() {
                    obj.insert(HOOK_STARTED.into(), now_rfc3339().into());
                }
            }
        }
        self.persist().map_err(|e| {
            format!(
                "the hook was not started: cannot record in the command state file that it starts ({e}), \
                 so a restart could run it twice"
            )
        })
    }

    /// Reads the state file back: finished commands are remembered, running ones are taken
    /// up as the module documentation says.
    pub(super) fn restore(&self) {
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
                    let started = s
                        .result
                        .get(HOOK_STARTED)
                        .and_then(|v| v.as_str())
                        .map(|t| (t.to_string(), humantime::parse_rfc3339_weak(t).ok()));
                    match started {
                        Some((at, _)) if s.kind != "drain" => {
                            s.state = CommandState::Failed;
                            s.message = format!(
                                "outcome unknown: the agent restarted after the {} hook started (at {at}) \
                                 and before its end was recorded; it was not run again: check the node",
                                s.kind
                            );
                            s.finished_at = Some(now_rfc3339());
                            warn!(command = %s.id, kind = %s.kind, "{}", s.message);
                        }
                        Some((_, at)) => {
                            resume.push((s.clone(), Some(at.unwrap_or_else(SystemTime::now))))
                        }
                        None => resume.push((s.clone(), None)),
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
        let _ = self.persist();
        for (s, hook_started) in resume {
            info!(command = %s.id, kind = %s.kind, hook_already_started = hook_started.is_some(), "taking up a command that was running when the agent stopped");
            let params =
                serde_json::from_value(s.result.get("params").cloned().unwrap_or_default())
                    .unwrap_or_default();
            self.spawn(
                CommandRequest {
                    id: s.id,
                    kind: s.kind,
                    params,
                },
                hook_started,
            );
        }
    }
}
