// Building reports (the Rust SDK's `ReportBuilder`).

import { Action, Status, statusRank, worstStatus } from './model.js';

/**
 * Collects findings and metrics; the overall status is the worst finding's.
 *
 * Like the Rust builder it does not clip: the agent enforces the report's bounds (64 KiB of
 * text, 1,024 findings, 128 metrics, metric names `[a-zA-Z_][a-zA-Z0-9_]*` each used once,
 * finite values, GPU indices that exist) and turns a report past them into `unknown`.
 */
export class ReportBuilder {
  constructor() {
    this._findings = [];
    this._metrics = [];
  }

  /**
   * Adds a finding about GPU `gpu` (a number, or `undefined`/`null` for the node).
   * @returns {ReportBuilder} this
   */
  finding(gpu, status, message, action = Action.NONE) {
    statusRank(status); // a typo'd status fails here, not at the agent
    if (!Object.values(Action).includes(action)) {
      throw new TypeError(`not an action: ${String(action)}`);
    }
    this._findings.push({
      gpu: gpu === null || gpu === undefined ? undefined : Number(gpu),
      status,
      message: String(message),
      action,
    });
    return this;
  }

  /** Adds a named number, exposed as `gpuwarden_plugin_value{plugin, name}`. */
  metric(name, value) {
    this._metrics.push({ name: String(name), value: Number(value) });
    return this;
  }

  /** The findings so far. */
  get findings() {
    return [...this._findings];
  }

  /**
   * The report: the worst finding's status; the message lists the non-healthy findings
   * (`GPU 1: …; GPU 3: …`), or is `okMessage` when there are none. The builder is empty
   * afterwards.
   */
  finish(okMessage) {
    const findings = this._findings;
    const metrics = this._metrics;
    this._findings = [];
    this._metrics = [];
    const status = findings.reduce((s, f) => worstStatus(s, f.status), Status.HEALTHY);
    const bad = findings
      .filter((f) => f.status !== Status.HEALTHY)
      .map((f) => (f.gpu === undefined ? f.message : `GPU ${f.gpu}: ${f.message}`));
    return {
      status,
      message: bad.length > 0 ? bad.join('; ') : String(okMessage),
      findings,
      metrics,
    };
  }
}
