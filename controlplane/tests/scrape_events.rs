//! Reading agents' `/v1/events` bounded and making progress: an answer too large for the
//! byte cap is read again in smaller pages; a page that never fits is reported as stuck
//! (metric and error), and an event that alone is over the cap is skipped, so later events
//! are still stored.

use std::sync::{Arc, Mutex};

use gpuwarden_controlplane::clock::rfc3339;
use gpuwarden_controlplane::scrape::{Fetch, ScrapeError, STUCK_AFTER};
use gpuwarden_wire::event::{EventsPage, HealthEvent};

use crate::scrape::{rig, T0};
use crate::util::agent_body;

/// An agent with `total` events (seq 1..=total) whose answers are over the byte cap when
/// they hold more than `fits` events, or hold event `huge`.
struct Agent {
    total: u64,
    fits: usize,
    huge: Option<u64>,
    /// Bytes of `é` appended to each message.
    pad: usize,
    asked: Mutex<Vec<(i64, usize)>>,
}

impl Fetch for Agent {
    fn metrics(&self, _: &str, body: &mut Vec<u8>) -> Result<(), ScrapeError> {
        body.clear();
        body.extend_from_slice(agent_body(2, 0).as_bytes());
        Ok(())
    }
    fn events(&self, _: &str, after: i64, limit: usize) -> Result<EventsPage, ScrapeError> {
        self.asked.lock().unwrap().push((after, limit));
        let after = u64::try_from(after).unwrap();
        let seqs: Vec<u64> = (after + 1..=self.total).take(limit).collect();
        if seqs.len() > self.fits || seqs.iter().any(|s| Some(*s) == self.huge) {
            return Err(ScrapeError::EventsTooLarge(4 << 20));
        }
        let events = seqs
            .iter()
            .map(|&seq| {
                serde_json::from_value::<HealthEvent>(serde_json::json!({
                    "seq": seq, "time": rfc3339(T0), "gpu": 0, "uuid": "GPU-0",
                    "kind": "thermal", "code": null, "message": format!("event {seq}{}", "é".repeat(self.pad / 2)),
                    "severity": "info", "action": "ignore", "source": "nvml"}))
                .unwrap()
            })
            .collect();
        Ok(EventsPage {
            events,
            next: seqs.last().copied().unwrap_or(after),
            instance: "i1".into(),
            truncated: false,
            more: false,
        })
    }
}

fn failures(r: &crate::scrape::Rig, reason: &str) -> u64 {
    let text = r.scraper.metrics.render();
    let key = format!("gpuwarden_cp_event_read_failures_total{{reason=\"{reason}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&key))
        .unwrap()
        .parse()
        .unwrap()
}

fn stored(r: &crate::scrape::Rig) -> Vec<String> {
    r.store
        .events_between(0, i64::MAX, 10_000)
        .unwrap()
        .into_iter()
        .map(|e| e.message)
        .collect()
}

#[test]
fn an_answer_over_the_byte_cap_is_read_again_in_smaller_pages() {
    let mut r = rig(std::time::Duration::from_secs(2), 1 << 20, 10_000);
    let agent = Arc::new(Agent {
        total: 300,
        fits: 100,
        huge: None,
        pad: 0,
        asked: Mutex::default(),
    });
    r.scraper.fetch = agent.clone();
    r.add("n", "http://agent");
    for _ in 0..6 {
        r.scrape("n");
        r.clock.advance(15_000);
    }
    assert_eq!(stored(&r).len(), 300, "every event, in smaller pages");
    let asked = agent.asked.lock().unwrap().clone();
    assert_eq!(asked[0], (0, 1000), "the first ask is the full page");
    assert!(asked.iter().all(|(_, l)| *l <= 1000 && *l >= 1));
    assert!(failures(&r, "too_large") >= 1);
    assert_eq!(failures(&r, "stuck"), 0);
    assert!(
        asked.iter().any(|(_, l)| *l <= 100),
        "it shrank to a page that fits: {asked:?}"
    );
}

#[test]
fn one_event_that_never_fits_is_reported_stuck_then_skipped_and_later_events_are_stored() {
    let mut r = rig(std::time::Duration::from_secs(2), 1 << 20, 10_000);
    r.scraper.fetch = Arc::new(Agent {
        total: 8,
        fits: 1000,
        huge: Some(3),
        pad: 0,
        asked: Mutex::default(),
    });
    r.add("n", "http://agent");
    // Halving 1000 down to 1 takes 10 reads, then STUCK_AFTER more at the page of one.
    for _ in 0..(10 + 2 * STUCK_AFTER) {
        r.scrape("n");
        r.clock.advance(15_000);
    }
    assert!(failures(&r, "stuck") >= 1, "the stuck read is counted");
    assert_eq!(failures(&r, "skipped"), 1, "only the event that never fits");
    let got = stored(&r);
    assert!(got.contains(&"event 2".to_string()), "{got:?}");
    assert!(!got.contains(&"event 3".to_string()), "{got:?}");
    assert!(
        got.contains(&"event 8".to_string()),
        "later events flow: {got:?}"
    );
    assert!(r
        .scraper
        .metrics
        .render()
        .contains("gpuwarden_cp_events_lost_total 1"));
}

#[test]
fn event_messages_are_stored_within_a_bound() {
    let mut r = rig(std::time::Duration::from_secs(2), 1 << 20, 10_000);
    r.scraper.fetch = Arc::new(Agent {
        total: 2,
        fits: 1000,
        huge: None,
        pad: 100_000,
        asked: Mutex::default(),
    });
    r.add("n", "http://agent");
    r.scrape("n");
    let got = stored(&r);
    assert_eq!(got.len(), 2);
    for m in got {
        assert!(
            m.len() <= gpuwarden_controlplane::scrape::MAX_EVENT_MESSAGE_BYTES,
            "{}",
            m.len()
        );
        assert!(m.starts_with("event ") && m.ends_with('…'));
    }
}
