//! Delivering commands: the queue lives in the database (`commands`), so a command stored
//! before a restart is delivered after it. A scheduler thread picks the commands whose next
//! attempt is due and hands them to `commands.concurrency` workers, each of which POSTs the
//! command to the agent's `/v1/commands` with its id as the idempotency id:
//!
//! - the agent's answer is final (`succeeded`/`failed`): the result is stored, audited and
//!   notified, and remediation is woken to take its next step;
//! - the agent is still at it (a drain): asked again after `commands.poll_interval`;
//! - the agent cannot be reached, or is not ready (HTTP 401/503/5xx): tried again with
//!   backoff (1s doubling to `commands.retry_max`, with jitter);
//! - the agent refuses the command (HTTP 400/404/409): it fails with the agent's reason;
//! - nobody took it within `commands.expire_after`: it fails.
//!
//! Because the agent runs an id once, delivering again after a lost answer (or after the
//! control plane restarted mid-delivery) has no second effect.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use gpuwarden_wire::command::{CommandParams, CommandRequest, CommandState as AgentState};
use serde_json::{json, Value};
use tracing::{debug, info, warn};

use crate::act::wake::Wake;
use crate::act::webhooks::Notifier;
use crate::clock::SharedClock;
use crate::config::CommandsConfig;
use crate::metrics::Metrics;
use crate::model::CommandState;
use crate::store::rows::CommandRow;
use crate::store::Store;

mod http;
pub use http::{Deliver, Delivery, HttpSender};

/// The command dispatcher.
#[derive(Clone)]
pub struct Dispatcher {
    /// The queue.
    pub store: Arc<Store>,
    /// Time.
    pub clock: SharedClock,
    /// Settings.
    pub cfg: CommandsConfig,
    /// How commands reach agents.
    pub sender: Arc<dyn Deliver>,
    /// Own metrics.
    pub metrics: Metrics,
    /// Webhooks.
    pub notifier: Notifier,
    /// Woken when a command is stored.
    pub wake: Arc<Wake>,
    /// Woken when a command ended (remediation's next step).
    pub ended: Arc<Wake>,
    inflight: Arc<Mutex<HashSet<String>>>,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher").finish_non_exhaustive()
    }
}

/// The wait before retry `n` (1-based): 1s doubling up to `max`, ±20 % jitter.
pub fn backoff_ms(n: i32, max: Duration) -> i64 {
    let base = Duration::from_secs(1)
        .saturating_mul(1u32 << n.clamp(1, 17).saturating_sub(1))
        .min(max);
    i64::try_from(base.mul_f64(0.8 + fastrand::f64() * 0.4).as_millis()).unwrap_or(i64::MAX)
}

/// The request for a stored command.
pub fn request_of(cmd: &CommandRow) -> CommandRequest {
    let p: Value = serde_json::from_str(&cmd.params).unwrap_or_default();
    let s = |k: &str| p[k].as_str().map(str::to_string);
    CommandRequest {
        id: cmd.id.clone(),
        kind: cmd.kind.clone(),
        params: CommandParams {
            reason: s("reason"),
            timeout: s("timeout"),
            plugin: s("plugin"),
            args: serde_json::from_value(p["args"].clone()).unwrap_or_default(),
        },
    }
}

/// The running dispatcher's threads.
#[derive(Debug)]
pub struct DispatcherHandle {
    stop: Arc<AtomicBool>,
    wake: Arc<Wake>,
    threads: Vec<JoinHandle<()>>,
}

impl DispatcherHandle {
    /// Stops picking commands; deliveries under way finish.
    pub fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        self.wake.notify();
        for t in self.threads {
            let _ = t.join();
        }
    }
}

impl Dispatcher {
    /// A dispatcher over `store`.
    pub fn new(
        store: Arc<Store>,
        clock: SharedClock,
        cfg: CommandsConfig,
        sender: Arc<dyn Deliver>,
        metrics: Metrics,
        notifier: Notifier,
    ) -> Self {
        Dispatcher {
            store,
            clock,
            cfg,
            sender,
            metrics,
            notifier,
            wake: Arc::default(),
            ended: Arc::default(),
            inflight: Arc::default(),
        }
    }

    /// The due commands not being delivered now, marked as being delivered.
    fn take_due(&self) -> Vec<CommandRow> {
        let now = self.clock.now_ms();
        let due = match self.store.due_commands(now, 512) {
            Ok(d) => d,
            Err(e) => {
                warn!(error = %e, "reading the command queue failed");
                self.metrics
                    .store_errors
                    .with_label_values(&["commands"])
                    .inc();
                return Vec::new();
            }
        };
        let mut inflight = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
        due.into_iter()
            .filter(|c| inflight.insert(c.id.clone()))
            .collect()
    }

    /// Delivers every due command once, here (tests drive the dispatcher with this).
    pub fn run_once(&self) -> usize {
        let due = self.take_due();
        for c in &due {
            self.deliver(c);
        }
        due.len()
    }

