//! Shared test helpers: temporary folders, stores, a PostgreSQL server, stub HTTP servers.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use gpuwarden_controlplane::store::{Store, StoreOptions};

/// A folder removed on drop: the shared harness's scratch folder (`gpuwarden-testkit`).
pub use gpuwarden_testkit::Scratch as TempDir;

/// A migrated SQLite store in a fresh file.
pub fn sqlite_store(dir: &TempDir) -> Store {
    let url = format!("sqlite://{}", dir.path().join("gw.db").display());
    Store::open(&url, &StoreOptions::default()).unwrap()
}

/// A PostgreSQL 15 server started for the tests, in a temporary folder, stopped on drop.
pub struct Postgres {
    dir: TempDir,
    bin: PathBuf,
    pub port: u16,
    as_postgres: bool,
}

fn pg_bin() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    dirs.sort();
    dirs.pop()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Postgres {
    /// Starts a server, or `None` when PostgreSQL is not installed and this is not CI (in CI
    /// a missing server fails the test).
    pub fn start() -> Option<Self> {
        Self::start_with(false)
    }

    /// Starts a server that also takes TLS connections (a self-signed certificate made with
    /// the `openssl` command), or `None` as [`Postgres::start`].
    pub fn start_tls() -> Option<Self> {
        Self::start_with(true)
    }

    fn start_with(tls: bool) -> Option<Self> {
        let Some(bin) = pg_bin() else {
            assert!(
                std::env::var_os("CI").is_none(),
                "PostgreSQL is not installed (CI installs postgresql-15)"
            );
            eprintln!("skipping: PostgreSQL is not installed");
            return None;
        };
        let dir = TempDir::new("pg");
        let as_postgres = is_root();
        let data = dir.path().join("data");
        if tls {
            let out = Command::new("openssl")
                .args([
                    "req",
                    "-x509",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-days",
                    "1",
                    "-subj",
                    "/CN=127.0.0.1",
                    "-keyout",
                    "server.key",
                    "-out",
                    "server.crt",
                ])
                .current_dir(dir.path())
                .output()
                .expect("the openssl command (CI installs openssl)");
            assert!(
                out.status.success(),
                "openssl req: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(
                dir.path().join("server.key"),
                std::fs::Permissions::from_mode(0o600),
            )
            .unwrap();
        }
        if as_postgres {
            // PostgreSQL refuses to run as root: the cluster belongs to `postgres`.
            let st = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(st.success(), "chown failed");
        }
        let pg = Self {
            dir,
            bin,
            port: free_port(),
            as_postgres,
        };
        let out = pg.run(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
        );
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
            pg.port,
            pg.dir.path().display()
        );
        if tls {
            let d = pg.dir.path().display();
            opts.push_str(&format!(
                " -c ssl=on -c ssl_cert_file={d}/server.crt -c ssl_key_file={d}/server.key"
            ));
        }
        let log = pg.dir.path().join("pg.log");
        let out = pg.run(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-o",
                &opts,
                "-l",
                log.to_str().unwrap(),
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
        assert!(
            out.status.success(),
            "pg_ctl start: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        Some(pg)
    }

    fn run(&self, tool: &str, args: &[&str]) -> std::process::Output {
        let exe = self.bin.join(tool);
        let mut c = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        };
        c.args(args).current_dir(self.dir.path()).output().unwrap()
    }

    /// A fresh, empty database on this server; its URL.
    pub fn database(&self, name: &str) -> String {
        let out = self.run(
            "psql",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-c",
                &format!("CREATE DATABASE {name}"),
            ],
        );
        assert!(
            out.status.success(),
            "create database: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let _ = self.run(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap_or(""),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        );
    }
}

/// How a stub target answers.
#[derive(Clone)]
pub enum Reply {
    /// Status, headers, body.
    Full(u16, Vec<(String, String)>, Vec<u8>),
    /// Waits, then answers like `Full`.
    Slow(Duration, Vec<u8>),
    /// Announces `announced` bytes, sends `body`, closes.
    Truncated(usize, Vec<u8>),
    /// Closes without answering.
    Hangup,
}

impl Reply {
    pub fn text(body: &str) -> Self {
        Reply::Full(
            200,
            vec![("Content-Type".into(), "text/plain; version=0.0.4".into())],
            body.as_bytes().to_vec(),
        )
    }
}

