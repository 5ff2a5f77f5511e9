"""Building reports (the Rust SDK's `ReportBuilder`)."""

from __future__ import annotations

from typing import List, Optional

from .model import Action, Finding, Metric, Report, Status


class ReportBuilder:
    """Collects findings and metrics; the overall status is the worst finding's.

    Like the Rust builder it does not clip: the agent enforces the report's bounds (64 KiB
    of text, 1,024 findings, 128 metrics, metric names `[a-zA-Z_][a-zA-Z0-9_]*` each used
    once, finite values, GPU indices that exist) and turns a report past them into
    `unknown`.
    """

    def __init__(self) -> None:
        self._findings: List[Finding] = []
        self._metrics: List[Metric] = []

    def finding(
        self,
        gpu: Optional[int],
        status: Status,
        message: str,
        action: Action = Action.NONE,
    ) -> "ReportBuilder":
        """Adds a finding about GPU `gpu` (or the node with None)."""
        if not isinstance(status, Status):
            raise TypeError(f"status must be a gpuwarden_plugin.Status, not {status!r}")
        if not isinstance(action, Action):
            raise TypeError(f"action must be a gpuwarden_plugin.Action, not {action!r}")
        self._findings.append(Finding(gpu, status, str(message), action))
        return self

    def metric(self, name: str, value: float) -> "ReportBuilder":
        """Adds a named number, exposed as `gpuwarden_plugin_value{plugin, name}`."""
        self._metrics.append(Metric(str(name), float(value)))
        return self

    @property
    def findings(self) -> List[Finding]:
        """The findings so far."""
        return list(self._findings)

    def finish(self, ok_message: str) -> Report:
        """The report: the worst finding's status; the message lists the non-healthy
        findings (`GPU 1: …; GPU 3: …`), or is `ok_message` when there are none. The
        builder is empty afterwards."""
        findings, self._findings = self._findings, []
        metrics, self._metrics = self._metrics, []
        status = Status.HEALTHY
        for f in findings:
            status = status.worst(f.status)
        bad = [
            f.message if f.gpu is None else f"GPU {f.gpu}: {f.message}"
            for f in findings
            if f.status is not Status.HEALTHY
        ]
        message = "; ".join(bad) if bad else ok_message
        return Report(status, message, findings, metrics)
