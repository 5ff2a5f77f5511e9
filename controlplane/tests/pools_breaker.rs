//! What a breaker sent the pools API, each refused with a clear error that names the field
//! and changes nothing: every bad label at once, lists over their caps (one problem, not
//! one per entry), keys given twice, a composite's bad `mode` with its path, a config
//! pool's 409 before its body is looked at, and a lowered `max_nodes` that clamps the
//! operator's target instead of keeping it above the pool's bounds.

use actix_web::http::StatusCode;
use gpuwarden_controlplane::model::pool::PoolSpec;
use serde_json::{json, Value};

use crate::api::{app, env, error_code, send, ADMIN};
use crate::bodies::raw;
use crate::pools_api::{contract, pools_and_specs};

fn fields(v: &Value) -> Vec<String> {
    v["error"]["details"]
        .as_array()
        .unwrap_or_else(|| panic!("details in {v}"))
        .iter()
        .map(|d| d["field"].as_str().unwrap().to_string())
        .collect()
}

fn pool(extra: Value) -> Value {
    let mut b = json!({"name":"p","provider":"fake","min_nodes":0,"max_nodes":4});
    for (k, v) in extra.as_object().unwrap() {
        b[k] = v.clone();
    }
    b
}

#[actix_web::test]
async fn every_bad_label_and_every_list_over_its_cap_is_named_at_once() {
    let e = env(false);
    let app = app!(e);
    let before = pools_and_specs(&e);
    let (st, v) = send(
        &app,
        "POST",
        "/v1/pools",
        Some(ADMIN),
        Some(pool(
            json!({"labels":{"bad-key":"v","9lives":"x","ok":"tab\there","team":"ml"}}),
        )),
    )
    .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let mut f = fields(&v);
    f.sort();
    assert_eq!(f, ["labels.9lives", "labels.bad-key", "labels.ok"], "{v}");

    let many = |n: usize, f: &dyn Fn(usize) -> Value| Value::Array((0..n).map(f).collect());
    let window = |_| json!({"start":"08:00","end":"09:00","min_nodes":0,"max_nodes":1});
    let queue = |_| json!({"type":"queue"});
    // (what, extra fields, the field named)
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "10,000 zones",
            json!({"zones": many(10_000, &|i| json!(format!("z{i}")))}),
            "zones",
        ),
        (
            "65 labels",
            json!({"labels": (0..65).map(|i| (format!("l{i}"), json!("v"))).collect::<serde_json::Map<_, _>>()}),
            "labels",
        ),
        (
            "17 providers",
            json!({"provider": null, "providers": many(17, &|i| json!({"name": format!("f{i}"), "kind":"fake"}))}),
            "providers",
        ),
        (
            "65 windows",
            json!({"autoscaler":{"type":"scheduled","windows": many(65, &window)}}),
            "autoscaler.windows",
        ),
        (
            "9 children",
            json!({"autoscaler":{"type":"composite","autoscalers": many(9, &queue)}}),
            "autoscaler.autoscalers",
        ),
        (
            "a tree of 4 composites of 5: 21 autoscalers",
            json!({"autoscaler":{"type":"composite","autoscalers": many(4, &|_| json!({"type":"composite","autoscalers": many(4, &queue)}))}}),
            "autoscaler",
        ),
        (
            "32 KiB of provider params",
            json!({"provider": null, "providers":[{"name":"f","kind":"fake","params":{"pad":"x".repeat(32 * 1024)}}]}),
            "providers[0].params",
        ),
    ];
    for (what, extra, field) in cases {
        let (st, v) = send(&app, "POST", "/v1/pools", Some(ADMIN), Some(pool(extra))).await;
        assert_eq!(
            (st, error_code(&v)),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_pool"),
            "{what}: {v}"
        );
        let f = fields(&v);
        assert!(f.iter().any(|x| x == field), "{what}: {field} in {v}");
        assert!(
            f.len() <= 2,
            "{what}: one problem for the list, not one per entry: {v}"
        );
        let d = &v["error"]["details"][0]["message"];
        assert!(
            d.as_str().is_some_and(|m| m.contains("at most")),
            "{what}: {v}"
        );
    }
    assert_eq!(pools_and_specs(&e), before, "nothing was created");
}

