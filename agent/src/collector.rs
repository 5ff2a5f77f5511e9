//! The collector: one thread that samples the GPUs on an interval, turns backend and
//! kernel-log reports into health events, and publishes a [`Snapshot`] that `/metrics`
//! serves as it is.
//!
//! Everything that changes agent state arrives on one channel ([`Msg`]) and is handled by
//! this thread alone, so there are no locks around GPU state. NVML calls block; they run
//! here, never on the async runtime.

mod ingest;
mod snapshot;

pub use snapshot::Snapshot;
use snapshot::{Frozen, LazyBody};

use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use crate::backend::{BackendError, BackendEvent, GpuBackend, Inventory};
use crate::derive::{self, Thresholds};
use crate::events::{EventLog, NewEvent, XidDedup};
use crate::kmsg::KmsgReport;
use crate::render::{self, CollectorStat, GpuState, KmsgStats};
use crate::system::SystemCollector;
use crate::text::push_label;

/// Clock-change events trigger an early collection at most this often.
const CLOCK_EVENT_MIN_GAP: Duration = Duration::from_secs(1);

/// The latest snapshot, swapped atomically.
pub type SharedSnapshot = Arc<RwLock<Arc<Snapshot>>>;

/// Messages to the collector thread.
#[derive(Debug)]
pub enum Msg {
    /// A critical event from the GPU backend.
    Backend(BackendEvent),
    /// A report from the kernel-log reader.
    Kmsg(KmsgReport),
    /// Collect now; the sender is told when the new snapshot is published.
    CollectNow(Option<tokio::sync::oneshot::Sender<()>>),
    /// Re-render `/metrics` (plugin results changed).
    Refresh,
    /// Stop the thread.
    Shutdown,
}

impl From<KmsgReport> for Msg {
    fn from(r: KmsgReport) -> Self {
        Msg::Kmsg(r)
    }
}

/// Collector settings.
#[derive(Debug, Clone)]
pub struct CollectorSettings {
    /// Node id (label and info).
    pub node_id: String,
    /// Node labels added to every per-GPU series.
    pub node_labels: Vec<(String, String)>,
    /// Sampling interval.
    pub interval: Duration,
    /// Event thresholds.
    pub thresholds: Thresholds,
    /// XID de-duplication window.
    pub xid_dedup_window: Duration,
    /// Collect node metrics.
    pub system: bool,
    /// Add dcgm-exporter series.
    pub dcgm_compat: bool,
}

impl CollectorSettings {
    /// The settings of the default configuration for `node_id`, without node metrics:
    /// what the plugin authoring tools and the benchmarks run with.
    pub fn defaults(node_id: &str) -> Self {
        let d = crate::config::AgentConfig::default();
        CollectorSettings {
            node_id: node_id.into(),
            node_labels: Vec::new(),
            interval: d.collector.interval,
            thresholds: Thresholds {
                temperature_warning: d.events.temperature_warning_celsius,
                temperature_critical: d.events.temperature_critical_celsius,
            },
            xid_dedup_window: d.events.xid_dedup_window,
            system: false,
            dcgm_compat: false,
        }
    }
}

/// The collector's state; owned by its thread.
pub struct Collector {
    settings: CollectorSettings,
    backend: Arc<dyn GpuBackend>,
    inventory: Arc<Inventory>,
    gpus: Vec<GpuState>,
    lost: Vec<bool>,
    events: Arc<Mutex<EventLog>>,
    dedup: XidDedup,
    /// Node metrics, read by the render (see [`snapshot`]), not by every collection.
    system: Option<Arc<Mutex<SystemCollector>>>,
    gpu_stat: CollectorStat,
    kmsg: KmsgStats,
    gpu_events_up: bool,
    shared: SharedSnapshot,
    last_collection: Option<SystemTime>,
    extra: Option<Arc<dyn render::ExtraMetrics>>,
}

impl std::fmt::Debug for Collector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collector")
            .field("gpus", &self.gpus.len())
            .finish()
    }
}

impl Collector {
    /// A collector over `backend`'s GPUs. Reads the inventory once.
    pub fn new(
        settings: CollectorSettings,
        backend: Arc<dyn GpuBackend>,
        events: Arc<Mutex<EventLog>>,
        shared: SharedSnapshot,
    ) -> Result<Self, BackendError> {
        let inventory = backend.inventory()?;
        let gpus = inventory
            .gpus
            .iter()
            .map(|g| {
                let mut labels = String::new();
                push_label(&mut labels, "gpu", &g.index.to_string());
                push_label(&mut labels, "uuid", &g.uuid);
                push_label(&mut labels, "model", &g.model);
                for (k, v) in &settings.node_labels {
                    push_label(&mut labels, k, v);
                }
                GpuState {
                    labels,
                    dcgm_labels: render::dcgm::gpu_labels(
                        g,
                        &settings.node_id,
                        &inventory.driver_version,
                    ),
                    ..GpuState::default()
                }
            })
            .collect::<Vec<_>>();
        let n = gpus.len();
        Ok(Collector {
            dedup: XidDedup::new(settings.xid_dedup_window),
            system: settings
                .system
                .then(|| Arc::new(Mutex::new(SystemCollector::new()))),
            settings,
            backend,
            inventory: Arc::new(inventory),
            gpus,
            lost: vec![false; n],
            events,
            gpu_stat: CollectorStat::default(),
            kmsg: KmsgStats::default(),
            gpu_events_up: false,
            shared,
            last_collection: None,
            extra: None,
        })
    }

