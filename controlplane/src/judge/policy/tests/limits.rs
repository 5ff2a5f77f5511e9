//! Expressions too complex for the parser's or the evaluator's stack are refused with a
//! validation error (never a process abort); an expression at the limits compiles and
//! evaluates on a thread with the default 2 MiB stack, as scrape workers have.

use super::super::file::limits::{EVAL_STACK_BYTES, MAX_NESTING, MAX_OPERATORS};
use super::super::*;
use crate::model::observation::{GpuObservation, NodeObservation};

fn doc(when: &str) -> String {
    format!("[[rule]]\nname = \"big\"\nscope = \"gpu\"\nverdict = \"degraded\"\nwhen = '{when}'\n")
}

fn refused(when: &str, words: &str) {
    let Err(errs) = Policy::parse(&doc(when)) else {
        panic!("accepted: {when}")
    };
    assert_eq!(errs.len(), 1, "{errs:?}");
    let e = &errs[0];
    assert_eq!(e.rule.as_deref(), Some("big"));
    assert_eq!(e.line, 5, "{e:?}");
    assert!(e.column >= 8, "{e:?}");
    assert!(words.split('|').any(|w| e.message.contains(w)), "{e:?}");
}

#[test]
fn chains_and_nesting_beyond_the_limits_are_validation_errors() {
    refused(&format!("{} == 0", vec!["1"; 2000].join("+")), "operators");
    refused(&format!("gpu{} == 1", ".a".repeat(5000)), "bytes");
    refused(
        &format!("gpu{} == 1", ".a".repeat(MAX_OPERATORS)),
        "operators",
    );
    refused(&format!("gpu{} == 1", "[0]".repeat(5000)), "bytes");
    refused(
        &format!("gpu{} == 1", "[0]".repeat(MAX_OPERATORS)),
        "operators",
    );
    refused(
        &format!("{}true{}", "(".repeat(200), ")".repeat(200)),
        "nests",
    );
    refused(
        &format!("{}1{} == 1", "[".repeat(200), "]".repeat(200)),
        "nests",
    );
    refused(&format!("{}true", "!".repeat(4000)), "operators");
    refused(&format!("\"{}\" == \"\"", "x".repeat(5000)), "bytes");
}

#[test]
fn operators_inside_strings_do_not_count_and_raw_strings_hide_none() {
    let s = "+".repeat(MAX_OPERATORS * 2);
    assert!(Policy::parse(&doc(&format!("gpu.uuid != \"{s}\""))).is_ok());
    // A raw string ending in a backslash does not swallow the chain after it.
    let chain = vec!["1"; MAX_OPERATORS + 10].join("+");
    refused(&format!("r\"\\\\\" == \"\" || {chain} == 0"), "operators");
}

/// The deepest expressions the limits allow, each evaluating to `true`.
fn at_the_limits() -> Vec<String> {
    let n = MAX_OPERATORS - 2;
    vec![
        // A left-leaning chain: the deepest tree per operator.
        format!(
            "gpu.temperature_celsius + {} > 0.0",
            vec!["1.0"; n - 2].join(" + ")
        ),
        format!("{}true", "!".repeat(n - n % 2)),
        format!("{}true{}", "(".repeat(MAX_NESTING), ")".repeat(MAX_NESTING)),
        format!(
            "size({}1{}) == 1",
            "[".repeat(MAX_NESTING - 1),
            "]".repeat(MAX_NESTING - 1)
        ),
        format!(
            "{}gpu.temperature_celsius + 1.0{} > 0.0",
            "(".repeat(MAX_NESTING),
            " + 1.0)".repeat(MAX_NESTING)
        ),
    ]
}

#[test]
fn an_expression_at_the_limits_validates_and_evaluates_on_a_scrape_workers_stack() {
    for when in at_the_limits() {
        let policy = Policy::parse(&doc(&when)).unwrap_or_else(|e| panic!("{when}: {e:?}"));
        let mut g = GpuObservation {
            index: 0,
            uuid: "GPU-0".into(),
            ..Default::default()
        };
        g.values.insert("temperature_celsius", 60.0);
        let mut obs = NodeObservation::default();
        obs.gpus.insert(0, g);
        let node = NodeInput {
            name: "n".into(),
            pool: "default".into(),
            expected_gpus: 1,
            connectivity: "online".into(),
            ..Default::default()
        };
        // The stack the scraper's threads get.
        let e = std::thread::Builder::new()
            .stack_size(EVAL_STACK_BYTES)
            .spawn(move || policy.eval_observation(&obs, None, &node))
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(e.failures, vec![], "{when}");
        assert_eq!(e.matches.len(), 1, "{when}");
    }
}

#[test]
fn the_shipped_rules_are_far_below_the_limits() {
    let p = Policy::default_policy();
    for r in p.rules() {
        assert!(r.when.len() * 4 < super::super::file::limits::MAX_EXPRESSION_BYTES);
        let ops = r
            .when
            .matches(['.', '+', '<', '>', '(', '[', ',', '!', '=', '&', '|'])
            .count();
        assert!(ops * 4 < MAX_OPERATORS, "{}: {ops}", r.name);
    }
}

/// Hardening follow-up: free text with control characters reaches tables and terminals;
/// a rule description is one line of plain text.
#[test]
fn a_description_with_control_characters_is_refused() {
    let rule = |d: &str| {
        format!(
                "[[rule]]\nname = \"r\"\ndescription = \"{d}\"\nscope = \"event\"\nwhen = 'event.kind == \"xid\"'\nverdict = \"degraded\"\n"
            )
    };
    assert!(Policy::parse(&rule("XIDs that need a reset")).is_ok());
    let errs = Policy::parse(&rule("line1\\nFAKE\\u001b[31m")).unwrap_err();
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].message.contains("control character"), "{errs:?}");
}
