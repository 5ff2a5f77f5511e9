//! Stored events keep every field a rule reads: the policy simulation, which judges stored
//! events, sees the same input the live evaluation saw, field by field.

use gpuwarden_controlplane::judge::policy::EventInput;
use gpuwarden_controlplane::judge::simulate::event_input;
use gpuwarden_controlplane::scrape::new_event;
use gpuwarden_controlplane::store::rows::NodeRow;
use gpuwarden_controlplane::store::{Backend, Store, StoreOptions};
use gpuwarden_wire::event::{Action, EventKind, EventsPage, HealthEvent, Severity};

use crate::util::{sqlite_store, Postgres, TempDir};

fn live_events() -> Vec<HealthEvent> {
    let full = HealthEvent {
        seq: 41,
        time: "2026-11-30T05:00:00Z".into(),
        gpu: Some(3),
        uuid: Some("GPU-3".into()),
        kind: EventKind::Xid,
        code: Some(145),
        message: "XID 145: NVLink5 RLW error (RLW_RXPIPE Nonfatal XC0 i0 Link 13 (0x0409a0c2 0x00000008))".into(),
        severity: Severity::Warning,
        action: Some(Action::Ignore),
        source: "kmsg".into(),
    };
    // A node-level plugin event: no GPU, no UUID, no code, no action.
    let bare = HealthEvent {
        seq: 42,
        gpu: None,
        uuid: None,
        kind: EventKind::Plugin,
        code: None,
        message: "nccl-allreduce: degraded".into(),
        severity: Severity::Warning,
        action: None,
        source: "plugin:nccl".into(),
        ..full.clone()
    };
    vec![full, bare]
}

fn round_trip(s: &Store) {
    let node = NodeRow::fresh(
        "node-1".into(),
        "n1",
        "default",
        &Default::default(),
        None,
        gpuwarden_controlplane::model::Status::Active,
        gpuwarden_controlplane::model::Source::Registered,
        1_000,
    );
    s.upsert_static(&node).unwrap();
    let events = live_events();
    let page = EventsPage {
        events: events.clone(),
        next: 42,
        instance: "run-a".into(),
        truncated: false,
        more: false,
    };
    let rows: Vec<_> = events
        .iter()
        .map(|e| new_event("node-1", &page, e, 1_000))
        .collect();
    assert_eq!(s.ingest_events("node-1", "run-a", 42, &rows).unwrap(), 2);
    let stored = s.events_between(0, i64::MAX, 10).unwrap();
    assert_eq!(stored.len(), 2);
    for (live, row) in events.iter().zip(&stored) {
        let (a, b) = (EventInput::from_event(live), event_input(row));
        // Field by field, so a field the store drops names itself.
        assert_eq!(a.seq, b.seq);
        assert_eq!(a.kind, b.kind);
        assert_eq!(a.code, b.code);
        assert_eq!(a.gpu, b.gpu);
        assert_eq!(a.uuid, b.uuid);
        assert_eq!(a.message, b.message);
        assert_eq!(a.severity, b.severity);
        assert_eq!(a.action, b.action);
        assert_eq!(a.source, b.source, "event.source survives the store");
        assert_eq!(a, b, "and nothing else differs");
    }
    // A rule on event.source matches in the simulation as it did live.
    let p = gpuwarden_controlplane::judge::policy::Policy::parse(
        "[[rule]]\nname = \"kmsg\"\nscope = \"event\"\nwhen = 'event.source == \"kmsg\"'\nverdict = \"degraded\"\n",
    )
    .unwrap();
    let n = gpuwarden_controlplane::judge::policy::NodeInput::default();
    let matched = |i: &EventInput| !p.eval_event(i, &n).matches.is_empty();
    assert!(matched(&EventInput::from_event(&events[0])));
    assert!(matched(&event_input(&stored[0])));
}

#[test]
fn sqlite_events_keep_every_field_rules_read() {
    let dir = TempDir::new("store-events");
    let s = sqlite_store(&dir);
    assert_eq!(s.backend(), Backend::Sqlite);
    round_trip(&s);
}

#[test]
fn postgres_events_keep_every_field_rules_read() {
    let Some(pg) = Postgres::start() else { return };
    let s = Store::open(&pg.database("gw_events"), &StoreOptions::default()).unwrap();
    round_trip(&s);
}
