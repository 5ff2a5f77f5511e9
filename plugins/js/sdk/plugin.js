// The component entry of the SDK: everything in index.js, plus the exports bound to the
// agent's host interface. Import this from a plugin:
//
//   import { ReportBuilder, checks, exportHealthCheck } from './gpuwarden/plugin.js';
//   export const checker = exportHealthCheck((host) => { ... return r.finish('ok'); });
//
// `gpuwarden:plugin/host@0.1.0` exists only inside a component (componentize-js provides it);
// Node cannot load this file, which is why tests import index.js.

import * as witHost from 'gpuwarden:plugin/host@0.1.0';

import { Config } from './config.js';
import { Host } from './host.js';
import { Action, statusRank } from './model.js';

export * from './index.js';

function toWit(report) {
  if (report === null || typeof report !== 'object' || !Array.isArray(report.findings)) {
    throw new TypeError('a check must return a report (ReportBuilder.finish)');
  }
  statusRank(report.status);
  return {
    status: report.status,
    message: String(report.message),
    findings: report.findings.map((f) => {
      statusRank(f.status);
      if (!Object.values(Action).includes(f.action)) throw new TypeError(`not an action: ${String(f.action)}`);
      return {
        gpu: f.gpu === null || f.gpu === undefined ? undefined : Number(f.gpu),
        status: f.status,
        message: String(f.message),
        action: f.action,
      };
    }),
    metrics: (report.metrics ?? []).map((m) => ({ name: String(m.name), value: Number(m.value) })),
  };
}

/**
 * The `checker` export of a health check, running `check(host)`:
 * `export const checker = exportHealthCheck(check);`. An exception it throws is not caught:
 * the run traps and the agent reports it as `unknown`, as a Rust panic is.
 */
export function exportHealthCheck(check) {
  return {
    check() {
      return toWit(check(new Host(witHost)));
    },
  };
}

/** The `diagnostics` export of a diagnostic, running `run(host, params)`: `export const diagnostics = exportDiagnostic(run);`. */
export function exportDiagnostic(run) {
  return {
    run(params) {
      return toWit(run(new Host(witHost), new Config(params)));
    },
  };
}
