//! A stand-in for the Lambda Cloud API on 127.0.0.1, following its documented requests and
//! answers (`/api/v1`): bearer-key auth (`global/invalid-api-key`), instance types with
//! prices under `instance_type` and regions with capacity, launch (`quantity`, one SSH key
//! of the account, `user_data`, `tags`; `insufficient-capacity`, `global/quota-exceeded`,
//! `global/invalid-parameters`, one launch per 12 s on its clock or 429), list, and
//! terminate (`global/object-does-not-exist` with 404). Failures and delays can be queued
//! for the next requests. Stopped on drop.

use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use gpuwarden_controlplane::clock::{Clock, FakeClock};
use serde_json::{json, Value};

/// One request as the stub saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub auth: String,
    pub body: Value,
    /// On the stub's clock.
    pub at_ms: i64,
}

/// A canned answer: status, headers, body.
pub type Canned = (u16, Vec<(String, String)>, String);

/// The account behind the stub.
#[derive(Debug)]
pub struct Account {
    pub key: String,
    pub ssh_keys: Vec<String>,
    /// Instance type → (price in cents per hour, regions with capacity).
    pub types: BTreeMap<String, (u64, Vec<String>)>,
    /// Most instances alive at once.
    pub quota: usize,
    pub instances: Vec<Value>,
    pub next_id: u64,
    pub last_launch_ms: Option<i64>,
    /// Answers queued for the next requests: (status, headers, body).
    pub fail: VecDeque<Canned>,
    /// Delay before answering the next request.
    pub delay: Option<Duration>,
    pub seen: Vec<Seen>,
}

