//! Reading an agent's `/v1/events`, bounded and able to make progress.
//!
//! Each read asks for at most a page limit of events (`limit=`, at most
//! [`super::fetch::EVENTS_PAGE`]) and accepts at most [`super::fetch::EVENTS_BODY_LIMIT`] bytes. A read
//! that failed for its answer (too large, timed out, undecodable) halves that node's page
//! limit (down to 1), a successful one doubles it back, so an answer too large or too slow
//! to read whole is read in smaller pages instead of failing on every scrape. After [`STUCK_AFTER`] failures in a row the scraper logs an error with
//! the node and its cursor and counts it (`gpuwarden_cp_event_read_failures_total{reason=
//! "stuck"}`); if even a page of one event is still over the byte cap that many times, the
//! event is skipped (`reason="skipped"`, also in `gpuwarden_cp_events_lost_total`) so one
//! broken event cannot stop a node's event ingestion for ever.

use tracing::{debug, error, info, warn};

use super::fetch::ScrapeError;
use super::urgent::{stored, Wanted};
use super::{new_event, Scraped, Scraper, MAX_EVENT_PAGES};
use crate::scrape::fleet::Job;
use crate::store::rows::NewEvent;

/// Failed reads in a row after which a node's event read counts as stuck.
pub const STUCK_AFTER: u32 = 5;

impl Scraper {
    /// Reads the agent's events after `cursor`, stores them with the new cursor, and
    /// handles a failed read as the module says.
    pub(super) fn read_events_bounded(&self, job: &Job, instance: Option<String>, cursor: i64) {
        let limit = self.event_reads.limit(&job.node_id);
        let Err((e, after)) = self.read_events(job, instance.clone(), cursor, limit) else {
            self.event_reads.succeeded(&job.node_id);
            return;
        };
        let too_large = matches!(e, ScrapeError::EventsTooLarge(_));
        self.metrics
            .event_read_failures
            .with_label_values(&[if too_large { "too_large" } else { "error" }])
            .inc();
        self.metrics.scrapes.with_label_values(&["events"]).inc();
        self.fleet.events_failed(&job.node_id);
        // A smaller page helps an answer too large, too slow or undecodable; not an agent
        // that is unreachable or answers an error status.
        let shrink = !matches!(e, ScrapeError::Connect(_) | ScrapeError::EventsStatus(_));
        let failures = self.event_reads.failed(&job.node_id, limit, shrink);
        warn!(node = %job.node_id, after, limit, error = %e, "reading the agent's events failed; retried next scrape with a smaller page");
        if failures < STUCK_AFTER {
            return;
        }
        self.metrics
            .event_read_failures
            .with_label_values(&["stuck"])
            .inc();
        error!(node = %job.node_id, cursor = after, limit, failures, error = %e, "the agent's events cannot be read past this cursor; no later event of this node is stored until this resolves");
        // A single event over the byte cap never fits: skip it, loudly.
        if too_large && limit == 1 {
            if let Some(inst) = instance.filter(|i| !i.is_empty()) {
                let next = after + 1;
                if self
                    .store
                    .ingest_events(&job.node_id, &inst, next, &[] as &[NewEvent])
                    .is_ok()
                {
                    self.fleet.events_read(&job.node_id, &inst, next);
                    // Read on from there at the next scrape, whatever the counters say.
                    self.fleet.events_failed(&job.node_id);
                    self.metrics
                        .event_read_failures
                        .with_label_values(&["skipped"])
                        .inc();
                    self.metrics.events_lost.inc();
                    error!(node = %job.node_id, seq = next, "skipped one event larger than the events byte cap");
                }
            }
        }
        self.event_reads.forget_streak(&job.node_id);
    }

    /// Reads pages of at most `limit` events after `cursor`; on failure, the error and the
    /// cursor the failing page was asked after.
    fn read_events(
        &self,
        job: &Job,
        instance: Option<String>,
        cursor: i64,
        limit: usize,
    ) -> Result<(), (ScrapeError, i64)> {
        let (mut known, mut after) = (instance, cursor);
        for _ in 0..MAX_EVENT_PAGES {
            let page = self
                .fetch
                .events(&job.address, after, limit)
                .map_err(|e| (e, after))?;
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
                .map_err(|e| (ScrapeError::Events(e.to_string()), after))?;
            self.metrics.events.inc_by(added as u64);
            for e in &page.events {
                self.judge_event(&job.node_id, e, self.clock.now_ms());
            }
            self.fleet.events_read(&job.node_id, &page.instance, next);
            // A page ends at our limit, or earlier at the agent's byte budget (`more`).
            if (!page.more && page.events.len() < limit) || next <= after {
                return Ok(());
            }
            after = next;
        }
        // Every page was full: more may wait; read on at the next scrape.
        self.fleet.events_failed(&job.node_id);
        Ok(())
    }
}

impl Scraper {
    /// Reads node `id`'s events from its stored cursor in its turn (see [`super::Urgent`]); when a
    /// read is under way already, one more is made due after it instead. The scrape's path
    /// when its counters say events are waiting.
    pub(super) fn read_events_in_turn(&self, job: &Job) {
        if !self.urgent.begin(&job.node_id) {
            let _ = self.urgent.mark(
                &job.node_id,
                Wanted {
                    instance: String::new(),
                    seq: u64::MAX,
                },
            );
            return;
        }
        if let Some(t) = self.fleet.get(&job.node_id) {
            self.read_events_bounded(job, t.agent_instance, t.event_cursor);
        }
        self.urgent.end(&job.node_id);
    }

    /// One notice worker: reads due nodes until [`super::Urgent::stop`].
    pub(super) fn notice_worker(&self) {
        while let Some((id, want)) = self.urgent.next() {
            match self.fleet.get(&id) {
                Some(t)
                    if stored(
                        t.agent_instance.as_deref(),
                        t.event_cursor,
                        &want.instance,
                        want.seq,
                    ) =>
                {
                    debug!(node = %id, seq = want.seq, "notified events already read");
                }
                Some(t) => {
                    self.metrics.notice_reads.inc();
                    // Scrape /metrics now as well, so the gpu and node rules (an ECC count,
                    // a temperature, a plugin's status) judge the fault at once, not only the
                    // event rules; that scrape reads the events when its counters moved.
                    let scraped = self.fleet.claim(&id).map(|job| self.scrape(&job, true));
                    // The events, unless that scrape read them or tried, or could not reach
                    // the agent (then its next scrape reads them; a hung agent must not hold
                    // a notice worker for a second timeout). Read when a scheduled scrape was
                    // in flight, or no counter the scrape reads moved.
                    let t = self.fleet.get(&id).unwrap_or(t);
                    let read = matches!(
                        scraped,
                        Some(Scraped::ReadEvents | Scraped::Failed | Scraped::Gone)
                    );
                    if !read
                        && !stored(
                            t.agent_instance.as_deref(),
                            t.event_cursor,
                            &want.instance,
                            want.seq,
                        )
                    {
                        let job = Job {
                            node_id: id.clone(),
                            address: t.address.clone(),
                            due_at: None,
                        };
                        self.read_events_bounded(&job, t.agent_instance, t.event_cursor);
                    }
                }
                None => {}
            }
            self.urgent.end(&id);
        }
    }
}
