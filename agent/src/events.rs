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
mod tests;
