//! One run of a plugin: a fresh store, the deadline, the memory cap, the report checks, and
//! every failure turned into an `unknown` report that says why.

use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use wasmtime::{Store, Trap};

use super::bindings::types as wit;
use super::engine::{PluginEngine, Prepared, EPOCH_TICK};
use super::host::{HostView, PluginCtx, RunLimits};

/// A verdict, as the API and metrics show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// 0
    Healthy,
    /// 1
    Degraded,
    /// 2
    Unhealthy,
    /// 3
    Unknown,
}

impl Status {
    /// The value of `gpuwarden_health_check_status`.
    pub fn code(self) -> u8 {
        match self {
            Status::Healthy => 0,
            Status::Degraded => 1,
            Status::Unhealthy => 2,
            Status::Unknown => 3,
        }
    }
    /// The `result` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Healthy => "healthy",
            Status::Degraded => "degraded",
            Status::Unhealthy => "unhealthy",
            Status::Unknown => "unknown",
        }
    }
    fn from_wit(s: wit::Status) -> Self {
        match s {
            wit::Status::Healthy => Status::Healthy,
            wit::Status::Degraded => Status::Degraded,
            wit::Status::Unhealthy => Status::Unhealthy,
            wit::Status::Unknown => Status::Unknown,
        }
    }
}

/// A finding, as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// GPU index; absent for the node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpu: Option<u32>,
    /// Verdict.
    pub status: Status,
    /// What was found.
    pub message: String,
    /// Recommended action (`none`, `ignore`, `restart_app`, `reset_gpu`, `reboot_node`, `contact_support`).
    pub action: &'static str,
}

/// A report, as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Overall verdict.
    pub status: Status,
    /// Summary.
    pub message: String,
    /// Per-GPU findings.
    pub findings: Vec<Finding>,
    /// Named numbers.
    pub metrics: Vec<(String, f64)>,
}

impl Report {
    /// An `unknown` report with the reason.
    pub fn unknown(reason: impl Into<String>) -> Self {
        Report {
            status: Status::Unknown,
            message: reason.into(),
            findings: Vec::new(),
            metrics: Vec::new(),
        }
    }
}

/// What a run produced.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// The report (`unknown` with the reason when the run failed).
    pub report: Report,
    /// Wall time of instantiate + call + checks.
    pub duration_seconds: f64,
    /// When the run ended (RFC 3339).
    pub at: String,
    /// Why the run failed, when it did (deadline, memory, trap, invalid report, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
}

/// Limits of a run.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// CPU deadline.
    pub timeout: Duration,
    /// Memory, log and output caps.
    pub run: RunLimits,
    /// Largest report, bytes of text.
    pub report_max_bytes: usize,
}

fn action_name(a: wit::Action) -> &'static str {
    match a {
        wit::Action::None => "none",
        wit::Action::Ignore => "ignore",
        wit::Action::RestartApp => "restart_app",
        wit::Action::ResetGpu => "reset_gpu",
        wit::Action::RebootNode => "reboot_node",
        wit::Action::ContactSupport => "contact_support",
    }
}

const MAX_FINDINGS: usize = 1024;
const MAX_METRICS: usize = 128;

/// Checks a report against the limits and the node; converts it.
pub fn validate(r: wit::Report, max_bytes: usize, gpu_count: usize) -> Result<Report, String> {
    let bytes = r.message.len()
        + r.findings
            .iter()
            .map(|f| f.message.len() + 16)
            .sum::<usize>()
        + r.metrics.iter().map(|m| m.name.len() + 8).sum::<usize>();
    if bytes > max_bytes || r.findings.len() > MAX_FINDINGS || r.metrics.len() > MAX_METRICS {
        return Err(format!(
            "report too large: {bytes} bytes, {} findings, {} metrics (limits {max_bytes} bytes, {MAX_FINDINGS} findings, {MAX_METRICS} metrics)",
            r.findings.len(),
            r.metrics.len()
        ));
    }
    for f in &r.findings {
        if let Some(g) = f.gpu.filter(|g| *g as usize >= gpu_count) {
            return Err(format!(
                "invalid report: finding names GPU {g}, the node has {gpu_count}"
            ));
        }
    }
    for m in &r.metrics {
        let ok_name = !m.name.is_empty()
            && m.name.len() <= 64
            && m.name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && !m.name.as_bytes()[0].is_ascii_digit();
        if !ok_name {
            return Err(format!(
                "invalid report: metric name {:?} (use [a-zA-Z_][a-zA-Z0-9_]*, at most 64)",
                m.name
            ));
        }
        if !m.value.is_finite() {
            return Err(format!("invalid report: metric {} is {}", m.name, m.value));
        }
    }
    Ok(Report {
        status: Status::from_wit(r.status),
        message: r.message,
        findings: r
            .findings
            .into_iter()
            .map(|f| Finding {
                gpu: f.gpu,
                status: Status::from_wit(f.status),
                message: f.message,
                action: action_name(f.action),
            })
            .collect(),
        metrics: r.metrics.into_iter().map(|m| (m.name, m.value)).collect(),
    })
}

