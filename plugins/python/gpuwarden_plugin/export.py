"""Exporting a health check or a diagnostic (the Rust SDK's `export_health_check!` and
`export_diagnostic!`).

componentize-py looks in the app module for a class named after the exported interface:
`Checker` for a health check, `Diagnostics` for a diagnostic. These functions make it::

    Checker = export_health_check(check)          # check(host) -> Report
    Diagnostics = export_diagnostic(run)          # run(host, params) -> Report

An exception the function raises fails the run as a Rust panic does: the traceback goes to
stderr (the agent's log), then the exception itself as the last line, and the plugin aborts,
so the agent reports `unknown` with `trap: the plugin aborted: ValueError: ...`.
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import Callable

from .config import Config
from . import host as _host
from .host import Host, _wit_types
from .model import Report

__all__ = ["export_health_check", "export_diagnostic"]


def _to_wit(report: Report):
    t = _wit_types
    if not isinstance(report, Report):
        raise TypeError(f"a check must return a gpuwarden_plugin.Report, not {type(report).__name__}")
    return t.Report(
        status=t.Status[report.status.name],
        message=report.message,
        findings=[
            t.Finding(
                gpu=f.gpu,
                status=t.Status[f.status.name],
                message=f.message,
                action=t.Action[f.action.name],
            )
            for f in report.findings
        ],
        metrics=[t.Metric(name=m.name, value=float(m.value)) for m in report.metrics],
    )


def _fail(exc: BaseException):
    """Ends the run on an exception the way a Rust panic does (the agent reads the last line
    of stderr as the reason). Outside a component, or without `os.abort`, the exception
    propagates instead."""
    if not _host.IN_COMPONENT:
        raise exc
    traceback.print_exception(type(exc), exc, exc.__traceback__)
    print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
    sys.stderr.flush()
    abort = getattr(os, "abort", None)
    if abort is None:
        raise exc
    abort()


def export_health_check(check: Callable[[Host], Report]) -> type:
    """The `Checker` class componentize-py exports, running `check(host)`."""

    class Checker:
        def check(self):
            try:
                return _to_wit(check(Host()))
            except BaseException as exc:  # noqa: BLE001 - every failure ends the run
                _fail(exc)

    Checker.__qualname__ = f"Checker[{getattr(check, '__name__', 'check')}]"
    return Checker


def export_diagnostic(run: Callable[[Host, Config], Report]) -> type:
    """The `Diagnostics` class componentize-py exports, running `run(host, params)`."""

    class Diagnostics:
        def run(self, params):
            try:
                return _to_wit(run(Host(), Config(params)))
            except BaseException as exc:  # noqa: BLE001 - every failure ends the run
                _fail(exc)

    Diagnostics.__qualname__ = f"Diagnostics[{getattr(run, '__name__', 'run')}]"
    return Diagnostics