/// A stub HTTP server on 127.0.0.1 answering every `/metrics` with `reply` and
/// `/v1/events` with `events` (JSON). Stopped on drop.
pub struct Stub {
    pub addr: SocketAddr,
    pub reply: Arc<Mutex<Reply>>,
    pub events: Arc<Mutex<String>>,
    pub requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

fn serve_one(mut s: TcpStream, reply: &Reply, events: &str, requests: &Mutex<Vec<String>>) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut line = String::new();
    if r.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
    }
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    requests.lock().unwrap().push(path.clone());
    if path.starts_with("/v1/events") && events.is_empty() {
        // An empty events document stands for an agent that fails to serve them.
        let _ = write!(
            s,
            "HTTP/1.1 503 X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        return;
    }
    if path.starts_with("/v1/events") {
        let _ = write!(
            s,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{events}",
            events.len()
        );
        return;
    }
    let (status, headers, body) = match reply.clone() {
        Reply::Full(st, h, b) => (st, h, b),
        Reply::Slow(d, b) => {
            std::thread::sleep(d);
            (200, vec![("Content-Type".into(), "text/plain".into())], b)
        }
        Reply::Truncated(n, b) => {
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {n}\r\n\r\n"
            );
            let _ = s.write_all(&b);
            return;
        }
        Reply::Hangup => return,
    };
    let mut head = format!(
        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = s.write_all(head.as_bytes());
    let _ = s.write_all(&body);
    let _ = s.flush();
    let mut sink = [0u8; 64];
    let _ = s.set_read_timeout(Some(Duration::from_millis(50)));
    let _ = s.read(&mut sink);
}

impl Stub {
    pub fn start(reply: Reply) -> Self {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let addr = l.local_addr().unwrap();
        let reply = Arc::new(Mutex::new(reply));
        let events = Arc::new(Mutex::new(
            r#"{"events":[],"next":0,"instance":"i0","truncated":false}"#.to_string(),
        ));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, e, q, st) = (
            reply.clone(),
            events.clone(),
            requests.clone(),
            stop.clone(),
        );
        let thread = std::thread::spawn(move || {
            let mut served = 0u32;
            while !st.load(Ordering::SeqCst) && served < 10_000 {
                match l.accept() {
                    Ok((s, _)) => {
                        s.set_nonblocking(false).unwrap();
                        let (reply, events) =
                            (r.lock().unwrap().clone(), e.lock().unwrap().clone());
                        let q = q.clone();
                        std::thread::spawn(move || serve_one(s, &reply, &events, &q));
                        served += 1;
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        Self {
            addr,
            reply,
            events,
            requests,
            stop,
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Stub {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A realistic agent body for `gpus` GPUs.
pub fn agent_body(gpus: u32, xid79: u32) -> String {
    let mut s = String::from("# TYPE gpuwarden_node_info gauge\ngpuwarden_node_info{node=\"n\",driver_version=\"550.54.15\",cuda_version=\"12.4\",agent_version=\"0.1.0\",backend=\"fake\"} 1\n# TYPE gpuwarden_gpu_up gauge\n");
    for g in 0..gpus {
        s.push_str(&format!(
            "gpuwarden_gpu_up{{gpu=\"{g}\",uuid=\"GPU-{g}\",model=\"NVIDIA H100 80GB HBM3\"}} 1\n"
        ));
    }
    s.push_str("# TYPE gpuwarden_gpu_temperature_celsius gauge\n");
    for g in 0..gpus {
        s.push_str(&format!("gpuwarden_gpu_temperature_celsius{{gpu=\"{g}\",uuid=\"GPU-{g}\",model=\"NVIDIA H100 80GB HBM3\"}} {}\n", 40 + g));
    }
    s.push_str("# TYPE gpuwarden_gpu_xid_errors_total counter\n");
    s.push_str(&format!("gpuwarden_gpu_xid_errors_total{{gpu=\"0\",uuid=\"GPU-0\",model=\"NVIDIA H100 80GB HBM3\",xid=\"79\"}} {xid79}\n"));
    s
}

static ONCE: OnceLock<()> = OnceLock::new();

/// Logs to the test output once (RUST_LOG to see more).
pub fn logs() {
    ONCE.get_or_init(|| {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "warn".into()),
            )
            .with_test_writer()
            .try_init();
    });
}
