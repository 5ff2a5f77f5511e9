//! Pulling the agents: a generic loop (schedule, bounded concurrency, timeouts, limits) apart
//! from what a scrape means (parse into an observation, read new events).
//!
//! One scheduler thread hands due targets to `scrape.concurrency` worker threads through a
//! bounded channel; each worker fetches `/metrics` through a [`Fetch`] (HTTP with gzip in
//! production), parses it with the shared zero-copy parser, and records the result in the
//! [`Fleet`]. When an XID or ECC counter moved, the worker reads the agent's
//! `/v1/events?after=CURSOR` and stores the events with the cursor in one transaction, so
//! none is stored twice or skipped when either side restarts. An agent's urgent-event notice
//! makes the same read due at once, on a few workers of its own ([`Urgent`]); a node's events
//! are read by one of them at a time. A housekeeping thread judges
//! the nodes that are not scraped (offline) every second, writes the latest observations in
//! batches and applies retention.

mod event_reads;
mod events;
mod fetch;
pub mod fleet;
mod housekeeping;
mod judge;
pub mod recent;
pub mod schedule;
mod urgent;

pub use event_reads::EventReads;
pub use events::STUCK_AFTER;
pub use urgent::{NoticeOutcome, Urgent};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use gpuwarden_wire::event::{EventsPage, HealthEvent};
use tracing::{debug, info, warn};

pub use fetch::{Fetch, HttpFetcher, ScrapeError};

use crate::clock::{parse_rfc3339, SharedClock};
use crate::metrics::Metrics;
use crate::model::observation::observe;
use crate::scrape::fleet::{ConnectivityChange, Fleet, Job};
use crate::store::rows::NewEvent;
use crate::store::Store;

/// What one scrape came to, for a notice worker deciding whether to read the events too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scraped {
    /// The agent answered; no counter said events were waiting.
    Reached,
    /// The agent answered and its events were read (or the read was tried).
    ReadEvents,
    /// The agent did not answer usably (unreachable, timed out, bad body).
    Failed,
    /// The node left the fleet meanwhile.
    Gone,
}

/// Most event pages read after one scrape; the rest come with the next.
const MAX_EVENT_PAGES: usize = 10;
/// Nodes whose observations one flush step turns into rows and writes: a flush of 10,000
/// nodes holds 500 nodes' rows at a time, not all of them.
const FLUSH_BATCH: usize = 500;
/// How often the scheduler looks for targets gone offline (ms).
const SWEEP_EVERY_MS: i64 = 250;

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
    /// Capacity a worker's body buffer keeps between scrapes (`scrape.body_retain_bytes`):
    /// a scrape that grew it past this gives the rest back, so the buffers hold at most
    /// `concurrency × body_retain_bytes` at rest and `concurrency × body_limit_bytes` while
    /// every worker reads a body at the limit.
    pub body_retain_bytes: usize,
    /// The health policy (swappable at run time).
    pub policy: crate::judge::policy::SharedPolicy,
    /// Remediation and webhooks, told of health changes.
    pub links: crate::act::wake::Links,
    /// Per node, the page limit of its `/v1/events` reads and their failures in a row.
    pub event_reads: Arc<EventReads>,
    /// Reads made due by agents' urgent-event notices, and each node's read turn.
    pub urgent: Arc<Urgent>,
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
    urgent: Arc<Urgent>,
    threads: Vec<JoinHandle<()>>,
}

impl ScraperHandle {
    /// Stops scheduling, lets running scrapes finish, writes the observations once more.
    pub fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        self.urgent.stop();
        for t in self.threads {
            let _ = t.join();
        }
    }
}

