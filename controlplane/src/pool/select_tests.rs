use super::*;

fn p(name: &str, priority: u32, weight: u32, cost: Option<f64>) -> ProviderSpec {
    ProviderSpec {
        priority,
        weight,
        cost_per_hour: cost,
        ..ProviderSpec::of_kind(name)
    }
}

fn three() -> Vec<ProviderSpec> {
    vec![
        p("fake", 2, 1, Some(3.0)),
        p("local", 1, 3, Some(9.0)),
        p("exec", 3, 1, None),
    ]
}

fn pick(s: &mut SelectState, ps: &[ProviderSpec], st: Strategy, now: i64) -> String {
    s.choose(ps, st, now)
        .map(|c| c.name)
        .unwrap_or_else(|e| e.to_string())
}

/// Navarch ran provider calls one at a time and kept asking a failing provider; here a
/// failure backs that provider off and the next one is used at once.
#[test]
fn a_failing_provider_backs_off_exponentially_and_the_next_one_is_used() {
    let ps = three();
    let mut s = SelectState::default();
    let b = Backoff::default();
    assert_eq!(pick(&mut s, &ps, Strategy::Priority, 0), "local");
    s.failed("local", "quota exceeded", 0, b);
    assert_eq!(pick(&mut s, &ps, Strategy::Priority, 1), "fake");
    assert_eq!(
        s.providers["local"].last_error.as_deref(),
        Some("quota exceeded")
    );
    // 10 s later it is tried again; a second failure doubles the wait.
    assert_eq!(pick(&mut s, &ps, Strategy::Priority, 10_000), "local");
    s.failed("local", "quota exceeded", 10_000, b);
    assert_eq!(s.providers["local"].retry_at_ms, 30_000);
    assert_eq!(pick(&mut s, &ps, Strategy::Priority, 29_999), "fake");
    s.succeeded("local", 30_000);
    assert_eq!(pick(&mut s, &ps, Strategy::Priority, 30_000), "local");
    assert_eq!(s.providers["local"].failures, 0);
    // Every one backing off: an error that says until when.
    for name in ["fake", "local", "exec"] {
        s.failed(name, "down", 40_000, b);
    }
    assert_eq!(
        s.choose(&ps, Strategy::Priority, 40_001),
        Err(NoProvider::BackingOff {
            retry_at_ms: 50_000
        })
    );
    assert_eq!(s.choose(&[], Strategy::Priority, 0), Err(NoProvider::Empty));
}

#[test]
fn backoff_doubles_up_to_its_cap() {
    let b = Backoff {
        base_ms: 1_000,
        max_ms: 60_000,
    };
    let got: Vec<i64> = [0, 1, 2, 3, 6, 7, 100, u32::MAX]
        .iter()
        .map(|n| b.delay_ms(*n))
        .collect();
    assert_eq!(
        got,
        vec![0, 1_000, 2_000, 4_000, 32_000, 60_000, 60_000, 60_000]
    );
}

#[test]
fn weighted_round_robin_shares_by_weight_and_skips_backing_off_providers() {
    let ps = three(); // weights fake 1, local 3, exec 1
    let mut s = SelectState::default();
    let mut counts = BTreeMap::new();
    for i in 0..50 {
        *counts
            .entry(pick(&mut s, &ps, Strategy::WeightedRoundRobin, i))
            .or_insert(0) += 1;
    }
    assert_eq!(
        counts,
        BTreeMap::from([
            ("exec".into(), 10),
            ("fake".into(), 10),
            ("local".into(), 30)
        ])
    );
    // Smooth: never the same provider three times running with these weights.
    let seq: Vec<String> = (0..5)
        .map(|i| pick(&mut s, &ps, Strategy::WeightedRoundRobin, i))
        .collect();
    assert!(
        seq.windows(3).all(|w| !(w[0] == w[1] && w[1] == w[2])),
        "{seq:?}"
    );
    s.failed("local", "x", 100, Backoff::default());
    for i in 0..10 {
        assert_ne!(
            pick(&mut s, &ps, Strategy::WeightedRoundRobin, 101 + i),
            "local"
        );
    }
}

#[test]
fn cost_picks_the_cheapest_with_capacity() {
    let ps = three();
    let mut s = SelectState::default();
    assert_eq!(pick(&mut s, &ps, Strategy::Cost, 0), "fake");
    s.capacity("fake", false);
    assert_eq!(
        pick(&mut s, &ps, Strategy::Cost, 0),
        "local",
        "next cheapest"
    );
    s.capacity("local", false);
    assert_eq!(
        pick(&mut s, &ps, Strategy::Cost, 0),
        "exec",
        "unpriced comes last"
    );
    s.capacity("exec", false);
    assert_eq!(
        pick(&mut s, &ps, Strategy::Cost, 0),
        "fake",
        "none has capacity: the cheapest is still tried"
    );
}

#[test]
fn availability_prefers_recent_successes_with_capacity() {
    let ps = three();
    let mut s = SelectState::default();
    assert_eq!(
        pick(&mut s, &ps, Strategy::Availability, 0),
        "local",
        "nothing known: priority"
    );
    s.succeeded("exec", 1_000);
    s.succeeded("fake", 2_000);
    assert_eq!(pick(&mut s, &ps, Strategy::Availability, 3_000), "fake");
    s.capacity("fake", false);
    assert_eq!(pick(&mut s, &ps, Strategy::Availability, 3_000), "exec");
    s.failed("exec", "503", 3_000, Backoff::default());
    assert_eq!(pick(&mut s, &ps, Strategy::Availability, 3_001), "local");
}

#[test]
fn removed_providers_are_forgotten_and_the_state_round_trips() {
    let mut s = SelectState::default();
    s.failed("gone", "x", 0, Backoff::default());
    s.succeeded("local", 5);
    let ps = three();
    pick(&mut s, &ps, Strategy::Priority, 10);
    assert!(!s.providers.contains_key("gone"));
    let back: SelectState = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
    assert_eq!(back, s);
}
