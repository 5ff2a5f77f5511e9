"""Reusable checks over samples and events (the Rust SDK's `checks`, same config keys and
defaults). The example plugins are thin wrappers around these."""

from __future__ import annotations

from typing import Iterable, Iterator, Sequence

from . import xid
from ._rust import fmt_f64
from .config import Config
from .model import Action, GpuSample, HealthEvent, Status
from .report import ReportBuilder


class clock_event:
    """NVML clock-event bits that mean the hardware is protecting itself."""

    HW_SLOWDOWN = 0x8
    SW_THERMAL_SLOWDOWN = 0x20
    HW_THERMAL_SLOWDOWN = 0x40
    HW_POWER_BRAKE_SLOWDOWN = 0x80


def recent(events: Iterable[HealthEvent], now_ms: int, window_ms: int) -> Iterator[HealthEvent]:
    """Events no older than `window_ms` before `now_ms`."""
    return (e for e in events if e.time_unix_ms + window_ms >= now_ms)


def xids(r: ReportBuilder, events: Iterable[HealthEvent], cfg: Config) -> int:
    """Each XID event becomes a finding with the table's status and action, read with the
    driver's message (`XID 79: GPU has fallen off the bus`). `ignore` lists codes to skip
    (config `ignore = "43,45"`). Returns how many XIDs were reported."""
    ignore = set(cfg.u64_list("ignore"))
    n = 0
    for e in events:
        if e.kind != "xid" or e.code is None or e.code in ignore:
            continue
        n += 1
        code = e.code & 0xFFFF_FFFF  # the Rust check's `code as u32`
        info = xid.lookup(code)
        meaning = "unknown XID" if info is None else info.meaning
        r.finding(
            e.gpu,
            xid.status_of(code, e.message),
            f"XID {code}: {meaning}",
            xid.action_of(code, e.message),
        )
    return n


_SLOWDOWNS = (
    (clock_event.HW_THERMAL_SLOWDOWN, "hardware thermal slowdown"),
    (clock_event.SW_THERMAL_SLOWDOWN, "software thermal slowdown"),
    (clock_event.HW_SLOWDOWN, "hardware slowdown"),
)


def thermal(r: ReportBuilder, samples: Sequence[GpuSample], cfg: Config) -> None:
    """Temperatures against `warning_celsius` (default 85) and `critical_celsius` (default
    92), memory temperature against `memory_max_celsius` (default 95), and thermal
    slowdowns. (No per-GPU temperature metrics: the agent exports temperatures itself.)"""
    warn = cfg.f64("warning_celsius", 85.0)
    crit = cfg.f64("critical_celsius", 92.0)
    mem_max = cfg.f64("memory_max_celsius", 95.0)
    for s in samples:
        if s.lost:
            continue
        t = s.temperature_celsius
        if t is not None:
            if t >= crit:
                r.finding(
                    s.index,
                    Status.UNHEALTHY,
                    f"temperature {fmt_f64(t)}°C at or above {fmt_f64(crit)}°C",
                    Action.CONTACT_SUPPORT,
                )
            elif t >= warn:
                r.finding(
                    s.index,
                    Status.DEGRADED,
                    f"temperature {fmt_f64(t)}°C at or above {fmt_f64(warn)}°C",
                    Action.NONE,
                )
        m = s.memory_temperature_celsius
        if m is not None and m >= mem_max:
            r.finding(
                s.index,
                Status.DEGRADED,
                f"memory temperature {fmt_f64(m)}°C at or above {fmt_f64(mem_max)}°C",
                Action.NONE,
            )
        bits = s.clock_event_reasons or 0
        for bit, name in _SLOWDOWNS:
            if bits & bit:
                r.finding(s.index, Status.DEGRADED, f"{name} active", Action.NONE)
