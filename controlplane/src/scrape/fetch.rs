//! Fetching an agent's `/metrics` and `/v1/events` over HTTP (ureq: a connection per
//! request, gzip, timeouts), with the body limit applied after decompression.

use std::time::Duration;

use gpuwarden_wire::event::EventsPage;
use thiserror::Error;

use crate::model::observation::ObserveError;

mod gunzip;
mod resolve;

/// Most events asked for per page of `/v1/events` (`limit=`); after failed reads the
/// scraper asks for fewer (see `scrape::events`).
pub const EVENTS_PAGE: usize = 1000;
/// Most bytes of one `/v1/events` answer (or `scrape.body_limit_bytes` when smaller): a
/// larger answer is refused ([`ScrapeError::EventsTooLarge`]) instead of read for as long as
/// the scrape timeout allows.
pub const EVENTS_BODY_LIMIT: u64 = 4 << 20;

/// Why a scrape failed; the message is what operators see as `last_error`.
#[derive(Debug, Error)]
pub enum ScrapeError {
    /// No connection.
    #[error("connection failed: {0}")]
    Connect(String),
    /// The scrape took longer than the timeout.
    #[error("timed out after {}", humantime::format_duration(*.0))]
    Timeout(Duration),
    /// Not HTTP 200.
    #[error("HTTP status {0}")]
    Status(u16),
    /// Not Prometheus text.
    #[error("content type {0:?} is not Prometheus text (text/plain)")]
    ContentType(String),
    /// The body is over the limit.
    #[error("body larger than {0} bytes")]
    TooLarge(u64),
    /// The body could not be read (cut short, bad gzip).
    #[error("reading the body: {0}")]
    Body(String),
    /// The body is not valid exposition, or has too many samples.
    #[error("{0}")]
    Parse(#[from] ObserveError),
    /// Reading or storing the agent's events failed.
    #[error("events: {0}")]
    Events(String),
    /// The agent answered `/v1/events` with another status than 200.
    #[error("events: HTTP status {0}")]
    EventsStatus(u16),
    /// The agent's `/v1/events` answer was over the byte cap.
    #[error("events: the answer is larger than {0} bytes")]
    EventsTooLarge(u64),
}

impl ScrapeError {
    /// The `result` label of `gpuwarden_cp_scrapes_total`.
    pub fn kind(&self) -> &'static str {
        match self {
            ScrapeError::Connect(_) => "connect",
            ScrapeError::Timeout(_) => "timeout",
            ScrapeError::Status(_) => "http_status",
            ScrapeError::ContentType(_) => "content_type",
            ScrapeError::TooLarge(_) => "too_large",
            ScrapeError::Body(_) => "body",
            ScrapeError::Parse(ObserveError::TooManySamples { .. }) => "sample_limit",
            ScrapeError::Parse(ObserveError::TooMany { .. } | ObserveError::TooLong { .. }) => {
                "cardinality"
            }
            ScrapeError::Parse(ObserveError::NotAnAgent) => "not_agent",
            ScrapeError::Parse(_) => "parse",
            ScrapeError::Events(_)
            | ScrapeError::EventsStatus(_)
            | ScrapeError::EventsTooLarge(_) => "events",
        }
    }
}

/// Fetches what the scraper reads from an agent. Tests and the simulator fake it.
pub trait Fetch: Send + Sync + 'static {
    /// The body of `{address}/metrics`, decompressed, into `body`: what it held before is
    /// overwritten, and it ends holding the body exactly (its allocation is reused from
    /// scrape to scrape).
    fn metrics(&self, address: &str, body: &mut Vec<u8>) -> Result<(), ScrapeError>;
    /// `{address}/v1/events?after=AFTER&limit=LIMIT`: at most `limit` events, the answer at
    /// most [`EVENTS_BODY_LIMIT`] bytes.
    fn events(&self, address: &str, after: i64, limit: usize) -> Result<EventsPage, ScrapeError>;
}

/// Reads `r` to its end into `body`, which never grows past `limit` bytes: its capacity
/// doubles as it fills, but is capped at the limit, so the largest buffer a body can cost is
/// `limit` (read_to_end's doubling could reach twice that). A body over the limit is
/// [`ScrapeError::TooLarge`]; other read errors are returned for the caller to map.
pub(crate) fn read_bounded(
    r: &mut impl std::io::Read,
    body: &mut Vec<u8>,
    limit: u64,
) -> Result<std::io::Result<()>, ScrapeError> {
    let cap = usize::try_from(limit).unwrap_or(usize::MAX);
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let n = match r.read(&mut chunk) {
            Ok(0) => return Ok(Ok(())),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Ok(Err(e)),
        };
        if body.len() + n > cap {
            return Err(ScrapeError::TooLarge(limit));
        }
        if body.capacity() - body.len() < n {
            let want = (body.capacity() * 2)
                .max(body.len() + n)
                .max(64 * 1024)
                .min(cap);
            body.reserve_exact(want - body.len());
        }
        body.extend_from_slice(&chunk[..n]);
    }
}

