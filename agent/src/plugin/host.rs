//! The data of a plugin's store: the read-only host API, a WASI context that grants nothing,
//! bounded output, and the memory limiter.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use wasmtime::component::ResourceTable;
use wasmtime::ResourceLimiter;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxView, WasiView};

use super::bindings::check::gpuwarden::plugin::host;
use super::bindings::types as wit;

mod convert;

use crate::collector::Snapshot;
use crate::events::EventLog;
use convert::{action, samples_of, unix_ms};
pub use convert::{gpu_info, gpu_sample};

/// What one run (one store) may create: core module instances, linear memories, tables;
/// [`PluginCtx`]'s limiter enforces them. The engine's pool holds
/// [`MAX_INSTANCES`](super::engine::MAX_INSTANCES) runs at these limits, so no run can use up
/// what the others' slots need (a diagnostic with many memories cannot starve the health
/// checks).
pub const RUN_CORE_INSTANCES: u32 = 16;
/// Linear memories of one run.
pub const RUN_MEMORIES: u32 = 8;
/// Tables of one run.
pub const RUN_TABLES: u32 = 16;

/// What a run of a plugin may see: shared, read-only.
#[derive(Debug, Clone)]
pub struct HostView {
    /// The plugin's name (log target).
    pub plugin: String,
    /// The latest snapshot.
    pub snapshot: Arc<Snapshot>,
    /// The snapshot at the plugin's previous run.
    pub previous: Option<Arc<Snapshot>>,
    /// The event log.
    pub events: Arc<Mutex<EventLog>>,
    /// The newest event sequence at the previous run.
    pub previous_cursor: u64,
    /// Configuration values (or diagnostic parameters).
    pub config: Vec<(String, String)>,
}

/// Limits of one run.
#[derive(Debug, Clone, Copy)]
pub struct RunLimits {
    /// Linear-memory cap per memory, bytes.
    pub memory_bytes: usize,
    /// `log` lines kept.
    pub log_max_lines: usize,
    /// stdout + stderr bytes (each pipe gets this capacity).
    pub output_max_bytes: usize,
}

/// The most bytes one `wasi:random` call may ask for (more traps the plugin).
pub const MAX_RANDOM_BYTES: u64 = 64 * 1024;

/// The store's data.
pub struct PluginCtx {
    view: HostView,
    limits: RunLimits,
    wasi: WasiCtx,
    table: ResourceTable,
    /// stdout and stderr, read after the run.
    pub stdout: MemoryOutputPipe,
    /// stderr.
    pub stderr: MemoryOutputPipe,
    /// Set when the plugin asked for more memory than its cap.
    pub memory_exceeded: bool,
    /// `log` lines written.
    pub log_lines: usize,
    /// `log` lines dropped over the limit.
    pub log_dropped: usize,
    started: Instant,
}

struct FrozenWall;
impl HostWallClock for FrozenWall {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}
struct FrozenMonotonic;
impl HostMonotonicClock for FrozenMonotonic {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    fn now(&self) -> u64 {
        0
    }
}

impl PluginCtx {
    /// A fresh context: WASI with no directories, no network, no environment, no arguments,
    /// clocks frozen at zero (time comes from the host API), bounded stdout and stderr, and
    /// at most [`MAX_RANDOM_BYTES`] of randomness a call.
    pub fn new(view: HostView, limits: RunLimits) -> Self {
        let stdout = MemoryOutputPipe::new(limits.output_max_bytes);
        let stderr = MemoryOutputPipe::new(limits.output_max_bytes);
        let wasi = WasiCtx::builder()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .socket_addr_check(|_, _| Box::pin(async { false }))
            .wall_clock(FrozenWall)
            .monotonic_clock(FrozenMonotonic)
            // The host builds the bytes before copying them in: wasmtime-wasi's default
            // (64 MiB a call) would let a plugin make the agent allocate that much.
            .max_random_size(MAX_RANDOM_BYTES)
            .build();
        PluginCtx {
            view,
            limits,
            wasi,
            table: ResourceTable::new(),
            stdout,
            stderr,
            memory_exceeded: false,
            log_lines: 0,
            log_dropped: 0,
            started: Instant::now(),
        }
    }
}

