//! What a collection publishes: the GPUs' latest readings, and the `/metrics` body rendered
//! from them the first time a scrape asks for it (then kept until the next publication).
//!
//! At the default 5 s collection and a 15 s scrape interval, two collections in three are
//! never scraped: rendering and compressing each one (~0.3 ms, more than sampling eight GPUs)
//! was most of an idle agent's CPU. A publication now freezes what a render reads (a copy of
//! the per-GPU state and counters, a few microseconds); the first scrape renders it, and
//! gzip is made only when a client asks for it. Scrapes still never wait on NVML: the render
//! reads the frozen copy, never the GPUs.
//!
//! The node metrics (`metrics.system`: CPU, memory, load, file systems, network, read from
//! /proc) are read by that render too, as node_exporter reads them at a scrape, not by every
//! collection: reading them was ~77 % of a collection's CPU (perf, 8 fake GPUs), paid for
//! two collections in three that nobody scraped. Their CPU usage is over the time since the
//! previous render; `collector_duration_seconds{collector="system"}` is that read's.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Instant, SystemTime};

use bytes::Bytes;

use crate::backend::{GpuInfo, GpuSample, Inventory};
use crate::render::{self, CollectorStat, ExtraMetrics, GpuState, KmsgStats, RenderInput};
use crate::system::SystemCollector;

/// What the latest collection produced. Shared read-only; replaced whole.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// When it was collected.
    pub taken: Option<SystemTime>,
    /// The inventory and latest sample of every GPU (`None`: lost), for plugins and APIs.
    pub gpus: Vec<(GpuInfo, Option<GpuSample>)>,
    /// The `/metrics` body, rendered on first use.
    pub(crate) body: LazyBody,
}

impl Snapshot {
    /// The `/metrics` body (reference-counted: a scrape sends it without copying). Rendered
    /// by the first caller after the collection; empty for a snapshot with nothing to render.
    pub fn body(&self) -> Bytes {
        self.body
            .text
            .get_or_init(|| match &self.body.frozen {
                Some(f) => f.render().into_bytes().into(),
                None => Bytes::new(),
            })
            .clone()
    }

    /// The same body, gzip-compressed once for every scrape that accepts gzip.
    pub fn body_gzip(&self) -> Bytes {
        self.body
            .gzip
            .get_or_init(|| gzip(&self.body()).into())
            .clone()
    }

    /// Whether the body has been rendered (a scrape asked for it since the collection).
    pub fn rendered(&self) -> bool {
        self.body.text.get().is_some()
    }
}

/// A body rendered (and compressed) at most once, when first asked for.
#[derive(Debug, Default)]
pub(crate) struct LazyBody {
    frozen: Option<Frozen>,
    text: OnceLock<Bytes>,
    gzip: OnceLock<Bytes>,
}

impl LazyBody {
    /// A body to render from `frozen`.
    pub(crate) fn new(frozen: Frozen) -> Self {
        LazyBody {
            frozen: Some(frozen),
            ..LazyBody::default()
        }
    }
}

/// What a render reads, copied when the collector publishes. The plugins' metrics
/// (`extra`) and the process's own memory and CPU are read when the body is rendered.
pub(crate) struct Frozen {
    pub node_id: String,
    pub backend: &'static str,
    pub inventory: Arc<Inventory>,
    pub gpus: Vec<GpuState>,
    /// Node metrics: read when the body is rendered (with the `system` collector's stat).
    pub system: Option<Arc<Mutex<SystemCollector>>>,
    pub collectors: Vec<(&'static str, CollectorStat)>,
    pub event_counts: BTreeMap<(&'static str, &'static str), u64>,
    pub kmsg: KmsgStats,
    pub gpu_events_up: bool,
    pub timestamp_seconds: f64,
    pub dcgm_compat: bool,
    pub extra: Option<Arc<dyn ExtraMetrics>>,
}

impl std::fmt::Debug for Frozen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Frozen")
            .field("gpus", &self.gpus.len())
            .finish()
    }
}

impl Frozen {
    /// Renders the body.
    pub(crate) fn render(&self) -> String {
        let mut collectors = self.collectors.clone();
        let system = self.system.as_ref().map(|s| {
            let t = Instant::now();
            let stats = s.lock().unwrap_or_else(|p| p.into_inner()).collect();
            let stat = CollectorStat {
                duration_seconds: t.elapsed().as_secs_f64(),
                success: true,
                errors_total: 0,
            };
            collectors.push(("system", stat));
            stats
        });
        render::render(&RenderInput {
            node_id: &self.node_id,
            backend: self.backend,
            inventory: &self.inventory,
            gpus: &self.gpus,
            system: system.as_ref(),
            collectors: &collectors,
            event_counts: &self.event_counts,
            kmsg: self.kmsg,
            gpu_events_up: self.gpu_events_up,
            process: process_stats(),
            timestamp_seconds: self.timestamp_seconds,
            dcgm_compat: self.dcgm_compat,
            extra: self.extra.as_deref(),
        })
    }
}

/// This process's resident memory (bytes) and CPU time (seconds), from `/proc/self/stat`.
fn process_stats() -> Option<(u64, f64)> {
    let stat = procfs::process::Process::myself().ok()?.stat().ok()?;
    let cpu = (stat.utime + stat.stime) as f64 / procfs::ticks_per_second() as f64;
    Some((stat.rss * procfs::page_size(), cpu))
}

mod gzip;
use gzip::gzip;

#[cfg(test)]
mod tests;
