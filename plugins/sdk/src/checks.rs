//! Reusable checks over samples and events. The example plugins are thin wrappers around
//! these, and the `gpu-sanity` diagnostic runs several of them at once.

use crate::{xid, Action, Config, GpuSample, HealthEvent, ReportBuilder, Status};

/// NVML clock-event bits that mean the hardware is protecting itself.
pub mod clock_event {
    /// Hardware slowdown.
    pub const HW_SLOWDOWN: u64 = 0x8;
    /// Software thermal slowdown.
    pub const SW_THERMAL_SLOWDOWN: u64 = 0x20;
    /// Hardware thermal slowdown.
    pub const HW_THERMAL_SLOWDOWN: u64 = 0x40;
    /// Hardware power-brake slowdown.
    pub const HW_POWER_BRAKE_SLOWDOWN: u64 = 0x80;
}

fn previous(prev: &[GpuSample], index: u32) -> Option<&GpuSample> {
    prev.iter().find(|p| p.index == index && !p.lost)
}

/// Events no older than `window_ms` before `now_ms`.
pub fn recent(
    events: &[HealthEvent],
    now_ms: u64,
    window_ms: u64,
) -> impl Iterator<Item = &HealthEvent> {
    events
        .iter()
        .filter(move |e| e.time_unix_ms + window_ms >= now_ms)
}

/// XIDs: each XID event in the window becomes a finding with the table's status and action.
/// `ignore` lists codes to skip (config `ignore = "43,45"`).
pub fn xids<'a>(
    r: &mut ReportBuilder,
    events: impl Iterator<Item = &'a HealthEvent>,
    cfg: &Config,
) -> usize {
    let ignore: Vec<u64> = cfg
        .get("ignore")
        .map(|s| s.split(',').filter_map(|c| c.trim().parse().ok()).collect())
        .unwrap_or_default();
    let mut n = 0;
    for e in events.filter(|e| e.kind == "xid") {
        let Some(code) = e.code else { continue };
        if ignore.contains(&code) {
            continue;
        }
        n += 1;
        let code = code as u32;
        let name = xid::lookup(code).map_or("unknown XID", |x| x.meaning);
        r.finding(
            e.gpu,
            xid::status_of(code, Some(&e.message)),
            format!("XID {code}: {name}"),
            xid::action_of(code, Some(&e.message)),
        );
    }
    n
}

/// Temperatures against `warning_celsius` (default 85) and `critical_celsius` (default 92),
/// memory temperature against `memory_max_celsius` (default 95), and thermal slowdowns.
/// (No per-GPU temperature metrics: the agent exports temperatures itself.)
pub fn thermal(r: &mut ReportBuilder, samples: &[GpuSample], cfg: &Config) {
    let warn = cfg.f64("warning_celsius").unwrap_or(85.0);
    let crit = cfg.f64("critical_celsius").unwrap_or(92.0);
    let mem_max = cfg.f64("memory_max_celsius").unwrap_or(95.0);
    for s in samples.iter().filter(|s| !s.lost) {
        if let Some(t) = s.temperature_celsius {
            if t >= crit {
                r.finding(
                    Some(s.index),
                    Status::Unhealthy,
                    format!("temperature {t}°C at or above {crit}°C"),
                    Action::ContactSupport,
                );
            } else if t >= warn {
                r.finding(
                    Some(s.index),
                    Status::Degraded,
                    format!("temperature {t}°C at or above {warn}°C"),
                    Action::None,
                );
            }
        }
        if let Some(t) = s.memory_temperature_celsius.filter(|t| *t >= mem_max) {
            r.finding(
                Some(s.index),
                Status::Degraded,
                format!("memory temperature {t}°C at or above {mem_max}°C"),
                Action::None,
            );
        }
        let bits = s.clock_event_reasons.unwrap_or(0);
        for (bit, name) in [
            (
                clock_event::HW_THERMAL_SLOWDOWN,
                "hardware thermal slowdown",
            ),
            (
                clock_event::SW_THERMAL_SLOWDOWN,
                "software thermal slowdown",
            ),
            (clock_event::HW_SLOWDOWN, "hardware slowdown"),
        ] {
            if bits & bit != 0 {
                r.finding(
                    Some(s.index),
                    Status::Degraded,
                    format!("{name} active"),
                    Action::None,
                );
            }
        }
    }
}

