//! The web console's pages in-process, past sign-in: "add a node" and join tokens, the policy
//! check, the charts' data, the pools page, and odd requests (helpers in `console`).

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::test::TestRequest;
use actix_web::web;
use gpuwarden_controlplane::clock::Clock;
use gpuwarden_controlplane::console::{self, Console, Sessions};
use gpuwarden_controlplane::model::observation::{GpuObservation, NodeObservation, Values};
use serde_json::{json, Value};

use crate::api::{create_node, env, send, ADMIN};
use crate::console::{call, csrf, get, post, sign_in, ui};

#[actix_web::test]
async fn adding_a_node_shows_its_join_token_and_install_script_once() {
    let e = env(false);
    let app = ui!(e);
    let cookie = sign_in(&app, ADMIN).await;
    let token = csrf(&get(&app, "/ui/nodes", &cookie).await.body);
    let p = post(
        &app,
        "/ui/nodes",
        &cookie,
        &[
            ("csrf", &token),
            ("name", "gpu-07"),
            ("pool", "train"),
            ("labels", "rack=r1, zone=a"),
            ("ttl", "2h"),
        ],
    )
    .await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    assert!(p.body.contains("Shown once") && p.body.contains("value=\"gwn_"));
    assert!(p.body.contains("#!/bin/sh") && p.body.contains("joins as node gpu-07"));
    assert!(
        p.body.contains("2026-11-18 13:06:40 UTC"),
        "expiry 2h after the clock: {}",
        p.body
    );
    let (st, n) = send(&app, "GET", "/v1/nodes/gpu-07", Some(ADMIN), None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(n["pool"], "train");
    assert_eq!(n["labels"], json!({"rack": "r1", "zone": "a"}));
    // Refused: the reason, the form as typed, nothing created.
    for (form, code, says) in [
        (
            vec![("name", "-bad")],
            StatusCode::UNPROCESSABLE_ENTITY,
            "name",
        ),
        (vec![("name", "gpu-07")], StatusCode::CONFLICT, "gpu-07"),
        (
            vec![("name", "gpu-08"), ("labels", "rack")],
            StatusCode::BAD_REQUEST,
            "key=value",
        ),
        // Checked before the node is made: nothing is left half-done.
        (
            vec![("name", "gpu-09"), ("ttl", "5s")],
            StatusCode::UNPROCESSABLE_ENTITY,
            "ttl",
        ),
        (
            vec![("name", "gpu-11"), ("labels", "a=1, a=2")],
            StatusCode::BAD_REQUEST,
            "given twice",
        ),
    ] {
        let mut f = vec![("csrf", token.as_str())];
        f.extend(form.iter().copied());
        let p = post(&app, "/ui/nodes", &cookie, &f).await;
        assert_eq!(p.status, code, "{form:?}: {}", p.body);
        assert!(
            p.body.contains("role=\"alert\"") && p.body.contains(says),
            "{}",
            p.body
        );
        assert!(
            p.body.contains(&format!("value=\"{}\"", form[0].1)),
            "the name is kept"
        );
    }
    for name in ["gpu-08", "gpu-09", "gpu-11"] {
        let s = e.store.clone();
        assert!(
            web::block(move || s.node(name)).await.unwrap().is_err(),
            "{name}"
        );
    }
    // A node's page issues another join token, shown once the same way.
    let p = post(
        &app,
        "/ui/nodes/gpu-07/join-token",
        &cookie,
        &[("csrf", &token), ("ttl", "1h")],
    )
    .await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    assert!(p.body.contains("Join token for node gpu-07") && p.body.contains("value=\"gwn_"));
    let p = post(
        &app,
        "/ui/nodes/gpu-07/join-token",
        &cookie,
        &[("csrf", "x")],
    )
    .await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);
    // Text from operators is escaped, never markup.
    let (st, _) = send(
        &app,
        "POST",
        "/v1/nodes",
        Some(ADMIN),
        Some(json!({"name": "gpu-10", "labels": {"note": "<script>alert(1)</script>"}})),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED);
    let p = get(&app, "/ui/nodes", &cookie).await;
    assert!(!p.body.contains("<script>alert(1)"));
    assert!(
        p.body.contains("&#60;script&#62;alert(1)") || p.body.contains("&lt;script&gt;alert(1)")
    );
}

