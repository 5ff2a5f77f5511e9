//! One run of a plugin: a fresh store, the deadline, the memory cap, the report checks, and
//! every failure turned into an `unknown` report that says why.
//!
//! The deadline is wall-clock time around the whole run (instantiation and call): when it
//! passes, the run's future is dropped with its store, whatever the plugin is doing,
//! running WebAssembly or waiting in a host call (a WASI sleep, a poll). A guest that keeps
//! running gives its thread back every [`EPOCH_TICK`](super::engine::EPOCH_TICK), so it delays no other run, and traps
//! at the deadline.
//!
//! What wasmtime copies out of a plugin in one call (its report, or the arguments of one
//! host call) is bounded by the store's hostcall fuel, set to what the report cap needs,
//! so a report that names one huge string many times is refused before it is copied.

use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use wasmtime::{Store, Trap, UpdateDeadline};

use super::bindings::types as wit;
use super::engine::{PluginEngine, Prepared};
use super::host::{HostView, PluginCtx, RunLimits};
use super::one_line;

mod report;

pub use report::{validate, Finding, Report, Status};
use report::{MAX_FINDINGS, MAX_METRICS};

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
    /// Wall-clock deadline of the whole run (instantiation and call).
    pub timeout: Duration,
    /// Memory, log and output caps.
    pub run: RunLimits,
    /// Largest report, bytes of text.
    pub report_max_bytes: usize,
}

/// Bytes wasmtime may copy out of a plugin in one call: a report at its caps (text, and the
/// host's records of its findings and metrics), or the arguments of one host call (a log
/// line, an output write). Copying more fails the run before the copy is made.
pub fn copy_budget(limits: &Limits) -> usize {
    let report = limits.report_max_bytes
        + MAX_FINDINGS * std::mem::size_of::<wit::Finding>()
        + MAX_METRICS * std::mem::size_of::<wit::Metric>()
        + std::mem::size_of::<wit::Report>();
    // stdout/stderr writes are at most the pipe's capacity (WASI writes 4 KiB at a time).
    report.max(limits.run.output_max_bytes) + 4096
}

/// The last meaningful line of a guest's stderr: a panic message, not Rust's backtrace note.
fn last_line(bytes: &[u8]) -> Option<String> {
    String::from_utf8_lossy(bytes)
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty() && !l.starts_with("note: run with `RUST_BACKTRACE"))
        .map(|l| l.chars().take(300).collect())
}

/// The failure of a run that reached its deadline.
fn deadline_exceeded(limits: &Limits) -> String {
    format!(
        "deadline exceeded ({} wall-clock; the run was stopped)",
        humantime::format_duration(limits.timeout)
    )
}

/// Why a call failed, in words an operator can act on (one line).
fn explain(err: &wasmtime::Error, ctx: &PluginCtx, limits: &Limits) -> String {
    one_line(&explain_lines(err, ctx, limits))
}

fn explain_lines(err: &wasmtime::Error, ctx: &PluginCtx, limits: &Limits) -> String {
    let chain = format!("{err:#}");
    if chain.contains("fuel allocated for hostcalls has been exhausted") {
        // A host call's arguments fail with the guest's frames on the stack (a backtrace);
        // the report fails after the guest returned.
        if err.downcast_ref::<wasmtime::WasmBacktrace>().is_some() {
            return format!(
                "host call too large: the plugin passed more than {} bytes to the agent in one call \
                 (a log line or an output write; refused before copying)",
                copy_budget(limits)
            );
        }
        return format!(
            "report too large: the plugin passed more than {} bytes to the agent in one call \
             (refused before copying; limits {} bytes of text, {MAX_FINDINGS} findings, {MAX_METRICS} metrics)",
            copy_budget(limits),
            limits.report_max_bytes
        );
    }
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
        Some(Trap::Interrupt) => deadline_exceeded(limits),
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
    let _ticking = engine.running();
    let plugin = view.plugin.clone();
    let gpu_count = view.snapshot.gpus.len();
    let mut store = Store::new(engine.engine(), PluginCtx::new(view, limits.run));
    store.limiter(|c| c);
    store.set_hostcall_fuel(copy_budget(&limits));
    let started = Instant::now();
    let deadline = started + limits.timeout;
    // Every tick a running guest yields to the runtime; past the deadline it traps (the
    // timeout below usually drops it first).
    store.epoch_deadline_callback(move |_| {
        Ok(if Instant::now() >= deadline {
            UpdateDeadline::Interrupt
        } else {
            UpdateDeadline::Yield(1)
        })
    });
    store.set_epoch_deadline(1);
    let call = async {
        let report: wasmtime::Result<wit::Report> = match prepared {
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
        report
    };
    // Dropping the call on expiry drops the guest wherever it is; the store goes with it.
    let result = tokio::time::timeout_at(deadline.into(), call).await;
    let ctx = store.data();
    let (report, failure) = match result {
        Ok(Ok(r)) => match validate(r, limits.report_max_bytes, gpu_count) {
            Ok(r) => (r, None),
            Err(why) => (Report::unknown(why.clone()), Some(why)),
        },
        Ok(Err(e)) => {
            let why = explain(&e, ctx, &limits);
            (Report::unknown(why.clone()), Some(why))
        }
        Err(_elapsed) => {
            let why = deadline_exceeded(&limits);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_copy_budget_follows_the_report_cap() {
        let limits = |report_max_bytes, output_max_bytes| Limits {
            timeout: Duration::from_secs(1),
            run: RunLimits {
                memory_bytes: 64 << 20,
                log_max_lines: 100,
                output_max_bytes,
            },
            report_max_bytes,
        };
        let small = copy_budget(&limits(64 << 10, 64 << 10));
        // A report at its caps fits; wasmtime's default (128 MiB) is far above.
        assert!(small > 64 << 10 && small < 1 << 20, "{small}");
        assert_eq!(copy_budget(&limits(128 << 10, 64 << 10)) - small, 64 << 10);
        assert!(copy_budget(&limits(1024, 4 << 20)) > 4 << 20);
    }
}
