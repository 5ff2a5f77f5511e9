//! The HTTP side of `static_targets`: request heads read and capped, the routes
//! (`/t/{i}/metrics`, `/t/{i}/v1/events`, `/healthz`) and responses written as the agent
//! writes them. Standard library only, compiled as a module of `static_targets.rs`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use super::Fleet;

/// Largest request head (request line and headers) read, bytes.
const MAX_HEAD: usize = 16 * 1024;
/// A kept-alive connection with no request for this long is closed: 5 s, as the agent
/// closes it (`agent/src/http/serve.rs`, `HEADER_TIMEOUT`).
const IDLE: Duration = Duration::from_secs(5);
/// Largest `limit` of an events page, as the agent's.
const MAX_EVENTS_PAGE: u64 = 10_000;

/// One parsed request head.
struct Request {
    method: String,
    target: String,
    gzip: bool,
    keep_alive: bool,
    has_body: bool,
}

/// Serves the requests of one connection until it closes, asks to close, or idles.
pub(super) fn serve(stream: TcpStream, fleet: &Fleet) -> std::io::Result<()> {
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
