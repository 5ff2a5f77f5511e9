//! Precise errors for invalid policies (every problem of every rule at once, each with its
//! rule and position) and run-time failures that are reported, not skipped.

use super::super::*;
use super::{healthy, node};

fn errors(text: &str) -> Vec<PolicyError> {
    Policy::parse(text).unwrap_err()
}

#[test]
fn invalid_policies_name_the_rule_and_the_position_of_every_problem() {
    let text = "\
[[rule]]
name = \"a\"
scope = \"event\"
when = 'event.kind == '
verdict = \"unhealthy\"

[[rule]]
name = \"a\"
scope = \"cluster\"
when = 'true'
verdict = \"bad\"
for = \"soon\"
action = \"pray\"

[[rule]]
name = \"b\"
scope = \"event\"
when = 'event.kind == \"xid\"'
verdict = \"degraded\"
for = \"1m\"

[[rule]]
name = \"c\"
scope = \"gpu\"
when = 'gpu.temprature_celsius > 90.0'
verdict = \"degraded\"

[[rule]]
name = \"d\"
scope = \"node\"
when = 'gpu.up'
verdict = \"degraded\"

[[rule]]
name = \"e\"
scope = \"event\"
when = 'event.code + \"x\" == 1'
verdict = \"degraded\"
";
    let e = errors(text);
    let got: Vec<(Option<&str>, usize, usize, &str)> = e
        .iter()
        .map(|e| (e.rule.as_deref(), e.line, e.column, e.message.as_str()))
        .collect();
    let find = |rule: &str, needle: &str| {
        got.iter()
            .find(|g| g.0 == Some(rule) && g.3.contains(needle))
            .unwrap_or_else(|| panic!("no error for {rule} with {needle:?} in {got:#?}"))
    };
    let syntax = find("a", "CEL: Syntax error");
    assert_eq!(
        (syntax.1, syntax.2),
        (4, 23),
        "where the expression ends and an operand was expected"
    );
    assert_eq!(find("a", "appears twice").1, 8);
    assert_eq!(find("a", "unknown scope \"cluster\"").1, 9);
    assert_eq!(find("a", "unknown verdict \"bad\"").1, 11);
    assert_eq!(find("a", "for = \"soon\"").1, 12);
    assert_eq!(find("a", "unknown action \"pray\"").1, 13);
    assert_eq!(find("b", "`for` applies to gpu and node rules").1, 20);
    let typo = find("c", "no field \"temprature_celsius\"");
    assert_eq!((typo.1, typo.2), (25, 9));
    assert!(find("d", "unknown name \"gpu\"").3.contains("sees `node`"));
    find("e", "type error");
    // And the text of an error says it all.
    assert_eq!(
        e[0].to_string(),
        format!("rule \"a\", line 4, column 23: {}", e[0].message)
    );

    let e = errors("[[rule]]\nname = \"x\"\nscope = \"event\"\nwhen = 'true'\nverdict = \"degraded\"\ncolour = 1\n");
    // The unknown key is reported in its rule, at its line.
    assert_eq!((e[0].line, e[0].rule.as_deref()), (6, Some("x")));
    assert!(e[0].message.contains("colour"), "{}", e[0].message);
    let e = errors("[[rule]\n");
    assert_eq!(e[0].line, 1);
    let e = errors("");
    assert!(e[0].message.contains("no [[rule]]"));
    let e = errors("[[rule]]\nname = \"x\"\nscope = \"event\"\nverdict = \"degraded\"\n");
    assert!(e[0].message.contains("when"), "{}", e[0].message);
}

#[test]
fn a_rule_that_fails_at_run_time_is_reported_not_skipped() {
    let p = Policy::parse(
        "[[rule]]\nname = \"xid79-count\"\nscope = \"gpu\"\nwhen = 'gpu.xid_errors[\"79\"] > 0.0'\nverdict = \"degraded\"\n\n\
         [[rule]]\nname = \"hot\"\nscope = \"gpu\"\nwhen = 'gpu.temperature_celsius > 50.0'\nverdict = \"degraded\"\n",
    )
    .unwrap();
    let e = p.eval_observation(&healthy(), None, &node());
    assert_eq!(e.failures.len(), 2, "one per GPU: {:?}", e.failures);
    assert_eq!(
        (e.failures[0].rule.as_str(), e.failures[0].input.as_str()),
        ("xid79-count", "gpu 0")
    );
    assert!(
        e.failures[0].error.contains("79"),
        "{}",
        e.failures[0].error
    );
    assert_eq!(e.matches.len(), 2, "the other rules still ran");
}

/// Issue: `policies validate` stopped at the first unknown key or type error. Every
/// structural problem of every rule is reported at once, each at its line.
#[test]
fn every_structural_problem_of_every_rule_is_reported_at_once() {
    let text = "[[rule]]\nname = \"a\"\nscope = \"event\"\nwhen = 'true'\nverdict = \"degraded\"\ncolour = 1\n\n\
                [[rule]]\nname = \"b\"\nscope = \"node\"\nwhen = \"true\"\nverdict = 2\n\n\
                [[rule]]\nname = \"c\"\nscope = \"node\"\nverdict = \"degraded\"\n\n\
                [[rule]]\nname = \"d\"\nscope = \"node\"\nwhen = \"true\"\nverdict = \"broken\"\n\n\
                [extra]\nx = 1\n";
    let e = errors(text);
    let got: Vec<(Option<&str>, usize, &str)> = e
        .iter()
        .map(|e| (e.rule.as_deref(), e.line, e.message.as_str()))
        .collect();
    assert_eq!(e.len(), 5, "{got:#?}");
    assert!(
        got.iter()
            .any(|(r, l, m)| r.is_none() && *l == 25 && m.contains("\"extra\"")),
        "{got:#?}"
    );
    assert!(
        got.iter()
            .any(|(r, l, m)| *r == Some("a") && *l == 6 && m.contains("\"colour\"")),
        "{got:#?}"
    );
    assert!(
        got.iter()
            .any(|(r, l, m)| *r == Some("b") && *l == 12 && m.contains("verdict must be a string")),
        "{got:#?}"
    );
    assert!(
        got.iter()
            .any(|(r, l, m)| *r == Some("c") && *l == 14 && m.contains("missing key \"when\"")),
        "{got:#?}"
    );
    assert!(
        got.iter()
            .any(|(r, l, m)| *r == Some("d") && *l == 23 && m.contains("unknown verdict")),
        "{got:#?}"
    );
    assert!(got.iter().all(|(_, _, m)| !m.contains('`')), "{got:#?}");
}
