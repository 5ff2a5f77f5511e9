"""Write gpuwarden plugins in Python.

A health check is one function and an export::

    from gpuwarden_plugin import Action, Host, Report, ReportBuilder, Status, export_health_check

    def check(host: Host) -> Report:
        limit = host.config().f64("max_celsius", 85.0)
        r = ReportBuilder()
        for s in host.samples():
            if s.temperature_celsius is not None and s.temperature_celsius >= limit:
                r.finding(s.index, Status.DEGRADED, f"{s.temperature_celsius}°C", Action.NONE)
        return r.finish("all GPUs below the limit")

    Checker = export_health_check(check)

Build it into a component with componentize-py against `wit/plugin.wit`, world
`health-check` (or `diagnostic` for `Diagnostics = export_diagnostic(run)`); see README.md.
"""

from . import checks, xid
from ._rust import fmt_f64
from .config import Config
from .export import export_diagnostic, export_health_check
from .host import Host
from .model import (
    Action,
    EccCounts,
    Finding,
    GpuInfo,
    GpuSample,
    HealthEvent,
    LogLevel,
    Metric,
    Nvlink,
    RemappedRows,
    Report,
    Severity,
    Status,
)
from .report import ReportBuilder

__version__ = "0.1.0"
WIT_PACKAGE = "gpuwarden:plugin@0.1.0"

__all__ = [
    "Action",
    "Config",
    "EccCounts",
    "Finding",
    "GpuInfo",
    "GpuSample",
    "HealthEvent",
    "Host",
    "LogLevel",
    "Metric",
    "Nvlink",
    "RemappedRows",
    "Report",
    "ReportBuilder",
    "Severity",
    "Status",
    "checks",
    "export_diagnostic",
    "export_health_check",
    "fmt_f64",
    "xid",
]
