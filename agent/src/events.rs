//! The health event log: a bounded ring with a monotonically increasing sequence, read by
//! `GET /v1/events?after=SEQ`, and the de-duplication of XIDs reported by both NVML and the
//! kernel log.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use gpuwarden_wire::{EventKind, EventsPage, HealthEvent, Severity};

use crate::notify::Notifier;

/// Longest event message kept in the log, in bytes; a longer one (from any source: a
/// kernel-log line, a plugin's finding, a backend) is cut at a character boundary and ends
/// with [`CUT_MARKER`].
pub const MAX_MESSAGE_BYTES: usize = 1024;
/// Longest `uuid` and `source` kept, in bytes (both are short in practice).
pub const MAX_LABEL_BYTES: usize = 256;
/// What ends a message that was cut.
pub const CUT_MARKER: &str = " …[truncated]";
/// Largest page of `GET /v1/events` in bytes of JSON (about): a page ends before the event
/// that would take it past this, whatever its `limit`, so a reader's time and memory per
/// page stay bounded. A page always holds at least one event when one is due.
pub const PAGE_BUDGET_BYTES: usize = 512 * 1024;

/// `s`, cut to at most `max` bytes (marker included) at a character boundary.
fn cut(mut s: String, max: usize) -> String {
    if s.len() <= max {
        return s;
    }
    let mut end = max.saturating_sub(CUT_MARKER.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    s.push_str(CUT_MARKER);
    s
}

/// About the size of an event in JSON, in bytes: its strings plus the fixed fields (names,
/// numbers, time). Escapes can make it larger; the budget is a bound on work, not a wire limit.
fn json_size(e: &HealthEvent) -> usize {
    200 + e.message.len() + e.uuid.as_ref().map_or(0, String::len) + e.source.len()
}

/// A new event before it gets its sequence number and time.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// GPU index (None: node-level).
    pub gpu: Option<u32>,
    /// GPU UUID.
    pub uuid: Option<String>,
    /// Kind.
    pub kind: EventKind,
    /// Kind-specific code.
    pub code: Option<u64>,
    /// Description.
    pub message: String,
    /// Severity.
    pub severity: Severity,
    /// Recommended action.
    pub action: Option<gpuwarden_wire::Action>,
    /// Where it came from.
    pub source: String,
}

/// The bounded event ring.
#[derive(Debug)]
pub struct EventLog {
    instance: String,
    capacity: usize,
    ring: VecDeque<HealthEvent>,
    last_seq: u64,
    /// Count by (kind, severity) since start, for `gpuwarden_agent_events_total`.
    counts: BTreeMap<(&'static str, &'static str), u64>,
    /// Told the sequence of each fatal event (see [`crate::notify`]).
    urgent: Option<Arc<Notifier>>,
}

impl EventLog {
    /// An empty log holding at most `capacity` events; `instance` identifies this agent run.
    pub fn new(capacity: usize, instance: String) -> Self {
        EventLog {
            instance,
            capacity: capacity.max(1),
            ring: VecDeque::new(),
            last_seq: 0,
            counts: BTreeMap::new(),
            urgent: None,
        }
    }

    /// From now on, each event of severity `fatal` (XIDs, critical temperatures, unhealthy
    /// plugin verdicts: every source records through [`EventLog::push`]) is also handed to
    /// `notifier`, which tells the control plane at once.
    pub fn notify_urgent(&mut self, notifier: Arc<Notifier>) {
        self.urgent = Some(notifier);
    }

    /// Appends an event, evicting the oldest when full; returns its sequence number.
    pub fn push(&mut self, e: NewEvent, at: SystemTime) -> u64 {
        self.last_seq += 1;
        if e.severity == Severity::Fatal {
            if let Some(n) = &self.urgent {
                n.urgent(self.last_seq);
            }
        }
        *self
            .counts
            .entry((e.kind.as_str(), e.severity.as_str()))
            .or_default() += 1;
        if self.ring.len() == self.capacity {
            self.ring.pop_front();
        }
        self.ring.push_back(HealthEvent {
            seq: self.last_seq,
            time: humantime::format_rfc3339_millis(at).to_string(),
            gpu: e.gpu,
            uuid: e.uuid.map(|u| cut(u, MAX_LABEL_BYTES)),
            kind: e.kind,
            code: e.code,
            message: cut(e.message, MAX_MESSAGE_BYTES),
            severity: e.severity,
            action: e.action,
            source: cut(e.source, MAX_LABEL_BYTES),
        });
        self.last_seq
    }

