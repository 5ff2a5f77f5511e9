//! Plugins assigned by a control plane, against a stand-in control plane the test controls
//! (a few lines of HTTP on a loopback socket), so that it can send what a real one never
//! would: a component whose bytes do not match its digest. The agent must verify before
//! anything else, refuse and report, and keep the previous version running; a component
//! that does not load is refused the same way; a plugin configured on the node keeps
//! running whatever is assigned.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use crate::util::{plugin_entry, plugins, sha256, Agent, Scratch};

/// The stand-in: what it assigns, the bytes it serves per digest, the reports it got.
#[derive(Default)]
struct Plane {
    assigned: Value,
    blobs: HashMap<String, Vec<u8>>,
    reports: Vec<Value>,
    /// Answer 503 to everything (the control plane is away).
    down: bool,
}

fn serve(listener: TcpListener, plane: Arc<Mutex<Plane>>) {
    for conn in listener.incoming() {
        let Ok(mut conn) = conn else { return };
        let mut r = BufReader::new(conn.try_clone().unwrap());
        let mut line = String::new();
        if r.read_line(&mut line).is_err() || line.is_empty() {
            continue;
        }
        let mut parts = line.split_whitespace();
        let (method, path) = (
            parts.next().unwrap_or_default().to_string(),
            parts.next().unwrap_or_default().to_string(),
        );
        let mut length = 0usize;
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).is_err() || h.trim().is_empty() {
                break;
            }
            if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        let _ = r.read_exact(&mut body);
        let mut p = plane.lock().unwrap();
        let (status, ctype, out): (u16, &str, Vec<u8>) = match (method.as_str(), path.as_str()) {
            _ if p.down => (503, "application/json", b"{}".to_vec()),
            ("POST", "/v1/nodes/register") => (
                200,
                "application/json",
                json!({"node_id": "n1", "node_token": "node-token-000000000001",
                    "scrape_interval_seconds": 1.0, "check_interval_seconds": 1.0})
                .to_string()
                .into_bytes(),
            ),
            ("GET", "/v1/nodes/n1") => (200, "application/json", b"{}".to_vec()),
            ("DELETE", "/v1/nodes/n1") => (204, "application/json", Vec::new()),
            ("POST", "/v1/nodes/n1/plugins") => {
                p.reports
                    .push(serde_json::from_slice(&body).unwrap_or(Value::Null));
                (200, "application/json", p.assigned.to_string().into_bytes())
            }
            ("GET", b) if b.starts_with("/v1/blobs/") => {
                match p.blobs.get(&b["/v1/blobs/".len()..]) {
                    Some(bytes) => (200, "application/wasm", bytes.clone()),
                    None => (404, "application/json", b"{}".to_vec()),
                }
            }
            _ => (404, "application/json", b"{}".to_vec()),
        };
        drop(p);
        let head = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            out.len()
        );
        let _ = conn.write_all(head.as_bytes());
        let _ = conn.write_all(&out);
    }
}

fn start(cfg: &std::path::Path) -> Agent {
    Agent::start(
        &["--config", cfg.to_str().unwrap()],
        &[("GPUWARDEN_BOOTSTRAP_TOKEN", "bootstrap-token-000000001")],
    )
}

/// The digest (`sha256:HEX`) plugin `name` runs on `agent`, if it is loaded.
fn running(agent: &Agent, name: &str) -> Option<String> {
    agent
        .plugin(name)
        .filter(|p| p["loaded"] == true)
        .and_then(|p| p["sha256"].as_str().map(|s| format!("sha256:{s}")))
}

fn digest_of(file: &str) -> (String, Vec<u8>) {
    let path = plugins().join(file);
    (
        format!("sha256:{}", sha256(&path)),
        std::fs::read(path).unwrap(),
    )
}

/// A report's entry for `name`.
fn entry(report: &Value, name: &str) -> Option<Value> {
    report["plugins"]
        .as_array()?
        .iter()
        .find(|x| x["name"] == name)
        .cloned()
}

fn wait_report(plane: &Mutex<Plane>, what: &str, cond: impl Fn(&Value) -> bool) -> Value {
    gpuwarden_testkit::wait_for(what, 60, || {
        let p = plane.lock().unwrap();
        p.reports.last().filter(|r| cond(r)).cloned()
    })
}