thread_local! {
    // One body buffer per worker, reused: a fresh 100–200 KB allocation per scrape cost more
    // than parsing some of the bodies. Its capacity is trimmed after each scrape.
    static BODY: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The capacity, in bytes, that the calling thread's body buffer keeps between scrapes (at
/// most [`Scraper::body_retain_bytes`] once a scrape on this thread has finished).
pub fn retained_body_capacity() -> usize {
    BODY.with_borrow(Vec::capacity)
}

impl Scraper {
    /// Scrapes `job` now and records the outcome.
    pub fn scrape_one(&self, job: &Job) {
        self.scrape(job, false);
    }

    /// Scrapes `job` and records the outcome; when its counters say events are waiting, reads
    /// them in the node's turn, or at once when the caller holds that turn already (a notice
    /// worker). Whether it reached the agent, and whether it read (or tried to read) the
    /// events.
    pub(super) fn scrape(&self, job: &Job, holding_turn: bool) -> Scraped {
        let start = Instant::now();
        let outcome = BODY.with_borrow_mut(|body| {
            let outcome = self
                .fetch
                .metrics(&job.address, body)
                .and_then(|()| observe(body, self.sample_limit).map_err(ScrapeError::from));
            // The buffer's length is kept as initialized room for the next body (the fetcher
            // reads into it in place); one huge body (a gzip bomb refused at the limit) must
            // not keep its buffer.
            if body.capacity() > self.body_retain_bytes {
                body.truncate(self.body_retain_bytes);
                body.shrink_to(self.body_retain_bytes);
            }
            outcome
        });
        let took = start.elapsed();
        let now = self.clock.now_ms();
        self.metrics.scrape_duration.observe(took.as_secs_f64());
        match outcome {
            Ok(obs) => {
                self.metrics.scrapes.with_label_values(&["success"]).inc();
                self.metrics.samples.inc_by(obs.samples as u64);
                let Some(after) = self.fleet.succeeded(&job.node_id, obs, took, now) else {
                    return Scraped::Gone;
                };
                if let Some(c) = after.change {
                    self.store_change(&c, now);
                }
                self.judge_observation(&job.node_id, now);
                match after.read_events {
                    Some((instance, cursor)) if holding_turn => {
                        self.read_events_bounded(job, instance, cursor);
                    }
                    Some(_) => self.read_events_in_turn(job),
                    None => return Scraped::Reached,
                }
                Scraped::ReadEvents
            }
            Err(e) => {
                debug!(node = %job.node_id, address = %job.address, error = %e, "scrape failed");
                self.metrics.scrapes.with_label_values(&[e.kind()]).inc();
                self.fleet.failed(&job.node_id, e.to_string(), took, now);
                Scraped::Failed
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

    /// Starts the scheduler, the workers and housekeeping; `flush_every` is
    /// `(database.flush_interval, database.observation_write_interval)`.
    pub fn spawn(
        self,
        concurrency: usize,
        flush_every: (Duration, Duration),
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
                    .stack_size(crate::judge::policy::limits::EVAL_STACK_BYTES)
                    .spawn(move || worker(&s, &rx))?,
            );
        }
        for i in 0..self.urgent.workers() {
            let s = self.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("notice-{i}"))
                    .stack_size(crate::judge::policy::limits::EVAL_STACK_BYTES)
                    .spawn(move || s.notice_worker())?,
            );
        }
        let urgent = self.urgent.clone();
        let (s, st) = (self.clone(), stop.clone());
        threads.push(
            std::thread::Builder::new()
                .name("scrape-sched".into())
                .stack_size(crate::judge::policy::limits::EVAL_STACK_BYTES)
                .spawn(move || {
                    // Offline is judged in whole intervals: a sweep over every target
                    // four times a second is soon enough (and not one per tick).
                    let mut swept = i64::MIN;
                    while !st.load(Ordering::SeqCst) {
                        let now = s.clock.now_ms();
                        if now.saturating_sub(swept) >= SWEEP_EVERY_MS {
                            swept = now;
                            for c in s.fleet.sweep(now) {
                                s.store_change(&c, now);
                            }
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
                .stack_size(crate::judge::policy::limits::EVAL_STACK_BYTES)
                .spawn(move || {
                    s.housekeeping(&st, flush_every, retention);
                })?,
        );
        Ok(ScraperHandle {
            stop,
            urgent,
            threads,
        })
    }

    /// Writes every changed observation, rows and `last_seen`, 500 nodes (`FLUSH_BATCH`) at
    /// a time (a stop, and tests).
    pub fn flush(&self) {
        self.flush_due(None);
    }

    /// Writes the changed nodes' `last_seen`, and the rows of those whose rows are due:
    /// `rows_due` is `(now, every)` in ms (see [`Fleet::take_dirty`]), `None` for all.
    pub fn flush_due(&self, rows_due: Option<(i64, i64)>) {
        let start = Instant::now();
        let mut nodes = 0;
        loop {
            let batch = self.fleet.take_dirty(FLUSH_BATCH, rows_due);
            if batch.is_empty() {
                break;
            }
            nodes += batch.len();
            let full = batch.len() >= FLUSH_BATCH;
            if let Err(e) = self.store.write_observations(&batch) {
                self.metrics
                    .store_errors
                    .with_label_values(&["observations"])
                    .inc();
                warn!(nodes = batch.len(), error = %e, "writing observations failed; they are written again at the next flush");
                self.fleet.write_failed(batch);
                return;
            }
            if !full {
                break;
            }
        }
        if nodes > 0 {
            self.metrics.flushes.inc();
            self.metrics
                .flush_seconds
                .observe(start.elapsed().as_secs_f64());
            debug!(
                nodes,
                took_ms = start.elapsed().as_millis() as u64,
                "observations written"
            );
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
        if let Some(due) = job.due_at {
            let late_ms = s.clock.now_ms().saturating_sub(due).max(0);
            s.metrics.scrape_delay.observe(late_ms as f64 / 1000.0);
        }
        s.scrape_one(&job);
    }
}

/// An agent event as a row.
/// Longest event message the control plane stores, in bytes (longer ones are cut at a
/// character boundary and end in `…`): the store's size stays bounded whatever an agent sends.
pub const MAX_EVENT_MESSAGE_BYTES: usize = 4096;
/// Longest event UUID or source stored, in bytes.
const MAX_EVENT_FIELD_BYTES: usize = 256;

/// `s` cut to at most `max` bytes at a character boundary, `…` marking a cut.
fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// The stored form of event `e` of node `node_id` (message, UUID and source cut to bounds).
pub fn new_event(node_id: &str, page: &EventsPage, e: &HealthEvent, now: i64) -> NewEvent {
    NewEvent {
        node_id: node_id.to_string(),
        gpu: e.gpu.and_then(|g| i32::try_from(g).ok()),
        uuid: e.uuid.as_deref().map(|u| clip(u, MAX_EVENT_FIELD_BYTES)),
        kind: e.kind.as_str().to_string(),
        code: e.code.and_then(|c| i64::try_from(c).ok()),
        message: clip(&e.message, MAX_EVENT_MESSAGE_BYTES),
        severity: e.severity.as_str().to_string(),
        action: e.action.map(|a| a.as_str()).unwrap_or("ignore").to_string(),
        time: parse_rfc3339(&e.time).unwrap_or(now),
        agent_instance: page.instance.clone(),
        agent_seq: i64::try_from(e.seq).unwrap_or(i64::MAX),
        source: clip(&e.source, MAX_EVENT_FIELD_BYTES),
    }
}