    /// Events with `seq > after`, oldest first: at most `limit`, and no more than fit in
    /// [`PAGE_BUDGET_BYTES`] (at least one). `more` says whether events after the page's
    /// last one are held.
    pub fn page(&self, after: u64, limit: usize) -> EventsPage {
        self.page_within(after, limit, PAGE_BUDGET_BYTES)
    }

    fn page_within(&self, after: u64, limit: usize, budget: usize) -> EventsPage {
        // A cursor beyond our last sequence comes from an earlier run of the agent (whose
        // `instance` differed): start over from our first event so nothing is lost.
        let after = if after > self.last_seq { 0 } else { after };
        let first = self.ring.front().map_or(self.last_seq + 1, |e| e.seq);
        // Events after the cursor were evicted when the oldest held is past `after + 1`.
        let truncated = after < self.last_seq && first > after + 1;
        let start = after.saturating_sub(first - 1) as usize;
        let mut bytes = 0;
        let events: Vec<HealthEvent> = self
            .ring
            .iter()
            .skip(start.min(self.ring.len()))
            .take(limit)
            .take_while(|e| {
                let first = bytes == 0;
                bytes += json_size(e);
                first || bytes <= budget
            })
            .cloned()
            .collect();
        let next = events.last().map_or(after, |e| e.seq);
        EventsPage {
            events,
            next,
            instance: self.instance.clone(),
            truncated,
            more: next < self.last_seq,
        }
    }

    /// The newest sequence number (0 before the first event).
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// Events recorded since start by (kind, severity).
    pub fn counts(&self) -> &BTreeMap<(&'static str, &'static str), u64> {
        &self.counts
    }

    /// A `/metrics` body that counts the events up to `seq` is published: an urgent notice
    /// for them may go now, since the control plane's scrape will see what they changed.
    pub fn published(&self, seq: u64) {
        if let Some(n) = &self.urgent {
            n.published(seq);
        }
    }
}

/// Which reporter saw an XID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XidSource {
    /// NVML's event set (or the fake backend standing in for it).
    Nvml,
    /// The kernel log.
    Kmsg,
}

#[derive(Debug)]
struct Seen {
    at: Instant,
    gpu: Option<u32>,
    code: u32,
    source: XidSource,
    matched: bool,
}

/// Makes an XID seen by both NVML and the kernel log count once.
///
/// Each report from one source can absorb at most one report of the same GPU and code from
/// the other source within `window`; two reports from the same source are two XIDs.
#[derive(Debug)]
pub struct XidDedup {
    window: Duration,
    recent: VecDeque<Seen>,
}

impl XidDedup {
    /// A de-duplicator that pairs reports at most `window` apart.
    pub fn new(window: Duration) -> Self {
        XidDedup {
            window,
            recent: VecDeque::new(),
        }
    }