#[actix_web::test]
async fn a_candidate_policy_shows_its_problems_at_their_lines_or_the_what_if() {
    let e = env(false);
    let app = ui!(e);
    let cookie = sign_in(&app, ADMIN).await;
    let p = get(&app, "/ui/policies", &cookie).await;
    assert!(p.body.contains("fatal-xid") || p.body.contains("rules, in order"));
    let token = csrf(&p.body);
    let bad = "[[rule]]\nname = \"hot\"\nscope = \"gpu\"\nwhen = \"gpu.temperature_celsius >\"\nverdict = \"degraded\"\n";
    let p = post(
        &app,
        "/ui/policies",
        &cookie,
        &[("csrf", &token), ("policy", bad)],
    )
    .await;
    assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", p.body);
    assert!(p.body.contains("class=\"bad\" id=\"line-4\""), "{}", p.body);
    assert!(p.body.contains("line 4"), "{}", p.body);
    let good = "[[rule]]\nname = \"hot\"\nscope = \"gpu\"\nwhen = \"gpu.temperature_celsius > 80.0\"\nverdict = \"degraded\"\n";
    let p = post(
        &app,
        "/ui/policies",
        &cookie,
        &[("csrf", &token), ("policy", good), ("since", "7d")],
    )
    .await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    assert!(
        p.body.contains("The candidate is valid (1 rule)"),
        "{}",
        p.body
    );
    assert!(p.body.contains("Running policy") && p.body.contains("Candidate"));
    assert!(p.body.contains("<option selected>7d</option>"));
}

#[actix_web::test]
async fn the_charts_read_the_recent_values_the_scrapes_kept() {
    let e = env(false);
    let app = ui!(e);
    let id = create_node(&app, "gpu-01").await;
    let cookie = sign_in(&app, ADMIN).await;
    let path = format!("/ui/nodes/{id}/history.json");
    let v: Value = serde_json::from_str(&get(&app, &path, &cookie).await.body).unwrap();
    assert_eq!(v["times"], json!([]));
    assert!(v["note"].as_str().unwrap().contains("not been scraped"));
    let now = 1_795_000_000_000;
    for (k, t) in [(0, 60.0), (1, 65.0)] {
        let mut o = NodeObservation::default();
        o.gpus.insert(
            0,
            GpuObservation {
                index: 0,
                values: Values::from_pairs(vec![
                    ("temperature_celsius", t),
                    ("utilization_ratio", 0.5),
                ]),
                ..Default::default()
            },
        );
        e.data
            .fleet
            .recent()
            .record(&id, &o, now - 60_000 + k * 30_000);
    }
    let v: Value = serde_json::from_str(&get(&app, &path, &cookie).await.body).unwrap();
    assert_eq!(v["source"], "memory");
    assert_eq!(v["end"], json!(1_795_000_000.0));
    assert_eq!(v["start"], json!(1_795_000_000.0 - 3600.0));
    assert_eq!(v["times"], json!([1_794_999_940.0, 1_794_999_970.0]));
    assert_eq!(v["series"][0]["name"], "temperature_celsius");
    assert_eq!(v["series"][0]["gpus"][0]["values"], json!([60.0, 65.0]));
    assert_eq!(v["series"][1]["gpus"][0]["values"], json!([null, null]));
    // Not signed in: no data.
    assert_eq!(get(&app, &path, "").await.status, StatusCode::SEE_OTHER);
}

