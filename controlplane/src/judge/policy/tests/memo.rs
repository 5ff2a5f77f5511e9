//! Remembered rule results: the memoized evaluation gives exactly what running every rule
//! gives, and another policy does not reuse what was remembered for the first.

use super::super::*;
use super::{node, obs_with};
use crate::model::observation::NodeObservation;

#[test]
fn remembered_results_are_the_results_of_running_every_rule() {
    // 300 scrapes of a node whose values move like a real one's (and sometimes fail): the
    // memoized evaluation must give exactly what a full evaluation gives, every time.
    let p = Policy::default_policy();
    let mut memo = RuleMemo::default();
    let mut rng = fastrand::Rng::with_seed(7);
    let mut o = obs_with(|_| {});
    let mut prev: Option<NodeObservation> = None;
    let mut n = node();
    for step in 0..300 {
        for g in o.gpus.values_mut() {
            g.values
                .insert("temperature_celsius", 60.0 + rng.f64() * 40.0);
            g.values.insert("power_watts", 600.0 + rng.f64() * 150.0);
            if rng.u8(..) < 8 {
                let n = g.xid_errors.get(&13).copied().unwrap_or(0.0);
                g.xid_errors.insert(13, n + 1.0);
            }
            if rng.u8(..) < 8 {
                g.up = g.up.map(|u| !u);
            }
            if rng.u8(..) < 8 {
                g.clock_events.insert("hw_slowdown".into());
            } else if rng.u8(..) < 16 {
                g.clock_events.clear();
            }
            if rng.u8(..) < 4 {
                let w = g.values.get("pcie_link_width").copied().unwrap_or(16.0);
                g.values
                    .insert("pcie_link_width", if w == 16.0 { 8.0 } else { 16.0 });
            }
            if rng.u8(..) < 4 {
                let key = ("corrected".into(), "volatile".into());
                let n = g.ecc_errors.get(&key).copied().unwrap_or(0.0);
                g.ecc_errors.insert(key, n + 500.0);
            }
        }
        if rng.u8(..) < 10 {
            o.health_checks
                .insert("dcgm".into(), f64::from(rng.u8(..3)));
        }
        if rng.u8(..) < 10 {
            n.connectivity = if n.connectivity == "online" {
                "offline".into()
            } else {
                "online".into()
            };
        }
        let prev_ref = prev.as_ref().map(|p| (p, 15.0));
        let full = p.eval_observation(&o, prev_ref, &n);
        let remembered = p.eval_observation_memo(&o, prev_ref, &n, &mut memo);
        assert_eq!(remembered, full, "scrape {step}");
        prev = Some(o.clone());
    }
}

#[test]
fn another_policy_does_not_use_the_results_remembered_for_the_first() {
    let hot = |limit: f64| {
        Policy::parse(&format!(
            "[[rule]]\nname = \"hot\"\nscope = \"gpu\"\nwhen = 'gpu.temperature_celsius > {limit:.1}'\nverdict = \"degraded\"\n"
        ))
        .unwrap()
    };
    let o = obs_with(|g| {
        g.values.insert("temperature_celsius", 70.0);
    });
    let mut memo = RuleMemo::default();
    let a = hot(80.0);
    assert!(a
        .eval_observation_memo(&o, None, &node(), &mut memo)
        .matches
        .is_empty());
    let b = hot(65.0);
    assert_eq!(
        b.eval_observation_memo(&o, None, &node(), &mut memo)
            .matches
            .len(),
        1,
        "the same rule name and fields, another policy: evaluated again (GPU 1 is at 70 °C)"
    );
}
