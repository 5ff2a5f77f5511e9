//! The web console in-process (actix test service) over a real SQLite file: sign-in and its
//! cookie, every page's HTML, actions with and without the CSRF token, a viewer refused,
//! sign-out and revocation ending a session; the helpers `console_pages` shares.

use std::time::Duration;

use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::test::{call_service, read_body, TestRequest};
use actix_web::web;
use gpuwarden_controlplane::clock::Clock;
use gpuwarden_controlplane::console::{self, Console, Sessions};
use serde_json::json;

use crate::api::{create_node, env, send, Env, ADMIN};

macro_rules! ui {
    ($env:expr) => {
        ui!($env, None)
    };
    ($env:expr, $prometheus_url:expr) => {
        actix_web::test::init_service(
            actix_web::App::new()
                .app_data($env.data.clone())
                .app_data(web::Data::new(Console {
                    sessions: Sessions::new(Duration::from_secs(3600), 100),
                    prometheus_url: $prometheus_url,
                }))
                .configure(console::configure)
                .configure(gpuwarden_controlplane::api::configure),
        )
        .await
    };
}
pub(crate) use ui;

/// A response: status, headers we look at, body as text.
pub(crate) struct Page {
    pub(crate) status: StatusCode,
    pub(crate) location: Option<String>,
    pub(crate) set_cookie: Option<String>,
    pub(crate) body: String,
}

