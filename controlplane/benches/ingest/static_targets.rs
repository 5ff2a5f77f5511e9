//! A fleet of static scrape targets, for `controlplane/benches/ingest.sh`: on one address, or
//! on one loopback address per target as a real fleet has one host per agent.
//!
//! Standard library only, built by the script with `rustc -O` on this file (it is no cargo
//! target); the HTTP side is the module `http.rs` beside it.
//!
//! ```text
//! static_targets ADDR BODIES_DIR LIFETIME_SECS [MAX_CONNECTIONS] [HOSTS]
//! ```
//!
//! - `ADDR`: where to listen, a loopback address such as `127.0.0.1:19200` (anything else is
//!   refused: the bench never serves beyond the machine).
//! - `HOSTS` (default 1): listen on this many consecutive IPv4 addresses from `ADDR`'s, all
//!   on its port (`127.1.0.1:19200`, `127.1.0.2:19200`, …; Linux routes the whole of
//!   127.0.0.0/8 to the loopback device, so nothing needs configuring). Every address serves
//!   every path; the bench gives target `i` its own address, so a client sees distinct hosts
//!   (its connection pool is keyed by host:port). The listeners are accepted from one
//!   thread that waits in poll(2).
//! - `BODIES_DIR`: the `*.prom` bodies (text exposition captured from an agent), each with
//!   its gzip'd twin `*.prom.gz` beside it; target `i` serves body `i mod count` (by file
//!   name, in natural order), so a target's counters never move between scrapes.
//! - `LIFETIME_SECS`: the server exits (status 0) after this many seconds, whatever happens.
//! - `MAX_CONNECTIONS` (default 1024): connections served at once, one thread each (128 KiB
//!   stacks); the next connection waits in the listen backlog until one closes. A
//!   connection idle for 5 s is closed, as the agent closes it (`HEADER_TIMEOUT`).
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

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::os::fd::AsRawFd;
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
    if args.len() < 3 || args.len() > 5 {
        return Err(
            "usage: static_targets ADDR BODIES_DIR LIFETIME_SECS [MAX_CONNECTIONS] [HOSTS]".into(),
        );
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
    let hosts = match args.get(4) {
        Some(h) => h
            .parse::<u32>()
            .ok()
            .filter(|h| *h > 0)
            .ok_or_else(|| format!("HOSTS {h:?} is not a positive number"))?,
        None => 1,
    };
    let addrs = host_addrs(addr, hosts)?;
    let bodies = load_bodies(Path::new(&args[1]))?;
    let started = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let fleet = Arc::new(Fleet {
        bodies,
        instance: format!("static-targets-{}-{started}", std::process::id()),
    });
    let listeners = addrs
        .iter()
        .map(|a| {
            let l = TcpListener::bind(a).map_err(|e| format!("listen on {a}: {e}"))?;
            l.set_nonblocking(true)
                .map_err(|e| format!("listen on {a}: {e}"))?;
            Ok(l)
        })
        .collect::<Result<Vec<_>, String>>()?;
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(lifetime));
        std::process::exit(0);
    });
    println!(
        "serving {} bodies on http://{addr}/t/{{i}}/metrics ({hosts} consecutive addresses to {}) for {lifetime} s, at most {max} connections",
        fleet.bodies.len(),
        addrs.last().map(|a| a.to_string()).unwrap_or_default()
    );
    let slots = Arc::new(Slots {
        used: Mutex::new(0),
        freed: Condvar::new(),
        max,
    });
    let mut accepted = Vec::new();
    loop {
        accepted.clear();
        accept_ready(&listeners, &mut accepted);
        for stream in accepted.drain(..) {
            // Served blocking, one thread each.
            if stream.set_nonblocking(false).is_err() {
                continue;
            }
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
    }
}

/// `hosts` consecutive IPv4 loopback addresses from `addr`'s, on its port.
fn host_addrs(addr: SocketAddr, hosts: u32) -> Result<Vec<SocketAddr>, String> {
    if hosts == 1 {
        return Ok(vec![addr]);
    }
    let IpAddr::V4(first) = addr.ip() else {
        return Err(format!("HOSTS > 1 needs an IPv4 ADDR, not {addr}"));
    };
    (0..hosts)
        .map(|k| {
            let ip = u32::from(first)
                .checked_add(k)
                .map(Ipv4Addr::from)
                .filter(|ip| ip.is_loopback())
                .ok_or_else(|| format!("{hosts} addresses from {first} leave 127.0.0.0/8"))?;
            Ok(SocketAddr::new(IpAddr::V4(ip), addr.port()))
        })
        .collect()
}

/// `struct pollfd` of poll(2).
#[repr(C)]
struct PollFd {
    fd: i32,
    events: i16,
    revents: i16,
}

/// `POLLIN` of poll(2): a connection waits to be accepted.
const POLLIN: i16 = 0x1;

extern "C" {
    /// poll(2) from the C library std links.
    fn poll(fds: *mut PollFd, nfds: std::os::raw::c_ulong, timeout: i32) -> i32;
}

/// Waits (up to 1 s) until some listener has connections waiting, and accepts all of them
/// into `into`. The listeners are non-blocking.
fn accept_ready(listeners: &[TcpListener], into: &mut Vec<std::net::TcpStream>) {
    let mut fds: Vec<PollFd> = listeners
        .iter()
        .map(|l| PollFd {
            fd: l.as_raw_fd(),
            events: POLLIN,
            revents: 0,
        })
        .collect();
    // SAFETY: `fds` is a live, exclusively borrowed array of `fds.len()` pollfd structs,
    // as poll(2) reads and writes; the descriptors stay open while it runs.
    let ready = unsafe { poll(fds.as_mut_ptr(), fds.len() as std::os::raw::c_ulong, 1000) };
    if ready <= 0 {
        return;
    }
    for (l, fd) in listeners.iter().zip(&fds) {
        if fd.revents & POLLIN == 0 {
            continue;
        }
        while let Ok((stream, _)) = l.accept() {
            into.push(stream);
        }
    }
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