/// The last meaningful line of a guest's stderr: a panic message, not Rust's backtrace note.
fn last_line(bytes: &[u8]) -> Option<String> {
    String::from_utf8_lossy(bytes)
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty() && !l.starts_with("note: run with `RUST_BACKTRACE"))
        .map(|l| l.chars().take(300).collect())
}

/// Why a call failed, in words an operator can act on.
fn explain(err: &wasmtime::Error, ctx: &PluginCtx, limits: &Limits) -> String {
    let chain = format!("{err:#}");
    if ctx.memory_exceeded {
        return format!(
            "memory limit exceeded ({} MiB)",
            limits.run.memory_bytes / (1024 * 1024)
        );
    }
    let full = |len: usize| len + 1024 >= limits.run.output_max_bytes;
    if chain.contains("beyond capacity of MemoryOutputPipe")
        || full(ctx.stdout.contents().len())
        || full(ctx.stderr.contents().len())
    {
        return format!(
            "output limit exceeded ({} bytes of stdout/stderr)",
            limits.run.output_max_bytes
        );
    }
    match err.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => format!(
            "deadline exceeded ({} of CPU time)",
            humantime::format_duration(limits.timeout)
        ),
        Some(Trap::StackOverflow) => "stack overflow (call stack exhausted)".into(),
        // Rust and C keep their stack in linear memory: running off its end is an
        // out-of-bounds access.
        Some(Trap::MemoryOutOfBounds) => {
            "trap: out-of-bounds memory access (a stack overflow, or a bug in the plugin)".into()
        }
        Some(Trap::UnreachableCodeReached) => match last_line(&ctx.stderr.contents()) {
            Some(line) => format!("trap: the plugin aborted: {line}"),
            None => "trap: the plugin aborted (wasm `unreachable` executed)".into(),
        },
        Some(t) => format!("trap: {t}"),
        None => format!("failed: {chain}"),
    }
}

fn log_output(plugin: &str, stream: &str, bytes: &[u8]) {
    const MAX_LINES: usize = 20;
    let text = String::from_utf8_lossy(bytes);
    let mut lines = text.lines();
    for line in lines.by_ref().take(MAX_LINES) {
        tracing::info!(plugin, stream, "{line}");
    }
    let rest = lines.count();
    if rest > 0 {
        tracing::info!(plugin, stream, "… {rest} more lines not logged");
    }
}

/// Runs a prepared plugin once in a fresh store. Never fails: failures are `unknown` reports.
pub async fn run(
    engine: &PluginEngine,
    prepared: &Prepared,
    view: HostView,
    limits: Limits,
    params: Vec<(String, String)>,
) -> Outcome {
    let plugin = view.plugin.clone();
    let gpu_count = view.snapshot.gpus.len();
    let mut store = Store::new(engine.engine(), PluginCtx::new(view, limits.run));
    store.limiter(|c| c);
    let ticks = (limits.timeout.as_nanos() / EPOCH_TICK.as_nanos()).max(1) as u64;
    store.set_epoch_deadline(ticks);
    store.epoch_deadline_trap();
    let started = Instant::now();
    let result = match prepared {
        Prepared::Check(pre) => match pre.instantiate_async(&mut store).await {
            Ok(i) => i.gpuwarden_plugin_checker().call_check(&mut store).await,
            Err(e) => Err(e),
        },
        Prepared::Diagnostic(pre) => match pre.instantiate_async(&mut store).await {
            Ok(i) => {
                i.gpuwarden_plugin_diagnostics()
                    .call_run(&mut store, &params)
                    .await
            }
            Err(e) => Err(e),
        },
    };
    let ctx = store.data();
    let (report, failure) = match result {
        Ok(r) => match validate(r, limits.report_max_bytes, gpu_count) {
            Ok(r) => (r, None),
            Err(why) => (Report::unknown(why.clone()), Some(why)),
        },
        Err(e) => {
            let why = explain(&e, ctx, &limits);
            (Report::unknown(why.clone()), Some(why))
        }
    };
    let duration = started.elapsed();
    log_output(&plugin, "stdout", &ctx.stdout.contents());
    log_output(&plugin, "stderr", &ctx.stderr.contents());
    if ctx.log_dropped > 0 {
        tracing::warn!(plugin = %plugin, dropped = ctx.log_dropped, "plugin log lines over the limit were dropped");
    }
    if let Some(f) = &failure {
        tracing::warn!(plugin = %plugin, reason = %f, "plugin run failed; status unknown");
    }
    Outcome {
        report,
        duration_seconds: duration.as_secs_f64(),
        at: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
        failure,
    }
}