/// Reads `r` to its end into `body[*filled..]`, straight into the buffer: `body`'s length on
/// entry is space already initialized by earlier scrapes (the thread's buffer is reused), so
/// a body costs neither a copy through a chunk nor zeroing. The buffer grows (doubling,
/// capped at `limit`) only past that; `*filled` ends at the body's length, and the caller
/// truncates `body` to it. Over `limit` bytes is [`ScrapeError::TooLarge`]; other read
/// errors are returned for the caller to map.
pub(crate) fn read_reusing(
    r: &mut impl std::io::Read,
    body: &mut Vec<u8>,
    filled: &mut usize,
    limit: u64,
) -> Result<std::io::Result<()>, ScrapeError> {
    let cap = usize::try_from(limit).unwrap_or(usize::MAX);
    loop {
        if *filled == body.len() {
            if body.len() >= cap {
                // At the limit: one byte more is a body over it.
                let mut probe = [0u8; 1];
                return match r.read(&mut probe) {
                    Ok(0) => Ok(Ok(())),
                    Ok(_) => Err(ScrapeError::TooLarge(limit)),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => Ok(Err(e)),
                };
            }
            let want = (body.len() * 2).max(64 * 1024).min(cap);
            body.reserve_exact(want - body.len());
            body.resize(want, 0);
        }
        match r.read(&mut body[*filled..]) {
            Ok(0) => return Ok(Ok(())),
            Ok(n) => *filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Ok(Err(e)),
        }
    }
}

/// [`Fetch`] over HTTP: a new connection per request, closed after the answer.
///
/// Every request says `Connection: close`, nothing pooled: the agent closes a connection
/// idle for 5 s (`HEADER_TIMEOUT`), so at a 15 s interval a kept one is dead by the next
/// scrape; and ureq's pool re-ranks every idle connection by host on each checkout and
/// return, O(idle × hosts) under one lock, with one host per agent. The cost is a handshake
/// per scrape. `ingest.sh` (a loopback address per target), 2,000 targets: 0.144 cores, every
/// scrape on time; ureq's pool of 4,096 took 0.862 cores and did 27 % of due scrapes.
#[derive(Debug)]
pub struct HttpFetcher {
    agent: ureq::Agent,
    timeout: Duration,
    body_limit: u64,
}

impl HttpFetcher {
    /// A fetcher with a per-request `timeout` and a `body_limit` after decompression.
    pub fn new(timeout: Duration, body_limit: u64) -> Self {
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            // No connection outlives its request (see above).
            .max_idle_connections(0)
            .max_idle_connections_per_host(0)
            // Buffers live only while a request is in flight (at most `scrape.concurrency`
            // of them): 16 KiB in holds a gzip'd agent body (~10 KiB) in one read.
            .input_buffer_size(16 * 1024)
            .output_buffer_size(4 * 1024)
            .max_response_header_size(16 * 1024)
            .user_agent(concat!(
                "gpuwarden-controlplane/",
                env!("CARGO_PKG_VERSION")
            ))
            .build();
        let agent = ureq::Agent::with_parts(
            config,
            ureq::unversioned::transport::DefaultConnector::new(),
            resolve::LiteralFirst::default(),
        );
        Self {
            agent,
            timeout,
            body_limit,
        }
    }

    /// The body as sent (still compressed, when it is) into `into`, at most `body_limit`
    /// bytes, with ureq's errors mapped.
    fn read_body(
        &self,
        reader: &mut impl std::io::Read,
        into: &mut Vec<u8>,
    ) -> Result<(), ScrapeError> {
        read_bounded(reader, into, self.body_limit)?.map_err(|e| self.read_error(e))
    }

    /// A read error of the body as sent, with ureq's own errors (limit, timeout) mapped.
    fn read_error(&self, e: std::io::Error) -> ScrapeError {
        // ureq reports its own errors (limit, timeout) inside the io::Error.
        let kind = e.kind();
        match e.into_inner().map(|inner| inner.downcast::<ureq::Error>()) {
            Some(Ok(u)) => match *u {
                ureq::Error::BodyExceedsLimit(_) => ScrapeError::TooLarge(self.body_limit),
                // The answer had started: what breaks now breaks the body.
                other => match self.error(other) {
                    ScrapeError::Connect(m) => ScrapeError::Body(m),
                    e => e,
                },
            },
            _ if kind == std::io::ErrorKind::TimedOut => ScrapeError::Timeout(self.timeout),
            Some(Err(other)) => ScrapeError::Body(other.to_string()),
            None => ScrapeError::Body(format!("{kind}")),
        }
    }

    fn error(&self, e: ureq::Error) -> ScrapeError {
        match e {
            ureq::Error::Timeout(_) => ScrapeError::Timeout(self.timeout),
            ureq::Error::BodyExceedsLimit(n) => ScrapeError::TooLarge(n),
            ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => {
                ScrapeError::Timeout(self.timeout)
            }
            ureq::Error::Io(io) => ScrapeError::Connect(io.to_string()),
            ureq::Error::ConnectionFailed | ureq::Error::HostNotFound => {
                ScrapeError::Connect(e.to_string())
            }
            other => ScrapeError::Connect(other.to_string()),
        }
    }
}

