//! A real Prometheus server finds the agents through the control plane's `/v1/sd` (with the
//! admin token) and scrapes them. Needs the `prometheus` binary (Debian package
//! `prometheus`; `.ci/run` installs it): outside CI the test is skipped without it.

use std::process::{Child, Command, Stdio};

use gpuwarden_e2e::{wait_for, Api, Scratch};

use crate::cp::{self, ADMIN};

/// A real Prometheus on a free port of 127.0.0.1, killed when dropped.
pub(crate) struct Prom {
    child: Child,
    /// Its HTTP API.
    pub(crate) api: Api,
}

impl Drop for Prom {
    fn drop(&mut self) {
        gpuwarden_e2e::stop_timeout_wrapped(&mut self.child);
    }
}

/// Starts `prometheus` with the config file `cfg`, its data in `dir`, for at most `secs`.
pub(crate) fn start(dir: &Scratch, cfg: &std::path::Path, secs: u32) -> Prom {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    start_on(dir, cfg, secs, port)
}

/// [`start`] on `port` of 127.0.0.1.
pub(crate) fn start_on(dir: &Scratch, cfg: &std::path::Path, secs: u32, port: u16) -> Prom {
    let child = Command::new("timeout")
        .args([secs.to_string().as_str(), "prometheus"])
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--log.level=warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start prometheus");
    Prom {
        child,
        api: Api::new(&format!("http://127.0.0.1:{port}"), ""),
    }
}

#[test]
fn prometheus_discovers_and_scrapes_the_fleet_through_v1_sd() {
    if Command::new("prometheus")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI installs prometheus (.ci/run)"
        );
        eprintln!("skipping: prometheus is not installed (apt-get install -y prometheus)");
        return;
    }
    let dir = Scratch::new("prom");
    let (_cp, api) = cp::start(&dir, "");
    let _a = cp::agent(&api.base, "gpu-01", &dir);
    let _b = cp::agent(&api.base, "gpu-02", &dir);
    cp::online(&api, "gpu-01");
    cp::online(&api, "gpu-02");
    let token = dir.write("admin-token-for-prometheus", ADMIN);
    let cfg = dir.write(
        "prometheus.yml",
        &format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: gpuwarden\n    http_sd_configs:\n      - url: {}/v1/sd\n        refresh_interval: 1s\n        authorization:\n          type: Bearer\n          credentials_file: {}\n",
            api.base,
            token.display()
        ),
    );
    let prom = start(&dir, &cfg, 120);
    let prom = &prom.api;
    let query = |q: &str| -> serde_json::Value {
        match prom.try_call("GET", &format!("/api/v1/query?query={q}"), None) {
            Ok((200, v)) => v["data"]["result"].clone(),
            _ => serde_json::Value::Null, // not up yet
        }
    };
    // Both agents are discovered with their node and pool labels, and are up.
    let up = wait_for("prometheus scraping both agents", 60, || {
        let r = query("up");
        let arr = r.as_array()?.clone();
        (arr.len() == 2 && arr.iter().all(|s| s["value"][1] == "1")).then_some(arr)
    });
    let mut nodes: Vec<&str> = up
        .iter()
        .map(|s| s["metric"]["node"].as_str().unwrap())
        .collect();
    nodes.sort();
    assert_eq!(nodes, ["gpu-01", "gpu-02"]);
    assert!(up.iter().all(|s| s["metric"]["pool"] == "default"));
    // And their GPU series arrive: 8 GPUs each.
    let gpus = wait_for("GPU series", 30, || {
        let r = query("count(gpuwarden_gpu_up)");
        r[0]["value"][1].as_str().map(str::to_string)
    });
    assert_eq!(gpus, "16");
    // Without the token, discovery is refused: the control plane's SD is not public.
    let (st, _) = Api::new(&api.base, "").call("GET", "/v1/sd", None);
    assert_eq!(st, 401);
}