pub(crate) async fn call<S>(app: &S, req: TestRequest) -> Page
where
    S: Service<actix_http::Request, Response = ServiceResponse, Error = actix_web::Error>,
{
    let resp = call_service(app, req.to_request()).await;
    let h = |n: &str| {
        resp.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let (status, location, set_cookie) = (resp.status(), h("location"), h("set-cookie"));
    let body = String::from_utf8_lossy(&read_body(resp).await).into_owned();
    Page {
        status,
        location,
        set_cookie,
        body,
    }
}

pub(crate) async fn get<S>(app: &S, path: &str, cookie: &str) -> Page
where
    S: Service<actix_http::Request, Response = ServiceResponse, Error = actix_web::Error>,
{
    call(
        app,
        TestRequest::get()
            .uri(path)
            .insert_header(("Cookie", format!("gw_session={cookie}"))),
    )
    .await
}

pub(crate) async fn post<S>(app: &S, path: &str, cookie: &str, form: &[(&str, &str)]) -> Page
where
    S: Service<actix_http::Request, Response = ServiceResponse, Error = actix_web::Error>,
{
    call(
        app,
        TestRequest::post()
            .uri(path)
            .insert_header(("Cookie", format!("gw_session={cookie}")))
            .set_form(form.to_vec()),
    )
    .await
}

/// Posts the sign-in form as a browser would: the sign-in page first (its cookie and the
/// form's hidden token), then the form with `fields` and `headers`.
pub(crate) async fn login<S>(app: &S, fields: &[(&str, &str)], headers: &[(&str, &str)]) -> Page
where
    S: Service<actix_http::Request, Response = ServiceResponse, Error = actix_web::Error>,
{
    let page = get(app, "/ui/login", "").await;
    let c = page.set_cookie.expect("the sign-in form's cookie");
    assert!(
        c.contains("HttpOnly") && c.contains("SameSite=Strict"),
        "{c}"
    );
    let value = c
        .strip_prefix("gw_login=")
        .and_then(|c| c.split(';').next())
        .unwrap()
        .to_string();
    let at = page.body.find("name=\"form\" value=\"").unwrap() + "name=\"form\" value=\"".len();
    let form = page.body[at..].split('"').next().unwrap().to_string();
    assert_eq!(form, value);
    let mut f: Vec<(&str, &str)> = fields.to_vec();
    f.push(("form", &form));
    let mut req = TestRequest::post()
        .uri("/ui/login")
        .insert_header(("Cookie", format!("gw_login={value}")))
        .set_form(f);
    for h in headers {
        req = req.insert_header(*h);
    }
    call(app, req).await
}

/// Signs in with `token`: the session cookie's value.
pub(crate) async fn sign_in<S>(app: &S, token: &str) -> String
where
    S: Service<actix_http::Request, Response = ServiceResponse, Error = actix_web::Error>,
{
    let p = login(app, &[("token", token), ("next", "/ui/nodes")], &[]).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    assert_eq!(p.location.as_deref(), Some("/ui/nodes"));
    let c = p.set_cookie.expect("a session cookie");
    c.strip_prefix("gw_session=")
        .and_then(|c| c.split(';').next())
        .expect("gw_session=VALUE; …")
        .to_string()
}

/// The CSRF token a page's forms carry.
pub(crate) fn csrf(body: &str) -> String {
    let at = body
        .find("name=\"csrf\" value=\"")
        .expect("a form with the CSRF token")
        + "name=\"csrf\" value=\"".len();
    body[at..].split('"').next().unwrap().to_string()
}

async fn status_of(e: &Env, id: &str) -> String {
    let s = e.store.clone();
    let id = id.to_string();
    web::block(move || s.node(&id))
        .await
        .unwrap()
        .unwrap()
        .status
}

#[actix_web::test]
async fn sign_in_sets_a_strict_http_only_cookie_and_every_page_needs_it() {
    let e = env(false);
    let app = ui!(e);
    // Not signed in: every page sends to the sign-in page, coming back after.
    for path in [
        "/ui/",
        "/ui/nodes?pool=a",
        "/ui/pools",
        "/ui/policies",
        "/ui/audit",
    ] {
        let p = get(&app, path, "").await;
        assert_eq!(p.status, StatusCode::SEE_OTHER, "{path}");
        assert!(
            p.location.unwrap().starts_with("/ui/login?next=/ui/"),
            "{path}"
        );
    }
    let p = get(&app, "/ui/nodes/x", "gws_forged").await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    // A wrong token: 401 and the reason, no session.
    let p = login(&app, &[("token", "nope")], &[]).await;
    assert_eq!(p.status, StatusCode::UNAUTHORIZED);
    assert!(p.body.contains("not accepted"), "{}", p.body);
    assert!(!p.set_cookie.unwrap().contains("gw_session"));
    // Another site's form (no sign-in cookie, or another one): refused, no session, even
    // with the right token (login CSRF).
    let p = post(
        &app,
        "/ui/login",
        "",
        &[("token", ADMIN), ("form", "gwc_x")],
    )
    .await;
    assert_eq!(p.status, StatusCode::FORBIDDEN, "{}", p.body);
    assert!(p.body.contains("did not come from this console"));
    assert!(!p.set_cookie.unwrap().contains("gw_session"));
    // The admin token: HttpOnly, SameSite=Strict, Path=/ui; Secure only behind TLS.
    let p = login(&app, &[("token", ADMIN)], &[]).await;
    let c = p.set_cookie.unwrap();
    for part in ["HttpOnly", "SameSite=Strict", "Path=/ui", "Max-Age=3600"] {
        assert!(c.contains(part), "{c}");
    }
    assert!(!c.contains("Secure"), "{c}");
    for proto in ["https", "HTTPS"] {
        let p = login(&app, &[("token", ADMIN)], &[("X-Forwarded-Proto", proto)]).await;
        assert!(p.set_cookie.unwrap().contains("; Secure"), "{proto}");
    }
    // After sign-in, only console paths are followed.
    for next in ["//evil.example/", "/ui/../v1/nodes"] {
        let p = login(&app, &[("token", ADMIN), ("next", next)], &[]).await;
        assert_eq!(p.location.as_deref(), Some("/ui/"), "{next}");
    }
    // Static files need no session and are compiled in.
    let p = get(&app, "/ui/static/htmx.min.js", "").await;
    assert_eq!(p.status, StatusCode::OK);
    assert!(p.body.contains("htmx"));
    let p = get(&app, "/ui/static/uPlot.iife.min.js", "").await;
    assert!(p.body.contains("uPlot"));
    assert_eq!(
        get(&app, "/ui/static/x.js", "").await.status,
        StatusCode::NOT_FOUND
    );
}

#[actix_web::test]
async fn an_admin_reads_every_page_and_acts_only_with_the_csrf_token() {
    let e = env(false);
    let app = ui!(e);
    let id = create_node(&app, "gpu-01").await;
    crate::remediate::register(&e.store, "gpu-02", None, e.clock.now_ms());
    let (st, _) = send(
        &app,
        "POST",
        "/v1/nodes/gpu-02/cordon",
        Some(ADMIN),
        Some(json!({"reason": "rack maintenance"})),
    )
    .await;
    assert_eq!(st, StatusCode::ACCEPTED);
    let cookie = sign_in(&app, ADMIN).await;

    let p = get(&app, "/ui/", &cookie).await;
    assert_eq!(p.status, StatusCode::OK);
    assert!(p.body.contains("<strong>2</strong> nodes"), "{}", p.body);
    assert!(p.body.contains("▲ cordoned") && p.body.contains("node.cordon"));
    // The nodes table filters and sorts through its query.
    let p = get(&app, "/ui/nodes", &cookie).await;
    assert!(p.body.contains(">gpu-01<") && p.body.contains(">gpu-02<"));
    let p = get(&app, "/ui/nodes?status=cordoned", &cookie).await;
    assert!(
        p.body.contains(">gpu-02<") && !p.body.contains(">gpu-01<"),
        "{}",
        p.body
    );
    let p = get(&app, "/ui/nodes?q=01", &cookie).await;
    assert!(p.body.contains(">gpu-01<") && !p.body.contains(">gpu-02<"));
    let p = get(&app, "/ui/nodes?sort=name&dir=desc", &cookie).await;
    assert!(p.body.find(">gpu-02<").unwrap() < p.body.find(">gpu-01<").unwrap());
    assert!(p.body.contains("aria-sort=\"descending\""));
    let p = get(&app, "/ui/nodes?status=bogus", &cookie).await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST);
    assert!(p.body.contains("use one of pending, active"), "{}", p.body);
    let p = get(&app, "/ui/nodes?sort=nonsense", &cookie).await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST);
    assert!(p.body.contains("use one of name"), "{}", p.body);
    for path in ["/ui/pools", "/ui/policies", "/ui/audit"] {
        assert_eq!(
            get(&app, path, &cookie).await.status,
            StatusCode::OK,
            "{path}"
        );
    }
    // The node page offers the actions; each is confirmed on a page of its own.
    let p = get(&app, &format!("/ui/nodes/{id}"), &cookie).await;
    assert!(p.body.contains("Cordon…") && p.body.contains("Clear health…"));
    let token = csrf(&p.body);
    let p = get(&app, &format!("/ui/nodes/{id}/actions/cordon"), &cookie).await;
    assert!(p.body.contains("Confirm: Cordon"), "{}", p.body);
    // Without the session's CSRF token, or with another, nothing happens.
    let path = format!("/ui/nodes/{id}/actions/cordon");
    for bad in ["", "gwc_0000"] {
        let p = post(&app, &path, &cookie, &[("csrf", bad)]).await;
        assert_eq!(p.status, StatusCode::FORBIDDEN);
        assert!(p.body.contains("CSRF"));
    }
    assert_eq!(status_of(&e, &id).await, "pending");
    // A pending node cannot be cordoned: the API's 409 with its reason, audited.
    let p = post(
        &app,
        &path,
        &cookie,
        &[("csrf", &token), ("reason", "bad fan")],
    )
    .await;
    assert_eq!(p.status, StatusCode::CONFLICT, "{}", p.body);
    // An active node can.
    let (st, _) = send(&app, "POST", "/v1/nodes/gpu-02/uncordon", Some(ADMIN), None).await;
    assert_eq!(st, StatusCode::ACCEPTED);
    let path = "/ui/nodes/gpu-02/actions/cordon";
    let p = post(
        &app,
        path,
        &cookie,
        &[("csrf", &token), ("reason", "bad fan")],
    )
    .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    let to = p.location.unwrap();
    assert!(to.contains("done=cordon&command=cmd-"), "{to}");
    let p = get(&app, &to, &cookie).await;
    assert!(p.body.contains("Cordon: command cmd-"), "{}", p.body);
    // A link cannot make the page claim an action it did not do.
    let p = get(
        &app,
        "/ui/nodes/gpu-02?done=drain&command=cmd-0123456789abcdef",
        &cookie,
    )
    .await;
    assert!(!p.body.contains("role=\"status\""), "{}", p.body);
    assert!(p.body.contains("▲ cordoned") && p.body.contains("bad fan"));
    let p = get(&app, "/ui/audit", &cookie).await;
    assert!(
        p.body.contains("node.cordon") && p.body.contains("cannot cordon a node that is pending"),
        "{}",
        p.body
    );
    // The same form through htmx: the token in the header.
    let p = call(
        &app,
        TestRequest::post()
            .uri("/ui/nodes/gpu-02/actions/diagnose")
            .insert_header(("Cookie", format!("gw_session={cookie}")))
            .insert_header(("X-CSRF-Token", token.as_str()))
            .set_form([("plugin", "")]),
    )
    .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    // No such action, no such node: the console's own pages, not JSON.
    let p = get(&app, "/ui/nodes/gpu-02/actions/reboot", &cookie).await;
    assert_eq!(p.status, StatusCode::NOT_FOUND);
    assert!(p.body.contains("no action") && p.body.starts_with("<!doctype html>"));
    let p = get(&app, "/ui/nodes/nope", &cookie).await;
    assert_eq!(p.status, StatusCode::NOT_FOUND);
    assert!(get(&app, "/ui/nowhere", &cookie)
        .await
        .body
        .contains("no console page"));
}