impl Fetch for HttpFetcher {
    fn metrics(&self, address: &str, body: &mut Vec<u8>) -> Result<(), ScrapeError> {
        let url = format!("{}/metrics", address.trim_end_matches('/'));
        let mut resp = self
            .agent
            .get(&url)
            .header("Accept", "text/plain;version=0.0.4;q=1,*/*;q=0.1")
            // Decoded here with a kept decoder (`gunzip`), not by ureq.
            .header("Accept-Encoding", "gzip")
            .header("Connection", "close")
            .call()
            .map_err(|e| self.error(e))?;
        let status = resp.status().as_u16();
        if status != 200 {
            return Err(ScrapeError::Status(status));
        }
        let ct = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        if !ct.to_ascii_lowercase().starts_with("text/plain") {
            return Err(ScrapeError::ContentType(ct));
        }
        let encoding = resp
            .headers()
            .get("content-encoding")
            .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase());
        let mut reader = resp
            .body_mut()
            .with_config()
            .limit(self.body_limit)
            .reader();
        let read = |into: &mut Vec<u8>| self.read_body(&mut reader, into);
        // `body` keeps its length from the last scrape as initialized room (see
        // `read_reusing`), and is cut to what was read at the end.
        let mut filled = 0;
        let result = match encoding.as_deref() {
            None | Some("identity") => {
                read_reusing(&mut reader, body, &mut filled, self.body_limit)
                    .and_then(|r| r.map_err(|e| self.read_error(e)))
            }
            Some("gzip" | "x-gzip") => gunzip::gunzip(read, |d| {
                read_reusing(d, body, &mut filled, self.body_limit)?
                    .map_err(|e| ScrapeError::Body(format!("gzip: {e}")))
            }),
            Some(other) => Err(ScrapeError::Body(format!(
                "unsupported Content-Encoding {other:?} (gzip or none)"
            ))),
        };
        body.truncate(filled);
        result
    }

    fn events(&self, address: &str, after: i64, limit: usize) -> Result<EventsPage, ScrapeError> {
        let url = format!(
            "{}/v1/events?after={}&limit={}",
            address.trim_end_matches('/'),
            after.max(0),
            limit.clamp(1, EVENTS_PAGE)
        );
        let cap = self.body_limit.min(EVENTS_BODY_LIMIT);
        let mut resp = self
            .agent
            .get(&url)
            .header("Connection", "close")
            .call()
            .map_err(|e| self.error(e))?;
        let status = resp.status().as_u16();
        if status != 200 {
            return Err(ScrapeError::EventsStatus(status));
        }
        resp.body_mut()
            .with_config()
            .limit(cap)
            .read_json::<EventsPage>()
            .map_err(|e| match e {
                ureq::Error::BodyExceedsLimit(_) => ScrapeError::EventsTooLarge(cap),
                ureq::Error::Timeout(_) => ScrapeError::Events(format!(
                    "timed out after {}",
                    humantime::format_duration(self.timeout)
                )),
                e => ScrapeError::Events(e.to_string()),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An endless body of zeros, as a gzip bomb decompresses.
    struct Zeros;
    impl std::io::Read for Zeros {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            buf.fill(0);
            Ok(buf.len())
        }
    }

    #[test]
    fn a_body_over_the_limit_never_costs_more_than_the_limit() {
        for limit in [1024 * 1024, 1024 * 1024 + 1, 3 * 1024 * 1024 + 17] {
            let mut body = Vec::new();
            let r = read_bounded(&mut Zeros, &mut body, limit);
            assert!(matches!(r, Err(ScrapeError::TooLarge(l)) if l == limit));
            assert!(
                body.capacity() as u64 <= limit,
                "capacity {} over the limit {limit}",
                body.capacity()
            );
        }
        // Straight into the reused buffer: a bomb stops at the limit there too.
        for limit in [1024 * 1024, 3 * 1024 * 1024 + 17] {
            let (mut body, mut filled) = (vec![1u8; 4096], 0);
            let r = read_reusing(&mut Zeros, &mut body, &mut filled, limit);
            assert!(matches!(r, Err(ScrapeError::TooLarge(l)) if l == limit));
            assert!(body.capacity() as u64 <= limit, "{}", body.capacity());
        }
        // A shorter body over a longer one left from the last scrape, a longer one after
        // it, and one exactly at the limit: each read whole, nothing of the old left.
        let mut body = vec![9u8; 100_000];
        for (len, limit) in [(70_000, 1 << 20), (300_000, 1 << 20), (400_000, 400_000)] {
            let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let mut filled = 0;
            read_reusing(&mut &data[..], &mut body, &mut filled, limit)
                .unwrap()
                .unwrap();
            body.truncate(filled);
            assert_eq!(body, data);
            assert!(
                body.capacity() <= 1 << 20,
                "{len} {limit} {}",
                body.capacity()
            );
        }
        // A body at the limit is read whole.
        let data = vec![7u8; 200_000];
        let mut body = Vec::new();
        read_bounded(&mut &data[..], &mut body, 200_000)
            .unwrap()
            .unwrap();
        assert_eq!(body, data);
        assert!(body.capacity() <= 200_000);
    }
}
