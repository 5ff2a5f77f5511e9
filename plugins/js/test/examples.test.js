// The example plugins themselves, loaded as the component loads them (through plugin.js),
// with the agent's host interface served by a fake.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Action, Status } from '../sdk/index.js';
import { fakeAgent, sample, xidEvent } from '../sdk/testing.js';

test('thermal example', async () => {
  await fakeAgent({ samples: Array.from({ length: 8 }, (_, i) => sample(i, { temperatureCelsius: 40 })) });
  const { checker } = await import('../examples/thermal/app.js');
  assert.deepEqual(checker.check(), { status: Status.HEALTHY, message: 'temperatures normal', findings: [], metrics: [] });
  await fakeAgent({ samples: [sample(0, { temperatureCelsius: 40 }), sample(1, { temperatureCelsius: 97 })] });
  const report = checker.check();
  assert.equal(report.status, Status.UNHEALTHY);
  assert.equal(report.message, 'GPU 1: temperature 97°C at or above 92°C');
  assert.deepEqual(report.findings, [
    { gpu: 1, status: Status.UNHEALTHY, message: 'temperature 97°C at or above 92°C', action: Action.CONTACT_SUPPORT },
  ]);
});

test('xid example', async () => {
  const now = 10_000_000n;
  await fakeAgent({ wallClockUnixMs: now });
  const { checker } = await import('../examples/xid/app.js');
  assert.deepEqual(checker.check(), {
    status: Status.HEALTHY,
    message: 'no XID in the window',
    findings: [],
    metrics: [{ name: 'xids_in_window', value: 0 }],
  });
  const events = [xidEvent(1, 79, { gpu: 0, timeUnixMs: now - 700_000n }), xidEvent(2, 48, { gpu: 3, timeUnixMs: now - 1000n })];
  await fakeAgent({ events, wallClockUnixMs: now });
  let report = checker.check();
  assert.equal(report.status, Status.UNHEALTHY);
  assert.deepEqual(report.findings.map((f) => [f.gpu, f.action]), [[3, Action.RESET_GPU]]);
  await fakeAgent({ events, wallClockUnixMs: now, config: { window_seconds: 800 } });
  report = checker.check();
  assert.deepEqual(report.findings.map((f) => [f.gpu, f.action]), [
    [0, Action.REBOOT_NODE],
    [3, Action.RESET_GPU],
  ]);
  assert.deepEqual(report.metrics, [{ name: 'xids_in_window', value: 2 }]);
});
