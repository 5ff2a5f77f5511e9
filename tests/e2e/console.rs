//! The web console in a real browser: Debian's `chromium`, driven through `chromium-driver`
//! by a WebDriver client (fantoccini), against a real `gpuwarden serve` scraping two agents.
//! It signs in, opens every page, filters the nodes, cordons a node and sees it change,
//! checks a policy, signs out, and is refused an action with a viewer token (the charts from a
//! real Prometheus: `prometheus.rs`). Each page's
//! screenshot is written to `$GPUWARDEN_SCREENSHOTS` (default `target/console-screenshots`;
//! the README's come from `GPUWARDEN_SCREENSHOTS=docs/console`).
//!
//! Needs `chromium` and `chromedriver` (`.ci/run` installs both); outside CI the test is
//! skipped without them.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{elements::Element, Client, ClientBuilder, Locator};
use gpuwarden_e2e::{wait_for, Scratch};
use serde_json::json;

use crate::cp::{self, ADMIN};

/// chromedriver on a free port of 127.0.0.1, killed when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        gpuwarden_e2e::stop_timeout_wrapped(&mut self.child);
    }
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn chromedriver() -> Driver {
    let port = free_port();
    let child = Command::new("timeout")
        .args(["300", "chromedriver"])
        .arg(format!("--port={port}"))
        .arg("--allowed-ips=127.0.0.1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    wait_for("chromedriver listening", 30, || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    });
    Driver { child, port }
}

pub(crate) fn installed(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Seconds since the test began (its progress lines).
fn since_start() -> f64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_secs_f64()
}

fn screenshots() -> PathBuf {
    let dir = std::env::var_os("GPUWARDEN_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/console-screenshots")
        });
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn shot(c: &Client, name: &str) {
    let png = c.screenshot().await.expect("screenshot");
    let f = screenshots().join(format!("{name}.png"));
    std::fs::write(&f, png).unwrap();
    eprintln!("{:>6.1}s screenshot: {}", since_start(), f.display());
}

/// The element matching `css`, waiting up to 20 s for it.
async fn find(c: &Client, css: &str) -> Element {
    c.wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no element {css}: {e}"))
}

/// Waits up to 20 s for the page's HTML to contain `text`; the HTML.
async fn wait_text(c: &Client, text: &str) -> String {
    for _ in 0..80 {
        let s = c.source().await.unwrap();
        if s.contains(text) {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!(
        "the page never showed {text:?}: {}",
        c.source().await.unwrap_or_default()
    );
}

async fn sign_in(c: &Client, base: &str, token: &str) {
    c.goto(&format!("{base}/ui/")).await.unwrap();
    // Not signed in: the sign-in page, which comes back to the page asked for.
    let url = c.current_url().await.unwrap();
    assert!(url.as_str().contains("/ui/login?next=/ui/"), "{url}");
    find(c, "#token").await.send_keys(token).await.unwrap();
    find(c, "form button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    wait_text(c, "Signed in as").await;
}

#[test]
fn a_browser_signs_in_opens_every_page_cordons_a_node_and_a_viewer_is_refused() {
    if !installed("chromedriver") || !installed("chromium") {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI installs chromium and chromium-driver (.ci/run)"
        );
        eprintln!("skipping: chromium or chromedriver is not installed (apt-get install -y chromium chromium-driver)");
        return;
    }
    since_start();
    let dir = Scratch::new("console");
    let (_cp, api) = cp::start(&dir, "[console]\nhistory = \"1m\"\nhistory_step = \"1s\"\n");
    let _a = cp::agent(&api.base, "gpu-01", &dir);
    let _b = cp::agent(&api.base, "gpu-02", &dir);
    cp::online(&api, "gpu-01");
    cp::online(&api, "gpu-02");
    eprintln!("{:>6.1}s both agents online", since_start());
    // A fatal XID on gpu-02, so the pages show an unhealthy node, its event and its reason.
    let addr = cp::online(&api, "gpu-02")["address"]
        .as_str()
        .unwrap()
        .to_string();
    let (st, _) = gpuwarden_e2e::Api::new(&addr, "").call(
        "POST",
        "/v1/fake/inject",
        Some(json!({"gpu": 3, "fault": "xid", "code": 79})),
    );
    assert_eq!(st, 200);
    wait_for("gpu-02 unhealthy", 30, || {
        let (_, n) = api.call("GET", "/v1/nodes/gpu-02", None);
        (n["health"] == "unhealthy").then_some(())
    });
    let (st, v) = api.call(
        "POST",
        "/v1/tokens",
        Some(json!({"name": "noc", "role": "viewer"})),
    );
    assert_eq!(st, 201, "{v}");
    let viewer = v["token"].as_str().unwrap().to_string();
    let driver = chromedriver();
    eprintln!("{:>6.1}s chromedriver listening", since_start());
    let profile = dir.path().join("chromium-profile");
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--window-size=1280,1000",
                format!("--user-data-dir={}", profile.display()),
            ]
        }
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let base = api.base.clone();
    rt.block_on(async move {
        eprintln!("{:>6.1}s starting chromium", since_start());
        let c = ClientBuilder::native()
            .capabilities(caps.as_object().unwrap().clone())
            .connect(&format!("http://127.0.0.1:{}", driver.port))
            .await
            .expect("a chromium session through chromedriver");
        eprintln!("{:>6.1}s chromium started", since_start());
        let r = journey(&c, &base, &api, &viewer).await;
        let _ = c.close().await;
        drop(driver);
        r
    });
}

