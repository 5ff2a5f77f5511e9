//! Pulling the agents: a generic loop (schedule, bounded concurrency, timeouts, limits) apart
//! from what a scrape means (parse into an observation, read new events).
//!
//! One scheduler thread hands due targets to `scrape.concurrency` worker threads through a
//! bounded channel; each worker fetches `/metrics` through a [`Fetch`] (HTTP with gzip in
//! production), parses it with the shared zero-copy parser, and records the result in the
//! [`Fleet`]. When an XID or ECC counter moved, the worker reads the agent's
//! `/v1/events?after=CURSOR` and stores the events with the cursor in one transaction, so
//! none is stored twice or skipped when either side restarts. A housekeeping thread judges
//! the nodes that are not scraped (offline) every second, writes the latest observations in
//! batches and applies retention.

mod fetch;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use gpuwarden_wire::event::{EventsPage, HealthEvent};
use tracing::{debug, info, warn};

pub use fetch::{Fetch, HttpFetcher, ScrapeError};

use crate::clock::{parse_rfc3339, SharedClock};
use crate::fleet::{ConnectivityChange, Fleet, Job};
use crate::health::HealthChange;
use crate::metrics::Metrics;
use crate::observation::observe;
use crate::policy::{Evaluation, EventInput};
use crate::store::rows::NewEvent;
use crate::store::Store;

/// Most event pages read after one scrape; the rest come with the next.
const MAX_EVENT_PAGES: usize = 10;

/// What the scraper needs.
#[derive(Clone)]
pub struct Scraper {
    /// Targets and their state.
    pub fleet: Arc<Fleet>,
    /// Where events and transitions go.
    pub store: Arc<Store>,
    /// How bodies are fetched.
    pub fetch: Arc<dyn Fetch>,
    /// Time.
    pub clock: SharedClock,
    /// Own metrics.
    pub metrics: Metrics,
    /// Most samples per body.
    pub sample_limit: usize,
    /// The health policy (swappable at run time).
    pub policy: crate::policy::SharedPolicy,
    /// Remediation and webhooks, told of health changes.
    pub links: crate::wake::Links,
}

impl std::fmt::Debug for Scraper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scraper")
            .field("targets", &self.fleet.len())
            .finish()
    }
}

