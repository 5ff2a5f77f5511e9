import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Action, ReportBuilder, Status, statusRank, worstStatus } from '../sdk/index.js';

test('the worst status wins and the message lists what is wrong', () => {
  const r = new ReportBuilder();
  r.finding(0, Status.HEALTHY, 'fine', Action.NONE);
  r.finding(1, Status.DEGRADED, 'warm', Action.NONE).finding(null, Status.UNKNOWN, 'node?', Action.CONTACT_SUPPORT);
  r.metric('n', 3n);
  const report = r.finish('all good');
  assert.equal(report.status, Status.DEGRADED);
  assert.equal(report.message, 'GPU 1: warm; node?');
  assert.equal(report.findings.length, 3);
  assert.equal(report.findings[2].gpu, undefined);
  assert.deepEqual(report.metrics, [{ name: 'n', value: 3 }]);
  assert.deepEqual(r.finish('all good'), { status: Status.HEALTHY, message: 'all good', findings: [], metrics: [] });
});

test('status order', () => {
  const order = [Status.HEALTHY, Status.UNKNOWN, Status.DEGRADED, Status.UNHEALTHY];
  assert.deepEqual(order.map(statusRank), [0, 1, 2, 3]);
  for (const a of order) {
    for (const b of order) assert.equal(worstStatus(a, b), statusRank(a) >= statusRank(b) ? a : b);
  }
  const r = new ReportBuilder();
  r.finding(2, Status.UNHEALTHY, 'hot', Action.CONTACT_SUPPORT);
  r.finding(3, Status.UNKNOWN, '?');
  const report = r.finish('ok');
  assert.equal(report.status, Status.UNHEALTHY);
  assert.equal(report.findings[1].action, Action.NONE);
});

test('only healthy findings keep the ok message', () => {
  assert.equal(new ReportBuilder().finding(0, Status.HEALTHY, 'fine').finish('ok').message, 'ok');
});

test('wrong values fail at once', () => {
  const r = new ReportBuilder();
  assert.throws(() => r.finding(0, 'bad', 'x'), TypeError);
  assert.throws(() => r.finding(0, Status.DEGRADED, 'x', 'reset_gpu'), TypeError);
});