impl WasiView for PluginCtx {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl ResourceLimiter for PluginCtx {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limits.memory_bytes {
            self.memory_exceeded = true;
            return Ok(false);
        }
        Ok(true)
    }
    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
    fn instances(&self) -> usize {
        RUN_CORE_INSTANCES as usize
    }
    fn tables(&self) -> usize {
        RUN_TABLES as usize
    }
    fn memories(&self) -> usize {
        RUN_MEMORIES as usize
    }
}

impl wit::Host for PluginCtx {}

impl host::Host for PluginCtx {
    fn gpus(&mut self) -> Vec<wit::GpuInfo> {
        self.view
            .snapshot
            .gpus
            .iter()
            .map(|(i, _)| gpu_info(i))
            .collect()
    }

    fn samples(&mut self, include_nvlinks: bool) -> Vec<wit::GpuSample> {
        samples_of(&self.view.snapshot, include_nvlinks)
    }

    fn previous_samples(&mut self, include_nvlinks: bool) -> Vec<wit::GpuSample> {
        self.view
            .previous
            .as_deref()
            .map(|s| samples_of(s, include_nvlinks))
            .unwrap_or_default()
    }

    fn events_after(&mut self, cursor: u64, limit: u32) -> Vec<wit::HealthEvent> {
        let log = self.view.events.lock().unwrap_or_else(|p| p.into_inner());
        let page = log.page(cursor, (limit as usize).clamp(1, 10_000));
        page.events
            .into_iter()
            .map(|e| wit::HealthEvent {
                seq: e.seq,
                time_unix_ms: unix_ms(&e.time),
                gpu: e.gpu,
                uuid: e.uuid,
                kind: e.kind.as_str().to_string(),
                code: e.code,
                message: e.message,
                severity: match e.severity {
                    gpuwarden_wire::Severity::Info => wit::Severity::Info,
                    gpuwarden_wire::Severity::Warning => wit::Severity::Warning,
                    gpuwarden_wire::Severity::Fatal => wit::Severity::Fatal,
                },
                action: action(e.action),
            })
            .collect()
    }

    fn previous_cursor(&mut self) -> u64 {
        self.view.previous_cursor
    }

    fn config(&mut self) -> Vec<(String, String)> {
        self.view.config.clone()
    }

    fn log(&mut self, level: wit::LogLevel, message: String) {
        if self.log_lines >= self.limits.log_max_lines {
            self.log_dropped += 1;
            return;
        }
        self.log_lines += 1;
        let message: String = message.chars().take(1024).collect();
        let plugin = self.view.plugin.as_str();
        match level {
            wit::LogLevel::Trace => tracing::trace!(plugin, "{message}"),
            wit::LogLevel::Debug => tracing::debug!(plugin, "{message}"),
            wit::LogLevel::Info => tracing::info!(plugin, "{message}"),
            wit::LogLevel::Warn => tracing::warn!(plugin, "{message}"),
            wit::LogLevel::Error => tracing::error!(plugin, "{message}"),
        }
    }

    fn monotonic_now_ns(&mut self) -> u64 {
        self.started.elapsed().as_nanos() as u64
    }

    fn wall_clock_unix_ms(&mut self) -> u64 {
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime_wasi::p2::bindings::random::random::Host as _;

    #[test]
    fn randomness_is_bounded_per_call() {
        let view = HostView {
            plugin: "t".into(),
            snapshot: Arc::default(),
            previous: None,
            events: Arc::new(Mutex::new(EventLog::new(10, "t".into()))),
            previous_cursor: 0,
            config: Vec::new(),
        };
        let limits = RunLimits {
            memory_bytes: 1 << 20,
            log_max_lines: 10,
            output_max_bytes: 1024,
        };
        let mut ctx = PluginCtx::new(view, limits);
        let random = ctx.wasi.random();
        assert_eq!(random.get_random_bytes(16).map(|b| b.len()).ok(), Some(16));
        let e = random.get_random_bytes(64 << 20).unwrap_err().to_string();
        assert!(e.contains("exceeds limit 65536"), "{e}");
    }
}
