// The XID table shared with the agent and the control plane, and how an XID is classified.
//
// The table itself (`xid_table.js`) is generated from the Rust one; this module reads it the
// way `gpuwarden_wire::xid` does. Where the driver's message is at hand (a health event's
// `message`), use `statusOf` / `actionOf`: some XIDs (NVLink5 144-150, 154) are decided by
// their message.

import { Action, Severity, Status, actionFromTable } from './model.js';
import { WHITESPACE, asciiLower } from './rust.js';
import { UNKNOWN_XID as UNKNOWN_ROW, XID_TABLE as ROWS } from './xid_table.js';

/** Every known XID, by code: `{ code, name, meaning, severity, action }`. */
export const XID_TABLE = new Map(
  [...ROWS]
    .sort((a, b) => a[0] - b[0])
    .map(([code, [name, meaning, severity, action]]) => [
      code,
      Object.freeze({ code, name, meaning, severity, action: actionFromTable(action) }),
    ]),
);

/** Severity and action of an XID not in the table. */
export const UNKNOWN_XID = Object.freeze([UNKNOWN_ROW[0], actionFromTable(UNKNOWN_ROW[1])]);

function codeNumber(code) {
  const n = Number(code);
  if (!Number.isInteger(n) || n < 0) throw new TypeError(`not an XID code: ${String(code)}`);
  return n;
}

/** The table's row for `code` (a number or BigInt), or `undefined`. */
export function lookup(code) {
  return XID_TABLE.get(codeNumber(code));
}

/**
 * Severity and recommended action of XID `code`, `[severity, action]`, reading the driver's
 * `message` where NVIDIA's catalog decides by it:
 * - 144-150 (NVLink5): `Fatal` before the `XC<n>` field -> fatal, reset-gpu; `Nonfatal` ->
 *   warning, ignore; without that word the table row (never a reset on a guess).
 * - 154: the recovery action the message names, else the table's.
 * - every other XID: its table row; an XID not in the table is `UNKNOWN_XID`.
 */
export function classify(code, message = undefined) {
  const c = codeNumber(code);
  const info = XID_TABLE.get(c);
  const row = info === undefined ? [UNKNOWN_XID[0], UNKNOWN_XID[1]] : [info.severity, info.action];
  if (message === undefined || message === null) return row;
  if (c >= 144 && c <= 150) {
    const fatal = nvlink5Status(message);
    if (fatal === true) return [Severity.FATAL, Action.RESET_GPU];
    if (fatal === false) return [Severity.WARNING, Action.IGNORE];
    return row;
  }
  if (c === 154) return [row[0], recoveryActionFromMessage(message) ?? row[1]];
  return row;
}

function words(message) {
  const out = [];
  let w = '';
  for (const ch of message) {
    if (WHITESPACE.has(ch) || ch === ',') {
      if (w) out.push(w);
      w = '';
    } else {
      w += ch;
    }
  }
  if (w) out.push(w);
  return out;
}

/**
 * Whether an NVLink5 XID message says `Fatal` (true) or `Nonfatal` (false): the word right
 * before an `XC<digits>` field, the last such pair in the text winning (a process name printed
 * earlier, which its owner chooses, must not decide). `undefined` when it says neither.
 */
export function nvlink5Status(message) {
  const ws = words(message);
  for (let i = ws.length - 2; i >= 0; i--) {
    if (!/^XC[0-9]+$/.test(ws[i + 1])) continue;
    const w = asciiLower(ws[i]);
    if (w === 'fatal') return true;
    if (w === 'nonfatal' || w === 'non-fatal') return false;
  }
  return undefined;
}

/**
 * The action an XID 154 message asks for, read from what follows its last ` to `
 * (`... changed from 0x0 (None) to 0x2 (Node Reboot Required)`); `undefined` when none.
 */
export function recoveryActionFromMessage(message) {
  const at = message.lastIndexOf(' to ');
  const to = asciiLower(at < 0 ? message : message.slice(at + 4));
  if (to.includes('reboot')) return Action.REBOOT_NODE;
  if (to.includes('reset')) return Action.RESET_GPU;
  if (to.includes('none')) return Action.IGNORE;
  return undefined;
}

const STATUS = { fatal: Status.UNHEALTHY, warning: Status.DEGRADED, info: Status.HEALTHY };

/** The status XID `code` with the driver's `message` implies: fatal -> unhealthy, warning -> degraded, info -> healthy. */
export function statusOf(code, message = undefined) {
  return STATUS[classify(code, message)[0]];
}

/** The recommended action for XID `code` with the driver's `message`. */
export function actionOf(code, message = undefined) {
  return classify(code, message)[1];
}

/** Severity of an XID known by its code alone; prefer `classify` with the message. */
export function severity(code) {
  return classify(code)[0];
}

/** `statusOf` without a message. */
export function status(code) {
  return statusOf(code);
}

/** `actionOf` without a message. */
export function action(code) {
  return actionOf(code);
}
