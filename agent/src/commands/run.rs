//! Carrying a command out: the hooks, a drain watching the GPUs, a diagnostic plugin.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use gpuwarden_wire::command::{CommandRequest, CommandState};
use serde_json::json;

use super::{hook, Commands, Diagnostics};
use crate::config::DrainUntil;

impl Commands {
    /// Runs `req` to its end: the state, one line for people, and the details.
    /// `hook_started`: the agent restarted after this command's hook had started, at that
    /// time; the hook is not run again.
    pub(super) fn execute(
        &self,
        req: &CommandRequest,
        cancel: &AtomicBool,
        hook_started: Option<SystemTime>,
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
            if hook_started.is_some() {
                return (
                    CommandState::Failed,
                    format!("outcome unknown: the agent restarted while the {} hook ran; it was not run again", req.kind),
                    serde_json::Value::Null,
                );
            }
            if let Err(m) = self.hook_starting(&req.id) {
                return (CommandState::Failed, m, serde_json::Value::Null);
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
            "drain" => self.drain(req, &vars, cancel, hook_started),
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
        hook_started: Option<SystemTime>,
    ) -> (CommandState, String, serde_json::Value) {
        let cfg = &self.inner.cfg;
        let timeout = req
            .params
            .timeout
            .as_deref()
            .and_then(|t| humantime::parse_duration(t).ok())
            .unwrap_or(cfg.drain_timeout);
        // A drain taken up after a restart keeps the timeout it started with.
        let already = hook_started
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .unwrap_or_default();
        let start = Instant::now()
            .checked_sub(already)
            .unwrap_or_else(Instant::now);
        let resumed = hook_started.is_some();
        if resumed && cfg.drain_until == DrainUntil::Hook {
            return (
                CommandState::Failed,
                "outcome unknown: the agent restarted while the drain hook ran; it was not run again, \
                 and with commands.drain_until = \"hook\" only the hook completes a drain"
                    .into(),
                json!({"hook_restarted": false}),
            );
        }
        if !resumed && !cfg.drain.is_empty() {
            if let Err(m) = self.hook_starting(&req.id) {
                return (CommandState::Failed, m, serde_json::Value::Null);
            }
        }
        let mut running = (!resumed && !cfg.drain.is_empty())
            .then(|| hook::Running::start(hook::expand(&cfg.drain, vars)));
        let mut hook_done: Option<hook::HookOutcome> = None;
        // After a restart the hook's outcome is unknown: only idle GPUs complete the drain.
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
                       "waited_seconds": start.elapsed().as_secs_f64(),
                       "resumed_after_restart": resumed}),
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
                let msg = if resumed {
                    "drained: no compute process is left on the GPUs (the drain hook started before \
                     the agent restarted and was not run again; its outcome is unknown)"
                } else {
                    "drained: no compute process is left on the GPUs"
                };
                return done("idle", msg.into(), &hook_done, procs);
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
}
