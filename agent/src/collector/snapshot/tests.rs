use std::sync::{Arc, Mutex, RwLock};

use super::*;
use crate::backend::fake::{FakeBackend, Fault};
use crate::collector::{Collector, CollectorSettings, SharedSnapshot};
use crate::events::EventLog;

fn collector(fake: &Arc<FakeBackend>) -> (Collector, SharedSnapshot) {
    let shared: SharedSnapshot = Arc::new(RwLock::new(Arc::default()));
    let c = Collector::new(
        CollectorSettings::defaults("n1"),
        Arc::new(Arc::clone(fake)),
        Arc::new(Mutex::new(EventLog::new(10, "t".into()))),
        Arc::clone(&shared),
    )
    .unwrap();
    (c, shared)
}

fn latest(shared: &SharedSnapshot) -> Arc<Snapshot> {
    Arc::clone(&shared.read().unwrap())
}

/// The body without the lines that change between two renders of one collection (the
/// process's own memory and CPU are read when the body is rendered).
fn stable(body: &[u8]) -> String {
    String::from_utf8_lossy(body)
        .lines()
        .filter(|l| !l.starts_with("process_"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn a_collection_is_rendered_only_when_first_asked_for_then_served_as_is() {
    let fake = Arc::new(FakeBackend::new(2, "Fake", 1));
    let (mut c, shared) = collector(&fake);
    c.collect();
    let snap = latest(&shared);
    assert!(!snap.rendered(), "rendered at collection time");
    let first = snap.body();
    assert!(snap.rendered());
    let again = snap.body();
    assert_eq!(
        first.as_ptr(),
        again.as_ptr(),
        "a second scrape renders again instead of sending the same bytes"
    );
    assert!(
        snap.body.gzip.get().is_none(),
        "gzip made though nobody asked for it"
    );
    let gz = snap.body_gzip();
    assert_eq!(gz.as_ptr(), snap.body_gzip().as_ptr());
    let mut plain = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut plain).unwrap();
    assert_eq!(plain, first, "gzip of another body");
}

#[test]
fn a_body_rendered_late_shows_the_latest_collection_and_equals_an_eager_render() {
    let fake = Arc::new(FakeBackend::new(2, "Fake", 1));
    let (mut c, shared) = collector(&fake);
    c.collect();
    let old = latest(&shared);
    fake.inject(1, Fault::Temperature(77.0)).unwrap();
    c.collect();
    let new = latest(&shared);
    // Rendered now, after the collection that saw 77 °C and in the state it froze.
    let eager = c.render_body();
    let body = stable(&new.body());
    assert!(
        body.contains("gpuwarden_gpu_temperature_celsius{gpu=\"1\"") && body.contains(" 77\n"),
        "{body}"
    );
    assert_eq!(
        body,
        stable(eager.as_bytes()),
        "lazy and eager renders differ"
    );
    // The earlier snapshot, still held by a scrape in flight, renders its own collection.
    let before = stable(&old.body());
    assert!(!before.contains(" 77\n"), "{before}");
}

#[test]
fn a_snapshot_renders_what_was_frozen_not_what_came_later() {
    let fake = Arc::new(FakeBackend::new(1, "Fake", 1));
    let (mut c, shared) = collector(&fake);
    c.collect();
    let snap = latest(&shared);
    // The collector moves on (a GPU heats up) before anyone scrapes the first snapshot.
    fake.inject(0, Fault::Temperature(95.0)).unwrap();
    c.collect();
    let body = stable(&snap.body());
    assert!(!body.contains(" 95\n"), "{body}");
    assert!(stable(&latest(&shared).body()).contains(" 95\n"));
}

#[test]
fn an_empty_snapshot_has_an_empty_body() {
    let s = Snapshot::default();
    assert!(s.body().is_empty());
    assert!(!s.body_gzip().is_empty(), "still valid gzip");
}

/// Node metrics are read by the render of a collection a scrape asks for, not by every
/// collection (two in three were never scraped at 5 s collections, 15 s scrapes).
#[test]
fn node_metrics_are_read_when_a_body_is_rendered_not_at_every_collection() {
    let fake = Arc::new(FakeBackend::new(1, "Fake", 1));
    let shared: SharedSnapshot = Arc::new(RwLock::new(Arc::default()));
    let mut settings = CollectorSettings::defaults("n1");
    settings.system = true;
    let mut c = Collector::new(
        settings,
        Arc::new(Arc::clone(&fake)),
        Arc::new(Mutex::new(EventLog::new(10, "t".into()))),
        Arc::clone(&shared),
    )
    .unwrap();
    let reads = || {
        latest(&shared)
            .body
            .frozen
            .as_ref()
            .unwrap()
            .system
            .as_ref()
            .unwrap()
            .lock()
            .unwrap()
            .reads()
    };
    for _ in 0..3 {
        c.collect();
    }
    assert_eq!(reads(), 0, "collections nobody scraped read the node");
    let body = String::from_utf8_lossy(&latest(&shared).body()).into_owned();
    assert_eq!(reads(), 1);
    assert!(body.contains("gpuwarden_node_memory"), "{body}");
    assert!(
        body.contains("collector_duration_seconds{collector=\"system\"}"),
        "{body}"
    );
    latest(&shared).body_gzip();
    latest(&shared).body();
    assert_eq!(
        reads(),
        1,
        "a second scrape of one collection read the node again"
    );
}
