// The contract's enums (`gpuwarden:plugin/types@0.1.0`) as the component bindings spell them:
// strings, kebab-case. u64 fields of the host's records (counters, bytes, times, event codes
// and sequence numbers) are BigInts; u32 and f64 fields are numbers; an absent option is
// `undefined`.

/** A verdict. */
export const Status = Object.freeze({
  HEALTHY: 'healthy',
  DEGRADED: 'degraded',
  UNHEALTHY: 'unhealthy',
  UNKNOWN: 'unknown',
});

/** The recommended immediate action (the XID table's vocabulary, and `none`). */
export const Action = Object.freeze({
  NONE: 'none',
  IGNORE: 'ignore',
  RESTART_APP: 'restart-app',
  RESET_GPU: 'reset-gpu',
  REBOOT_NODE: 'reboot-node',
  CONTACT_SUPPORT: 'contact-support',
});

/** How serious a health event is. */
export const Severity = Object.freeze({ INFO: 'info', WARNING: 'warning', FATAL: 'fatal' });

export const LogLevel = Object.freeze({
  TRACE: 'trace',
  DEBUG: 'debug',
  INFO: 'info',
  WARN: 'warn',
  ERROR: 'error',
});

const RANK = { healthy: 0, unknown: 1, degraded: 2, unhealthy: 3 };

/** How bad: healthy 0 < unknown 1 < degraded 2 < unhealthy 3. */
export function statusRank(status) {
  const r = RANK[status];
  if (r === undefined) throw new TypeError(`not a status: ${String(status)}`);
  return r;
}

/** The worse of two statuses. */
export function worstStatus(a, b) {
  return statusRank(b) > statusRank(a) ? b : a;
}

/** An action as the XID table writes it (`reset_gpu`) in the contract's spelling (`reset-gpu`). */
export function actionFromTable(name) {
  const a = name.replace(/_/g, '-');
  if (!Object.values(Action).includes(a)) throw new TypeError(`not an action: ${name}`);
  return a;
}
