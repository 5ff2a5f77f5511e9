//! Events derived from consecutive samples of one GPU: a threshold crossed, a link lost,
//! a slowdown started. Only rising edges raise events, so a condition that persists is
//! reported once, and again only after it has cleared.

use gpuwarden_wire::{Action, EventKind, Severity};

use crate::backend::{clock_event, GpuInfo, GpuSample};
use crate::events::NewEvent;

/// Thresholds that turn readings into events.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// Thermal warning, °C.
    pub temperature_warning: f64,
    /// Thermal critical, °C.
    pub temperature_critical: f64,
}

/// Utilization above which a PCIe link below its maximum generation counts as degraded
/// (idle GPUs lower their link generation to save power; that is not a fault).
const PCIE_GEN_BUSY: f64 = 0.2;

fn event(
    info: &GpuInfo,
    kind: EventKind,
    code: Option<u64>,
    severity: Severity,
    action: Option<Action>,
    message: String,
) -> NewEvent {
    NewEvent {
        gpu: Some(info.index),
        uuid: Some(info.uuid.clone()),
        kind,
        code,
        message,
        severity,
        action,
        source: "collector".into(),
    }
}

fn thermal_level(t: Option<f64>, th: &Thresholds) -> u8 {
    match t {
        Some(t) if t >= th.temperature_critical => 2,
        Some(t) if t >= th.temperature_warning => 1,
        _ => 0,
    }
}

fn over_power(info: &GpuInfo, s: &GpuSample) -> bool {
    matches!((s.power_watts, info.power_limit_watts), (Some(p), Some(l)) if p > l)
}

fn pcie_degraded(info: &GpuInfo, s: &GpuSample) -> bool {
    let narrow = matches!((s.pcie_width, info.pcie_max_width), (Some(w), Some(m)) if w < m);
    let slow = matches!((s.pcie_generation, info.pcie_max_generation), (Some(g), Some(m)) if g < m)
        && s.utilization.is_some_and(|u| u >= PCIE_GEN_BUSY);
    narrow || slow
}

/// The events that `cur` raises given the previous sample `prev` (None: first sample).
pub fn derive(
    info: &GpuInfo,
    prev: Option<&GpuSample>,
    cur: &GpuSample,
    th: &Thresholds,
) -> Vec<NewEvent> {
    let mut out = Vec::new();
    let base = GpuSample::default();
    let prev = prev.unwrap_or(&base);

    let (lp, lc) = (
        thermal_level(prev.temperature_celsius, th),
        thermal_level(cur.temperature_celsius, th),
    );
    if lc > lp {
        let t = cur.temperature_celsius.unwrap_or_default();
        let (sev, limit, action) = if lc == 2 {
            (
                Severity::Fatal,
                th.temperature_critical,
                Some(Action::ContactSupport),
            )
        } else {
            (Severity::Warning, th.temperature_warning, None)
        };
        out.push(event(
            info,
            EventKind::Thermal,
            None,
            sev,
            action,
            format!("GPU temperature {t}°C reached the {limit}°C threshold"),
        ));
    }

    if over_power(info, cur) && !over_power(info, prev) {
        out.push(event(
            info,
            EventKind::Power,
            None,
            Severity::Warning,
            None,
            format!(
                "power draw {:.0} W above the {:.0} W limit",
                cur.power_watts.unwrap_or_default(),
                info.power_limit_watts.unwrap_or_default()
            ),
        ));
    }

    if pcie_degraded(info, cur) && !pcie_degraded(info, prev) {
        out.push(event(
            info,
            EventKind::Pcie,
            None,
            Severity::Warning,
            Some(Action::ResetGpu),
            format!(
                "PCIe link at gen {} x{}, below its maximum gen {} x{}",
                cur.pcie_generation.unwrap_or_default(),
                cur.pcie_width.unwrap_or_default(),
                info.pcie_max_generation.unwrap_or_default(),
                info.pcie_max_width.unwrap_or_default()
            ),
        ));
    }

    for link in cur.nvlinks.iter().filter(|l| !l.up) {
        let was_up = prev
            .nvlinks
            .iter()
            .find(|p| p.link == link.link)
            .is_none_or(|p| p.up);
        if was_up {
            out.push(event(
                info,
                EventKind::Nvlink,
                Some(u64::from(link.link)),
                Severity::Fatal,
                Some(Action::ResetGpu),
                format!("NVLink {} is down", link.link),
            ));
        }
    }

    let rising = cur.clock_event_reasons.unwrap_or(0) & !prev.clock_event_reasons.unwrap_or(0);
    for (bit, name) in clock_event::REASONS {
        if rising & bit & clock_event::HARDWARE != 0 {
            out.push(event(
                info,
                EventKind::Throttle,
                Some(*bit),
                Severity::Warning,
                None,
                format!("clock slowdown: {name}"),
            ));
        }
    }

    let (ra_prev, ra) = (
        prev.recovery_action.unwrap_or(0),
        cur.recovery_action.unwrap_or(0),
    );
    if ra != 0 && ra != ra_prev {
        let (sev, action, what) = match ra {
            1 => (Severity::Fatal, Action::ResetGpu, "GPU reset"),
            2 => (Severity::Fatal, Action::RebootNode, "node reboot"),
            3 => (Severity::Warning, Action::ResetGpu, "drain P2P"),
            _ => (
                Severity::Fatal,
                Action::ResetGpu,
                "drain P2P and reset the GPU",
            ),
        };
        out.push(event(
            info,
            EventKind::RecoveryAction,
            Some(u64::from(ra)),
            sev,
            Some(action),
            format!("NVML recovery action requires {what}"),
        ));
    }

    let rr = |s: &GpuSample| {
        s.remapped_rows
            .map_or((false, false), |r| (r.pending, r.failure))
    };
    let ((pp, pf), (cp, cf)) = (rr(prev), rr(cur));
    if cp && !pp {
        out.push(event(
            info,
            EventKind::RowRemap,
            Some(1),
            Severity::Warning,
            Some(Action::ResetGpu),
            "row remap pending: a GPU reset activates it".into(),
        ));
    }
    if cf && !pf {
        out.push(event(
            info,
            EventKind::RowRemap,
            Some(2),
            Severity::Fatal,
            Some(Action::ContactSupport),
            "row remapping failed: no spare rows left".into(),
        ));
    }
    out
}

