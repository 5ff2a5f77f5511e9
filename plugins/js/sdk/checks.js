// Reusable checks over samples and events (the Rust SDK's `checks`, same config keys and
// defaults). The example plugins are thin wrappers around these.

import { Action, Status } from './model.js';
import { fmtF64 } from './rust.js';
import * as xid from './xid.js';

/** NVML clock-event bits (BigInts, as `clockEventReasons` is) that mean the hardware is protecting itself. */
export const clockEvent = Object.freeze({
  HW_SLOWDOWN: 0x8n,
  SW_THERMAL_SLOWDOWN: 0x20n,
  HW_THERMAL_SLOWDOWN: 0x40n,
  HW_POWER_BRAKE_SLOWDOWN: 0x80n,
});

const present = (v) => v !== undefined && v !== null;

/** Events no older than `windowMs` before `nowMs` (numbers or BigInts). */
export function recent(events, nowMs, windowMs) {
  const now = BigInt(nowMs);
  const window = BigInt(windowMs);
  return [...events].filter((e) => BigInt(e.timeUnixMs) + window >= now);
}

/**
 * Each XID event becomes a finding with the table's status and action, read with the driver's
 * message (`XID 79: GPU has fallen off the bus`). `ignore` lists codes to skip (config
 * `ignore = "43,45"`). Returns how many XIDs were reported.
 */
export function xids(r, events, cfg) {
  const ignore = new Set(cfg.u64List('ignore'));
  let n = 0;
  for (const e of events) {
    if (e.kind !== 'xid' || !present(e.code)) continue;
    const code64 = BigInt(e.code);
    if (ignore.has(code64)) continue;
    n += 1;
    const code = Number(BigInt.asUintN(32, code64)); // the Rust check's `code as u32`
    const info = xid.lookup(code);
    const meaning = info === undefined ? 'unknown XID' : info.meaning;
    r.finding(e.gpu, xid.statusOf(code, e.message), `XID ${code}: ${meaning}`, xid.actionOf(code, e.message));
  }
  return n;
}

const SLOWDOWNS = [
  [clockEvent.HW_THERMAL_SLOWDOWN, 'hardware thermal slowdown'],
  [clockEvent.SW_THERMAL_SLOWDOWN, 'software thermal slowdown'],
  [clockEvent.HW_SLOWDOWN, 'hardware slowdown'],
];

/**
 * Temperatures against `warning_celsius` (default 85) and `critical_celsius` (default 92),
 * memory temperature against `memory_max_celsius` (default 95), and thermal slowdowns. (No
 * per-GPU temperature metrics: the agent exports temperatures itself.)
 */
export function thermal(r, samples, cfg) {
  const warn = cfg.f64('warning_celsius', 85);
  const crit = cfg.f64('critical_celsius', 92);
  const memMax = cfg.f64('memory_max_celsius', 95);
  for (const s of samples) {
    if (s.lost) continue;
    const t = s.temperatureCelsius;
    if (present(t)) {
      if (t >= crit) {
        r.finding(s.index, Status.UNHEALTHY, `temperature ${fmtF64(t)}°C at or above ${fmtF64(crit)}°C`, Action.CONTACT_SUPPORT);
      } else if (t >= warn) {
        r.finding(s.index, Status.DEGRADED, `temperature ${fmtF64(t)}°C at or above ${fmtF64(warn)}°C`, Action.NONE);
      }
    }
    const m = s.memoryTemperatureCelsius;
    if (present(m) && m >= memMax) {
      r.finding(s.index, Status.DEGRADED, `memory temperature ${fmtF64(m)}°C at or above ${fmtF64(memMax)}°C`, Action.NONE);
    }
    const bits = present(s.clockEventReasons) ? BigInt(s.clockEventReasons) : 0n;
    for (const [bit, name] of SLOWDOWNS) {
      if ((bits & bit) !== 0n) r.finding(s.index, Status.DEGRADED, `${name} active`, Action.NONE);
    }
  }
}
