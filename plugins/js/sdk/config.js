// Key/value configuration with typed getters (the Rust SDK's `Config`).

import { asciiLower, parseF64, parseU64, trim } from './rust.js';

const TRUE = ['true', '1', 'yes', 'on'];
const FALSE = ['false', '0', 'no', 'off'];

/**
 * A plugin's `[plugins.config]` values, or a diagnostic's parameters.
 *
 * Every getter returns `dflt` (`undefined` unless given) when the key is absent or its value
 * does not parse; a key given twice takes its last value. Values are parsed as the Rust SDK
 * parses them: numbers after trimming whitespace, with Rust's grammar (no `0x10`, no `1_000`,
 * no empty string as 0).
 */
export class Config {
  /** @param {Iterable<[string, string]>} pairs */
  constructor(pairs = []) {
    this._pairs = [...pairs].map(([k, v]) => [String(k), String(v)]);
  }

  /** From a plain object: `Config.fromObject({ window_seconds: 60 })`. */
  static fromObject(obj) {
    return new Config(Object.entries(obj));
  }

  /** The raw value of `key`. */
  get(key, dflt = undefined) {
    for (let i = this._pairs.length - 1; i >= 0; i--) {
      if (this._pairs[i][0] === key) return this._pairs[i][1];
    }
    return dflt;
  }

  /** The value of `key` as text (the same as `get`). */
  str(key, dflt = undefined) {
    return this.get(key, dflt);
  }

  /** `key` as a number (`85`, `85.5`, `1e3`, `inf`). */
  f64(key, dflt = undefined) {
    const v = this.get(key);
    const n = v === undefined ? undefined : parseF64(trim(v));
    return n === undefined ? dflt : n;
  }

  /** `key` as an unsigned 64-bit integer, a BigInt (`600`, `+600`; not `-1`, `1.5` or `2^64`). */
  u64(key, dflt = undefined) {
    const v = this.get(key);
    const n = v === undefined ? undefined : parseU64(trim(v));
    return n === undefined ? dflt : n;
  }

  /** `key` as `u64` does, as a number; `dflt` too when it is above Number.MAX_SAFE_INTEGER. */
  int(key, dflt = undefined) {
    const n = this.u64(key);
    return n === undefined || n > BigInt(Number.MAX_SAFE_INTEGER) ? dflt : Number(n);
  }

  /** `key` as a boolean: true/1/yes/on or false/0/no/off, any case. */
  bool(key, dflt = undefined) {
    const v = this.get(key);
    if (v === undefined) return dflt;
    const w = asciiLower(trim(v));
    if (TRUE.includes(w)) return true;
    if (FALSE.includes(w)) return false;
    return dflt;
  }

  /** `key` as a comma-separated list of trimmed, non-empty items (`"43, 45"`). */
  list(key, dflt = undefined) {
    const v = this.get(key);
    if (v === undefined) return dflt;
    return v
      .split(',')
      .map(trim)
      .filter((x) => x !== '');
  }

  /**
   * `key` as comma-separated integers (BigInts); items that do not parse are skipped (the Rust
   * `xids` check reads `ignore` this way). Empty when absent.
   */
  u64List(key) {
    const v = this.get(key);
    if (v === undefined) return [];
    return v
      .split(',')
      .map((x) => parseU64(trim(x)))
      .filter((x) => x !== undefined);
  }

  /** Whether `key` is set. */
  has(key) {
    return this._pairs.some(([k]) => k === key);
  }

  /** Every pair, in order. */
  pairs() {
    return this._pairs.map(([k, v]) => [k, v]);
  }
}