pub struct LambdaStub {
    pub addr: SocketAddr,
    pub account: Arc<Mutex<Account>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

pub fn error(code: &str, message: &str) -> String {
    json!({"error": {"code": code, "message": message, "suggestion": null}}).to_string()
}

impl LambdaStub {
    pub fn start(key: &str, clock: FakeClock) -> Self {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let addr = l.local_addr().unwrap();
        let account = Arc::new(Mutex::new(Account {
            key: key.into(),
            ssh_keys: vec!["ci-key".into()],
            types: BTreeMap::from([
                (
                    "gpu_1x_a100".to_string(),
                    (129, vec!["us-east-1".to_string()]),
                ),
                ("gpu_8x_h100_sxm5".to_string(), (2392, vec![])),
            ]),
            quota: 10,
            instances: Vec::new(),
            next_id: 0,
            last_launch_ms: None,
            fail: VecDeque::new(),
            delay: None,
            seen: Vec::new(),
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (acc, st) = (account.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !st.load(Ordering::SeqCst) {
                match l.accept() {
                    Ok((s, _)) => {
                        s.set_nonblocking(false).unwrap();
                        let (acc, clock) = (acc.clone(), clock.clone());
                        std::thread::spawn(move || serve(s, &acc, &clock));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        Self {
            addr,
            account,
            stop,
            thread: Some(thread),
        }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}/api/v1", self.addr)
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, Account> {
        self.account.lock().unwrap()
    }

    /// The next request is answered with `status` and `body` (and `headers`).
    pub fn fail_next(&self, status: u16, headers: &[(&str, &str)], body: &str) {
        let h = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.lock().fail.push_back((status, h, body.into()));
    }

    /// The requests to `path` so far.
    pub fn seen(&self, path: &str) -> Vec<Seen> {
        self.lock()
            .seen
            .iter()
            .filter(|s| s.path == path)
            .cloned()
            .collect()
    }

    /// Sets the status of the instance `id`.
    pub fn set_status(&self, id: &str, status: &str) {
        for i in &mut self.lock().instances {
            if i["id"] == id {
                i["status"] = json!(status);
            }
        }
    }
}

impl Drop for LambdaStub {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(s: TcpStream, acc: &Mutex<Account>, clock: &FakeClock) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut line = String::new();
    if r.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let (mut len, mut auth) = (0usize, String::new());
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
        let (k, v) = h.split_once(':').unwrap_or((&h, ""));
        match k.trim().to_ascii_lowercase().as_str() {
            "content-length" => len = v.trim().parse().unwrap_or(0),
            "authorization" => auth = v.trim().to_string(),
            _ => {}
        }
    }
    let mut body = vec![0u8; len];
    let _ = r.read_exact(&mut body);
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let path = path.strip_prefix("/api/v1").unwrap_or(&path).to_string();
    let (delay, answer) = {
        let mut a = acc.lock().unwrap();
        a.seen.push(Seen {
            method: method.clone(),
            path: path.clone(),
            auth: auth.clone(),
            body: body.clone(),
            at_ms: clock.now_ms(),
        });
        let delay = a.delay.take();
        let answer = match a.fail.pop_front() {
            Some(f) => f,
            None => {
                let (st, b) = route(&mut a, &method, &path, &auth, &body, clock.now_ms());
                (st, Vec::new(), b)
            }
        };
        (delay, answer)
    };
    if let Some(d) = delay {
        std::thread::sleep(d);
    }
    let (status, headers, text) = answer;
    let mut head = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        text.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let mut s = s;
    let _ = s.write_all(head.as_bytes());
    let _ = s.write_all(text.as_bytes());
    let _ = s.flush();
}

fn route(
    a: &mut Account,
    method: &str,
    path: &str,
    auth: &str,
    body: &Value,
    now: i64,
) -> (u16, String) {
    if auth != format!("Bearer {}", a.key) {
        return (
            401,
            error(
                "global/invalid-api-key",
                "API key was invalid, expired, or deleted.",
            ),
        );
    }
    match (method, path) {
        ("GET", "/instance-types") => {
            let data: serde_json::Map<String, Value> = a
                .types
                .iter()
                .map(|(name, (price, regions))| {
                    (
                        name.clone(),
                        json!({
                            "instance_type": {
                                "name": name, "description": name, "gpu_description": name,
                                "price_cents_per_hour": price,
                                "specs": {"vcpus": 30, "memory_gib": 200, "storage_gib": 512, "gpus": 1},
                            },
                            "regions_with_capacity_available": regions.iter().map(|r| json!({"name": r, "description": r})).collect::<Vec<_>>(),
                        }),
                    )
                })
                .collect();
            (200, json!({"data": data}).to_string())
        }
        ("GET", "/instances") => (200, json!({"data": a.instances}).to_string()),
        ("POST", "/instance-operations/launch") => launch(a, body, now),
        ("POST", "/instance-operations/terminate") => {
            let ids: Vec<String> = body["instance_ids"]
                .as_array()
                .map(|v| {
                    v.iter()
                        .filter_map(|s| s.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            let mut out = Vec::new();
            for id in &ids {
                let Some(i) = a
                    .instances
                    .iter_mut()
                    .find(|i| i["id"] == id.as_str() && i["status"] != "terminated")
                else {
                    return (
                        404,
                        error(
                            "global/object-does-not-exist",
                            "Specified instance does not exist.",
                        ),
                    );
                };
                i["status"] = json!("terminating");
                out.push(i.clone());
            }
            (
                200,
                json!({"data": {"terminated_instances": out}}).to_string(),
            )
        }
        _ => (404, error("global/object-does-not-exist", "Not found.")),
    }
}

fn launch(a: &mut Account, body: &Value, now: i64) -> (u16, String) {
    if let Some(last) = a.last_launch_ms {
        if now - last < 12_000 {
            return (
                429,
                error("global/too-many-requests", "Too many launch requests."),
            );
        }
    }
    let invalid = |m: &str| (400, error("global/invalid-parameters", m));
    let (Some(region), Some(ty)) = (
        body["region_name"].as_str(),
        body["instance_type_name"].as_str(),
    ) else {
        return invalid("region_name and instance_type_name are required.");
    };
    let keys = body["ssh_key_names"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if keys.len() != 1 || !a.ssh_keys.iter().any(|k| keys[0] == k.as_str()) {
        return invalid("Specify exactly one SSH key of your account.");
    }
    if body["quantity"] != 1 {
        return invalid("Only a quantity of 1 is tested here.");
    }
    let Some((_, regions)) = a.types.get(ty) else {
        return invalid("Invalid instance type.");
    };
    a.last_launch_ms = Some(now);
    if !regions.iter().any(|r| r == region) {
        return (
            400,
            error(
                "instance-operations/launch/insufficient-capacity",
                "Not enough capacity to fulfill launch request.",
            ),
        );
    }
    let alive = a
        .instances
        .iter()
        .filter(|i| i["status"] != "terminated")
        .count();
    if alive >= a.quota {
        return (400, error("global/quota-exceeded", "Quota exceeded."));
    }
    a.next_id += 1;
    let id = format!("0920582c7ff041399e34823a0be6{:04}", a.next_id);
    a.instances.push(json!({
        "id": id, "name": body["name"], "ip": null, "status": "booting",
        "ssh_key_names": keys, "file_system_names": body["file_system_names"].as_array().cloned().unwrap_or_default(),
        "region": {"name": region, "description": region},
        "instance_type": {"name": ty, "description": ty, "price_cents_per_hour": 129},
        "tags": body["tags"].as_array().cloned().unwrap_or_default(),
        "user_data": body["user_data"],
    }));
    (200, json!({"data": {"instance_ids": [id]}}).to_string())
}