#[test]
fn a_component_that_does_not_match_its_digest_or_does_not_load_is_refused_and_the_previous_version_runs_on(
) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let plane = Arc::new(Mutex::new(Plane::default()));
    let (xid, xid_bytes) = digest_of("xid.wasm");
    let (thermal, thermal_bytes) = digest_of("thermal.wasm");
    let (broken, broken_bytes) = digest_of("wrong_signature.wasm");
    {
        let mut p = plane.lock().unwrap();
        p.assigned =
            json!({"plugins": [{"name": "check", "digest": xid, "interval_seconds": 0.5}]});
        p.blobs.insert(xid.clone(), xid_bytes.clone());
    }
    std::thread::spawn({
        let plane = Arc::clone(&plane);
        move || serve(listener, plane)
    });
    let dir = Scratch::new("plugin-sync");
    let cfg = dir.write(
        "agent.toml",
        &format!(
            "[node]\nstate_dir = \"{}\"\n[gpu]\nbackend = \"fake\"\nfake_count = 2\n[control_plane]\nurl = \"{url}\"\n{}",
            dir.0.join("state").display(),
            plugin_entry("own", "noop.wasm", "interval = \"500ms\"")
        ),
    );
    let agent = start(&cfg);
    let runs = |name: &str| running(&agent, name);

    // v1 is fetched, verified, run; reported as running beside the node's own plugin.
    agent.wait_plugins("check at v1", |_| {
        runs("check").as_deref() == Some(xid.as_str())
    });
    let r = wait_report(&plane, "v1 reported", |r| {
        r["plugins"].as_array().is_some_and(|p| {
            p.iter()
                .any(|x| x["name"] == "check" && x["running"] == xid && x["source"] == "assigned")
        })
    });
    assert!(
        r["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["name"] == "own" && x["source"] == "local"),
        "{r}"
    );

    // v2's digest, but the bytes of v1: refused before anything else, v1 runs on.
    {
        let mut p = plane.lock().unwrap();
        p.assigned = json!({"plugins": [{"name": "check", "digest": thermal}]});
        p.blobs.insert(thermal.clone(), xid_bytes.clone());
    }
    wait_report(&plane, "the mismatch reported", |r| {
        entry(r, "check").is_some_and(|x| {
            x["error"].as_str().is_some_and(|e| e.contains("refused")) && x["running"] == xid
        })
    });
    assert_eq!(runs("check").as_deref(), Some(xid.as_str()), "v1 runs on");
    let held: Vec<String> = std::fs::read_dir(dir.0.join("state/plugins"))
        .unwrap()
        .flatten()
        .map(|f| f.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        held.iter().any(|f| f.starts_with(&xid["sha256:".len()..])),
        "v1 is held: {held:?}"
    );
    assert!(
        !held
            .iter()
            .any(|f| f.starts_with(&thermal["sha256:".len()..])),
        "the mismatching bytes were never written: {held:?}"
    );

    // A component that does not load (its export has the wrong signature): refused, v1 runs.
    {
        let mut p = plane.lock().unwrap();
        p.assigned = json!({"plugins": [{"name": "check", "digest": broken}]});
        p.blobs.insert(broken.clone(), broken_bytes);
    }
    wait_report(&plane, "the broken version reported", |r| {
        entry(r, "check").is_some_and(|x| {
            x["error"]
                .as_str()
                .is_some_and(|e| e.contains("previous version keeps running"))
                && x["running"] == xid
        })
    });
    assert_eq!(runs("check").as_deref(), Some(xid.as_str()));

    // The right bytes for v2: the agent switches.
    {
        let mut p = plane.lock().unwrap();
        p.assigned = json!({"plugins": [{"name": "check", "digest": thermal}]});
        p.blobs.insert(thermal.clone(), thermal_bytes);
    }
    agent.wait_plugins("check at v2", |_| {
        runs("check").as_deref() == Some(thermal.as_str())
    });

    // The control plane goes away and the agent restarts: it runs what was last assigned,
    // from the components it holds, until the control plane answers again.
    plane.lock().unwrap().down = true;
    agent.terminate();
    let agent = start(&cfg);
    let runs = |name: &str| running(&agent, name);
    agent.wait_plugins("v2 again without the control plane", |_| {
        runs("check").as_deref() == Some(thermal.as_str())
    });
    plane.lock().unwrap().down = false;

    // Nothing assigned: the assigned plugin stops, the node's own runs on; the components
    // fetched go, files of other names in the folder stay.
    let held_dir = dir.0.join("state/plugins");
    for other in ["mine.wasm", "notes.tmpl"] {
        std::fs::write(held_dir.join(other), b"the operator's").unwrap();
    }
    plane.lock().unwrap().assigned = json!({"plugins": []});
    agent.wait_plugins("check removed", |p| {
        let names: Vec<&str> = p["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|x| x["name"].as_str())
            .collect();
        names == ["own"]
    });
    let fetched_left = || {
        std::fs::read_dir(&held_dir)
            .unwrap()
            .flatten()
            .filter(|f| f.file_name().to_string_lossy().len() == 64 + ".wasm".len())
            .count()
    };
    let cleaned = gpuwarden_testkit::poll(Duration::from_secs(10), || {
        (fetched_left() == 0).then_some(())
    });
    assert!(
        cleaned.is_some(),
        "fetched components no longer assigned are removed"
    );
    assert!(held_dir.join("mine.wasm").exists() && held_dir.join("notes.tmpl").exists());
    std::thread::sleep(Duration::from_millis(100));
}
