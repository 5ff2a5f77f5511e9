// XID classification against the vectors rendered from the Rust table and `classify`
// (plugins/xid-vectors.json), and the Rust SDK's own XID tests.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

import { Action, Severity, Status, xid } from '../sdk/index.js';

const VECTORS = new URL('../../xid-vectors.json', import.meta.url);
const vectors = () => JSON.parse(readFileSync(VECTORS, 'utf8'));
const STATUS = { fatal: Status.UNHEALTHY, warning: Status.DEGRADED, info: Status.HEALTHY };

test('every vector classifies as the Rust code does', () => {
  const vs = vectors();
  assert.ok(vs.length > 100, 'too few vectors: is the file complete?');
  for (const v of vs) {
    const want = [v.severity, v.action.replaceAll('_', '-')];
    const what = `XID ${v.code} ${JSON.stringify(v.message)}`;
    assert.deepEqual(xid.classify(v.code, v.message), want, what);
    assert.deepEqual(xid.classify(BigInt(v.code), v.message), want, `${what} (BigInt)`);
    assert.equal(xid.statusOf(v.code, v.message), STATUS[v.severity], what);
    assert.equal(xid.actionOf(v.code, v.message), want[1], what);
  }
});

test('the vectors cover the whole table and the message rules', () => {
  const vs = vectors();
  const plain = new Set(vs.filter((v) => v.message === null).map((v) => v.code));
  for (const code of xid.XID_TABLE.keys()) assert.ok(plain.has(code), `XID ${code} has no vector`);
  const withMessage = new Set(vs.filter((v) => v.message !== null).map((v) => v.code));
  for (const code of [144, 145, 146, 147, 148, 149, 150, 154]) assert.ok(withMessage.has(code), `XID ${code}`);
});

test('lookup finds every row', () => {
  assert.ok(xid.XID_TABLE.size > 100);
  for (const [code, info] of xid.XID_TABLE) {
    assert.equal(xid.lookup(code), info);
    assert.equal(xid.lookup(BigInt(code)), info);
    assert.equal(info.code, code);
    assert.ok(Object.values(Severity).includes(info.severity));
    assert.ok(Object.values(Action).includes(info.action) && info.action !== Action.NONE);
  }
  assert.equal(xid.lookup(9999), undefined);
});

test('fatal XIDs ask for reset or reboot and app faults do not', () => {
  assert.deepEqual([xid.severity(79), xid.action(79)], [Severity.FATAL, Action.REBOOT_NODE]);
  assert.deepEqual([xid.severity(48), xid.action(48)], [Severity.FATAL, Action.RESET_GPU]);
  assert.deepEqual([xid.severity(13), xid.action(13)], [Severity.WARNING, Action.RESTART_APP]);
  assert.deepEqual([xid.severity(9999), xid.action(9999)], [...xid.UNKNOWN_XID]);
  assert.deepEqual([...xid.UNKNOWN_XID], [Severity.WARNING, Action.CONTACT_SUPPORT]);
  assert.deepEqual(xid.classify(110), [Severity.FATAL, Action.RESET_GPU]);
  for (const code of [43, 45, 63, 92, 121]) assert.equal(xid.action(code), Action.IGNORE, `XID ${code}`);
  assert.equal(xid.status(79), Status.UNHEALTHY);
  assert.equal(xid.status(13), Status.DEGRADED);
  assert.equal(xid.status(43), Status.HEALTHY);
});

test('NVLink5 XIDs follow the status the driver prints', () => {
  const nonfatal =
    'NVRM: Xid (PCI:0000:18:00): 145, RLW_RXPIPE Nonfatal XC0 i0 Link 13 (0x0409a0c2 0x00000008 0x00000001 0x00000000 0x00100000 0x00000004)';
  assert.deepEqual(xid.classify(145, nonfatal), [Severity.WARNING, Action.IGNORE]);
  const fatal =
    'NVRM: Xid (PCI:0000:04:00): 149, NETIR_LINK_EVT/NETIR_LINK_DOWN Fatal XC0 i0 Link 00 (0x00000011 0x00000000 0x00000000 0x00000000)';
  assert.deepEqual(xid.classify(149, fatal), [Severity.FATAL, Action.RESET_GPU]);
  assert.deepEqual(xid.classify(144, `XID 144: NVLink5 SAW error (${fatal.slice(29)})`), [Severity.FATAL, Action.RESET_GPU]);
  for (const m of [undefined, null, 'garbled']) {
    assert.deepEqual(xid.classify(146, m), [Severity.WARNING, Action.CONTACT_SUPPORT]);
  }
  assert.deepEqual(xid.classify(79, 'Nonfatal'), [Severity.FATAL, Action.REBOOT_NODE]);
  // Rust's whitespace and ASCII-only case folding.
  assert.deepEqual(xid.classify(145, '145,FATAL\u3000XC7'), [Severity.FATAL, Action.RESET_GPU]);
  assert.deepEqual(xid.classify(145, '145, Non-Fatal\u0085XC7'), [Severity.WARNING, Action.IGNORE]);
  assert.deepEqual(xid.classify(145, '145, Fatal\ufeffXC7'), [Severity.WARNING, Action.CONTACT_SUPPORT]);
  assert.deepEqual(xid.classify(145, '145, Fatal XC'), [Severity.WARNING, Action.CONTACT_SUPPORT]);
  assert.deepEqual(xid.classify(145, '145, Fatal XC\u0661'), [Severity.WARNING, Action.CONTACT_SUPPORT]);
  assert.deepEqual(xid.classify(145, '145, Fatal xc1'), [Severity.WARNING, Action.CONTACT_SUPPORT]);
});

test('a process name cannot decide an NVLink5 XID', () => {
  const hidden = '149, pid=4242, name=job Nonfatal, NETIR_LINK_EVT/NETIR_LINK_DOWN Fatal XC0 i0 Link 00 (0x00000011 0x00000000)';
  assert.deepEqual(xid.classify(149, hidden), [Severity.FATAL, Action.RESET_GPU]);
  let forged = '145, pid=4243, name=a Fatal, RLW_RXPIPE Nonfatal XC0 i0 Link 13 (0x0409a0c2 0x00000008)';
  assert.deepEqual(xid.classify(145, forged), [Severity.WARNING, Action.IGNORE]);
  forged = '145, pid=1, name=x Fatal XC0, RLW_RXPIPE Nonfatal XC0 i0 Link 13 (0x0409a0c2)';
  assert.deepEqual(xid.classify(145, forged), [Severity.WARNING, Action.IGNORE]);
  assert.deepEqual(xid.classify(146, '146, pid=1, name=Fatal'), [Severity.WARNING, Action.CONTACT_SUPPORT]);
});

test('XID 154 message names the action', () => {
  let m = 'GPU recovery action changed from 0x0 (None) to 0x2 (Node Reboot Required)';
  assert.equal(xid.recoveryActionFromMessage(m), Action.REBOOT_NODE);
  assert.deepEqual(xid.classify(154, m), [Severity.WARNING, Action.REBOOT_NODE]);
  m = 'GPU recovery action changed from 0x2 (Node Reboot Required) to 0x1 (GPU Reset Required)';
  assert.equal(xid.recoveryActionFromMessage(m), Action.RESET_GPU);
  assert.deepEqual(xid.classify(154, m), [Severity.WARNING, Action.RESET_GPU]);
  assert.equal(xid.recoveryActionFromMessage('garbled'), undefined);
  assert.equal(xid.recoveryActionFromMessage('changed to 0x0 (NONE)'), Action.IGNORE);
});
