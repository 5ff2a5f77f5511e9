//! Pushing urgent events: when the agent records an event of severity `fatal` (an XID, a
//! critical temperature, an unhealthy plugin verdict) and it has joined a control plane, it
//! tells the control plane at once with `POST /v1/nodes/{id}/notify` (body
//! [`UrgentNotice`], the node token as bearer), so the event is read now rather than at the
//! next scrape. The notice carries no event: the control plane reads `GET /v1/events` from
//! its cursor as a scrape would, so a lost notice only means the scrape reads the event.
//!
//! A notice goes once the agent has published the `/metrics` body that counts its event
//! (or after [`PUBLISH_WAIT`]): the control plane scrapes the node when it takes a notice, so
//! that its gpu and node rules see an ECC count or a temperature at once, not only its event
//! rules the event.
//!
//! Bounded by construction: one pending slot holding the newest urgent sequence (a burst of
//! events while a notice is on its way is one more notice, with the newest `seq`, never a
//! queue), and one sender thread that sleeps on a condition variable until an urgent event
//! comes (no periodic wake-up). Each attempt takes at most [`ATTEMPT_TIMEOUT`]; connect
//! errors, timeouts, 429 and 5xx are retried with exponential backoff and jitter for at most
//! [`RetryPolicy::budget`], then the notice is given up (the scrape is the fallback). 401, 403
//! and 404 are not retried, and stop notices until the agent joins again: the registration
//! thread, which checks that the control plane still knows the node, owns joining again.
//!
//! Counted in `gpuwarden_agent_notices_total{result}` (see `docs/metrics.md`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use gpuwarden_wire::notice::UrgentNotice;
use tracing::{debug, info, warn};

use crate::render::ExtraMetrics;
use crate::text::{labels, Kind, Text};

/// Longest a notice waits for the `/metrics` body that counts its event (see
/// [`Notifier::published`]).
pub const PUBLISH_WAIT: Duration = Duration::from_secs(1);

/// Longest one attempt may take, connecting and reading the answer together.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);

/// How a notice is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Wait before the first retry (before jitter); it doubles with each retry.
    pub first: Duration,
    /// Longest wait between two attempts (before jitter).
    pub max: Duration,
    /// After this long since the first attempt no retry starts: the notice is given up.
    pub budget: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            first: Duration::from_millis(200),
            max: Duration::from_secs(2),
            budget: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry `n` (0-based): `first` doubled `n` times, capped at `max`, then
    /// scaled into its upper half by `jitter` (0 ≤ jitter < 1, random in use), so agents
    /// that lost the control plane together do not come back in step.
    pub fn backoff(&self, n: u32, jitter: f64) -> Duration {
        let base = self.first.saturating_mul(1u32 << n.min(16)).min(self.max);
        base.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
    }
}

/// The control plane the notices go to, known once the agent has joined.
#[derive(Clone, PartialEq, Eq)]
struct Target {
    url: String,
    node_id: String,
    token: String,
}

#[derive(Default)]
struct State {
    /// The newest urgent sequence not yet sent.
    pending: Option<u64>,
    target: Option<Target>,
    /// The control plane refused a notice (401/403/404) since the last join: notices wait
    /// for the next join (registration notices when the node must join again).
    refused: bool,
    /// A notice was rejected (another 4xx, a 3xx) and logged since the last join.
    rejection_logged: bool,
    /// The newest event sequence counted in a published `/metrics` body.
    published: u64,
    stop: bool,
}

/// What became of notices, for `gpuwarden_agent_notices_total{result}`.
#[derive(Debug, Default)]
struct Counts {
    sent: AtomicU64,
    retried: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
    coalesced: AtomicU64,
}

/// The urgent-event notifier: [`Notifier::urgent`] is called for each fatal event (cheap,
/// never blocks on the network), the thread from [`Notifier::spawn`] sends.
pub struct Notifier {
    instance: String,
    retry: RetryPolicy,
    state: Mutex<State>,
    wake: Condvar,
    counts: Counts,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the node token.
        f.debug_struct("Notifier")
            .field("instance", &self.instance)
            .field("counts", &self.counts)
            .finish_non_exhaustive()
    }
}