/// The running scraper's threads; [`ScraperHandle::stop`] ends them.
#[derive(Debug)]
pub struct ScraperHandle {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl ScraperHandle {
    /// Stops scheduling, lets running scrapes finish, writes the observations once more.
    pub fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

impl Scraper {
    /// Scrapes `job` now and records the outcome.
    pub fn scrape_one(&self, job: &Job) {
        let start = Instant::now();
        thread_local! {
            // One body buffer per worker, reused: a fresh 100–200 KB allocation per scrape
            // cost more than parsing some of the bodies.
            static BODY: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        let outcome = BODY.with_borrow_mut(|body| {
            self.fetch
                .metrics(&job.address, body)
                .and_then(|()| observe(body, self.sample_limit).map_err(ScrapeError::from))
        });
        let took = start.elapsed();
        let now = self.clock.now_ms();
        self.metrics.scrape_duration.observe(took.as_secs_f64());
        match outcome {
            Ok(obs) => {
                self.metrics.scrapes.with_label_values(&["success"]).inc();
                self.metrics.samples.inc_by(obs.samples as u64);
                let Some(after) = self.fleet.succeeded(&job.node_id, obs, took, now) else {
                    return;
                };
                if let Some(c) = after.change {
                    self.store_change(&c, now);
                }
                self.judge_observation(&job.node_id, now);
                if let Some((instance, cursor)) = after.read_events {
                    if let Err(e) = self.read_events(job, instance, cursor) {
                        warn!(node = %job.node_id, error = %e, "reading the agent's events failed; retried next scrape");
                        self.metrics.scrapes.with_label_values(&["events"]).inc();
                        self.fleet.events_failed(&job.node_id);
                    }
                }
            }
            Err(e) => {
                debug!(node = %job.node_id, address = %job.address, error = %e, "scrape failed");
                self.metrics.scrapes.with_label_values(&[e.kind()]).inc();
                self.fleet.failed(&job.node_id, e.to_string(), took, now);
            }
        }
    }

    fn store_change(&self, c: &ConnectivityChange, now: i64) {
        info!(node = %c.node_id, to = %c.to, reason = %c.reason, "connectivity changed");
        if let Err(e) = self
            .store
            .set_connectivity(&c.node_id, c.to, &c.reason, now)
        {
            self.metrics
                .store_errors
                .with_label_values(&["transition"])
                .inc();
            warn!(node = %c.node_id, error = %e, "storing a connectivity change failed");
        }
    }

    /// Reads the agent's events after `cursor` and stores them with the new cursor.
    fn read_events(
        &self,
        job: &Job,
        instance: Option<String>,
        cursor: i64,
    ) -> Result<(), ScrapeError> {
        let (mut known, mut after) = (instance, cursor);
        for _ in 0..MAX_EVENT_PAGES {
            let page = self.fetch.events(&job.address, after)?;
            if known
                .as_deref()
                .is_some_and(|k| !k.is_empty() && k != page.instance)
                && after > 0
            {
                info!(node = %job.node_id, "agent restarted; reading its events from the start");
                known = Some(page.instance.clone());
                after = 0;
                continue;
            }
            known = Some(page.instance.clone());
            if page.truncated {
                self.metrics.events_lost.inc();
                warn!(node = %job.node_id, after, "the agent's event ring overflowed before it was read; some events are lost");
            }
            let next = i64::try_from(page.next).unwrap_or(i64::MAX);
            let batch: Vec<NewEvent> = page
                .events
                .iter()
                .map(|e| new_event(&job.node_id, &page, e, self.clock.now_ms()))
                .collect();
            let added = self
                .store
                .ingest_events(&job.node_id, &page.instance, next, &batch)
                .map_err(|e| ScrapeError::Events(e.to_string()))?;
            self.metrics.events.inc_by(added as u64);
            for e in &page.events {
                self.judge_event(&job.node_id, e, self.clock.now_ms());
            }
            self.fleet.events_read(&job.node_id, &page.instance, next);
            if page.events.len() < fetch::EVENTS_PAGE || next <= after {
                break;
            }
            after = next;
        }
        Ok(())
    }

    fn failures(&self, e: &Evaluation) {
        for f in &e.failures {
            self.metrics
                .rule_failures
                .with_label_values(&[&f.rule])
                .inc();
            // Logged at most once a minute per rule, so a broken rule cannot flood the log.
            if log_allowed(&f.rule, self.clock.now_ms()) {
                warn!(rule = %f.rule, input = %f.input, error = %f.error, "policy rule failed (counted in gpuwarden_cp_rule_failures_total)");
            }
        }
    }

    /// Stores a health change of node `id`; one the store refuses is kept and written again
    /// by housekeeping, so remediation never misses an unhealthy node.
    pub fn store_health(&self, id: &str, c: &HealthChange, now: i64) {
        let actor = c
            .rule
            .as_ref()
            .map_or_else(|| "policy".to_string(), |r| format!("policy:{r}"));
        if let Err(e) = self.store.set_health(id, c.to, &c.reason, &actor, now) {
            self.metrics
                .store_errors
                .with_label_values(&["transition"])
                .inc();
            warn!(node = %id, to = %c.to, error = %e, "storing a health change failed; written again within a second");
            self.fleet.health_unsaved(id, c.clone(), now);
            return;
        }
        info!(node = %id, from = %c.from, to = %c.to, reason = %c.reason, "health changed");
        self.metrics
            .health_changes
            .with_label_values(&[c.to.as_str()])
            .inc();
        if c.to == crate::model::Health::Unhealthy {
            self.links.remediate.notify();
        }
        self.links.notifier.send(
            "health",
            id,
            now,
            serde_json::json!({"health": {"from": c.from, "to": c.to, "reason": c.reason, "rule": c.rule}}),
        );
    }

    /// Writes again the health changes the store refused.
    pub fn retry_unsaved(&self) {
        for (id, c, at) in self.fleet.take_unsaved_health() {
            self.store_health(&id, &c, at);
        }
    }

    /// Runs the gpu and node rules on the node's latest observation.
    fn judge_observation(&self, id: &str, now: i64) {
        let Some((Some(obs), prev, node, memo)) = self.fleet.policy_input(id) else {
            return;
        };
        let e = crate::policy::current(&self.policy).eval_observation_memo(
            &obs,
            prev.as_ref().map(|(p, dt)| (&**p, *dt)),
            &node,
            &mut memo.lock().unwrap_or_else(|p| p.into_inner()),
        );
        self.failures(&e);
        if let Some(c) = self.fleet.observed_health(id, &e.matches, now) {
            self.store_health(id, &c, now);
        }
    }

    /// Runs the event rules on one health event of the node.
    fn judge_event(&self, id: &str, ev: &HealthEvent, now: i64) {
        let Some((_, _, node, _)) = self.fleet.policy_input(id) else {
            return;
        };
        let input = EventInput {
            seq: i64::try_from(ev.seq).unwrap_or(i64::MAX),
            kind: ev.kind.as_str().to_string(),
            code: ev.code.and_then(|c| i64::try_from(c).ok()),
            gpu: ev.gpu,
            uuid: ev.uuid.clone(),
            message: ev.message.clone(),
            severity: ev.severity.as_str().to_string(),
            action: ev.action.map(|a| a.as_str().to_string()),
            source: ev.source.clone(),
        };
        let e = crate::policy::current(&self.policy).eval_event(&input, &node);
        self.failures(&e);
        let time = parse_rfc3339(&ev.time).unwrap_or(now);
        if let Some(c) = self.fleet.event_health(id, &e.matches, time, now) {
            self.store_health(id, &c, now);
        }
    }

    /// Node rules for the nodes that are not scraped now (offline), and degraded verdicts
    /// that clear with time.
    pub fn judge_idle(&self, now: i64) {
        let policy = crate::policy::current(&self.policy);
        for (id, node) in self.fleet.offline() {
            let e = policy.eval_node(&node);
            self.failures(&e);
            if let Some(c) = self.fleet.observed_health(&id, &e.matches, now) {
                self.store_health(&id, &c, now);
            }
        }
        for (id, c) in self.fleet.settle_health(now) {
            self.store_health(&id, &c, now);
        }
    }

    /// Starts the scheduler, the workers and housekeeping.
    pub fn spawn(
        self,
        concurrency: usize,
        flush_every: Duration,
        retention: (Duration, Duration),
    ) -> std::io::Result<ScraperHandle> {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = sync_channel::<Job>(concurrency * 2);
        let rx = Arc::new(Mutex::new(rx));
        let mut threads = Vec::new();
        for i in 0..concurrency {
            let (s, rx) = (self.clone(), rx.clone());
            threads.push(
                std::thread::Builder::new()
                    .name(format!("scrape-{i}"))
                    .spawn(move || worker(&s, &rx))?,
            );
        }
        let (s, st) = (self.clone(), stop.clone());
        threads.push(
            std::thread::Builder::new()
                .name("scrape-sched".into())
                .spawn(move || {
                    while !st.load(Ordering::SeqCst) {
                        let now = s.clock.now_ms();
                        for c in s.fleet.sweep(now) {
                            s.store_change(&c, now);
                        }
                        for job in s.fleet.due(now) {
                            if tx.send(job).is_err() {
                                return;
                            }
                        }
                        let idle = s.fleet.idle_for(s.clock.now_ms(), 200);
                        std::thread::sleep(Duration::from_millis(
                            u64::try_from(idle.max(5)).unwrap_or(5),
                        ));
                    }
                    // Dropping `tx` ends the workers once their queue is empty.
                })?,
        );
        let (s, st) = (self, stop.clone());
        threads.push(
            std::thread::Builder::new()
                .name("housekeeping".into())
                .spawn(move || {
                    housekeeping(&s, &st, flush_every, retention);
                })?,
        );
        Ok(ScraperHandle { stop, threads })
    }

    /// Writes the changed observations in one batch.
    pub fn flush(&self) {
        let batch = self.fleet.take_dirty();
        if batch.is_empty() {
            return;
        }
        let start = Instant::now();
        match self.store.write_observations(&batch) {
            Ok(()) => {
                self.metrics.flushes.inc();
                debug!(
                    nodes = batch.len(),
                    took_ms = start.elapsed().as_millis() as u64,
                    "observations written"
                );
            }
            Err(e) => {
                self.metrics
                    .store_errors
                    .with_label_values(&["observations"])
                    .inc();
                warn!(nodes = batch.len(), error = %e, "writing observations failed; the next scrape brings them again");
            }
        }
    }
}

/// Whether a failure of `rule` may be logged now (once a minute per rule).
fn log_allowed(rule: &str, now: i64) -> bool {
    static LAST: std::sync::OnceLock<Mutex<std::collections::HashMap<String, i64>>> =
        std::sync::OnceLock::new();
    let mut last = LAST
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    match last.get(rule) {
        Some(t) if now - t < 60_000 => false,
        _ => {
            last.insert(rule.to_string(), now);
            true
        }
    }
}

fn worker(s: &Scraper, rx: &Mutex<Receiver<Job>>) {
    loop {
        let job = {
            let guard = rx.lock().unwrap_or_else(|p| p.into_inner());
            guard.recv()
        };
        let Ok(job) = job else { return };
        s.scrape_one(&job);
    }
}

fn housekeeping(
    s: &Scraper,
    stop: &AtomicBool,
    flush_every: Duration,
    retention: (Duration, Duration),
) {
    let mut last_flush = Instant::now();
    let mut last_prune: Option<Instant> = None;
    let mut last_idle = Instant::now();
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(100));
        if last_idle.elapsed() >= Duration::from_secs(1) {
            // Node rules for offline nodes (node-offline), and degraded verdicts whose
            // condition stopped holding.
            s.judge_idle(s.clock.now_ms());
            s.retry_unsaved();
            last_idle = Instant::now();
        }
        if last_flush.elapsed() >= flush_every {
            s.flush();
            last_flush = Instant::now();
        }
        if last_prune.is_none_or(|t| t.elapsed() >= Duration::from_secs(3600)) {
            let now = s.clock.now_ms();
            let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
            match s.store.prune(now - ms(retention.0), now - ms(retention.1)) {
                Ok((e, a)) if e + a > 0 => {
                    info!(events = e, audit = a, "retention pruned old rows")
                }
                Ok(_) => {}
                Err(e) => warn!(error = %e, "retention pruning failed"),
            }
            last_prune = Some(Instant::now());
        }
    }
    s.flush();
}

/// An agent event as a row.
pub fn new_event(node_id: &str, page: &EventsPage, e: &HealthEvent, now: i64) -> NewEvent {
    NewEvent {
        node_id: node_id.to_string(),
        gpu: e.gpu.and_then(|g| i32::try_from(g).ok()),
        uuid: e.uuid.clone(),
        kind: e.kind.as_str().to_string(),
        code: e.code.and_then(|c| i64::try_from(c).ok()),
        message: e.message.clone(),
        severity: e.severity.as_str().to_string(),
        action: e.action.map(|a| a.as_str()).unwrap_or("ignore").to_string(),
        time: parse_rfc3339(&e.time).unwrap_or(now),
        agent_instance: page.instance.clone(),
        agent_seq: i64::try_from(e.seq).unwrap_or(i64::MAX),
    }
}
