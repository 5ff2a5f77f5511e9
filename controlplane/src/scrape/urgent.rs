//! Urgent reads: an agent's notice (`POST /v1/nodes/{id}/notify`, sent when it records a
//! fatal event) makes its node's events due now, and a small pool of
//! `scrape.notice_concurrency` workers reads them with the scrape's own bounded path
//! ([`super::Scraper::read_events_bounded`]: events and cursor stored in one transaction, each
//! event judged once, remediation woken), from the node's stored cursor.
//!
//! Bounded and coalescing: the due reads are a map keyed by node (at most one entry per
//! scraped node, holding the newest `seq` notified), so a node notified 100 times before it
//! is read is read once, and a rack of 500 nodes notifying at once is 500 reads, never more
//! than `notice_concurrency` at a time. A node's event read never runs twice at once: a
//! scrape and a notice worker take the same per-node turn ([`Urgent::begin`]); a notice that
//! comes during a read makes one more read after it. A notice whose `seq` is stored already
//! (same agent run, cursor at or past it) reads nothing. A lost notice costs nothing: the
//! next scrape reads the events, as before notices existed.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Condvar, Mutex, MutexGuard};

use gpuwarden_wire::notice::UrgentNotice;

use crate::metrics::Metrics;
use crate::scrape::fleet::Fleet;

/// What a notice asks for: the events of agent run `instance` up to at least `seq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Wanted {
    pub(super) instance: String,
    pub(super) seq: u64,
}

#[derive(Debug, Default)]
struct State {
    /// Per node, the read due (newest notice).
    pending: HashMap<String, Wanted>,
    /// Nodes with a due read and no read under way, oldest first.
    order: VecDeque<String>,
    /// Nodes whose events are being read now (by a scrape or a notice worker).
    reading: HashSet<String>,
    stop: bool,
}

/// How a notice was taken ([`Urgent::notice`]); the `result` of `gpuwarden_cp_notices_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeOutcome {
    /// A read of the node's events is now due.
    Accepted,
    /// A read was due already; it serves this notice too.
    Coalesced,
    /// The events up to the notice's `seq` are stored already: nothing to read.
    Stale,
}

impl NoticeOutcome {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            NoticeOutcome::Accepted => "accepted",
            NoticeOutcome::Coalesced => "coalesced",
            NoticeOutcome::Stale => "stale",
        }
    }
}

/// The due reads and the per-node turns; shared by the scrape workers, the notice workers
/// and the API handler.
#[derive(Debug)]
pub struct Urgent {
    workers: usize,
    state: Mutex<State>,
    wake: Condvar,
}

impl Default for Urgent {
    /// Eight notice workers (the default of `scrape.notice_concurrency`).
    fn default() -> Self {
        Urgent::new(8)
    }
}

impl Urgent {
    /// Due reads run on `workers` threads (at least one) once the scraper is spawned.
    pub fn new(workers: usize) -> Self {
        Urgent {
            workers: workers.max(1),
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
        }
    }

