// `thermal`: GPU temperature against `warning_celsius` (85) and `critical_celsius` (92), memory
// temperature against `memory_max_celsius` (95), and active thermal or hardware slowdowns.

import { ReportBuilder, checks, exportHealthCheck } from '../../sdk/plugin.js';

function check(host) {
  const r = new ReportBuilder();
  checks.thermal(r, host.samples(), host.config());
  return r.finish('temperatures normal');
}

export const checker = exportHealthCheck(check);
