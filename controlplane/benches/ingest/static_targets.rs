//! A fleet of static scrape targets on one port, for `controlplane/benches/ingest.sh`.
//!
//! Standard library only, built by the script with `rustc -O` on this file (it is no cargo
//! target); the HTTP side is the module `http.rs` beside it.
//!
//! ```text
//! static_targets ADDR BODIES_DIR LIFETIME_SECS [MAX_CONNECTIONS]
//! ```
//!
//! - `ADDR`: where to listen, a loopback address such as `127.0.0.1:19200` (anything else is
//!   refused: the bench never serves beyond the machine).
//! - `BODIES_DIR`: the `*.prom` bodies (text exposition captured from an agent), each with
//!   its gzip'd twin `*.prom.gz` beside it; target `i` serves body `i mod count` (by file
//!   name, in natural order), so a target's counters never move between scrapes.
//! - `LIFETIME_SECS`: the server exits (status 0) after this many seconds, whatever happens.
//! - `MAX_CONNECTIONS` (default 1024): connections served at once, one thread each (128 KiB
//!   stacks); the next connection waits in the listen backlog until one closes. A
//!   connection idle for 60 s is closed.
//!
//! Paths, for every target number `i`:
//! - `GET /t/{i}/metrics`: the body, gzip'd when the request accepts gzip, else plain;
//!   `text/plain; version=0.0.4`, HTTP/1.1 keep-alive unless the client says `close`.
//! - `GET /t/{i}/v1/events?after=N&limit=M`: what an agent with no new events answers,
//!   `{"events":[],"next":N,"instance":"…","truncated":false,"more":false}` (the shape of
//!   `gpuwarden_wire::EventsPage`), so the control plane's event reads succeed; `after`
//!   defaults to 0 and `limit` must be 1 to 10000, as on the agent.
//! - `GET /healthz`: `ok`.
//!
//! Anything else is 404 (405 for another method than GET), errors as the agent writes
//! them, `{"error":{"code":…,"message":…}}`. Request heads are capped at 16 KiB and request
//! bodies are refused (431, 413). On start it prints one line: the targets' body count.

mod http;

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::serve;

/// One body, plain and gzip'd.
struct Body {
    plain: Vec<u8>,
    gzip: Vec<u8>,
}

/// What every connection thread reads.
struct Fleet {
    bodies: Vec<Body>,
    /// The `instance` of every events page: fixed for this run, as an agent's.
    instance: String,
}

/// Counts the connections being served; `acquire` waits for a free slot.
struct Slots {
    used: Mutex<usize>,
    freed: Condvar,
    max: usize,
}

impl Slots {
    fn acquire(&self) {
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        while *used >= self.max {
            used = self.freed.wait(used).unwrap_or_else(|p| p.into_inner());
        }
        *used += 1;
    }

    fn release(&self) {
        *self.used.lock().unwrap_or_else(|p| p.into_inner()) -= 1;
        self.freed.notify_one();
    }
}

fn main() {
    if let Err(e) = run() {
        eprintln!("static_targets: {e}");
        std::process::exit(2);
    }
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 || args.len() > 4 {
        return Err("usage: static_targets ADDR BODIES_DIR LIFETIME_SECS [MAX_CONNECTIONS]".into());
    }
    let addr: SocketAddr = args[0]
        .parse()
        .map_err(|e| format!("ADDR {:?}: {e}", args[0]))?;
    if !addr.ip().is_loopback() {
        return Err(format!("ADDR {addr} is not a loopback address"));
    }
    let lifetime: u64 = args[2]
        .parse()
        .map_err(|e| format!("LIFETIME_SECS {:?}: {e}", args[2]))?;
    let max = match args.get(3) {
        Some(m) => m
            .parse::<usize>()
            .ok()
            .filter(|m| *m > 0)
            .ok_or_else(|| format!("MAX_CONNECTIONS {m:?} is not a positive number"))?,
        None => 1024,
    };
    let bodies = load_bodies(Path::new(&args[1]))?;
    let started = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let fleet = Arc::new(Fleet {
        bodies,
        instance: format!("static-targets-{}-{started}", std::process::id()),
    });
    let listener = TcpListener::bind(addr).map_err(|e| format!("listen on {addr}: {e}"))?;
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(lifetime));
        std::process::exit(0);
    });
    println!(
        "serving {} bodies on http://{addr}/t/{{i}}/metrics for {lifetime} s, at most {max} connections",
        fleet.bodies.len()
    );
    let slots = Arc::new(Slots {
        used: Mutex::new(0),
        freed: Condvar::new(),
        max,
    });
    for conn in listener.incoming() {
        let Ok(stream) = conn else { continue };
        slots.acquire();
        let (fleet, slots2) = (Arc::clone(&fleet), Arc::clone(&slots));
        let spawned = std::thread::Builder::new()
            .stack_size(128 * 1024)
            .spawn(move || {
                // Errors end the connection; the client sees it closed.
                let _ = serve(stream, &fleet);
                slots2.release();
            });
        if spawned.is_err() {
            slots.release();
        }
    }
    Ok(())
}

/// The `*.prom` files of `dir` in natural order, each with its `*.prom.gz`.
fn load_bodies(dir: &Path) -> Result<Vec<Body>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.ends_with(".prom"))
        .collect();
    // body_2 before body_10.
    names.sort_by(|a, b| (a.len(), a).cmp(&(b.len(), b)));
    if names.is_empty() {
        return Err(format!("{}: no *.prom bodies", dir.display()));
    }
    names
        .iter()
        .map(|n| {
            let read = |p: &Path| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
            Ok(Body {
                plain: read(&dir.join(n))?,
                gzip: read(&dir.join(format!("{n}.gz")))?,
            })
        })
        .collect()
}