    /// The number of notice workers.
    pub fn workers(&self) -> usize {
        self.workers
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes node `id`'s notice (what the HTTP handler does after authenticating): `None`
    /// when the node is not scraped (unknown, deleted, no address: the caller answers 404);
    /// otherwise the outcome, counted in `gpuwarden_cp_notices_total`. Never blocks on I/O.
    pub fn notice(
        &self,
        fleet: &Fleet,
        metrics: &Metrics,
        id: &str,
        n: &UrgentNotice,
    ) -> Option<NoticeOutcome> {
        let t = fleet.get(id)?;
        let outcome = if stored(
            t.agent_instance.as_deref(),
            t.event_cursor,
            &n.instance,
            n.seq,
        ) {
            NoticeOutcome::Stale
        } else {
            self.mark(
                id,
                Wanted {
                    instance: n.instance.clone(),
                    seq: n.seq,
                },
            )
        };
        metrics.notices.with_label_values(&[outcome.as_str()]).inc();
        Some(outcome)
    }

    pub(super) fn mark(&self, id: &str, want: Wanted) -> NoticeOutcome {
        let mut s = self.lock();
        if let Some(w) = s.pending.get_mut(id) {
            if w.instance != want.instance || want.seq > w.seq {
                *w = want;
            }
            return NoticeOutcome::Coalesced;
        }
        s.pending.insert(id.to_string(), want);
        // A read under way queues it again when it ends.
        if !s.reading.contains(id) {
            s.order.push_back(id.to_string());
            self.wake.notify_one();
        }
        NoticeOutcome::Accepted
    }

    /// Takes node `id`'s read turn: false when a read of its events is under way already.
    pub fn begin(&self, id: &str) -> bool {
        self.lock().reading.insert(id.to_string())
    }

    /// Gives node `id`'s read turn back; a notice that came meanwhile is due now.
    pub fn end(&self, id: &str) {
        let mut s = self.lock();
        s.reading.remove(id);
        if s.pending.contains_key(id) && !s.order.iter().any(|o| o == id) {
            s.order.push_back(id.to_string());
            self.wake.notify_one();
        }
    }

    /// Nodes with a read due (for tests and the benchmark).
    pub fn due(&self) -> usize {
        self.lock().pending.len()
    }

    /// The next due node whose turn is free, with its turn taken; waits; `None` once stopped.
    pub(super) fn next(&self) -> Option<(String, Wanted)> {
        let mut s = self.lock();
        loop {
            if s.stop {
                return None;
            }
            while let Some(id) = s.order.pop_front() {
                // A scrape took the turn after the notice came: `end` queues it again.
                if s.reading.contains(&id) {
                    continue;
                }
                if let Some(w) = s.pending.remove(&id) {
                    s.reading.insert(id.clone());
                    return Some((id, w));
                }
            }
            s = self.wake.wait(s).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Ends the notice workers after the reads under way.
    pub fn stop(&self) {
        self.lock().stop = true;
        self.wake.notify_all();
    }
}

/// Whether events up to `seq` of agent run `instance` are stored, given the node's stored
/// run and cursor.
pub(super) fn stored(known: Option<&str>, cursor: i64, instance: &str, seq: u64) -> bool {
    known == Some(instance) && i64::try_from(seq).is_ok_and(|s| s <= cursor)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn want(seq: u64) -> Wanted {
        Wanted {
            instance: "run".into(),
            seq,
        }
    }

    #[test]
    fn notices_for_one_node_are_one_read_with_the_newest_seq() {
        let u = Urgent::new(2);
        assert_eq!(u.mark("a", want(3)), NoticeOutcome::Accepted);
        for seq in [1, 9, 4] {
            assert_eq!(u.mark("a", want(seq)), NoticeOutcome::Coalesced);
        }
        assert_eq!(u.mark("b", want(1)), NoticeOutcome::Accepted);
        assert_eq!(u.due(), 2);
        assert_eq!(u.next(), Some(("a".into(), want(9))));
        assert_eq!(u.next(), Some(("b".into(), want(1))));
        assert_eq!(u.due(), 0);
    }

    #[test]
    fn a_node_is_never_read_twice_at_once_and_a_notice_during_a_read_reads_again_after() {
        let u = Urgent::new(1);
        assert!(u.begin("a"), "a scrape reads node a");
        assert!(!u.begin("a"), "nothing else may");
        assert_eq!(u.mark("a", want(5)), NoticeOutcome::Accepted);
        u.stop();
        assert_eq!(u.next(), None, "not handed out while the scrape reads");
        let u = Urgent::new(1);
        assert!(u.begin("a"));
        u.mark("a", want(5));
        u.end("a");
        assert_eq!(
            u.next(),
            Some(("a".into(), want(5))),
            "due once the scrape ended"
        );
        assert!(!u.begin("a"), "the worker holds the turn");
        u.end("a");
        assert!(u.begin("a"));
    }

    #[test]
    fn a_seq_stored_for_the_same_run_is_stale_and_another_run_is_not() {
        assert!(stored(Some("run"), 7, "run", 7));
        assert!(stored(Some("run"), 7, "run", 2));
        assert!(!stored(Some("run"), 7, "run", 8));
        assert!(!stored(Some("old"), 7, "run", 2), "a restarted agent");
        assert!(!stored(None, 0, "run", 1));
    }
}