    /// Appends another part's metrics (the plugins') to every render.
    pub fn set_extra(&mut self, extra: Arc<dyn render::ExtraMetrics>) {
        self.extra = Some(extra);
    }

    /// The inventory read at start.
    pub fn inventory(&self) -> &Inventory {
        &self.inventory
    }

    /// Marks the kernel log as read (or not) in the metrics.
    pub fn set_kmsg_up(&mut self, up: bool) {
        self.kmsg.up = up;
    }

    /// Marks the GPU backend's event stream as read (or not) in the metrics.
    pub fn set_gpu_events_up(&mut self, up: bool) {
        self.gpu_events_up = up;
    }

    fn record(&mut self, e: NewEvent) {
        tracing::info!(gpu = ?e.gpu, kind = e.kind.as_str(), code = ?e.code, severity = e.severity.as_str(), message = %e.message, "health event");
        let mut log = self.events.lock().unwrap_or_else(|p| p.into_inner());
        log.push(e, SystemTime::now());
    }

    /// Samples every GPU (and the node), raises derived events, and publishes a snapshot.
    pub fn collect(&mut self) {
        let started = Instant::now();
        let mut failures = 0;
        for i in 0..self.gpus.len() {
            let info = &self.inventory.gpus[i];
            match self.backend.sample(info.index) {
                Ok(s) => {
                    let new = derive::derive(
                        info,
                        self.gpus[i].sample.as_ref(),
                        &s,
                        &self.settings.thresholds,
                    );
                    if self.lost[i] {
                        tracing::info!(gpu = info.index, "GPU answers again");
                        self.lost[i] = false;
                    }
                    self.gpus[i].sample = Some(s);
                    for e in new {
                        self.record(e);
                    }
                }
                Err(BackendError::GpuLost(_)) => {
                    self.gpus[i].sample = None;
                    if !self.lost[i] {
                        self.lost[i] = true;
                        let e = derive::gpu_lost(info);
                        self.record(e);
                    }
                }
                Err(e) => {
                    failures += 1;
                    tracing::warn!(gpu = info.index, error = %e, "GPU sample failed; keeping the previous reading");
                }
            }
        }
        self.gpu_stat = CollectorStat {
            duration_seconds: started.elapsed().as_secs_f64(),
            success: failures == 0,
            errors_total: self.gpu_stat.errors_total + u64::from(failures > 0),
        };
        self.last_collection = Some(SystemTime::now());
        self.publish();
    }

    /// Renders the current state into a `/metrics` body.
    pub fn render_body(&mut self) -> String {
        self.freeze().0.render()
    }

    /// What a render of the current state reads, with the sequence of the newest event it
    /// counts.
    fn freeze(&self) -> (Frozen, u64) {
        let (event_counts, seq) = {
            let log = self.events.lock().unwrap_or_else(|p| p.into_inner());
            (log.counts().clone(), log.last_seq())
        };
        let collectors = vec![("gpu", self.gpu_stat)];
        let taken = self.last_collection.unwrap_or_else(SystemTime::now);
        let frozen = Frozen {
            node_id: self.settings.node_id.clone(),
            backend: self.backend.name(),
            inventory: Arc::clone(&self.inventory),
            gpus: self.gpus.clone(),
            system: self.system.clone(),
            collectors,
            event_counts,
            kmsg: self.kmsg,
            gpu_events_up: self.gpu_events_up,
            timestamp_seconds: taken
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
            dcgm_compat: self.settings.dcgm_compat,
            extra: self.extra.clone(),
        };
        (frozen, seq)
    }

    /// Swaps in the current state as the latest snapshot; its body is rendered when a
    /// scrape first asks for it. The events it counts are marked published.
    pub fn publish(&mut self) {
        let (frozen, seq) = self.freeze();
        let taken = self.last_collection.unwrap_or_else(SystemTime::now);
        let snap = Snapshot {
            taken: Some(taken),
            gpus: self
                .inventory
                .gpus
                .iter()
                .cloned()
                .zip(self.gpus.iter().map(|g| g.sample.clone()))
                .collect(),
            body: LazyBody::new(frozen),
        };
        *self.shared.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(snap);
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .published(seq);
    }

    /// Runs the loop until [`Msg::Shutdown`] or until every sender is gone. The first
    /// collection happens one interval after the last (call [`Collector::collect`] first).
    pub fn run(mut self, rx: Receiver<Msg>) {
        let interval = self.settings.interval;
        let mut next = Instant::now() + interval;
        let mut acks = Vec::new();
        loop {
            let now = Instant::now();
            if now >= next {
                self.collect();
                next += interval;
                if next <= now {
                    next = now + interval; // fell behind (slow NVML): skip, do not burst
                }
                continue;
            }
            let first = match rx.recv_timeout(next - now) {
                Ok(m) => m,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => return,
            };
            let collected_before = self.last_collection;
            if !self.handle(first, &mut acks) {
                return;
            }
            // Take whatever else is queued, then publish once.
            while let Ok(m) = rx.try_recv() {
                if !self.handle(m, &mut acks) {
                    return;
                }
            }
            // A collection already published; events alone need a fresh render.
            if self.last_collection == collected_before {
                self.publish();
            }
            for a in acks.drain(..) {
                let _ = a.send(());
            }
        }
    }
}