#[actix_web::test]
async fn a_viewer_reads_and_is_refused_every_action() {
    let e = env(false);
    let app = ui!(e);
    let id = create_node(&app, "gpu-01").await;
    let (viewer, token_id) = crate::tokens_api::create_token(&app, "noc", "viewer").await;
    let cookie = sign_in(&app, &viewer).await;
    let p = get(&app, &format!("/ui/nodes/{id}"), &cookie).await;
    assert_eq!(p.status, StatusCode::OK);
    assert!(p.body.contains("viewer:noc") && p.body.contains("read only"));
    assert!(
        !p.body.contains("Cordon…"),
        "no action buttons for a viewer"
    );
    let p = get(&app, "/ui/nodes", &cookie).await;
    assert!(!p.body.contains("Add node"));
    let token = csrf(&p.body);
    for action in ["cordon", "drain", "clear-health", "diagnose"] {
        let p = get(&app, &format!("/ui/nodes/{id}/actions/{action}"), &cookie).await;
        assert_eq!(p.status, StatusCode::FORBIDDEN, "{action}");
        let p = post(
            &app,
            &format!("/ui/nodes/{id}/actions/{action}"),
            &cookie,
            &[("csrf", &token)],
        )
        .await;
        assert_eq!(p.status, StatusCode::FORBIDDEN, "{action}");
        assert!(
            p.body.contains("a viewer token can only read"),
            "{}",
            p.body
        );
    }
    let p = post(
        &app,
        "/ui/nodes",
        &cookie,
        &[("csrf", &token), ("name", "gpu-09")],
    )
    .await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);
    assert_eq!(status_of(&e, &id).await, "pending");
    let s = e.store.clone();
    assert!(web::block(move || s.node("gpu-09")).await.unwrap().is_err());
    // A viewer may check a policy: it changes nothing.
    let p = post(
        &app,
        "/ui/policies",
        &cookie,
        &[("csrf", &token), ("policy", "[[rules]]\nname = \"x\"\n")],
    )
    .await;
    assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY);
    // Revoking the token ends the session at once.
    let (st, _) = send(
        &app,
        "DELETE",
        &format!("/v1/tokens/{token_id}"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    assert_eq!(
        get(&app, "/ui/", &cookie).await.status,
        StatusCode::SEE_OTHER
    );
}

#[actix_web::test]
async fn sign_out_ends_the_session_and_needs_the_csrf_token() {
    let e = env(false);
    let app = ui!(e);
    let cookie = sign_in(&app, ADMIN).await;
    let token = csrf(&get(&app, "/ui/", &cookie).await.body);
    // A forged sign-out (another site's form) does nothing.
    let p = post(&app, "/ui/logout", &cookie, &[("csrf", "x")]).await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);
    assert_eq!(get(&app, "/ui/", &cookie).await.status, StatusCode::OK);
    let p = post(&app, "/ui/logout", &cookie, &[("csrf", &token)]).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    assert_eq!(p.location.as_deref(), Some("/ui/login?out=1"));
    assert!(p.set_cookie.unwrap().contains("Max-Age=0"));
    assert_eq!(
        get(&app, "/ui/", &cookie).await.status,
        StatusCode::SEE_OTHER
    );
    let p = get(&app, "/ui/login?out=1", "").await;
    assert!(p.body.contains("You are signed out"));
}
