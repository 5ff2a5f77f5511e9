//! A fleet of static scrape targets on one port, for `controlplane/benches/ingest.sh`.
//!
//! Standard library only, built by the script with `rustc -O` (it is no cargo target).
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

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Largest request head (request line and headers) read, bytes.
const MAX_HEAD: usize = 16 * 1024;
/// A kept-alive connection with no request for this long is closed.
const IDLE: Duration = Duration::from_secs(60);
/// Largest `limit` of an events page, as the agent's.
const MAX_EVENTS_PAGE: u64 = 10_000;

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

/// One parsed request head.
struct Request {
    method: String,
    target: String,
    gzip: bool,
    keep_alive: bool,
    has_body: bool,
}

/// Serves the requests of one connection until it closes, asks to close, or idles.
fn serve(stream: TcpStream, fleet: &Fleet) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(IDLE))?;
    let mut out = stream.try_clone()?;
    let mut reader = BufReader::with_capacity(4096, stream);
    loop {
        let req = match read_head(&mut reader)? {
            Ok(Some(r)) => r,
            Ok(None) => return Ok(()),
            Err(status) => {
                let (code, msg) = if status == 431 {
                    ("too_large", "the request head is over 16 KiB")
                } else {
                    ("bad_request", "malformed request")
                };
                return respond_error(&mut out, status, code, msg, false);
            }
        };
        if req.has_body {
            let msg = "request bodies are not accepted";
            return respond_error(&mut out, 413, "too_large", msg, false);
        }
        respond(&mut out, fleet, &req)?;
        if !req.keep_alive {
            return Ok(());
        }
    }
}

/// Reads one request head: `Ok(None)` when the peer closed between requests, `Err(status)`
/// for a head this server refuses.
fn read_head(r: &mut impl BufRead) -> std::io::Result<Result<Option<Request>, u16>> {
    let mut lines: Vec<String> = Vec::new();
    let mut size = 0;
    loop {
        let mut line = Vec::new();
        // At most one byte past the cap, so a line without an end costs no more.
        let n = r
            .by_ref()
            .take((MAX_HEAD + 1 - size) as u64)
            .read_until(b'\n', &mut line)?;
        if n == 0 {
            return Ok(if lines.is_empty() { Ok(None) } else { Err(400) });
        }
        size += n;
        if size > MAX_HEAD {
            return Ok(Err(431));
        }
        let Ok(text) = String::from_utf8(line) else {
            return Ok(Err(400));
        };
        let text = text.trim_end_matches(['\r', '\n']).to_string();
        if text.is_empty() {
            if lines.is_empty() {
                continue; // a stray empty line before a request is allowed
            }
            break;
        }
        lines.push(text);
    }
    let mut first = lines[0].split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (first.next(), first.next(), first.next(), first.next())
    else {
        return Ok(Err(400));
    };
    let http11 = match version {
        "HTTP/1.1" => true,
        "HTTP/1.0" => false,
        _ => return Ok(Err(400)),
    };
    let mut req = Request {
        method: method.to_string(),
        target: target.to_string(),
        gzip: false,
        keep_alive: http11,
        has_body: false,
    };
    for h in &lines[1..] {
        let Some((name, value)) = h.split_once(':') else {
            return Ok(Err(400));
        };
        let value = value.trim().to_ascii_lowercase();
        match name.trim().to_ascii_lowercase().as_str() {
            "accept-encoding" => {
                req.gzip = value
                    .split(',')
                    .any(|c| c.split(';').next().map(str::trim) == Some("gzip"));
            }
            "connection" if value.contains("close") => req.keep_alive = false,
            "connection" if value.contains("keep-alive") => req.keep_alive = true,
            "content-length" => req.has_body = value != "0",
            "transfer-encoding" => req.has_body = true,
            _ => {}
        }
    }
    Ok(Ok(Some(req)))
}

/// Answers one request.
fn respond(out: &mut TcpStream, fleet: &Fleet, req: &Request) -> std::io::Result<()> {
    let ka = req.keep_alive;
    let (path, query) = req.target.split_once('?').unwrap_or((&req.target, ""));
    if path == "/healthz" {
        return write(out, 200, "text/plain", None, b"ok\n", ka);
    }
    let Some((target, what)) = path
        .strip_prefix("/t/")
        .and_then(|rest| rest.split_once('/'))
        .and_then(|(i, what)| Some((i.parse::<usize>().ok()?, what)))
    else {
        return respond_error(out, 404, "not_found", "no such path", ka);
    };
    if what != "metrics" && what != "v1/events" {
        return respond_error(out, 404, "not_found", "no such path", ka);
    }
    if req.method != "GET" {
        return respond_error(out, 405, "method_not_allowed", "only GET is served", ka);
    }
    if what == "v1/events" {
        return match events_page(query, &fleet.instance) {
            Ok(json) => write(out, 200, "application/json", None, json.as_bytes(), ka),
            Err(msg) => respond_error(out, 400, "bad_request", &msg, ka),
        };
    }
    let body = &fleet.bodies[target % fleet.bodies.len()];
    let ct = "text/plain; version=0.0.4; charset=utf-8";
    if req.gzip {
        write(out, 200, ct, Some("gzip"), &body.gzip, ka)
    } else {
        write(out, 200, ct, None, &body.plain, ka)
    }
}

/// The JSON of an events page with no events after `after`, or what is wrong with `query`.
fn events_page(query: &str, instance: &str) -> Result<String, String> {
    let (mut after, mut limit) = (0u64, 1000u64);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let n: u64 = v
            .parse()
            .map_err(|_| format!("{k}: {v:?} is not a non-negative integer"))?;
        match k {
            "after" => after = n,
            "limit" => limit = n,
            _ => return Err(format!("unknown query parameter {k:?}")),
        }
    }
    if limit == 0 || limit > MAX_EVENTS_PAGE {
        return Err(format!("limit must be between 1 and {MAX_EVENTS_PAGE}"));
    }
    Ok(format!(
        r#"{{"events":[],"next":{after},"instance":"{instance}","truncated":false,"more":false}}"#
    ))
}

/// Writes an error as the agent does: `{"error":{"code":…,"message":…}}`.
fn respond_error(
    out: &mut TcpStream,
    status: u16,
    code: &str,
    message: &str,
    keep_alive: bool,
) -> std::io::Result<()> {
    // The messages above hold no quote or backslash but a client's parameter name might.
    let message: String = message
        .chars()
        .map(|c| {
            if c == '"' || c == '\\' || c.is_control() {
                '\''
            } else {
                c
            }
        })
        .collect();
    let json = format!(r#"{{"error":{{"code":"{code}","message":"{message}"}}}}"#);
    write(
        out,
        status,
        "application/json",
        None,
        json.as_bytes(),
        keep_alive,
    )
}

/// Writes one response with a `Content-Length`.
fn write(
    out: &mut TcpStream,
    status: u16,
    content_type: &str,
    encoding: Option<&str>,
    body: &[u8],
    keep_alive: bool,
) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Payload Too Large",
        431 => "Request Header Fields Too Large",
        _ => "Error",
    };
    let mut head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(e) = encoding {
        head.push_str(&format!("Content-Encoding: {e}\r\n"));
    }
    head.push_str(if keep_alive {
        "Connection: keep-alive\r\n\r\n"
    } else {
        "Connection: close\r\n\r\n"
    });
    let mut buf = Vec::with_capacity(head.len() + body.len());
    buf.extend_from_slice(head.as_bytes());
    buf.extend_from_slice(body);
    out.write_all(&buf)?;
    out.flush()
}