/// How one attempt went.
enum Attempt {
    Sent,
    /// 401, 403 or 404: the control plane does not take this node's notices now.
    Refused(u16),
    /// Another answer that retrying cannot change (400, 409, 413, 422, a redirect …).
    Rejected(u16),
    /// Connect error, timeout, 429, 5xx.
    Retry(String),
}

impl Notifier {
    /// A notifier for the agent run `instance` (the `instance` of its event pages).
    pub fn new(instance: String, retry: RetryPolicy) -> Arc<Self> {
        Arc::new(Notifier {
            instance,
            retry,
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
            counts: Counts::default(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An urgent event with sequence `seq` was recorded: the sender is woken with it. Before
    /// the agent has joined, the notice is dropped (the control plane reads the event at its
    /// first scrape); one still waiting is replaced by this newer one.
    pub fn urgent(&self, seq: u64) {
        let mut s = self.lock();
        if s.target.is_none() || s.refused {
            self.counts.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if let Some(old) = s.pending {
            self.counts.coalesced.fetch_add(1, Ordering::Relaxed);
            s.pending = Some(old.max(seq));
        } else {
            s.pending = Some(seq);
        }
        self.wake.notify_one();
    }

    /// The agent joined (or joined again): notices go to `url` for node `node_id` with
    /// `token`.
    pub fn joined(&self, url: &str, node_id: &str, token: &str) {
        let mut s = self.lock();
        s.target = Some(Target {
            url: url.trim_end_matches('/').to_string(),
            node_id: node_id.to_string(),
            token: token.to_string(),
        });
        s.refused = false;
        s.rejection_logged = false;
    }

    /// A `/metrics` body counting the events up to `seq` is published: notices up to `seq`
    /// may go (the control plane scrapes the node when it takes one, and must see the fault
    /// in the values as well as in the events).
    pub fn published(&self, seq: u64) {
        let mut s = self.lock();
        if seq > s.published {
            s.published = seq;
            self.wake.notify_all();
        }
    }

    /// Waits until a published body counts event `seq`, at most [`PUBLISH_WAIT`] (a body is
    /// published right after each event; past the wait the notice goes anyway).
    fn wait_published(&self, seq: u64) {
        let _unpublished = self
            .wake
            .wait_timeout_while(self.lock(), PUBLISH_WAIT, |s| s.published < seq && !s.stop)
            .unwrap_or_else(|p| p.into_inner());
    }

    /// The agent is no longer joined: notices are dropped until it joins again.
    pub fn left(&self) {
        self.lock().target = None;
    }

    /// Starts the sender thread; [`Notifier::stop`] ends it.
    pub fn spawn(self: &Arc<Self>) -> std::io::Result<JoinHandle<()>> {
        let me = Arc::clone(self);
        let client: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(ATTEMPT_TIMEOUT))
            // A redirect is an answer (rejected, not retried), never followed with the token.
            .max_redirects(0)
            .build()
            .into();
        std::thread::Builder::new()
            .name("notify".into())
            .spawn(move || me.run(&client))
    }

    /// Ends the sender thread after its attempt under way (at most [`ATTEMPT_TIMEOUT`]).
    pub fn stop(&self) {
        self.lock().stop = true;
        self.wake.notify_all();
    }

    fn run(&self, client: &ureq::Agent) {
        loop {
            let (seq, target) = {
                let mut s = self.lock();
                loop {
                    if s.stop {
                        return;
                    }
                    if let Some(seq) = s.pending.take() {
                        match s.target.clone() {
                            Some(t) => break (seq, t),
                            None => {
                                self.counts.dropped.fetch_add(1, Ordering::Relaxed);
                                continue;
                            }
                        }
                    }
                    s = self.wake.wait(s).unwrap_or_else(|p| p.into_inner());
                }
            };
            self.wait_published(seq);
            self.deliver(client, seq, target);
        }
    }

    /// Sends one notice, retrying as the module says; a newer urgent event that comes while
    /// it waits to retry replaces it.
    fn deliver(&self, client: &ureq::Agent, mut seq: u64, mut target: Target) {
        let started = Instant::now();
        let mut retries = 0u32;
        loop {
            match self.attempt(client, &target, seq) {
                Attempt::Sent => {
                    self.counts.sent.fetch_add(1, Ordering::Relaxed);
                    debug!(seq, "urgent-event notice sent");
                    return;
                }
                Attempt::Refused(status) => {
                    self.counts.failed.fetch_add(1, Ordering::Relaxed);
                    let mut s = self.lock();
                    s.refused = true;
                    s.pending = None;
                    warn!(status, node_id = %target.node_id, "the control plane refused an urgent-event notice; no more notices until the agent joins again (scrapes read the events; registration checks that the node is still known)");
                    return;
                }
                Attempt::Rejected(status) => {
                    self.counts.failed.fetch_add(1, Ordering::Relaxed);
                    let mut s = self.lock();
                    if s.rejection_logged {
                        debug!(status, seq, "urgent-event notice rejected");
                    } else {
                        s.rejection_logged = true;
                        warn!(status, seq, "the control plane rejected an urgent-event notice; not retried (the next scrape reads the event); further rejections until the next join are logged at debug level");
                    }
                    return;
                }
                Attempt::Retry(reason) => {
                    let wait = self.retry.backoff(retries, fastrand::f64());
                    if started.elapsed() + wait > self.retry.budget {
                        self.counts.failed.fetch_add(1, Ordering::Relaxed);
                        info!(seq, reason = %reason, "urgent-event notice given up after retries; the next scrape reads the event");
                        return;
                    }
                    self.counts.retried.fetch_add(1, Ordering::Relaxed);
                    debug!(seq, reason = %reason, wait_ms = wait.as_millis() as u64, "urgent-event notice failed; retrying");
                    retries += 1;
                    let (mut s, _) = self
                        .wake
                        .wait_timeout_while(self.lock(), wait, |s| !s.stop)
                        .unwrap_or_else(|p| p.into_inner());
                    if s.stop {
                        self.counts.dropped.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    if let Some(newer) = s.pending.take() {
                        self.counts.coalesced.fetch_add(1, Ordering::Relaxed);
                        seq = seq.max(newer);
                    }
                    match &s.target {
                        Some(t) => target = t.clone(),
                        None => {
                            self.counts.dropped.fetch_add(1, Ordering::Relaxed);
                            return;
                        }
                    }
                }
            }
        }
    }

    fn attempt(&self, client: &ureq::Agent, target: &Target, seq: u64) -> Attempt {
        let url = format!("{}/v1/nodes/{}/notify", target.url, target.node_id);
        let body = UrgentNotice {
            instance: self.instance.clone(),
            seq,
        };
        match client
            .post(&url)
            .header("Authorization", &format!("Bearer {}", target.token))
            .send_json(&body)
        {
            Ok(resp) => match resp.status().as_u16() {
                200..=299 => Attempt::Sent,
                s @ (401 | 403 | 404) => Attempt::Refused(s),
                s @ (429 | 500..=599) => Attempt::Retry(format!("HTTP {s}")),
                s => Attempt::Rejected(s),
            },
            Err(e) => Attempt::Retry(e.to_string()),
        }
    }

    /// Notices by result: `sent`, `retried` (attempts that failed and were tried again),
    /// `failed` (given up or refused), `dropped` (not joined, or stopping), `coalesced`
    /// (merged into a newer notice).
    pub fn counts(&self) -> [(&'static str, u64); 5] {
        let c = &self.counts;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        [
            ("sent", get(&c.sent)),
            ("retried", get(&c.retried)),
            ("failed", get(&c.failed)),
            ("dropped", get(&c.dropped)),
            ("coalesced", get(&c.coalesced)),
        ]
    }
}

impl ExtraMetrics for Notifier {
    fn render(&self, t: &mut Text) {
        t.family(
            "gpuwarden_agent_notices_total",
            "Urgent-event notices to the control plane by result: sent, retried (an attempt failed and was tried again), failed (given up or refused), dropped (not joined), coalesced (merged into a newer notice).",
            Kind::Counter,
        );
        for (result, n) in self.counts() {
            t.sample(
                "gpuwarden_agent_notices_total",
                &labels(&[("result", result)]),
                "",
                n as f64,
            );
        }
    }
}

#[cfg(test)]
mod tests;
