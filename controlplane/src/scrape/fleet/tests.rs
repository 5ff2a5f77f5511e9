//! The fleet's scrape bookkeeping.

use super::*;
use crate::model::Source;

/// A notice's scrape never runs beside another scrape of the same node, and leaves the
/// node's phase where it was.
#[test]
fn a_claimed_node_is_not_scraped_twice_at_once_and_keeps_its_phase() {
    let fleet = Fleet::new(FleetSettings {
        interval: Duration::from_secs(60),
        offline_after: 3,
        replica: "r".into(),
        health: HealthSettings::default(),
    });
    let row = NodeRow::fresh(
        "node-1".into(),
        "n1",
        "default",
        &Default::default(),
        Some("http://127.0.0.1:9".into()),
        Status::Active,
        Source::Static,
        0,
    );
    fleet.sync(&row, 0);
    let next_at = fleet.get("node-1").unwrap().next_at;
    let job = fleet.claim("node-1").expect("idle node");
    assert_eq!(job.address, "http://127.0.0.1:9");
    assert!(fleet.claim("node-1").is_none(), "a scrape is in flight");
    assert!(
        fleet.due(i64::MAX / 2).is_empty(),
        "nor scheduled beside it"
    );
    fleet.failed("node-1", "refused".into(), Duration::ZERO, 1);
    assert_eq!(fleet.get("node-1").unwrap().next_at, next_at);
    assert!(
        fleet.claim("node-1").is_some(),
        "free again after its outcome"
    );
    assert!(fleet.claim("node-2").is_none(), "unknown node");
}
