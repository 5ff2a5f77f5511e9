//! The agent's own families: node info, build info, collector runs (node_exporter style),
//! events by kind, kernel-log counters, process memory and CPU.

use gpuwarden_wire::metric as m;

use super::input::RenderInput;
use crate::text::{labels, Kind, Text};

/// When the process started (the first render, during start-up), in seconds with
/// millisecond precision: the control plane tells a restarted agent by this value changing
/// (with its counters back at the same values), so two runs in one second must differ.
static START_TIME: std::sync::LazyLock<f64> = std::sync::LazyLock::new(|| {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as f64 / 1000.0)
        .unwrap_or(0.0)
});

/// Writes the node info and the agent's own families.
pub(super) fn render(t: &mut Text, input: &RenderInput<'_>) {
    let inv = input.inventory;
    t.family(m::NODE_INFO, "Node facts as labels; value 1.", Kind::Gauge);
    let info = labels(&[
        ("node", input.node_id),
        ("driver_version", &inv.driver_version),
        ("cuda_version", &inv.cuda_version),
        ("agent_version", env!("CARGO_PKG_VERSION")),
        ("backend", input.backend),
    ]);
    t.sample(m::NODE_INFO, &info, "", 1.0);
    t.family("gpuwarden_node_gpus", "GPUs found at start.", Kind::Gauge);
    t.sample("gpuwarden_node_gpus", "", "", inv.gpus.len() as f64);
    t.family(
        "gpuwarden_agent_build_info",
        "Agent build; value 1.",
        Kind::Gauge,
    );
    t.sample(
        "gpuwarden_agent_build_info",
        &labels(&[("version", env!("CARGO_PKG_VERSION"))]),
        "",
        1.0,
    );
    t.family(
        m::AGENT_START_TIME,
        "Unix time the agent started; it changes when the agent restarts.",
        Kind::Gauge,
    );
    t.sample(m::AGENT_START_TIME, "", "", *START_TIME);
    t.family(
        "gpuwarden_agent_collector_duration_seconds",
        "How long the collector's last run took.",
        Kind::Gauge,
    );
    for (name, s) in input.collectors {
        t.sample(
            "gpuwarden_agent_collector_duration_seconds",
            &labels(&[("collector", name)]),
            "",
            s.duration_seconds,
        );
    }
    t.family(
        "gpuwarden_agent_collector_success",
        "1 when the collector's last run succeeded.",
        Kind::Gauge,
    );
    for (name, s) in input.collectors {
        t.sample(
            "gpuwarden_agent_collector_success",
            &labels(&[("collector", name)]),
            "",
            if s.success { 1.0 } else { 0.0 },
        );
    }
    t.family(
        "gpuwarden_agent_collector_errors_total",
        "Failed collector runs.",
        Kind::Counter,
    );
    for (name, s) in input.collectors {
        t.sample(
            "gpuwarden_agent_collector_errors_total",
            &labels(&[("collector", name)]),
            "",
            s.errors_total as f64,
        );
    }
    t.family(
        "gpuwarden_agent_last_collection_timestamp_seconds",
        "Unix time of the last collection.",
        Kind::Gauge,
    );
    t.sample(
        "gpuwarden_agent_last_collection_timestamp_seconds",
        "",
        "",
        input.timestamp_seconds,
    );
    t.family(
        m::AGENT_EVENTS,
        "Health events recorded, by kind and severity.",
        Kind::Counter,
    );
    for ((kind, sev), n) in input.event_counts {
        t.sample(
            m::AGENT_EVENTS,
            &labels(&[("kind", kind), ("severity", sev)]),
            "",
            *n as f64,
        );
    }
    t.family(
        "gpuwarden_agent_gpu_events_up",
        "1 while the GPU backend's event stream (NVML critical XID and ECC events) is read.",
        Kind::Gauge,
    );
    t.sample(
        "gpuwarden_agent_gpu_events_up",
        "",
        "",
        if input.gpu_events_up { 1.0 } else { 0.0 },
    );
    let k = input.kmsg;
    t.family(
        "gpuwarden_agent_kmsg_up",
        "1 while the kernel log is read for XIDs.",
        Kind::Gauge,
    );
    t.sample(
        "gpuwarden_agent_kmsg_up",
        "",
        "",
        if k.up { 1.0 } else { 0.0 },
    );
    t.family(
        "gpuwarden_agent_kmsg_xid_lines_total",
        "XID lines read from the kernel log.",
        Kind::Counter,
    );
    t.sample(
        "gpuwarden_agent_kmsg_xid_lines_total",
        "",
        "",
        k.xid_lines as f64,
    );
    t.family(
        "gpuwarden_agent_kmsg_malformed_lines_total",
        "Kernel-log lines that looked like XIDs but could not be parsed (skipped).",
        Kind::Counter,
    );
    t.sample(
        "gpuwarden_agent_kmsg_malformed_lines_total",
        "",
        "",
        k.malformed_lines as f64,
    );
    t.family(
        "gpuwarden_agent_kmsg_unmatched_lines_total",
        "Kernel-log XIDs whose PCI address matched no GPU.",
        Kind::Counter,
    );
    t.sample(
        "gpuwarden_agent_kmsg_unmatched_lines_total",
        "",
        "",
        k.unmatched_lines as f64,
    );
    if let Some((rss, cpu)) = input.process {
        t.family(
            "process_resident_memory_bytes",
            "Resident memory of the agent.",
            Kind::Gauge,
        );
        t.sample("process_resident_memory_bytes", "", "", rss as f64);
        t.family(
            "process_cpu_seconds_total",
            "CPU time used by the agent.",
            Kind::Counter,
        );
        t.sample("process_cpu_seconds_total", "", "", cpu);
    }
}