/// The event raised when a GPU stops answering.
pub fn gpu_lost(info: &GpuInfo) -> NewEvent {
    event(
        info,
        EventKind::GpuLost,
        None,
        Severity::Fatal,
        Some(Action::RebootNode),
        format!(
            "GPU {} ({}) cannot be read: it fell off the bus",
            info.index, info.pci_bus_id
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::fake::{FakeBackend, Fault, DEFAULT_MODEL};
    use crate::backend::GpuBackend;
    use std::sync::Arc;

    const TH: Thresholds = Thresholds {
        temperature_warning: 85.0,
        temperature_critical: 92.0,
    };

    fn kinds(ev: &[NewEvent]) -> Vec<(EventKind, Severity)> {
        ev.iter().map(|e| (e.kind, e.severity)).collect()
    }

    fn setup() -> (Arc<FakeBackend>, GpuInfo, GpuSample) {
        let f = Arc::new(FakeBackend::new(1, DEFAULT_MODEL, 3));
        let info = f.inventory().unwrap().gpus[0].clone();
        let s = f.sample(0).unwrap();
        (f, info, s)
    }

    #[test]
    fn healthy_readings_raise_nothing() {
        let (f, info, first) = setup();
        assert!(derive(&info, None, &first, &TH).is_empty());
        let next = f.sample(0).unwrap();
        assert!(derive(&info, Some(&first), &next, &TH).is_empty());
    }

    #[test]
    fn each_fault_raises_its_event_once() {
        let cases: Vec<(Fault, EventKind, Severity)> = vec![
            (
                Fault::Temperature(88.0),
                EventKind::Thermal,
                Severity::Warning,
            ),
            (
                Fault::Temperature(97.0),
                EventKind::Thermal,
                Severity::Fatal,
            ),
            (Fault::Power(900.0), EventKind::Power, Severity::Warning),
            (Fault::PcieDegraded, EventKind::Pcie, Severity::Warning),
            (Fault::NvlinkDown(0), EventKind::Nvlink, Severity::Fatal),
            (
                Fault::Throttle(clock_event::HW_SLOWDOWN),
                EventKind::Throttle,
                Severity::Warning,
            ),
            (
                Fault::RecoveryAction(2),
                EventKind::RecoveryAction,
                Severity::Fatal,
            ),
            (
                Fault::RowRemapPending,
                EventKind::RowRemap,
                Severity::Warning,
            ),
            (Fault::RowRemapFailure, EventKind::RowRemap, Severity::Fatal),
        ];
        for (fault, kind, sev) in cases {
            let (f, info, before) = setup();
            f.inject(0, fault.clone()).unwrap();
            let during = f.sample(0).unwrap();
            assert_eq!(
                kinds(&derive(&info, Some(&before), &during, &TH)),
                vec![(kind, sev)],
                "{fault:?}"
            );
            let still = f.sample(0).unwrap();
            assert!(
                derive(&info, Some(&during), &still, &TH).is_empty(),
                "{fault:?} reported twice"
            );
            f.clear(None).unwrap();
            let after = f.sample(0).unwrap();
            assert!(
                derive(&info, Some(&still), &after, &TH).is_empty(),
                "{fault:?} clearing raised an event"
            );
        }
    }

    #[test]
    fn a_software_power_cap_is_not_a_slowdown_event() {
        let (f, info, before) = setup();
        f.inject(0, Fault::Throttle(clock_event::SW_POWER_CAP))
            .unwrap();
        assert!(derive(&info, Some(&before), &f.sample(0).unwrap(), &TH).is_empty());
    }

    #[test]
    fn an_idle_gpu_at_a_lower_pcie_generation_is_not_degraded() {
        let (_, info, mut s) = setup();
        s.pcie_generation = Some(1);
        s.utilization = Some(0.0);
        assert!(derive(&info, None, &s, &TH).is_empty());
        s.utilization = Some(0.9);
        assert_eq!(
            kinds(&derive(&info, None, &s, &TH)),
            vec![(EventKind::Pcie, Severity::Warning)]
        );
    }
}