async fn journey(c: &Client, base: &str, api: &gpuwarden_e2e::Api, viewer: &str) {
    // Keyboard first: the first Tab reaches the skip link.
    sign_in(c, base, ADMIN).await;
    let s = c.source().await.unwrap();
    assert!(s.contains("<strong>2</strong> nodes"), "{s}");
    assert!(
        s.contains("✔ online"),
        "states carry a symbol, not colour alone"
    );
    find(c, "body").await.send_keys("\u{E004}").await.unwrap();
    let focused = c.active_element().await.unwrap();
    assert_eq!(focused.text().await.unwrap(), "Skip to content");
    shot(c, "1-fleet").await;

    // Nodes: both listed; the filter (htmx, the table swapped in place) keeps one.
    c.find(Locator::LinkText("Nodes"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let s = wait_text(c, "Add a node").await;
    assert!(s.contains(">gpu-01<") && s.contains(">gpu-02<"));
    shot(c, "2-nodes").await;
    find(c, "input[name=q]")
        .await
        .send_keys("gpu-02")
        .await
        .unwrap();
    find(c, "form.filters button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    let s = wait_text(c, "1 node,").await;
    assert!(
        !s.contains(">gpu-01<") && s.contains(">gpu-02<"),
        "the filter keeps gpu-02 only"
    );
    assert!(c.current_url().await.unwrap().as_str().contains("q=gpu-02"));

    // A node: its GPUs, and the charts drawn from the recent values (a point a second:
    // wait for a few).
    while since_start() < 25.0 {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    c.goto(&format!("{base}/ui/nodes?q=gpu-01")).await.unwrap();
    c.find(Locator::LinkText("gpu-01"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let s = wait_text(c, "GPUs at the last scrape").await;
    assert!(s.contains("8 GPUs at the last scrape"), "{s}");
    find(c, ".charts .uplot canvas").await;
    shot(c, "3-node").await;
    let charts = find(c, ".charts").await;
    let png = charts.screenshot().await.expect("the charts' screenshot");
    std::fs::write(screenshots().join("3-node-charts.png"), png).unwrap();

    // Cordon it: the confirmation, then the node cordoned, audited.
    c.find(Locator::LinkText("Cordon…"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(c, "Confirm: Cordon").await;
    find(c, "#reason")
        .await
        .send_keys("fan noise")
        .await
        .unwrap();
    shot(c, "4-confirm").await;
    find(c, "#confirm").await.click().await.unwrap();
    let s = wait_text(c, "Cordon: command").await;
    assert!(
        find(c, "#node-status")
            .await
            .text()
            .await
            .unwrap()
            .contains("cordoned"),
        "{s}"
    );
    let (_, n) = api.call("GET", "/v1/nodes/gpu-01", None);
    assert_eq!(n["status"], "cordoned");
    shot(c, "5-cordoned").await;

    c.find(Locator::LinkText("Pools"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(c, "<h1>Pools</h1>").await;
    shot(c, "6-pools").await;

    // Policies: a broken candidate shows its problem at its line; the running one passes
    // and the what-if answers beside it.
    c.find(Locator::LinkText("Policies"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let area = find(c, "#policy").await;
    area.clear().await.unwrap();
    area.send_keys("[[rule]]\nname = \"hot\"\nscope = \"gpu\"\nwhen = \"gpu.temperature_celsius >\"\nverdict = \"degraded\"\n")
        .await
        .unwrap();
    find(c, "form button[type=submit]:not(.secondary)")
        .await
        .click()
        .await
        .unwrap();
    wait_text(c, "The candidate is invalid").await;
    find(c, ".lines li.bad").await;
    shot(c, "7-policy-invalid").await;
    c.goto(&format!("{base}/ui/policies")).await.unwrap();
    find(c, "form button[type=submit]:not(.secondary)")
        .await
        .click()
        .await
        .unwrap();
    wait_text(c, "The candidate is valid").await;
    shot(c, "8-policy-what-if").await;

    c.find(Locator::LinkText("Audit log"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let s = wait_text(c, "node.cordon").await;
    assert!(s.contains("fan noise"));
    shot(c, "9-audit").await;

    // Sign out; a viewer signs in, reads, and is refused an action.
    find(c, "form.signout button").await.click().await.unwrap();
    wait_text(c, "You are signed out").await;
    sign_in(c, base, viewer).await;
    c.goto(&format!("{base}/ui/nodes/gpu-02")).await.unwrap();
    let s = wait_text(c, "read only").await;
    assert!(s.contains("XID 79"), "the reason it is unhealthy: {s}");
    let (_, before) = api.call("GET", "/v1/nodes/gpu-02", None);
    assert!(!s.contains("Cordon…"), "no action buttons for a viewer");
    // The form a viewer cannot see, posted all the same with the session's CSRF token.
    c.execute(
        "const f = document.createElement('form'); f.method = 'post'; \
         f.action = '/ui/nodes/gpu-02/actions/cordon'; \
         const t = document.querySelector('input[name=csrf]').cloneNode(); f.appendChild(t); \
         document.body.appendChild(f); f.submit();",
        vec![],
    )
    .await
    .unwrap();
    wait_text(c, "a viewer token can only read").await;
    shot(c, "10-viewer-refused").await;
    let (_, after) = api.call("GET", "/v1/nodes/gpu-02", None);
    // Remediation's action is a cordon only (the default): nothing else moves the node.
    assert_eq!(
        after["status"], before["status"],
        "the viewer changed nothing"
    );
    let (_, audit) = api.call("GET", "/v1/audit?limit=1000", None);
    let by_viewer = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["actor"] == "viewer:noc")
        .count();
    assert_eq!(by_viewer, 0, "{audit}");
    assert!(audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["action"] == "node.cordon"));
}
