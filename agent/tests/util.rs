//! A running agent process for tests ([`Agent`], on testkit's process handle) and a strict
//! reader of its metrics. The scratch folders, the plugin build and the HTTP client are
//! `gpuwarden-testkit`'s.

use std::collections::HashMap;
use std::time::Duration;

pub use gpuwarden_testkit::http::client as http_client;
pub use gpuwarden_testkit::{plugins, repo, Scratch};
use gpuwarden_testkit::{poll, Launch, Proc};

pub const BIN: &str = env!("CARGO_BIN_EXE_gpuwarden-agent");

/// The sha256 of a file, as the agent wants it pinned.
pub fn sha256(path: &std::path::Path) -> String {
    gpuwarden_agent::plugin::manager::digest_file(path).expect("digest")
}

/// A `[[plugins]]` entry for `file` (a `.wasm` name in the plugins folder).
pub fn plugin_entry(name: &str, file: &str, extra: &str) -> String {
    let path = plugins().join(file);
    format!(
        "[[plugins]]\nname = \"{name}\"\npath = \"{}\"\nsha256 = \"{}\"\n{extra}\n",
        path.display(),
        sha256(&path)
    )
}

/// A running `gpuwarden-agent` (a testkit [`Proc`]: its `base` URL and `logs` are read
/// through it), with the agent's endpoints as methods. Dropping it stops the agent
/// (SIGTERM, then SIGKILL).
pub struct Agent {
    // Dropped first: its pooled connections close before the agent is asked to stop.
    http: ureq::Agent,
    proc: Proc,
}

impl std::ops::Deref for Agent {
    type Target = Proc;
    fn deref(&self) -> &Proc {
        &self.proc
    }
}

impl Agent {
    /// Starts the agent with `args` (plus `--listen 127.0.0.1:0`) and `env`; waits (at most
    /// 30 s) until it listens.
    pub fn start(args: &[&str], env: &[(&str, &str)]) -> Agent {
        let proc = Launch::new(BIN)
            .args(args)
            .args(["--listen", "127.0.0.1:0"])
            .envs(env)
            .ready_within(Duration::from_secs(30))
            .start();
        Agent {
            http: http_client(),
            proc,
        }
    }

    /// The agent's process id (to read its memory in /proc).
    pub fn pid(&self) -> u32 {
        self.proc.pid().expect("the agent runs")
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        let mut r = self
            .http
            .get(&format!("{}{path}", self.base))
            .call()
            .expect("GET");
        let status = r.status().as_u16();
        (status, r.body_mut().read_to_string().expect("body"))
    }

    pub fn post(&self, path: &str, body: &str) -> (u16, String) {
        let mut r = self
            .http
            .post(&format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .send(body)
            .expect("POST");
        let status = r.status().as_u16();
        (status, r.body_mut().read_to_string().expect("body"))
    }

    /// POST with a bearer credential.
    pub fn post_as(&self, path: &str, bearer: &str, body: &str) -> (u16, String) {
        let mut r = self
            .http
            .post(&format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .header("authorization", &format!("Bearer {bearer}"))
            .send(body)
            .expect("POST");
        let status = r.status().as_u16();
        (status, r.body_mut().read_to_string().expect("body"))
    }

    pub fn metrics(&self) -> Metrics {
        let (status, body) = self.get("/metrics");
        assert_eq!(status, 200);
        Metrics::parse(&body)
    }

    pub fn events_after(&self, after: u64) -> serde_json::Value {
        let (status, body) = self.get(&format!("/v1/events?after={after}"));
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).expect("events JSON")
    }

    /// Waits (bounded) until `cond` holds on the agent's metrics.
    pub fn wait_metrics(&self, what: &str, cond: impl Fn(&Metrics) -> bool) -> Metrics {
        poll(Duration::from_secs(60), || {
            let m = self.metrics();
            cond(&m).then_some(m)
        })
        .unwrap_or_else(|| panic!("timed out waiting for {what}"))
    }

    /// `GET /v1/plugins` as JSON.
    pub fn plugins(&self) -> serde_json::Value {
        let (s, body) = self.get("/v1/plugins");
        assert_eq!(s, 200, "{body}");
        serde_json::from_str(&body).expect("plugins JSON")
    }

    /// The `/v1/plugins` entry of `name`.
    pub fn plugin(&self, name: &str) -> Option<serde_json::Value> {
        self.plugins()["plugins"]
            .as_array()?
            .iter()
            .find(|p| p["name"] == name)
            .cloned()
    }

    /// Waits (bounded) until `cond` holds on the plugin listing.
    pub fn wait_plugins(
        &self,
        what: &str,
        cond: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let mut last = serde_json::Value::Null;
        poll(Duration::from_secs(60), || {
            let p = self.plugins();
            if cond(&p) {
                return Some(p);
            }
            last = p;
            None
        })
        .unwrap_or_else(|| panic!("timed out waiting for {what}: {last:#}"))
    }

    /// Kills the agent with SIGKILL at once (no graceful stop) and waits for it.
    pub fn kill(mut self) {
        self.proc.kill();
    }

    /// Sends SIGTERM and waits (at most 10 s) for the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        self.proc
            .terminate(Duration::from_secs(10))
            .expect("agent did not stop on SIGTERM")
    }
}