#[actix_web::test]
async fn a_key_given_twice_is_400_naming_it_and_a_bad_mode_names_its_path() {
    let e = env(false);
    let app = app!(e);
    for (body, want) in [
        (
            r#"{"name":"p","provider":"fake","min_nodes":1,"max_nodes":4,"min_nodes":2}"#,
            r#""min_nodes" is given twice"#,
        ),
        (
            r#"{"name":"p","min_nodes":0,"max_nodes":4,"providers":[{"name":"e","kind":"fake","params":{"a":1,"a":2}}]}"#,
            "providers[0].params",
        ),
        (
            r#"{"name":"p","provider":"fake","min_nodes":0,"max_nodes":4,"labels":{"team":"a","team":"b"}}"#,
            r#"labels: the key "team" is given twice"#,
        ),
    ] {
        let (st, v) = raw(
            &app,
            "POST",
            "/v1/pools",
            ADMIN,
            Some("application/json"),
            body.into(),
        )
        .await;
        assert_eq!(
            (st, error_code(&v)),
            (StatusCode::BAD_REQUEST, "bad_request"),
            "{v}"
        );
        assert!(
            v["error"]["message"].as_str().unwrap().contains(want),
            "{want} in {v}"
        );
    }
    // Every body, not only pools' (here the demand a scheduler pushes).
    send(&app, "POST", "/v1/pools", Some(ADMIN), Some(contract())).await;
    let (st, v) = raw(
        &app,
        "PUT",
        "/v1/pools/p/demand",
        ADMIN,
        None,
        br#"{"pending_jobs":1,"pending_jobs":9}"#.to_vec(),
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(e.store.pool("p").unwrap().demand_pending, None);

    // A composite's bad `mode`, at the top and in a child: the path to it.
    let child = json!({"type":"composite","mode":"median","autoscalers":[{"type":"queue"}]});
    for (autoscaler, path) in [
        (
            json!({"type":"composite","mode":"median","autoscalers":[{"type":"queue"}]}),
            "autoscaler.mode",
        ),
        (
            json!({"type":"composite","autoscalers":[{"type":"queue"}, child]}),
            "autoscaler.autoscalers[1].mode",
        ),
        (
            json!({"type":"scheduled","windows":[{"start":"08:00","end":"09:00","min_nodes":0,"max_nodes":1}],
                   "fallback":{"type":"reactive","step":"two"}}),
            "autoscaler.fallback.step",
        ),
    ] {
        let (st, v) = send(
            &app,
            "POST",
            "/v1/pools",
            Some(ADMIN),
            Some(pool(json!({"name":"q","autoscaler":autoscaler}))),
        )
        .await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
        let m = v["error"]["message"].as_str().unwrap();
        assert!(m.contains(&format!("{path}: ")), "{path} in {m}");
    }
}

#[actix_web::test]
async fn a_config_pool_is_409_before_its_body_or_query_is_looked_at() {
    let e = env(false);
    let app = app!(e);
    let file = "/etc/gpuwarden/controlplane.toml";
    e.store
        .apply_config_pools(&[PoolSpec::new("cfg", "local", 1, 3)], file, 1)
        .unwrap();
    let before = pools_and_specs(&e);
    for (m, p, b) in [
        (
            "PUT",
            "/v1/pools/cfg",
            json!({"name":"cfg","min_nodes":"many"}),
        ),
        (
            "PUT",
            "/v1/pools/cfg",
            json!({"name":"cfg","provider":"aws","min_nodes":9,"max_nodes":1}),
        ),
        // A create under a config pool's name: 409 naming the file, not 422 (a breaker's).
        (
            "POST",
            "/v1/pools",
            json!({"name":"cfg","provider":"aws","min_nodes":9,"max_nodes":1}),
        ),
    ] {
        let (st, v) = send(&app, m, p, Some(ADMIN), Some(b)).await;
        assert_eq!(
            (st, error_code(&v)),
            (StatusCode::CONFLICT, "conflict"),
            "{v}"
        );
        assert!(
            v["error"]["message"].as_str().unwrap().contains(file),
            "{v}"
        );
    }
    let (st, v) = send(
        &app,
        "DELETE",
        "/v1/pools/cfg?force=maybe",
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(
        (st, error_code(&v)),
        (StatusCode::CONFLICT, "conflict"),
        "{v}"
    );
    assert_eq!(pools_and_specs(&e), before);
    // An API pool still gets the body's and the query's own errors.
    send(&app, "POST", "/v1/pools", Some(ADMIN), Some(contract())).await;
    let (st, _) = send(&app, "DELETE", "/v1/pools/p?force=maybe", Some(ADMIN), None).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let (st, _) = send(
        &app,
        "PUT",
        "/v1/pools/p",
        Some(ADMIN),
        Some(json!({"name":"p","min_nodes":"many"})),
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
}

#[actix_web::test]
async fn lowering_max_below_the_manual_target_clamps_it_and_says_why() {
    let e = env(false);
    let app = app!(e);
    let mut body = contract();
    body["max_nodes"] = json!(6);
    send(&app, "POST", "/v1/pools", Some(ADMIN), Some(body.clone())).await;
    let (st, v) = send(
        &app,
        "POST",
        "/v1/pools/p/scale",
        Some(ADMIN),
        Some(json!({"nodes":5})),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    body["max_nodes"] = json!(3);
    let (st, v) = send(&app, "PUT", "/v1/pools/p", Some(ADMIN), Some(body.clone())).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(
        (v["manual_target"].as_u64(), v["target"].as_u64()),
        (Some(3), Some(3)),
        "{v}"
    );
    assert_eq!(e.store.pool("p").unwrap().manual_target, Some(3));
    let (_, v) = send(&app, "GET", "/v1/pools/p", Some(ADMIN), None).await;
    let why = v["decisions"][0]["reasons"][0].as_str().unwrap_or_default();
    assert!(why.contains("manual target 5 clamped to 3"), "{v}");
    // Within the new bounds it stays as the operator set it.
    body["max_nodes"] = json!(8);
    let (_, v) = send(&app, "PUT", "/v1/pools/p", Some(ADMIN), Some(body)).await;
    assert_eq!(v["manual_target"].as_u64(), Some(3), "{v}");
}
