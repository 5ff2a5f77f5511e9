//! The node's workload as the control plane's pool autoscaling sees it: the agent reads an
//! optional local source (`[workload] source`: an HTTP endpoint on this host or a file)
//! once per collector interval and exposes `gpuwarden_workload_slots{state="free|busy"}`
//! and `gpuwarden_workload_ready`.
//!
//! A source that is missing, slow, too large or unreadable makes the series absent (never
//! a stale or made-up value) and logs a warning, at most once a minute while it stays bad;
//! nothing else of the agent notices. Off by default: with no source, no thread runs.

pub mod heartbeat;

use std::io::Read;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use gpuwarden_wire::metric as m;

pub use heartbeat::Reading;

use crate::config::WorkloadConfig;
use crate::render::ExtraMetrics;
use crate::text::{labels, Kind, Text};

/// Least time between two warnings about a bad source.
pub const WARN_EVERY: Duration = Duration::from_secs(60);

enum Source {
    Http { url: String, client: ureq::Agent },
    File(PathBuf),
}

#[derive(Default)]
struct State {
    reading: Option<Reading>,
    last_warning: Option<Instant>,
    failing: bool,
    stop: bool,
}

/// The workload reader; its metrics are appended to every render.
pub struct Workload {
    source: Source,
    state: Mutex<State>,
    wake: Condvar,
}

impl std::fmt::Debug for Workload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workload")
            .field("reading", &self.reading())
            .finish_non_exhaustive()
    }
}

impl Workload {
    /// The reader of `cfg`'s source; `None` when the section is off.
    pub fn new(cfg: &WorkloadConfig) -> Option<Arc<Workload>> {
        let s = cfg.source.trim();
        if s.is_empty() {
            return None;
        }
        let source = if s.starts_with("http://") {
            let client: ureq::Agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(cfg.timeout))
                .max_redirects(0)
                .build()
                .into();
            Source::Http {
                url: s.to_string(),
                client,
            }
        } else {
            Source::File(PathBuf::from(s))
        };
        Some(Arc::new(Workload {
            source,
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
        }))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The latest good reading; `None` while the source is bad or not read yet.
    pub fn reading(&self) -> Option<Reading> {
        self.lock().reading
    }

    fn fetch(&self) -> Result<Vec<u8>, String> {
        let limit = heartbeat::MAX_BYTES as u64 + 1;
        match &self.source {
            Source::File(p) => {
                let f = std::fs::File::open(p).map_err(|e| format!("{}: {e}", p.display()))?;
                let mut buf = Vec::new();
                f.take(limit)
                    .read_to_end(&mut buf)
                    .map_err(|e| format!("{}: {e}", p.display()))?;
                Ok(buf)
            }
            Source::Http { url, client } => {
                let mut resp = client.get(url).call().map_err(|e| format!("{url}: {e}"))?;
                let status = resp.status().as_u16();
                if status != 200 {
                    return Err(format!("{url}: HTTP {status}"));
                }
                let mut buf = Vec::new();
                resp.body_mut()
                    .as_reader()
                    .take(limit)
                    .read_to_end(&mut buf)
                    .map_err(|e| format!("{url}: {e}"))?;
                Ok(buf)
            }
        }
    }

    /// Reads the source once: a good answer replaces the reading, a bad one removes it and
    /// warns (at most once per [`WARN_EVERY`] while it stays bad).
    pub fn read_once(&self) {
        let got = self.fetch().and_then(|b| heartbeat::parse(&b));
        let mut s = self.lock();
        match got {
            Ok(r) => {
                if s.failing {
                    tracing::info!("workload source readable again");
                }
                s.failing = false;
                s.last_warning = None;
                s.reading = Some(r);
            }
            Err(error) => {
                s.reading = None;
                s.failing = true;
                let now = Instant::now();
                if s.last_warning
                    .is_none_or(|t| now.duration_since(t) >= WARN_EVERY)
                {
                    s.last_warning = Some(now);
                    tracing::warn!(%error, "workload source unreadable: gpuwarden_workload_* series are absent until it answers");
                }
            }
        }
    }

    /// Reads the source now and then every `interval` (the collector's) on a thread of its
    /// own until [`Workload::stop`].
    pub fn spawn(self: &Arc<Self>, interval: Duration) -> std::io::Result<JoinHandle<()>> {
        let me = Arc::clone(self);
        std::thread::Builder::new()
            .name("workload".into())
            .spawn(move || loop {
                me.read_once();
                let s = me.lock();
                let (s, _) = me
                    .wake
                    .wait_timeout_while(s, interval, |s| !s.stop)
                    .unwrap_or_else(|p| p.into_inner());
                if s.stop {
                    return;
                }
            })
    }

    /// Ends the thread after its read under way.
    pub fn stop(&self) {
        self.lock().stop = true;
        self.wake.notify_all();
    }
}

impl ExtraMetrics for Workload {
    fn render(&self, t: &mut Text) {
        let Some(r) = self.reading() else {
            return;
        };
        t.family(
            m::WORKLOAD_SLOTS,
            "Workload slots on the node by state, from the local workload source.",
            Kind::Gauge,
        );
        t.sample(
            m::WORKLOAD_SLOTS,
            &labels(&[("state", "free")]),
            "",
            r.free as f64,
        );
        t.sample(
            m::WORKLOAD_SLOTS,
            &labels(&[("state", "busy")]),
            "",
            r.busy as f64,
        );
        t.family(
            m::WORKLOAD_READY,
            "1 when the node's workload takes work (a pool ready, not draining).",
            Kind::Gauge,
        );
        t.sample(m::WORKLOAD_READY, "", "", if r.ready { 1.0 } else { 0.0 });
    }
}

#[cfg(test)]
mod tests;
