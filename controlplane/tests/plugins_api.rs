//! Plugins distributed from the control plane, in process: uploads checked (name, size,
//! digest, a component and not anything else), assignments checked with every problem named,
//! the sync answer per pool (a pool's own assignment over one for every node), who may call
//! what (viewers read, another node's token is refused), drift as the agents report it.

use actix_web::http::StatusCode;
use actix_web::test::{call_service, read_body, TestRequest};
use gpuwarden_controlplane::clock::Clock;
use gpuwarden_controlplane::store::Registration;
use gpuwarden_controlplane::token;
use serde_json::{json, Value};

use crate::api::{app, env, error_code, send, ADMIN};

/// A valid WebAssembly component that carries `payload` in a custom section.
pub(crate) fn component_with(payload: &[u8]) -> Vec<u8> {
    fn leb(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let b = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }
    let mut body = Vec::new();
    leb(1, &mut body);
    body.push(b'x');
    body.extend_from_slice(payload);
    let mut c = b"\0asm\x0d\0\x01\0".to_vec();
    c.push(0); // a custom section
    leb(body.len(), &mut c);
    c.extend_from_slice(&body);
    c
}

fn digest(bytes: &[u8]) -> String {
    use sha2::Digest;
    let h = sha2::Sha256::digest(bytes);
    format!(
        "sha256:{}",
        h.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

/// Pushes `bytes` as plugin `name` to a running control plane; its digest.
pub(crate) fn push_raw(api: &gpuwarden_testkit::Api, name: &str, bytes: &[u8]) -> String {
    let mut r = gpuwarden_testkit::http::client()
        .post(&format!("{}/v1/plugins?name={name}", api.base))
        .header("Authorization", &format!("Bearer {}", api.token))
        .send(bytes)
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let v: Value = r.body_mut().read_json().unwrap();
    v["digest"].as_str().unwrap().to_string()
}

/// The bytes of component `digest` from a running control plane.
pub(crate) fn blob(api: &gpuwarden_testkit::Api, digest: &str) -> Vec<u8> {
    let mut r = gpuwarden_testkit::http::client()
        .get(&format!("{}/v1/blobs/{digest}", api.base))
        .header("Authorization", &format!("Bearer {}", api.token))
        .call()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    r.body_mut().read_to_vec().unwrap()
}

async fn upload<S>(app: &S, query: &str, token: &str, bytes: Vec<u8>) -> (StatusCode, Value)
where
    S: actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse,
        Error = actix_web::Error,
    >,
{
    let req = TestRequest::post()
        .uri(&format!("/v1/plugins{query}"))
        .insert_header(("Authorization", format!("Bearer {token}")))
        .insert_header(("Content-Type", "application/wasm"))
        .set_payload(bytes)
        .to_request();
    let resp = call_service(app, req).await;
    let st = resp.status();
    let body = read_body(resp).await;
    (
        st,
        serde_json::from_slice(&body)
            .unwrap_or(Value::String(String::from_utf8_lossy(&body).into_owned())),
    )
}

/// Registers node `name` in `pool` with node token `secret`; its id.
fn node(e: &crate::api::Env, name: &str, pool: &str, secret: &str) -> String {
    e.store
        .register(&Registration {
            new_id: format!("node-{name}"),
            name: name.into(),
            pool: Some(pool.into()),
            labels: Default::default(),
            address: format!("http://{name}:9410"),
            capabilities: "{}".into(),
            token_digest: token::digest(secret),
            token_expires: None,
            actor: "bootstrap".into(),
            bootstrap: false,
            now: e.clock.now_ms(),
        })
        .unwrap()
        .node
        .id
}

#[actix_web::test]
async fn uploads_are_checked_and_stored_by_digest() {
    let e = env(false);
    let app = app!(e);
    let c = component_with(b"version one");
    let d = digest(&c);

    // Refused, nothing stored: not wasm, a core module, cut short, a bad or wrong digest,
    // a bad name, no name, no token, a viewer.
    let mut cut = component_with(&[7u8; 300]);
    cut.truncate(100);
    let core = b"\0asm\x01\0\0\0".to_vec();
    let zero = format!("sha256:{}", "0".repeat(64));
    for (query, bytes, code, says) in [
        ("?name=x", b"hello".to_vec(), 422, "not WebAssembly"),
        ("?name=x", core, 422, "core WebAssembly module"),
        ("?name=x", cut, 422, "not a valid component"),
        (
            &*format!("?name=x&digest={zero}"),
            c.clone(),
            422,
            "corrupt",
        ),
        ("?name=x&digest=md5:abc", c.clone(), 400, "sha256"),
        ("?name=../etc", c.clone(), 422, "plugin name"),
        ("", c.clone(), 400, "name"),
    ] {
        let (st, v) = upload(&app, query, ADMIN, bytes).await;
        assert_eq!(st.as_u16(), code, "{query}: {v}");
        assert!(v.to_string().contains(says), "{query}: {v}");
    }
    let (st, _) = upload(&app, "?name=x", "wrong-token-000000000", c.clone()).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let (viewer, _) = crate::tokens_api::create_token(&app, "dash", "viewer").await;
    let (st, _) = upload(&app, "?name=x", &viewer, c.clone()).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (_, v) = send(&app, "GET", "/v1/plugins", Some(ADMIN), None).await;
    assert_eq!(v["plugins"], json!([]), "nothing stored");

    // Stored once, by digest; the same bytes again are not stored twice.
    let (st, v) = upload(&app, &format!("?name=xid&digest={d}"), ADMIN, c.clone()).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(v["digest"], d);
    let (st, v) = upload(&app, "?name=xid", ADMIN, c.clone()).await;
    assert_eq!((st, v["created"].clone()), (StatusCode::OK, json!(false)));
    let (st, v) = send(&app, "GET", "/v1/plugins", Some(&viewer), None).await;
    assert_eq!(st, StatusCode::OK, "viewers read");
    assert_eq!(v["plugins"].as_array().unwrap().len(), 1);
    assert_eq!(v["plugins"][0]["size"], c.len());

    // The bytes back, to an admin; a bad digest is a 400, an unknown one a 404.
    let req = TestRequest::get()
        .uri(&format!("/v1/blobs/{d}"))
        .insert_header(("Authorization", format!("Bearer {ADMIN}")))
        .to_request();
    let resp = call_service(&app, req).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(read_body(resp).await.to_vec(), c);
    let (st, _) = send(&app, "GET", "/v1/blobs/sha256:xyz", Some(ADMIN), None).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let (st, _) = send(&app, "GET", &format!("/v1/blobs/{zero}"), Some(ADMIN), None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = send(&app, "GET", &format!("/v1/blobs/{d}"), None, None).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);

    // Deleted when not assigned; audited.
    let (st, _) = send(
        &app,
        "DELETE",
        &format!("/v1/plugins/{d}"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _) = send(
        &app,
        "DELETE",
        &format!("/v1/plugins/{d}"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (_, v) = send(&app, "GET", "/v1/audit", Some(ADMIN), None).await;
    let actions: Vec<String> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                e["action"].as_str().unwrap(),
                e["result"].as_str().unwrap()
            )
        })
        .collect();
    assert!(actions.iter().any(|a| a == "plugin.push ok"), "{actions:?}");
    assert!(
        actions.iter().any(|a| a.starts_with("plugin.push refused")),
        "{actions:?}"
    );
    assert!(
        actions.iter().any(|a| a == "plugin.delete ok"),
        "{actions:?}"
    );
}

#[actix_web::test]
async fn assignments_reach_the_agents_of_their_pool_and_drift_is_shown() {
    let e = env(false);
    let app = app!(e);
    let a1 = node(&e, "gpu-1", "train", "node-token-gpu-1-000000");
    let _a2 = node(&e, "gpu-2", "train", "node-token-gpu-2-000000");
    let b1 = node(&e, "gpu-9", "infer", "node-token-gpu-9-000000");
    let (v1, v2) = (component_with(b"v1"), component_with(b"v2"));
    let (d1, d2) = (digest(&v1), digest(&v2));
    upload(&app, "?name=xid", ADMIN, v1).await;
    e.clock.advance(1000);
    upload(&app, "?name=xid", ADMIN, v2).await;

    // Every problem of a body at once, by where it is; nothing assigned.
    let bad = json!({"plugins": [
        {"name": "bad name!", "digest": "sha256:zz"},
        {"name": "xid", "interval": "soon", "timeout": "1h", "memory_limit_mib": 4096,
         "config": {"k": [1, 2]}},
        {"name": "xid"},
    ]});
    let (st, v) = send(
        &app,
        "PUT",
        "/v1/pools/train/plugins",
        Some(ADMIN),
        Some(bad),
    )
    .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let msg = v["error"]["message"].as_str().unwrap();
    for part in [
        "plugins[0].name",
        "plugins[0].digest",
        "plugins[1].interval",
        "plugins[1].timeout",
        "plugins[1].memory_limit_mib",
        "plugins[1].config.k",
        "plugins[2].name: xid is listed twice",
    ] {
        assert!(msg.contains(part), "{part}: {msg}");
    }
    // No such pool, no such component, no name pushed.
    let one = json!({"plugins": [{"name": "xid"}]});
    let (st, _) = send(
        &app,
        "PUT",
        "/v1/pools/nowhere/plugins",
        Some(ADMIN),
        Some(one.clone()),
    )
    .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let zero = format!("sha256:{}", "0".repeat(64));
    let (st, v) = send(
        &app,
        "PUT",
        "/v1/pools/train/plugins",
        Some(ADMIN),
        Some(json!({"plugins": [{"name": "xid", "digest": zero}]})),
    )
    .await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{v}");
    let (st, v) = send(
        &app,
        "PUT",
        "/v1/pools/train/plugins",
        Some(ADMIN),
        Some(json!({"plugins": [{"name": "ecc"}]})),
    )
    .await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{v}");
    assert!(error_code(&v) == "not_found");

    // xid at v2 (the newest pushed) for train; at v1 for every node.
    let (st, v) = send(
        &app,
        "PUT",
        "/v1/pools/train/plugins",
        Some(ADMIN),
        Some(json!({"plugins": [
        {"name": "xid", "config": {"window_seconds": 600, "strict": true}, "interval": "30s"}]})),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["assigned"][0]["digest"], d2);
    assert_eq!(v["drifted"], 2, "nothing reported yet: {v}");
    let (st, v) = send(
        &app,
        "PUT",
        "/v1/pools/*/plugins/xid",
        Some(ADMIN),
        Some(json!({"digest": d1})),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");

    // What each agent is told: the pool's own wins; another pool gets the one for all.
    let sync = |secret: &'static str, id: String, report: Value| {
        let app = &app;
        async move {
            send(
                app,
                "POST",
                &format!("/v1/nodes/{id}/plugins"),
                Some(secret),
                Some(report),
            )
            .await
        }
    };
    let (st, v) = sync(
        "node-token-gpu-1-000000",
        a1.clone(),
        json!({"plugins": []}),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["plugins"][0]["digest"], d2);
    assert_eq!(
        v["plugins"][0]["config"],
        json!({"strict": "true", "window_seconds": "600"})
    );
    assert_eq!(v["plugins"][0]["interval_seconds"], 30.0);
    let (_, v) = sync(
        "node-token-gpu-9-000000",
        b1.clone(),
        json!({"plugins": []}),
    )
    .await;
    assert_eq!(v["plugins"][0]["digest"], d1);
    // Another node's token, an admin, a bad report: refused.
    let (st, _) = sync(
        "node-token-gpu-9-000000",
        a1.clone(),
        json!({"plugins": []}),
    )
    .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, _) = sync(ADMIN, a1.clone(), json!({"plugins": []})).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, _) = sync(
        "node-token-gpu-1-000000",
        a1.clone(),
        json!({"plugins": [{"name": "xid", "source": "elsewhere"}]}),
    )
    .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    // The node's token may fetch components.
    let req = TestRequest::get()
        .uri(&format!("/v1/blobs/{d2}"))
        .insert_header(("Authorization", "Bearer node-token-gpu-1-000000"))
        .to_request();
    assert_eq!(call_service(&app, req).await.status(), StatusCode::OK);

    // gpu-1 runs v2; gpu-2 refused it (its first run failed) and runs v1 still.
    sync("node-token-gpu-1-000000", a1.clone(), json!({"plugins": [
        {"name": "xid", "source": "assigned", "running": d2, "status": "healthy", "message": "no XID"},
        {"name": "own", "source": "local", "running": d1, "status": "healthy"}]})).await;
    sync(
        "node-token-gpu-2-000000",
        "node-gpu-2".into(),
        json!({"plugins": [
        {"name": "xid", "source": "assigned", "running": d1,
         "error": "its first run failed: trap"}]}),
    )
    .await;
    let (st, v) = send(&app, "GET", "/v1/pools/train/plugins", Some(ADMIN), None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(
        (v["in_sync"].clone(), v["drifted"].clone()),
        (json!(1), json!(1)),
        "{v}"
    );
    let n1 = &v["nodes"][0];
    assert_eq!(n1["node"], "gpu-1");
    assert_eq!(n1["plugins"][0]["state"], "local");
    assert_eq!(n1["plugins"][1]["state"], "in_sync");
    let n2 = &v["nodes"][1];
    assert_eq!(n2["plugins"][0]["state"], "refused");
    assert_eq!(n2["plugins"][0]["running"], d1);
    assert!(n2["plugins"][0]["error"]
        .as_str()
        .unwrap()
        .contains("first run failed"));
    let (_, all) = send(&app, "GET", "/v1/plugins/status", Some(ADMIN), None).await;
    assert_eq!(all["nodes"].as_array().unwrap().len(), 3);
    assert_eq!(
        all["nodes"][2]["plugins"][0]["state"], "pending",
        "gpu-9 reported nothing"
    );

    // An assigned component cannot be deleted; unassigning frees it.
    let (st, v) = send(
        &app,
        "DELETE",
        &format!("/v1/plugins/{d1}"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    let (st, _) = send(&app, "DELETE", "/v1/pools/*/plugins/xid", Some(ADMIN), None).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _) = send(&app, "DELETE", "/v1/pools/*/plugins/xid", Some(ADMIN), None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = send(
        &app,
        "DELETE",
        &format!("/v1/plugins/{d1}"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (_, v) = sync("node-token-gpu-9-000000", b1, json!({"plugins": []})).await;
    assert_eq!(v["plugins"], json!([]), "nothing for infer any more");
}

/// A pool whose spec declares its plugins owns them: created with them, its assignments
/// follow the spec, and the plugin endpoints refuse to change them (409).
#[actix_web::test]
async fn a_pool_spec_that_declares_plugins_owns_them() {
    let e = env(false);
    let app = app!(e);
    let c = component_with(b"spec");
    let d = digest(&c);
    upload(&app, "?name=xid", ADMIN, c).await;
    let (st, v) = send(
        &app,
        "POST",
        "/v1/pools",
        Some(ADMIN),
        Some(json!({
        "name": "train", "provider": "fake", "min_nodes": 0, "max_nodes": 2,
        "plugins": [{"name": "xid"}]})),
    )
    .await;
    assert_eq!(
        st,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a spec pins its digest: {v}"
    );
    assert!(v.to_string().contains("plugins[0].digest"), "{v}");
    let (st, v) = send(
        &app,
        "POST",
        "/v1/pools",
        Some(ADMIN),
        Some(json!({
        "name": "train", "provider": "fake", "min_nodes": 0, "max_nodes": 2,
        "plugins": [{"name": "xid", "digest": d, "config": {"window_seconds": 60}}]})),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let (_, v) = send(&app, "GET", "/v1/pools/train/plugins", Some(ADMIN), None).await;
    assert_eq!(v["assigned"][0]["digest"], d);
    assert_eq!(v["assigned"][0]["config"], json!({"window_seconds": "60"}));
    for (method, path, body) in [
        (
            "PUT",
            "/v1/pools/train/plugins",
            Some(json!({"plugins": []})),
        ),
        (
            "PUT",
            "/v1/pools/train/plugins/xid",
            Some(json!({"digest": d})),
        ),
        ("DELETE", "/v1/pools/train/plugins/xid", None),
    ] {
        let (st, v) = send(&app, method, path, Some(ADMIN), body).await;
        assert_eq!(st, StatusCode::CONFLICT, "{method} {path}: {v}");
        assert!(v.to_string().contains("declares its plugins"), "{v}");
    }
}

/// What a breaker found: an assignment that would tell a node more than 256 plugins or more
/// than 1 MiB (its pool's and those for every node together) is refused; a pool deleted
/// takes its assignments with it; bytes pushed again under another name are refused, under
/// their own name they become the newest again; the drift view of `*` and of an unknown pool.
#[actix_web::test]
async fn assignments_stay_within_what_an_agent_takes_and_leave_with_their_pool() {
    let e = env(false);
    let app = app!(e);
    node(&e, "gpu-1", "train", "node-token-gpu-1-000000");
    let c = component_with(b"bounds");
    let d = digest(&c);
    upload(&app, "?name=xid", ADMIN, c.clone()).await;
    let many = |from: usize, n: usize| json!({"plugins": (from..from + n).map(|i| json!({"name": format!("p{i}"), "digest": d})).collect::<Vec<_>>()});
    let (st, v) = send(
        &app,
        "PUT",
        "/v1/pools/train/plugins",
        Some(ADMIN),
        Some(many(0, 200)),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, v) = send(
        &app,
        "PUT",
        "/v1/pools/*/plugins",
        Some(ADMIN),
        Some(many(200, 100)),
    )
    .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(v.to_string().contains("would run 300 plugins"), "{v}");
    let big: serde_json::Map<String, Value> = (0..64)
        .map(|i| (format!("k{i}"), json!("x".repeat(4096))))
        .collect();
    let mut refused = false;
    for i in 0..8 {
        let (st, v) = send(
            &app,
            "PUT",
            &format!("/v1/pools/train/plugins/big{i}"),
            Some(ADMIN),
            Some(json!({"digest": d, "config": big})),
        )
        .await;
        if st == StatusCode::UNPROCESSABLE_ENTITY {
            assert!(v.to_string().contains("bytes"), "{v}");
            refused = true;
            break;
        }
        assert_eq!(st, StatusCode::OK, "{v}");
    }
    assert!(refused, "the answer's size is bounded");

    // Pushed again: under another name refused; under its own, the newest again.
    let (st, v) = upload(&app, "?name=other", ADMIN, c.clone()).await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    assert!(v.to_string().contains("stored as plugin xid"), "{v}");
    let c2 = component_with(b"bounds 2");
    e.clock.advance(1000);
    upload(&app, "?name=xid", ADMIN, c2).await;
    e.clock.advance(1000);
    let (st, _) = upload(&app, "?name=xid", ADMIN, c.clone()).await;
    assert_eq!(st, StatusCode::OK);
    let (_, v) = send(&app, "GET", "/v1/plugins", Some(ADMIN), None).await;
    assert_eq!(v["plugins"][0]["digest"], d, "pushed again: the newest");

    // Drift views: `*` is every node's; an unknown pool is a 404.
    let (st, v) = send(&app, "GET", "/v1/plugins/status?pool=*", Some(ADMIN), None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["nodes"].as_array().unwrap().len(), 1, "{v}");
    let (st, _) = send(
        &app,
        "GET",
        "/v1/plugins/status?pool=nowhere",
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::NOT_FOUND);

    // A pool deleted takes its assignments: created again, it has none.
    let (st, v) = send(
        &app,
        "POST",
        "/v1/pools",
        Some(ADMIN),
        Some(json!({
        "name": "spare", "provider": "fake", "min_nodes": 0, "max_nodes": 1,
        "plugins": [{"name": "xid", "digest": d}]})),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let (st, _) = send(&app, "DELETE", "/v1/pools/spare", Some(ADMIN), None).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, v) = send(
        &app,
        "POST",
        "/v1/pools",
        Some(ADMIN),
        Some(json!({
        "name": "spare", "provider": "fake", "min_nodes": 0, "max_nodes": 1})),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let (_, v) = send(&app, "GET", "/v1/pools/spare/plugins", Some(ADMIN), None).await;
    assert_eq!(v["assigned"], json!([]), "{v}");
}

/// Components being sent hold their share of `[plugin_store] blob_send_bytes` until their last
/// byte is written: a reader that does not read keeps the next fetch waiting, and its share
/// comes back when its response goes.
#[actix_web::test]
async fn components_being_sent_are_bounded_by_the_send_budget() {
    use gpuwarden_controlplane::api::plugins::PluginBlobs;
    let e = env(false);
    let app = actix_web::test::init_service(
        actix_web::App::new()
            .app_data(e.data.clone())
            .app_data(actix_web::web::Data::new(PluginBlobs::new(
                8 << 20,
                0,
                4,
                1 << 20,
            )))
            .configure(gpuwarden_controlplane::api::configure),
    )
    .await;
    let c = component_with(&vec![7u8; 900 << 10]);
    let d = digest(&c);
    let (st, v) = upload(&app, "?name=big", ADMIN, c.clone()).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let get = || {
        TestRequest::get()
            .uri(&format!("/v1/blobs/{d}"))
            .insert_header(("Authorization", format!("Bearer {ADMIN}")))
            .to_request()
    };
    let first = call_service(&app, get()).await; // its body not read yet: its share is held
    assert_eq!(first.status(), StatusCode::OK);
    let waiting = tokio::time::timeout(
        std::time::Duration::from_millis(500),
        call_service(&app, get()),
    )
    .await;
    assert!(waiting.is_err(), "a second component over the budget waits");
    assert_eq!(read_body(first).await.to_vec(), c, "the first is whole");
    let second = call_service(&app, get()).await;
    assert_eq!(second.status(), StatusCode::OK);
    assert_eq!(read_body(second).await.len(), c.len());
}