    /// True when this report is a new XID; false when it duplicates the other source's.
    pub fn admit(&mut self, now: Instant, gpu: Option<u32>, code: u32, source: XidSource) -> bool {
        while self
            .recent
            .front()
            .is_some_and(|s| now.duration_since(s.at) > self.window)
        {
            self.recent.pop_front();
        }
        if let Some(twin) = self.recent.iter_mut().find(|s| {
            !s.matched
                && s.source != source
                && s.code == code
                && (s.gpu == gpu || s.gpu.is_none() || gpu.is_none())
        }) {
            twin.matched = true;
            return false;
        }
        self.recent.push_back(Seen {
            at: now,
            gpu,
            code,
            source,
            matched: false,
        });
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(code: u64) -> NewEvent {
        NewEvent {
            gpu: Some(0),
            uuid: None,
            kind: EventKind::Xid,
            code: Some(code),
            message: String::new(),
            severity: Severity::Fatal,
            action: None,
            source: "test".into(),
        }
    }

    #[test]
    fn page_returns_events_after_the_cursor_and_the_next_cursor() {
        let mut log = EventLog::new(10, "run".into());
        for c in 1..=5 {
            log.push(ev(c), SystemTime::UNIX_EPOCH);
        }
        let p = log.page(2, 100);
        assert_eq!(
            p.events.iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![3, 4, 5]
        );
        assert_eq!(p.next, 5);
        assert!(!p.truncated);
        let p = log.page(5, 100);
        assert!(p.events.is_empty());
        assert_eq!(p.next, 5);
        let p = log.page(0, 2);
        assert_eq!(
            p.events.iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![1, 2]
        );
        assert_eq!(p.next, 2);
        assert_eq!(p.events[0].time, "1970-01-01T00:00:00.000Z");
    }

    /// Regression (hardening follow-up): a 50 MB message made `/v1/events` a 52 MB page
    /// that took 5.5 s, and the control plane's read timed out on every scrape.
    #[test]
    fn messages_are_capped_whatever_their_source() {
        let mut log = EventLog::new(10, "run".into());
        for (source, message) in [
            ("kmsg", "é".repeat(3_000_000)),
            ("plugin:p", "x".repeat(MAX_MESSAGE_BYTES + 1)),
            ("nvml", "x".repeat(MAX_MESSAGE_BYTES)),
        ] {
            let mut e = ev(1);
            e.source = source.into();
            e.message = message;
            log.push(e, SystemTime::UNIX_EPOCH);
        }
        let mut e = ev(1);
        e.source = "s".repeat(100_000);
        log.push(e, SystemTime::UNIX_EPOCH);
        let p = log.page(0, 100);
        for e in &p.events[..2] {
            assert!(e.message.len() <= MAX_MESSAGE_BYTES, "{}", e.message.len());
            assert!(e.message.ends_with(CUT_MARKER), "{}", e.source);
        }
        assert_eq!(
            p.events[2].message,
            "x".repeat(MAX_MESSAGE_BYTES),
            "at the cap: whole"
        );
        assert!(p.events[3].source.len() <= MAX_LABEL_BYTES);
    }

    #[test]
    fn a_page_has_a_byte_budget_and_says_there_is_more() {
        let mut log = EventLog::new(100, "run".into());
        for c in 1..=50 {
            let mut e = ev(c);
            e.message = "m".repeat(MAX_MESSAGE_BYTES);
            log.push(e, SystemTime::UNIX_EPOCH);
        }
        let per_event = json_size(&log.page(0, 1).events[0]);
        let (mut after, mut seen) = (0, Vec::new());
        loop {
            let p = log.page_within(after, 1000, 10 * per_event);
            assert!(p.events.len() <= 10, "{}", p.events.len());
            seen.extend(p.events.iter().map(|e| e.seq));
            after = p.next;
            if !p.more {
                break;
            }
        }
        assert_eq!(
            seen,
            (1..=50).collect::<Vec<_>>(),
            "every event, once, in order"
        );
        // One event larger than the budget still comes, alone.
        let p = log.page_within(0, 1000, 1);
        assert_eq!(p.events.len(), 1);
        assert!(p.more);
        // The serialized page stays within the budget (the estimate is not too low).
        let full = log.page(0, 10_000);
        assert!(serde_json::to_vec(&full).unwrap().len() <= PAGE_BUDGET_BYTES + per_event);
    }

    #[test]
    fn a_full_ring_evicts_the_oldest_and_says_the_reader_missed_some() {
        let mut log = EventLog::new(3, "run".into());
        for c in 1..=5 {
            log.push(ev(c), SystemTime::UNIX_EPOCH);
        }
        let p = log.page(0, 100);
        assert_eq!(
            p.events.iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![3, 4, 5]
        );
        assert!(p.truncated);
        assert!(!log.page(2, 100).truncated);
        assert_eq!(log.counts()[&("xid", "fatal")], 5);
    }

    #[test]
    fn a_cursor_from_an_earlier_agent_run_starts_over_so_nothing_is_lost() {
        let mut log = EventLog::new(3, "run".into());
        log.push(ev(1), SystemTime::UNIX_EPOCH);
        let p = log.page(500, 100);
        assert_eq!(p.events.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1]);
        assert_eq!(p.next, 1);
    }

    #[test]
    fn the_same_xid_from_both_sources_counts_once() {
        let t0 = Instant::now();
        let mut d = XidDedup::new(Duration::from_secs(10));
        assert!(d.admit(t0, Some(0), 79, XidSource::Nvml));
        assert!(!d.admit(t0 + Duration::from_secs(1), Some(0), 79, XidSource::Kmsg));
        // A second XID 79 is new again, from either source.
        assert!(d.admit(t0 + Duration::from_secs(2), Some(0), 79, XidSource::Kmsg));
        assert!(d.admit(t0 + Duration::from_secs(2), Some(0), 79, XidSource::Kmsg));
        // Other GPU or other code: new.
        assert!(d.admit(t0 + Duration::from_secs(3), Some(1), 79, XidSource::Nvml));
        assert!(d.admit(t0 + Duration::from_secs(3), Some(0), 13, XidSource::Nvml));
    }

    #[test]
    fn reports_further_apart_than_the_window_are_two_xids() {
        let t0 = Instant::now();
        let mut d = XidDedup::new(Duration::from_secs(10));
        assert!(d.admit(t0, Some(0), 79, XidSource::Kmsg));
        assert!(d.admit(t0 + Duration::from_secs(11), Some(0), 79, XidSource::Nvml));
    }
}
