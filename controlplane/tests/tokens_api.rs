//! API tokens (`POST/GET/DELETE /v1/tokens`): an admin token acts; a viewer token reads every
//! `GET` and is refused every action (403) and the token list; a revoked token is refused at
//! once; secrets are shown once and only their digests are stored; each change audited.

use actix_web::http::StatusCode;
use serde_json::json;

use crate::api::{app, create_node, env, error_code, send, ADMIN};

/// Creates API token `name` with `role` as the admin (asserting 201): `(secret, id)`.
pub(crate) async fn create_token<S>(app: &S, name: &str, role: &str) -> (String, String)
where
    S: actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse,
        Error = actix_web::Error,
    >,
{
    let (st, v) = send(
        app,
        "POST",
        "/v1/tokens",
        Some(ADMIN),
        Some(json!({"name": name, "role": role})),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    (
        v["token"].as_str().unwrap().to_string(),
        v["id"].as_str().unwrap().to_string(),
    )
}

#[actix_web::test]
async fn viewer_tokens_read_admin_tokens_act_and_revoked_tokens_are_refused() {
    let e = env(false);
    let app = app!(e);
    let id = create_node(&app, "gpu-01").await;

    let (viewer, viewer_id) = create_token(&app, "grafana", "viewer").await;
    assert!(viewer.starts_with("gwv_"), "{viewer}");
    let (admin2, _) = create_token(&app, "oncall", "admin").await;

    // Refused: a bad role, a bad name, a name twice, no token.
    for (body, code) in [
        (
            json!({"name": "x", "role": "root"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"name": "-x", "role": "viewer"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"name": "grafana", "role": "viewer"}),
            StatusCode::CONFLICT,
        ),
    ] {
        let (st, v) = send(&app, "POST", "/v1/tokens", Some(ADMIN), Some(body.clone())).await;
        assert_eq!(st, code, "{body}: {v}");
    }
    let (st, _) = send(
        &app,
        "POST",
        "/v1/tokens",
        None,
        Some(json!({"name": "y", "role": "viewer"})),
    )
    .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);

    // The viewer reads.
    for path in [
        "/v1/nodes",
        &format!("/v1/nodes/{id}"),
        "/v1/pools",
        "/v1/audit",
    ] {
        let (st, v) = send(&app, "GET", path, Some(&viewer), None).await;
        assert_eq!(st, StatusCode::OK, "{path}: {v}");
    }
    // … and acts on nothing, nor sees the tokens or makes one.
    let (st, v) = send(
        &app,
        "POST",
        &format!("/v1/nodes/{id}/cordon"),
        Some(&viewer),
        Some(json!({})),
    )
    .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(error_code(&v), "forbidden");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("viewer"),
        "{v}"
    );
    let (st, _) = send(
        &app,
        "DELETE",
        &format!("/v1/nodes/{id}"),
        Some(&viewer),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, _) = send(&app, "GET", "/v1/tokens", Some(&viewer), None).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, _) = send(
        &app,
        "POST",
        "/v1/tokens",
        Some(&viewer),
        Some(json!({"name": "z", "role": "admin"})),
    )
    .await;
    assert_eq!(st, StatusCode::FORBIDDEN);

    // The second admin acts.
    let (st, v) = send(
        &app,
        "POST",
        "/v1/nodes",
        Some(&admin2),
        Some(json!({"name": "gpu-02"})),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");

    // Listed without secrets; stored as digests only.
    let (st, v) = send(&app, "GET", "/v1/tokens", Some(ADMIN), None).await;
    assert_eq!(st, StatusCode::OK);
    let mut names: Vec<&str> = v["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    // Created in the same millisecond of the fake clock: their order is by id.
    names.sort_unstable();
    assert_eq!(names, ["grafana", "oncall"]);
    assert!(!v.to_string().contains(&viewer), "no secret listed");
    let rows = e.store.api_tokens().unwrap();
    // Names are unique in the store too (two creates of one name at once).
    let mut twin = rows[0].clone();
    twin.id = "tok_twin".into();
    twin.digest = "0".repeat(64);
    let entry =
        gpuwarden_controlplane::store::rows::NewAudit::ok("t", "token.create", "x", json!({}), 0);
    let err = e
        .store
        .create_api_token(&twin, entry.clone(), 1000)
        .unwrap_err();
    assert!(err.to_string().contains("exists"), "{err}");
    // The cap is counted where the row goes in.
    twin.name = "third".into();
    let err = e.store.create_api_token(&twin, entry, 2).unwrap_err();
    assert!(err.to_string().contains("2 tokens are there"), "{err}");
    assert!(rows
        .iter()
        .all(|r| r.digest.len() == 64 && !r.digest.contains("gwv_")));

    // Revoked: refused at once; a second revoke is 404.
    let (st, _) = send(
        &app,
        "DELETE",
        &format!("/v1/tokens/{viewer_id}"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _) = send(&app, "GET", "/v1/nodes", Some(&viewer), None).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let (st, _) = send(
        &app,
        "DELETE",
        &format!("/v1/tokens/{viewer_id}"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::NOT_FOUND);

    // Audited.
    let (_, a) = send(&app, "GET", "/v1/audit?limit=100", Some(ADMIN), None).await;
    let actions: Vec<String> = a["entries"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|x| x["action"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(
        actions.iter().filter(|x| *x == "token.create").count() >= 2,
        "{actions:?}"
    );
    assert!(actions.iter().any(|x| x == "token.revoke"), "{actions:?}");
}

/// `gpuwarden tokens create|list|revoke` against a real control plane: the secret printed
/// once, a viewer's read allowed and its action refused through the CLI, the revoke.
#[test]
fn the_tokens_cli_creates_lists_and_revokes() {
    use gpuwarden_testkit::Launch;
    let dir = crate::util::TempDir::new("tokens-cli");
    let cp = Launch::new(env!("CARGO_BIN_EXE_gpuwarden"))
        .args(["serve", "--listen", "127.0.0.1:0", "--database"])
        .args([format!("sqlite://{}/gw.db", dir.path().display()).as_str()])
        .envs(&[("GPUWARDEN_ADMIN_TOKEN", ADMIN)])
        .current_dir(dir.path())
        .start();
    let gw = |token: &str, args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_gpuwarden"))
            .args(["--server", &cp.base, "--token", token])
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code, out, err) = gw(
        ADMIN,
        &["-o", "json", "tokens", "create", "dash", "--role", "viewer"],
    );
    assert_eq!(code, Some(0), "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let viewer = v["token"].as_str().unwrap().to_string();
    let id = v["id"].as_str().unwrap().to_string();
    let (code, out, _) = gw(ADMIN, &["tokens", "list"]);
    assert_eq!(code, Some(0));
    assert!(
        out.contains("dash") && out.contains("viewer") && !out.contains(&viewer),
        "{out}"
    );
    let (code, _, err) = gw(&viewer, &["nodes", "list"]);
    assert_eq!(code, Some(0), "a viewer reads: {err}");
    let (code, _, err) = gw(&viewer, &["nodes", "create", "gpu-9"]);
    assert_eq!(code, Some(1), "a viewer cannot act");
    assert!(err.contains("viewer"), "{err}");
    let (code, out, err) = gw(ADMIN, &["tokens", "revoke", &id]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("revoked"), "{out}");
    let (code, _, _) = gw(&viewer, &["nodes", "list"]);
    assert_eq!(code, Some(1), "revoked");

    // Twelve creates of one name at once: exactly one token.
    let created: usize = std::thread::scope(|s| {
        let handles: Vec<_> = (0..12)
            .map(|_| {
                s.spawn(|| {
                    let http: ureq::Agent = ureq::Agent::config_builder()
                        .http_status_as_error(false)
                        .build()
                        .into();
                    http.post(&format!("{}/v1/tokens", cp.base))
                        .header("Authorization", &format!("Bearer {ADMIN}"))
                        .send_json(json!({"name": "race", "role": "viewer"}))
                        .map(|r| usize::from(r.status().as_u16() == 201))
                        .unwrap_or(0)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert_eq!(created, 1);
    let (_, out, _) = gw(ADMIN, &["-o", "json", "tokens", "list"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let races = v["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["name"] == "race")
        .count();
    assert_eq!(races, 1, "{v}");
}

/// Two `gpuwarden serve` processes over one SQLite file (as replicas over one PostgreSQL
/// would be): a token created on one is accepted by the other within
/// `auth.api_token_refresh`, and a token revoked on one is refused by the other as soon.
#[test]
fn a_token_created_or_revoked_on_one_control_plane_holds_on_another_over_the_same_database() {
    use gpuwarden_testkit::Launch;
    use std::time::{Duration, Instant};
    let dir = crate::util::TempDir::new("tokens-replicas");
    let file = dir.path().join("cp.toml");
    std::fs::write(
        &file,
        format!(
            "[database]\nurl = \"sqlite://{}/gw.db\"\n[auth]\napi_token_refresh = \"200ms\"\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let start = || {
        Launch::new(env!("CARGO_BIN_EXE_gpuwarden"))
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .args([file.to_str().unwrap()])
            .envs(&[("GPUWARDEN_ADMIN_TOKEN", ADMIN)])
            .current_dir(dir.path())
            .start()
    };
    let (a, b) = (start(), start());
    let http: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let nodes = |base: &str, token: &str| {
        http.get(&format!("{base}/v1/nodes"))
            .header("Authorization", &format!("Bearer {token}"))
            .call()
            .unwrap()
            .status()
            .as_u16()
    };
    // Within 5 s (25 refresh intervals), `base` answers `want` to `token`.
    let within = |base: &str, token: &str, want: u16| {
        let until = Instant::now() + Duration::from_secs(5);
        loop {
            let got = nodes(base, token);
            if got == want || Instant::now() > until {
                return got;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let mut r = http
        .post(&format!("{}/v1/tokens", a.base))
        .header("Authorization", &format!("Bearer {ADMIN}"))
        .send_json(json!({"name": "dash", "role": "viewer"}))
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let v: serde_json::Value = r.body_mut().read_json().unwrap();
    let (viewer, id) = (
        v["token"].as_str().unwrap().to_string(),
        v["id"].as_str().unwrap().to_string(),
    );
    assert_eq!(nodes(&a.base, &viewer), 200, "at once where it was created");
    assert_eq!(within(&b.base, &viewer, 200), 200, "the other replica");

    let r = http
        .delete(&format!("{}/v1/tokens/{id}", b.base))
        .header("Authorization", &format!("Bearer {ADMIN}"))
        .call()
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    assert_eq!(nodes(&b.base, &viewer), 401, "at once where it was revoked");
    assert_eq!(within(&a.base, &viewer, 401), 401, "the other replica");
}
