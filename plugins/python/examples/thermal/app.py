"""`thermal`: GPU temperature against `warning_celsius` (85) and `critical_celsius` (92),
memory temperature against `memory_max_celsius` (95), and active thermal or hardware
slowdowns."""

from gpuwarden_plugin import Host, Report, ReportBuilder, checks, export_health_check


def check(host: Host) -> Report:
    r = ReportBuilder()
    checks.thermal(r, host.samples(), host.config())
    return r.finish("temperatures normal")


Checker = export_health_check(check)
