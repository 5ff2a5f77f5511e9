// `xid`: XID events of the last `window_seconds` (default 600) become findings with the XID
// table's status and recommended action; `ignore = "43,45"` skips codes. The verdict holds for
// the window, so a fatal XID keeps the check unhealthy long enough to be acted on.

import { ReportBuilder, checks, exportHealthCheck } from '../../sdk/plugin.js';

function check(host) {
  const cfg = host.config();
  const windowMs = cfg.u64('window_seconds', 600n) * 1000n;
  const events = host.eventsAfter(0, 10_000);
  const r = new ReportBuilder();
  const n = checks.xids(r, checks.recent(events, host.wallClockUnixMs(), windowMs), cfg);
  r.metric('xids_in_window', n);
  return r.finish('no XID in the window');
}

export const checker = exportHealthCheck(check);
