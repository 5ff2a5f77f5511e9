import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Action, Config, ReportBuilder, Status, checks } from '../sdk/index.js';
import { FakeHost, event, sample, xidEvent } from '../sdk/testing.js';

const { clockEvent } = checks;
const findings = (r) => r.findings.map((f) => [f.gpu, f.status, f.message, f.action]);

test('thermal: thresholds and slowdowns', () => {
  const r = new ReportBuilder();
  checks.thermal(
    r,
    [
      sample(0, { temperatureCelsius: 60 }),
      sample(1, { temperatureCelsius: 97 }),
      sample(2, { temperatureCelsius: 85, memoryTemperatureCelsius: 95.5 }),
      sample(3, { lost: true }),
      sample(4, { clockEventReasons: clockEvent.HW_THERMAL_SLOWDOWN | clockEvent.HW_SLOWDOWN | clockEvent.HW_POWER_BRAKE_SLOWDOWN }),
    ],
    new Config(),
  );
  assert.deepEqual(findings(r), [
    [1, Status.UNHEALTHY, 'temperature 97°C at or above 92°C', Action.CONTACT_SUPPORT],
    [2, Status.DEGRADED, 'temperature 85°C at or above 85°C', Action.NONE],
    [2, Status.DEGRADED, 'memory temperature 95.5°C at or above 95°C', Action.NONE],
    [4, Status.DEGRADED, 'hardware thermal slowdown active', Action.NONE],
    [4, Status.DEGRADED, 'hardware slowdown active', Action.NONE],
  ]);
});

test('thermal: config moves the thresholds', () => {
  const r = new ReportBuilder();
  const cfg = new Config([
    ['warning_celsius', '50'],
    ['critical_celsius', '59.5'],
    ['memory_max_celsius', 'bogus'],
  ]);
  checks.thermal(r, [sample(0, { temperatureCelsius: 60, memoryTemperatureCelsius: 94 })], cfg);
  assert.deepEqual(
    r.findings.map((f) => f.message),
    ['temperature 60°C at or above 59.5°C'],
  );
});

test('recent keeps the window', () => {
  const events = [event(1, 'xid', { timeUnixMs: 1000n }), event(2, 'xid', { timeUnixMs: 5000n })];
  assert.deepEqual(checks.recent(events, 6000n, 1000n).map((e) => e.seq), [2n]);
  assert.deepEqual(checks.recent(events, 6000, 5000).map((e) => e.seq), [1n, 2n]);
});

test('xids: events become findings with the table verdict', () => {
  const events = [
    xidEvent(1, 79, { gpu: 0 }),
    xidEvent(2, 43, { gpu: 1 }),
    xidEvent(3, 145, { gpu: 2, message: '145, RLW_RXPIPE Nonfatal XC0 i0 Link 13' }),
    xidEvent(4, 9999, { gpu: 3 }),
    event(5, 'thermal', { gpu: 4, code: 79n }),
    event(6, 'xid', { gpu: 5 }),
    xidEvent(7, 13, { gpu: undefined }),
    xidEvent(8, (1n << 32n) + 79n, { gpu: 6 }),
  ];
  const r = new ReportBuilder();
  assert.equal(checks.xids(r, events, new Config([['ignore', '43, x']])), 5);
  const got = findings(r);
  assert.deepEqual(got[0].slice(0, 2), [0, Status.UNHEALTHY]);
  assert.ok(got[0][2].startsWith('XID 79: '));
  assert.equal(got[0][3], Action.REBOOT_NODE);
  assert.deepEqual([got[1][0], got[1][1], got[1][3]], [2, Status.DEGRADED, Action.IGNORE]);
  assert.deepEqual(got[2], [3, Status.DEGRADED, 'XID 9999: unknown XID', Action.CONTACT_SUPPORT]);
  assert.deepEqual([got[3][0], got[3][1], got[3][3]], [undefined, Status.DEGRADED, Action.RESTART_APP]);
  // A code past u32 is read as the Rust check's `code as u32` reads it.
  assert.deepEqual(got[4].slice(0, 2), [6, Status.UNHEALTHY]);
  assert.ok(got[4][2].startsWith('XID 79: '));
});

test('host helpers', () => {
  const host = new FakeHost({
    samples: [sample(0, { nvlinks: ['link'] })],
    events: [event(3, 'xid'), event(1, 'ecc'), event(2, 'pcie')],
    previousCursor: 1,
    config: [
      ['a', '1'],
      ['a', '2'],
    ],
    wallClockUnixMs: 7,
    monotonicNowNs: 9,
  });
  assert.deepEqual(host.samples()[0].nvlinks, []);
  assert.deepEqual(host.samples(true)[0].nvlinks, ['link']);
  assert.deepEqual(host.newEvents().map((e) => e.seq), [2n, 3n]);
  assert.deepEqual(host.eventsAfter(0, 2).map((e) => e.seq), [1n, 2n]);
  assert.equal(host.config().u64('a'), 2n);
  assert.deepEqual([host.wallClockUnixMs(), host.monotonicNowNs()], [7n, 9n]);
  host.warn('careful');
  assert.throws(() => host.log('loud', 'x'), TypeError);
  assert.deepEqual(host.logs, [['warn', 'careful']]);
});