    /// One delivery attempt of `cmd`, with its outcome stored.
    pub fn deliver(&self, cmd: &CommandRow) {
        self.attempt(cmd);
        self.inflight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&cmd.id);
    }

    fn attempt(&self, cmd: &CommandRow) {
        let now = self.clock.now_ms();
        let expire = i64::try_from(self.cfg.expire_after.as_millis()).unwrap_or(i64::MAX);
        if cmd.state == CommandState::Pending.as_str() && now - cmd.created_at > expire {
            let last = cmd
                .result
                .as_deref()
                .map(crate::store::rows::message_of)
                .unwrap_or_default();
            let msg = format!(
                "not delivered within {}: {last}",
                humantime::format_duration(self.cfg.expire_after)
            );
            self.finish(
                cmd,
                CommandState::Failed,
                json!({"message": msg}),
                "expired",
            );
            return;
        }
        let target = match self.store.delivery_target(&cmd.node_id) {
            Ok(t) => t,
            Err(e) => {
                warn!(command = %cmd.id, error = %e, "cannot read where to deliver a command");
                return self.retry(cmd, now, format!("store: {e}"));
            }
        };
        let (Some(address), Some(credential)) = (target.address, target.token_digest) else {
            let msg = "the node has no registered agent (no address or node token): \
                       commands go only to agents that joined with a token";
            self.finish(
                cmd,
                CommandState::Failed,
                json!({"message": msg}),
                "refused",
            );
            return;
        };
        match self.sender.send(&address, &credential, &request_of(cmd)) {
            Delivery::Answered(s) if s.state.is_final() => {
                let state = if s.state == AgentState::Succeeded {
                    CommandState::Succeeded
                } else {
                    CommandState::Failed
                };
                let result = serde_json::to_value(&s).unwrap_or_default();
                self.finish(cmd, state, result, state.as_str());
            }
            Delivery::Answered(s) => {
                self.metrics
                    .command_deliveries
                    .with_label_values(&["running"])
                    .inc();
                let poll = i64::try_from(self.cfg.poll_interval.as_millis()).unwrap_or(1000);
                let result = serde_json::to_value(&s).unwrap_or_default().to_string();
                if cmd.state == CommandState::Pending.as_str() {
                    info!(command = %cmd.id, node = %cmd.node_id, kind = %cmd.kind, "command delivered; the agent is running it");
                }
                if let Err(e) = self.store.command_attempt(
                    &cmd.id,
                    CommandState::Running,
                    now + poll,
                    &result,
                    now,
                ) {
                    warn!(command = %cmd.id, error = %e, "storing a command's progress failed");
                }
            }
            Delivery::Refused(status, msg) => {
                let msg = format!("the agent refused the command (HTTP {status}): {msg}");
                self.finish(
                    cmd,
                    CommandState::Failed,
                    json!({"message": msg}),
                    "refused",
                );
            }
            Delivery::Retry(why) => self.retry(cmd, now, why),
        }
    }

    fn retry(&self, cmd: &CommandRow, now: i64, why: String) {
        self.metrics
            .command_deliveries
            .with_label_values(&["unreachable"])
            .inc();
        let wait = backoff_ms(cmd.attempts + 1, self.cfg.retry_max);
        debug!(command = %cmd.id, node = %cmd.node_id, attempts = cmd.attempts + 1, retry_in_ms = wait, error = %why, "command not delivered; retrying");
        if cmd.attempts == 0 {
            warn!(command = %cmd.id, node = %cmd.node_id, kind = %cmd.kind, error = %why, "command not delivered; retrying with backoff");
        }
        let result = json!({"message": format!("delivery failed: {why}; retrying")}).to_string();
        let state = cmd.state.parse().unwrap_or(CommandState::Pending);
        if let Err(e) = self
            .store
            .command_attempt(&cmd.id, state, now + wait, &result, now)
        {
            warn!(command = %cmd.id, error = %e, "storing a delivery attempt failed");
        }
    }

    fn finish(&self, cmd: &CommandRow, state: CommandState, result: Value, label: &str) {
        let now = self.clock.now_ms();
        self.metrics
            .command_deliveries
            .with_label_values(&[label])
            .inc();
        let message = result["message"].as_str().unwrap_or("").to_string();
        match self
            .store
            .finish_command(&cmd.id, state, &result.to_string(), now)
        {
            Ok(true) => {
                if state == CommandState::Failed {
                    warn!(command = %cmd.id, node = %cmd.node_id, kind = %cmd.kind, %message, "command failed");
                } else {
                    info!(command = %cmd.id, node = %cmd.node_id, kind = %cmd.kind, %message, "command succeeded");
                }
                self.notifier.send(
                    "command",
                    &cmd.node_id,
                    now,
                    json!({"command": {"id": cmd.id, "kind": cmd.kind, "state": state,
                           "requested_by": cmd.requested_by, "message": message}}),
                );
                self.ended.notify();
            }
            Ok(false) => {}
            Err(e) => {
                warn!(command = %cmd.id, error = %e, "storing a command's result failed; it is asked again")
            }
        }
    }

    /// Starts the scheduler and the workers.
    pub fn spawn(self) -> std::io::Result<DispatcherHandle> {
        let stop = Arc::new(AtomicBool::new(false));
        let workers = self.cfg.concurrency.max(1);
        let (tx, rx) = sync_channel::<CommandRow>(workers * 2);
        let rx = Arc::new(Mutex::new(rx));
        let mut threads = Vec::new();
        for i in 0..workers {
            let (d, rx) = (self.clone(), rx.clone());
            threads.push(
                std::thread::Builder::new()
                    .name(format!("deliver-{i}"))
                    .spawn(move || worker(&d, &rx))?,
            );
        }
        let (d, st) = (self.clone(), stop.clone());
        threads.push(
            std::thread::Builder::new()
                .name("deliver-sched".into())
                .spawn(move || {
                    while !st.load(Ordering::SeqCst) {
                        for c in d.take_due() {
                            if tx.send(c).is_err() {
                                return;
                            }
                        }
                        d.wake.wait(Duration::from_millis(250));
                    }
                })?,
        );
        Ok(DispatcherHandle {
            stop,
            wake: self.wake.clone(),
            threads,
        })
    }
}

fn worker(d: &Dispatcher, rx: &Mutex<Receiver<CommandRow>>) {
    loop {
        let job = {
            let guard = rx.lock().unwrap_or_else(|p| p.into_inner());
            guard.recv()
        };
        let Ok(cmd) = job else { return };
        d.deliver(&cmd);
    }
}
