// gpuwarden plugin SDK for JavaScript: everything but the component glue, so it also runs
// (and is tested) on Node. A plugin imports `plugin.js`, which adds `exportHealthCheck` and
// `exportDiagnostic` bound to the agent.

export { Action, LogLevel, Severity, Status, statusRank, worstStatus } from './model.js';
export { Config } from './config.js';
export { Host } from './host.js';
export { ReportBuilder } from './report.js';
export { fmtF64 } from './rust.js';
export * as checks from './checks.js';
export * as xid from './xid.js';

export const WIT_PACKAGE = 'gpuwarden:plugin@0.1.0';