#[actix_web::test]
async fn odd_requests_get_console_pages_with_the_right_status() {
    let e = env(false);
    let app = ui!(e);
    let id = create_node(&app, "gpu-01").await;
    let cookie = sign_in(&app, ADMIN).await;
    // Another method: 405 naming what the console answers.
    for m in [
        actix_web::http::Method::PUT,
        actix_web::http::Method::DELETE,
    ] {
        let p = call(
            &app,
            TestRequest::default()
                .method(m.clone())
                .uri("/ui/nodes")
                .insert_header(("Cookie", format!("gw_session={cookie}"))),
        )
        .await;
        assert_eq!(p.status, StatusCode::METHOD_NOT_ALLOWED, "{m}");
        assert!(p.body.contains("answers GET (pages) and POST (forms)"));
    }
    // Control characters from the path are shown escaped, never raw.
    let p = get(&app, "/ui/nodes/a%00b%0d%0a", &cookie).await;
    assert_eq!(p.status, StatusCode::NOT_FOUND);
    assert!(
        !p.body.contains('\0') && !p.body.contains("b\r\n"),
        "{:?}",
        p.body
    );
    // A missing static file is the console's HTML page.
    let p = get(&app, "/ui/static/%2e%2e%2f%3Cscript%3E", "").await;
    assert_eq!(p.status, StatusCode::NOT_FOUND);
    assert!(p.body.starts_with("<!doctype html>") && !p.body.contains("<script>"));
    // A what-if window the form does not offer: 400, not a silent default.
    let token = csrf(&get(&app, "/ui/policies", &cookie).await.body);
    let p = post(
        &app,
        "/ui/policies",
        &cookie,
        &[("csrf", &token), ("policy", ""), ("since", "-1h")],
    )
    .await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST);
    assert!(p.body.contains("use one of 1h, 24h, 7d, 30d"), "{}", p.body);
    // Charts from a Prometheus that cannot be reached: 502 with the reason, as JSON.
    let app = ui!(e, Some("http://127.0.0.1:1".into()));
    let cookie = sign_in(&app, ADMIN).await;
    let p = get(&app, &format!("/ui/nodes/{id}/history.json"), &cookie).await;
    assert_eq!(p.status, StatusCode::BAD_GATEWAY);
    let v: Value = serde_json::from_str(&p.body).unwrap_or_else(|e| panic!("{e}: {}", p.body));
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Prometheus at http://127.0.0.1:1"),
        "{v}"
    );
}

#[actix_web::test]
async fn the_pools_page_shows_bounds_target_decisions_and_instances() {
    let e = env(false);
    let app = ui!(e);
    let (st, v) = send(
        &app,
        "POST",
        "/v1/pools",
        Some(ADMIN),
        Some(crate::pools_api::contract()),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    e.store
        .record_decision(
            &gpuwarden_controlplane::store::pool_rows::NewDecision {
                pool: "p".into(),
                time: e.clock.now_ms(),
                target: 2,
                reasons: json!(["below min_nodes (0 of 2)"]).to_string(),
                actions: json!([{"kind":"provision","ids":["p-1"],"reason":"min"}]).to_string(),
                counts: json!({"serving":0}).to_string(),
            },
            50,
        )
        .unwrap();
    crate::pools_api::instance(&e, "p-1", "p", None);
    let cookie = sign_in(&app, ADMIN).await;
    let p = get(&app, "/ui/pools", &cookie).await;
    assert_eq!(p.status, StatusCode::OK);
    assert!(p.body.contains("id=\"pool-p\""), "{}", p.body);
    assert!(p.body.contains("below min_nodes (0 of 2)"));
    assert!(p.body.contains("<code>p-1</code>") && p.body.contains("provisioning"));
    // Min 2, current 0, one in flight, target 2, max 4.
    let row = p.body.split("<caption>Size</caption>").nth(1).unwrap();
    let nums: Vec<&str> = row
        .split("<td class=\"num\">")
        .skip(1)
        .map(|c| c.split(['<', ' ']).next().unwrap())
        .collect();
    assert_eq!(&nums[..5], ["2", "0", "1", "2", "4"], "{row}");
    let p = get(&app, "/ui/", &cookie).await;
    assert!(p.body.contains("#pool-p\">p</a>"), "pools at a glance");
}
