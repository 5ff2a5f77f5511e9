// Typed access to the agent's read-only host interface (`gpuwarden:plugin/host@0.1.0`).

import { Config } from './config.js';
import { LogLevel } from './model.js';

/**
 * The node as the agent sees it. Each call asks the agent afresh.
 *
 * `backend` has the host interface's functions as the component bindings name them:
 * `gpus()`, `samples(includeNvlinks)`, `previousSamples(includeNvlinks)`,
 * `eventsAfter(cursor, limit)`, `previousCursor()`, `config()`, `log(level, message)`,
 * `monotonicNowNs()`, `wallClockUnixMs()`. Inside a component that is the bindings
 * themselves (`exportHealthCheck` in `plugin.js` passes them); in tests a `FakeHost`
 * (`testing.js`).
 */
export class Host {
  constructor(backend) {
    if (!backend) throw new TypeError('Host needs a backend (inside a component, exportHealthCheck gives it one)');
    this._b = backend;
  }

  /** The GPUs found when the agent started. */
  gpus() {
    return this._b.gpus();
  }

  /**
   * The latest sample of every GPU (`lost` for a GPU that fell off the bus). NVLink state is
   * most of a sample's size: `nvlinks` is filled only with `includeNvlinks`.
   */
  samples(includeNvlinks = false) {
    return this._b.samples(Boolean(includeNvlinks));
  }

  /** The samples at this plugin's previous run (empty on the first run). */
  previousSamples(includeNvlinks = false) {
    return this._b.previousSamples(Boolean(includeNvlinks));
  }

  /** Health events with `seq > cursor` (number or BigInt), oldest first, at most `limit`. */
  eventsAfter(cursor, limit) {
    return this._b.eventsAfter(BigInt(cursor), Number(limit));
  }

  /**
   * The newest event's `seq` (a BigInt) when this plugin's previous run started (0n on the
   * first run): pass it to `eventsAfter` to see what is new since then.
   */
  previousCursor() {
    return this._b.previousCursor();
  }

  /** Events recorded since this plugin's previous run started (all held events on the first run), at most `limit`. */
  newEvents(limit = 1000) {
    return this.eventsAfter(this.previousCursor(), limit);
  }

  /** This plugin's configuration (`[plugins.config]`). */
  config() {
    return new Config(this._b.config());
  }

  /** Writes to the agent's log under the plugin's name (at most 100 lines a run are kept). */
  log(level, message) {
    if (!Object.values(LogLevel).includes(level)) throw new TypeError(`not a log level: ${String(level)}`);
    this._b.log(level, String(message));
  }

  debug(message) {
    this.log(LogLevel.DEBUG, message);
  }

  info(message) {
    this.log(LogLevel.INFO, message);
  }

  warn(message) {
    this.log(LogLevel.WARN, message);
  }

  error(message) {
    this.log(LogLevel.ERROR, message);
  }

  /** Monotonic nanoseconds (a BigInt), for measuring durations. */
  monotonicNowNs() {
    return this._b.monotonicNowNs();
  }

  /** Wall-clock time, Unix milliseconds (a BigInt). `Date.now()` reads the Unix epoch in the sandbox: use this. */
  wallClockUnixMs() {
    return this._b.wallClockUnixMs();
  }
}
