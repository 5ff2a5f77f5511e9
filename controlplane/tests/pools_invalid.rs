//! Invalid pools through the REST API: every problem at once (the spec's rules and each
//! provider's params), 400 for a body of the wrong shape, and nothing changed.

use actix_web::http::StatusCode;
use serde_json::{json, Value};

use crate::api::{app, env, error_code, send, ADMIN};
use crate::pools_api::{contract, pools_and_specs};

#[actix_web::test]
async fn invalid_pools_get_422_with_every_problem_and_change_nothing() {
    let e = env(false);
    let app = app!(e);
    // (what, body, fields that must be named)
    let cases: Vec<(&str, Value, Vec<&str>)> = vec![
        (
            "min above max",
            json!({"name":"p","provider":"local","min_nodes":5,"max_nodes":4}),
            vec!["min_nodes"],
        ),
        (
            "unknown provider kind",
            json!({"name":"p","provider":"aws","min_nodes":0,"max_nodes":4}),
            vec!["provider"],
        ),
        (
            "provider params the provider refuses (required, unknown, out of range)",
            json!({"name":"p","min_nodes":0,"max_nodes":4,"providers":[
                {"name":"e","kind":"exec","params":{}},
                {"name":"l","kind":"local","params":{"gpus":0,"zzz":1}}]}),
            // exec: provision, terminate and list missing; local: gpus 0, zzz unknown.
            vec![
                "providers[0].params",
                "providers[0].params",
                "providers[0].params",
                "providers[1].params",
                "providers[1].params",
            ],
        ),
        (
            "bad autoscaler parameters",
            json!({"name":"p","provider":"local","min_nodes":0,"max_nodes":4,
                   "autoscaler":{"type":"reactive","scale_up_threshold":0.2,"scale_down_threshold":0.5,"step":0}}),
            vec!["autoscaler.scale_up_threshold", "autoscaler.step"],
        ),
        (
            "bad durations",
            json!({"name":"p","provider":"local","min_nodes":0,"max_nodes":4,
                   "scale_up_cooldown":"soon","registration_timeout":"0s"}),
            vec!["scale_up_cooldown", "registration_timeout"],
        ),
        (
            "a bad name",
            json!({"name":"bad name!","provider":"local","min_nodes":0,"max_nodes":4}),
            vec!["name"],
        ),
        (
            "everything at once",
            json!({"name":"-x","provider":"aws","min_nodes":9,"max_nodes":4,"scale_down_cooldown":"2 fortnights",
                   "autoscaler":{"type":"queue","jobs_per_node":0}}),
            vec![
                "name",
                "provider",
                "min_nodes",
                "scale_down_cooldown",
                "autoscaler.jobs_per_node",
            ],
        ),
    ];
    let before = pools_and_specs(&e);
    for (what, body, fields) in &cases {
        let (st, v) = send(&app, "POST", "/v1/pools", Some(ADMIN), Some(body.clone())).await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{what}: {v}");
        assert_eq!(error_code(&v), "invalid_pool", "{what}");
        let named: Vec<&str> = v["error"]["details"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["field"].as_str().unwrap())
            .collect();
        assert_eq!(
            named.len(),
            fields.len(),
            "{what}: exactly these problems: {v}"
        );
        for f in fields {
            assert!(named.contains(f), "{what}: {f} named in {v}");
        }
        assert!(v["error"]["details"][0]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
    assert_eq!(pools_and_specs(&e), before, "nothing was created");

    // The shape of the body is checked like every body: 400 naming the field.
    let (st, v) = send(
        &app,
        "POST",
        "/v1/pools",
        Some(ADMIN),
        Some(json!({"name":"p","provider":"local","min_nodes":0,"max_nodes":4,"autoscaler":{"type":"magic"}})),
    )
    .await;
    assert_eq!(
        (st, error_code(&v)),
        (StatusCode::BAD_REQUEST, "bad_request"),
        "{v}"
    );
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("autoscaler"),
        "{v}"
    );
    let (st, v) = send(
        &app,
        "POST",
        "/v1/pools",
        Some(ADMIN),
        Some(json!({"name":"p","min_nodes":-1,"max_nodes":4})),
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("min_nodes"),
        "{v}"
    );

    // An invalid update changes nothing either.
    send(&app, "POST", "/v1/pools", Some(ADMIN), Some(contract())).await;
    let before = pools_and_specs(&e);
    let mut bad = contract();
    bad["max_nodes"] = json!(1);
    let (st, v) = send(&app, "PUT", "/v1/pools/p", Some(ADMIN), Some(bad)).await;
    assert_eq!(
        (st, error_code(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_pool"),
        "{v}"
    );
    let mut renamed = contract();
    renamed["name"] = json!("q");
    let (st, v) = send(&app, "PUT", "/v1/pools/p", Some(ADMIN), Some(renamed)).await;
    assert_eq!(
        st,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a pool is not renamed: {v}"
    );
    assert_eq!(pools_and_specs(&e), before);
    let mut wider = contract();
    wider["max_nodes"] = json!(8);
    let (st, v) = send(&app, "PUT", "/v1/pools/p", Some(ADMIN), Some(wider)).await;
    assert_eq!(
        (st, v["max_nodes"].as_u64()),
        (StatusCode::OK, Some(8)),
        "{v}"
    );
}
