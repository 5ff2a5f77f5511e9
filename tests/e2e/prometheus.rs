//! A real Prometheus server finds the agents through the control plane's `/v1/sd` (with the
//! admin token) and scrapes them. Needs the `prometheus` binary (Debian package
//! `prometheus`; `.ci/run` installs it): outside CI the test is skipped without it.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

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

/// A Prometheus config that finds the agents through the control plane at `base` (`/v1/sd`
/// with the admin token) and scrapes them every second.
pub(crate) fn sd_config(dir: &Scratch, base: &str) -> std::path::PathBuf {
    let token = dir.write("admin-token-for-prometheus", ADMIN);
    dir.write(
        "prometheus.yml",
        &format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: gpuwarden\n    http_sd_configs:\n      - url: {base}/v1/sd\n        refresh_interval: 1s\n        authorization:\n          type: Bearer\n          credentials_file: {}\n",
            token.display()
        ),
    )
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
    let cfg = sd_config(&dir, &api.base);
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

/// Signs in over plain HTTP (no browser): the session cookie's value.
fn http_sign_in(base: &str, token: &str) -> String {
    let http: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    // The sign-in page first: its cookie and the form's hidden token go with the form.
    let mut page = http.get(&format!("{base}/ui/login")).call().unwrap();
    let login_cookie = page.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let html = page.body_mut().read_to_string().unwrap();
    let at = html.find("name=\"form\" value=\"").unwrap() + "name=\"form\" value=\"".len();
    let form = html[at..].split('"').next().unwrap().to_string();
    let resp = http
        .post(&format!("{base}/ui/login"))
        .header("Cookie", &login_cookie)
        .send_form([("token", token), ("form", form.as_str())])
        .unwrap();
    assert_eq!(resp.status(), 303);
    let c = resp.headers()["set-cookie"].to_str().unwrap();
    c.strip_prefix("gw_session=")
        .and_then(|c| c.split(';').next())
        .unwrap()
        .to_string()
}

#[test]
fn with_a_prometheus_url_the_charts_come_from_a_real_prometheus() {
    if !crate::console::installed("prometheus") {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI installs prometheus (.ci/run)"
        );
        eprintln!("skipping: prometheus is not installed (apt-get install -y prometheus)");
        return;
    }
    let dir = Scratch::new("console-prom");
    let port = crate::console::free_port();
    let (_cp, api) = cp::start(
        &dir,
        &format!("[console]\nprometheus_url = \"http://127.0.0.1:{port}\"\nhistory = \"10m\"\nhistory_step = \"1s\"\n"),
    );
    let _a = cp::agent(&api.base, "gpu-01", &dir);
    let n = cp::online(&api, "gpu-01");
    let id = n["id"].as_str().unwrap().to_string();
    let cfg = sd_config(&dir, &api.base);
    let _prom = start_on(&dir, &cfg, 120, port);
    let cookie = http_sign_in(&api.base, ADMIN);
    let http = gpuwarden_testkit::http::client();
    let get = || -> (u16, serde_json::Value) {
        let mut r = http
            .get(&format!("{}/ui/nodes/{id}/history.json", api.base))
            .header("Cookie", &format!("gw_session={cookie}"))
            .call()
            .unwrap();
        let st = r.status().as_u16();
        (
            st,
            r.body_mut().read_json().unwrap_or(serde_json::Value::Null),
        )
    };
    // Until Prometheus has scraped a few points, the answer says so (or Prometheus is not
    // up yet: 502 with the reason); then every GPU's temperature is there.
    let mut last = (0, serde_json::Value::Null);
    let v = gpuwarden_testkit::poll(Duration::from_secs(60), || {
        let (st, v) = get();
        last = (st, v.clone());
        let temps = &v["series"][0]["gpus"];
        let points = temps[0]["values"]
            .as_array()
            .map_or(0, |a| a.iter().filter(|x| x.is_number()).count());
        (st == 200 && temps.as_array().is_some_and(|g| g.len() == 8) && points >= 3).then_some(v)
    })
    .unwrap_or_else(|| {
        let end = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        let (_, raw) = _prom.api.call("GET", &format!("/api/v1/query_range?query=gpuwarden_gpu_temperature_celsius&start={}&end={end}&step=1", end - 20), None);
        panic!("no charts' data from Prometheus in 60 s; last answer: {}; prometheus: {raw}", last.1["times"].as_array().map(|t| format!("{:?}..{:?}", t.first(), t.last())).unwrap_or_default())
    });
    assert_eq!(v["source"], "prometheus");
    assert_eq!(v["series"][0]["name"], "temperature_celsius");
    let t = v["series"][0]["gpus"][3]["values"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(serde_json::Value::as_f64)
        .unwrap();
    assert!((20.0..100.0).contains(&t), "a fake GPU's temperature: {t}");
    assert_eq!(v["series"][0]["gpus"][3]["index"], 3);
    // One value per time; the times are the query's steps over the window.
    let times = v["times"].as_array().unwrap().len();
    assert_eq!(
        v["series"][2]["gpus"][0]["values"]
            .as_array()
            .unwrap()
            .len(),
        times
    );
    assert!(times > 100, "{times} steps over 10m");
}
