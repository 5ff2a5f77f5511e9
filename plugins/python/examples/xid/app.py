"""`xid`: XID events of the last `window_seconds` (default 600) become findings with the XID
table's status and recommended action; `ignore = "43,45"` skips codes. The verdict holds for
the window, so a fatal XID keeps the check unhealthy long enough to be acted on."""

from gpuwarden_plugin import Host, Report, ReportBuilder, checks, export_health_check


def check(host: Host) -> Report:
    cfg = host.config()
    window_ms = cfg.u64("window_seconds", 600) * 1000
    events = host.events_after(0, 10_000)
    r = ReportBuilder()
    n = checks.xids(r, checks.recent(events, host.wall_clock_unix_ms(), window_ms), cfg)
    r.metric("xids_in_window", n)
    return r.finish("no XID in the window")


Checker = export_health_check(check)
