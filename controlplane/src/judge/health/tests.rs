//! The node health state machine, with time driven by hand.

use std::time::Duration;

use super::*;

const T0: i64 = 1_795_000_000_000;
const S: i64 = 1_000;

fn m(rule: &str, verdict: Verdict, gpu: Option<u32>, hold_s: u64) -> Match {
    Match {
        rule: rule.into(),
        verdict,
        action: None,
        gpu,
        detail: format!("{rule} detail"),
        hold: (hold_s > 0).then(|| Duration::from_secs(hold_s)),
    }
}

fn node() -> NodeHealth {
    NodeHealth::new(HealthSettings {
        degraded_clear_after: Duration::from_secs(300),
    })
}

#[test]
fn a_first_observation_without_matches_is_healthy() {
    let mut n = node();
    assert_eq!(n.health(), Health::Unknown);
    let c = n.observe(&[], T0).unwrap();
    assert_eq!(
        (c.from, c.to, c.reason.as_str()),
        (Health::Unknown, Health::Healthy, "no rule matches")
    );
    assert_eq!(n.observe(&[], T0 + S), None, "no change, no transition");
}

#[test]
fn a_fatal_event_makes_the_node_unhealthy_until_an_operator_clears_it() {
    let mut n = node();
    n.observe(&[], T0);
    let c = n
        .event(
            &[m("fatal-xid", Verdict::Unhealthy, Some(3), 0)],
            T0 + S,
            T0 + S,
        )
        .unwrap();
    assert_eq!(
        (c.to, c.rule.as_deref()),
        (Health::Unhealthy, Some("fatal-xid"))
    );
    assert_eq!(c.reason, "rule fatal-xid: fatal-xid detail");
    // An hour of clean observations later, still unhealthy: it sticks.
    for i in 1..=240 {
        assert_eq!(n.observe(&[], T0 + i * 15 * S), None);
    }
    assert_eq!(n.health(), Health::Unhealthy);
    assert_eq!(n.sticky().unwrap().gpu, Some(3));
    // Cleared well within the degraded clearing time: the reason says what happened.
    let c = n.clear("admin:1234", T0 + 45 * S).unwrap();
    assert_eq!(c.to, Health::Healthy);
    assert_eq!(c.reason, "cleared by admin:1234; no rule holds now");
}

#[test]
fn clearing_a_node_whose_condition_still_holds_changes_nothing() {
    let mut n = node();
    let down = [m("nvlink-down", Verdict::Unhealthy, Some(1), 0)];
    n.observe(&down, T0);
    assert_eq!(n.health(), Health::Unhealthy);
    assert_eq!(n.clear("admin:1", T0 + S), None);
    assert_eq!(n.health(), Health::Unhealthy);
    n.observe(&[], T0 + 2 * S);
    assert_eq!(
        n.health(),
        Health::Unhealthy,
        "sticks after the link came back"
    );
    assert_eq!(n.clear("admin:1", T0 + 3 * S).unwrap().to, Health::Healthy);
}

#[test]
fn a_degraded_event_clears_once_nothing_has_matched_for_the_clear_time() {
    let mut n = node();
    n.observe(&[], T0);
    let c = n
        .event(&[m("xid", Verdict::Degraded, Some(0), 0)], T0, T0)
        .unwrap();
    assert_eq!(c.to, Health::Degraded);
    assert_eq!(n.settle(T0 + 299 * S), None);
    let c = n.settle(T0 + 300 * S).unwrap();
    assert_eq!((c.from, c.to), (Health::Degraded, Health::Healthy));
    assert_eq!(c.reason, "no rule has matched for 5m");
}

#[test]
fn a_state_rule_counts_only_after_its_for_and_clears_after_it_stops() {
    let mut n = node();
    let hot = [m("thermal-warning", Verdict::Degraded, Some(2), 120)];
    n.observe(&hot, T0);
    assert_eq!(n.health(), Health::Healthy, "not held long enough yet");
    n.observe(&hot, T0 + 60 * S);
    assert_eq!(n.health(), Health::Healthy);
    let c = n.observe(&hot, T0 + 120 * S).unwrap();
    assert_eq!(c.to, Health::Degraded);
    // It stops at +150 s: degraded for 5 more minutes, then healthy.
    n.observe(&[], T0 + 150 * S);
    assert_eq!(n.settle(T0 + 449 * S), None);
    assert_eq!(n.settle(T0 + 450 * S).unwrap().to, Health::Healthy);
}

#[test]
fn a_flapping_condition_starts_its_for_over() {
    let mut n = node();
    let hot = [m("thermal-warning", Verdict::Degraded, Some(2), 120)];
    n.observe(&hot, T0);
    n.observe(&[], T0 + 60 * S);
    n.observe(&hot, T0 + 90 * S);
    n.observe(&hot, T0 + 130 * S);
    assert_eq!(
        n.health(),
        Health::Healthy,
        "held 40 s since it came back, not 130 s"
    );
    assert_eq!(n.observe(&hot, T0 + 210 * S).unwrap().to, Health::Degraded);
}

#[test]
fn the_worst_verdict_wins_and_is_named() {
    let mut n = node();
    let c = n
        .observe(
            &[
                m("pcie-degraded", Verdict::Degraded, Some(5), 0),
                m("gpu-lost", Verdict::Unhealthy, Some(6), 0),
            ],
            T0,
        )
        .unwrap();
    assert_eq!(
        (c.to, c.rule.as_deref()),
        (Health::Unhealthy, Some("gpu-lost"))
    );
    // Cleared while the degraded condition still holds: degraded, not healthy.
    n.observe(&[m("pcie-degraded", Verdict::Degraded, Some(5), 0)], T0 + S);
    let c = n.clear("admin:1", T0 + 2 * S).unwrap();
    assert_eq!(
        (c.to, c.rule.as_deref()),
        (Health::Degraded, Some("pcie-degraded"))
    );
}

#[test]
fn a_restart_keeps_unhealthy_sticky_and_lets_degraded_clear() {
    let mut n = NodeHealth::restore(HealthSettings::default(), Health::Unhealthy, T0);
    assert_eq!(
        n.observe(&[], T0 + S),
        None,
        "still unhealthy: nobody cleared it"
    );
    assert_eq!(n.clear("admin:1", T0 + 2 * S).unwrap().to, Health::Healthy);
    let mut n = NodeHealth::restore(HealthSettings::default(), Health::Degraded, T0);
    assert_eq!(n.observe(&[], T0 + S), None);
    assert_eq!(n.settle(T0 + 300 * S).unwrap().to, Health::Healthy);
}

#[test]
fn a_node_never_observed_is_unknown_not_healthy() {
    let mut n = node();
    // Housekeeping's timer, and node rules run on an offline node that matched nothing.
    assert_eq!(n.settle(T0), None);
    assert_eq!(n.judge_unobserved(&[], T0 + S), None);
    assert_eq!(n.health(), Health::Unknown, "absence of data is unknown");
    // An event can still flag it; once the verdict clears, it is unknown again.
    let c = n
        .event(&[m("xid", Verdict::Degraded, Some(0), 0)], T0, T0 + S)
        .unwrap();
    assert_eq!(c.to, Health::Degraded);
    let c = n.settle(T0 + 301 * S).unwrap();
    assert_eq!(
        (c.to, c.reason.as_str()),
        (Health::Unknown, "no successful observation yet")
    );
    // The first successful observation decides.
    assert_eq!(n.observe(&[], T0 + 302 * S).unwrap().to, Health::Healthy);
    assert_eq!(n.judge_unobserved(&[], T0 + 303 * S), None, "stays healthy");
}