/// ECC: uncorrected errors since driver load → unhealthy; at least `sbe_threshold`
/// (default 10) corrected-error events in the window → degraded; a pending row remap →
/// degraded (reset to apply); a failed remap → unhealthy.
pub fn ecc<'a>(
    r: &mut ReportBuilder,
    samples: &[GpuSample],
    window: impl Iterator<Item = &'a HealthEvent>,
    cfg: &Config,
) {
    let sbe_threshold = cfg.u64("sbe_threshold").unwrap_or(10);
    let mut sbe: Vec<(Option<u32>, u64)> = Vec::new();
    for e in window.filter(|e| e.kind == "ecc" && e.code == Some(1)) {
        match sbe.iter_mut().find(|(g, _)| *g == e.gpu) {
            Some((_, n)) => *n += 1,
            None => sbe.push((e.gpu, 1)),
        }
    }
    for s in samples.iter().filter(|s| !s.lost) {
        if let Some(n) = s.ecc.uncorrected_volatile.filter(|n| *n > 0) {
            r.finding(
                Some(s.index),
                Status::Unhealthy,
                format!("{n} uncorrectable ECC error(s) since the driver loaded"),
                Action::ResetGpu,
            );
        }
        if let Some((_, n)) = sbe
            .iter()
            .find(|(g, _)| *g == Some(s.index))
            .filter(|(_, n)| *n >= sbe_threshold)
        {
            r.finding(
                Some(s.index),
                Status::Degraded,
                format!("{n} corrected ECC error events recently (threshold {sbe_threshold})"),
                Action::None,
            );
        }
        if let Some(rr) = s.remapped_rows {
            if rr.failure {
                r.finding(
                    Some(s.index),
                    Status::Unhealthy,
                    "row remapping failed",
                    Action::ContactSupport,
                );
            } else if rr.pending {
                r.finding(
                    Some(s.index),
                    Status::Degraded,
                    "row remap pending: reset the GPU to apply it",
                    Action::ResetGpu,
                );
            }
        }
    }
}

/// PCIe: width below maximum, or generation below maximum while busy (utilization at least
/// `busy_utilization`, default 0.2) → degraded; replay counter growing by at least
/// `replay_growth` (default 1) since the previous run → degraded.
pub fn pcie(
    r: &mut ReportBuilder,
    info: &[crate::GpuInfo],
    samples: &[GpuSample],
    prev: &[GpuSample],
    cfg: &Config,
) {
    let busy = cfg.f64("busy_utilization").unwrap_or(0.2);
    let growth = cfg.u64("replay_growth").unwrap_or(1);
    for s in samples.iter().filter(|s| !s.lost) {
        let Some(i) = info.iter().find(|i| i.index == s.index) else {
            continue;
        };
        if let (Some(w), Some(max)) = (s.pcie_width, i.pcie_max_width) {
            if w < max {
                r.finding(
                    Some(s.index),
                    Status::Degraded,
                    format!("PCIe link x{w}, below its maximum x{max}"),
                    Action::ResetGpu,
                );
            }
        }
        if let (Some(g), Some(max)) = (s.pcie_generation, i.pcie_max_generation) {
            if g < max && s.utilization.unwrap_or(0.0) >= busy {
                r.finding(
                    Some(s.index),
                    Status::Degraded,
                    format!("PCIe gen {g} while busy, below its maximum gen {max}"),
                    Action::ResetGpu,
                );
            }
        }
        if let (Some(now), Some(before)) = (
            s.pcie_replays,
            previous(prev, s.index).and_then(|p| p.pcie_replays),
        ) {
            if now >= before + growth {
                r.finding(
                    Some(s.index),
                    Status::Degraded,
                    format!("PCIe replays grew by {}", now - before),
                    Action::None,
                );
            }
        }
    }
}

/// NVLink: a link down → unhealthy; error counters growing by at least `error_growth`
/// (default 1) since the previous run → degraded.
pub fn nvlink(r: &mut ReportBuilder, samples: &[GpuSample], prev: &[GpuSample], cfg: &Config) {
    let growth = cfg.u64("error_growth").unwrap_or(1);
    for s in samples.iter().filter(|s| !s.lost) {
        let down: Vec<String> = s
            .nvlinks
            .iter()
            .filter(|l| !l.up)
            .map(|l| l.link.to_string())
            .collect();
        if !down.is_empty() {
            r.finding(
                Some(s.index),
                Status::Unhealthy,
                format!("NVLink(s) down: {}", down.join(", ")),
                Action::ResetGpu,
            );
        }
        let Some(p) = previous(prev, s.index) else {
            continue;
        };
        for l in &s.nvlinks {
            let Some(pl) = p.nvlinks.iter().find(|x| x.link == l.link) else {
                continue;
            };
            let total = |x: &crate::Nvlink| {
                [
                    x.replay_errors,
                    x.recovery_errors,
                    x.crc_flit_errors,
                    x.crc_data_errors,
                ]
                .iter()
                .flatten()
                .sum::<u64>()
            };
            let grew = total(l).saturating_sub(total(pl));
            if grew >= growth {
                r.finding(
                    Some(s.index),
                    Status::Degraded,
                    format!("NVLink {} errors grew by {grew}", l.link),
                    Action::None,
                );
            }
        }
    }
}

/// GPUs that cannot be read (fell off the bus) → unhealthy, reboot.
pub fn lost(r: &mut ReportBuilder, samples: &[GpuSample]) {
    for s in samples.iter().filter(|s| s.lost) {
        r.finding(
            Some(s.index),
            Status::Unhealthy,
            "GPU cannot be read: fell off the bus",
            Action::RebootNode,
        );
    }
}