/// A strict reader of the Prometheus text format, enough to check the agent's output:
/// it unescapes label values and records each family's HELP and TYPE.
#[derive(Debug, Default)]
pub struct Metrics {
    pub samples: Vec<(String, Vec<(String, String)>, f64)>,
    pub help: HashMap<String, usize>,
    pub types: HashMap<String, Vec<String>>,
    /// Sample names whose family had no TYPE before them.
    pub untyped: Vec<String>,
}

fn family_of<'a>(name: &'a str, types: &HashMap<String, Vec<String>>) -> &'a str {
    if types.contains_key(name) {
        return name;
    }
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix) {
            if types.contains_key(base) {
                return base;
            }
        }
    }
    name
}

impl Metrics {
    pub fn parse(body: &str) -> Metrics {
        let mut m = Metrics::default();
        for line in body.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let name = rest.split(' ').next().unwrap().to_string();
                *m.help.entry(name).or_default() += 1;
                continue;
            }
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut it = rest.split(' ');
                let name = it.next().unwrap().to_string();
                let t = it.next().expect("TYPE without a type").to_string();
                m.types.entry(name).or_default().push(t);
                continue;
            }
            assert!(
                !line.is_empty() && !line.starts_with('#'),
                "unexpected line {line:?}"
            );
            let (name, rest) = match line.find(['{', ' ']) {
                Some(i) => line.split_at(i),
                None => panic!("no value on {line:?}"),
            };
            let mut labels = Vec::new();
            let mut rest = rest;
            if let Some(r) = rest.strip_prefix('{') {
                let mut chars = r.char_indices().peekable();
                let mut end = None;
                while let Some(&(i, c)) = chars.peek() {
                    if c == '}' {
                        end = Some(i);
                        break;
                    }
                    if c == ',' {
                        chars.next();
                        continue;
                    }
                    let start = i;
                    while chars.peek().is_some_and(|&(_, c)| c != '=') {
                        chars.next();
                    }
                    let key = r[start..chars.peek().unwrap().0].to_string();
                    chars.next();
                    assert_eq!(
                        chars.next().map(|c| c.1),
                        Some('"'),
                        "label without quote in {line:?}"
                    );
                    let mut value = String::new();
                    loop {
                        let (_, c) = chars.next().expect("unterminated label value");
                        match c {
                            '"' => break,
                            '\\' => match chars.next().expect("dangling escape").1 {
                                'n' => value.push('\n'),
                                '\\' => value.push('\\'),
                                '"' => value.push('"'),
                                other => panic!("bad escape \\{other} in {line:?}"),
                            },
                            '\n' => panic!("raw newline in label value"),
                            c => value.push(c),
                        }
                    }
                    labels.push((key, value));
                }
                let end = end.expect("unterminated label set");
                rest = &r[end + 1..];
            }
            let value = rest.trim();
            let v: f64 = match value {
                "NaN" => f64::NAN,
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => v
                    .parse()
                    .unwrap_or_else(|_| panic!("bad value {v:?} in {line:?}")),
            };
            if !m.types.contains_key(family_of(name, &m.types)) {
                m.untyped.push(name.to_string());
            }
            m.samples.push((name.to_string(), labels, v));
        }
        m
    }

    /// The value of the one series `name` whose labels include all of `want`.
    pub fn value(&self, name: &str, want: &[(&str, &str)]) -> Option<f64> {
        let found: Vec<f64> = self.series(name, want).map(|s| s.2).collect();
        assert!(
            found.len() <= 1,
            "{name} {want:?} matches {} series",
            found.len()
        );
        found.first().copied()
    }

    pub fn series<'a>(
        &'a self,
        name: &'a str,
        want: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a (String, Vec<(String, String)>, f64)> + 'a {
        self.samples.iter().filter(move |(n, labels, _)| {
            n == name
                && want
                    .iter()
                    .all(|(k, v)| labels.iter().any(|(lk, lv)| lk == k && lv == v))
        })
    }
}
