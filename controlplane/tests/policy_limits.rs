//! Policy expressions too complex for the parser's or the evaluator's stack: refused with a
//! 422 by every endpoint that takes a policy (the process survives); one at the limits is
//! accepted and judged by the scraper's own worker threads.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::test::{call_service, read_body, TestRequest};
use gpuwarden_controlplane::judge::policy::limits::{MAX_NESTING, MAX_OPERATORS};
use gpuwarden_controlplane::judge::policy::{Policy, DEFAULT_POLICY};
use serde_json::{json, Value};

use crate::api::{app, env, send, ADMIN};
use crate::scrape::rig;
use crate::util::{agent_body, Reply, Stub};

fn rule(when: &str) -> String {
    format!("[[rule]]\nname = \"huge\"\nscope = \"gpu\"\nverdict = \"degraded\"\nwhen = '{when}'\n")
}

/// The tester's expressions, each of which aborted the process before.
fn hostile() -> Vec<String> {
    vec![
        rule(&format!("{} == 0", vec!["1"; 2000].join("+"))),
        rule(&format!("gpu{} == 1", ".a".repeat(5000))),
        rule(&format!("gpu{} == 1", "[0]".repeat(5000))),
        rule(&format!("{}true{}", "(".repeat(200), ")".repeat(200))),
    ]
}

#[actix_web::test]
async fn overly_complex_rules_are_refused_by_every_policy_endpoint_and_the_process_survives() {
    let e = env(false);
    let app = app!(e);
    for doc in hostile() {
        for uri in ["/v1/policies/validate", "/v1/policies"] {
            let req = if uri.ends_with("validate") {
                TestRequest::post()
            } else {
                TestRequest::put()
            };
            let resp = call_service(
                &app,
                req.uri(uri)
                    .insert_header(("Content-Type", "application/toml"))
                    .insert_header(("Authorization", format!("Bearer {ADMIN}")))
                    .set_payload(doc.clone())
                    .to_request(),
            )
            .await;
            assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY, "{uri}");
            let v: Value = serde_json::from_slice(&read_body(resp).await).unwrap();
            let err = &v["errors"][0];
            assert_eq!(err["rule"], "huge", "{v}");
            assert_eq!(err["line"], 5, "{v}");
            assert!(err["column"].as_u64().unwrap() >= 8, "{v}");
        }
        let (st, v) = send(
            &app,
            "POST",
            "/v1/policies/simulate",
            Some(ADMIN),
            Some(json!({"policy": doc, "since": "1h"})),
        )
        .await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    }
    // Still serving, and the running policy is the one it had.
    let (st, v) = send(&app, "GET", "/v1/policies", Some(ADMIN), None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["source"], DEFAULT_POLICY, "{}", v["source"]);
}

#[test]
fn a_rule_at_the_limits_is_judged_on_the_scrape_workers() {
    // A left-leaning chain at the operator limit, inside brackets at the nesting limit.
    let terms = MAX_OPERATORS - 2 * MAX_NESTING - 4;
    let when = format!(
        "{}gpu.temperature_celsius + {}{} > 0.0",
        "(".repeat(MAX_NESTING),
        vec!["1.0"; terms].join(" + "),
        ")".repeat(MAX_NESTING)
    );
    let policy = Policy::parse(&rule(&when)).unwrap_or_else(|e| panic!("{e:?}"));
    let r = rig(Duration::from_secs(2), 1 << 20, 10_000);
    *r.scraper.policy.write().unwrap() = std::sync::Arc::new(policy);
    let agent = Stub::start(Reply::text(&agent_body(2, 0)));
    r.add("n", &agent.url());
    let handle = r
        .scraper
        .clone()
        .spawn(
            2,
            (Duration::from_secs(3600), Duration::from_secs(3600)),
            (Duration::from_secs(3600), Duration::from_secs(3600)),
        )
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut health = String::new();
    while std::time::Instant::now() < deadline {
        health = r.store.node("n").unwrap().health;
        if health == "degraded" {
            break;
        }
        // The fake clock makes the node due again.
        r.clock.advance(1_000);
        std::thread::sleep(Duration::from_millis(50));
    }
    handle.stop();
    assert_eq!(health, "degraded", "{}", r.scraper.metrics.render());
    assert!(!r
        .scraper
        .metrics
        .render()
        .contains("gpuwarden_cp_rule_failures_total{"));
}
