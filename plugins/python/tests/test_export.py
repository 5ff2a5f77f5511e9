"""The component glue, against stand-ins for the generated bindings."""

import enum
import types
import unittest
from dataclasses import dataclass
from typing import List, Optional

from gpuwarden_plugin import Action, Config, Report, ReportBuilder, Status, export, export_diagnostic, export_health_check, host


class WitStatus(enum.Enum):
    HEALTHY = 0
    DEGRADED = 1
    UNHEALTHY = 2
    UNKNOWN = 3


class WitAction(enum.Enum):
    NONE = 0
    IGNORE = 1
    RESTART_APP = 2
    RESET_GPU = 3
    REBOOT_NODE = 4
    CONTACT_SUPPORT = 5


class WitLogLevel(enum.Enum):
    TRACE = 0
    DEBUG = 1
    INFO = 2
    WARN = 3
    ERROR = 4


@dataclass
class WitFinding:
    gpu: Optional[int]
    status: WitStatus
    message: str
    action: WitAction


@dataclass
class WitMetric:
    name: str
    value: float


@dataclass
class WitReport:
    status: WitStatus
    message: str
    findings: List[WitFinding]
    metrics: List[WitMetric]


WIT_TYPES = types.SimpleNamespace(
    Status=WitStatus, Action=WitAction, LogLevel=WitLogLevel, Finding=WitFinding, Metric=WitMetric, Report=WitReport
)


class Glue(unittest.TestCase):
    def setUp(self):
        self.logged = []
        self.wit_host = types.SimpleNamespace(
            config=lambda: [("limit", "3")],
            log=lambda level, message: self.logged.append((level, message)),
        )
        self.saved = (export._wit_types, host._wit_host, host._wit_types)
        export._wit_types = WIT_TYPES
        host._wit_host = self.wit_host
        host._wit_types = WIT_TYPES

    def tearDown(self):
        export._wit_types, host._wit_host, host._wit_types = self.saved

    def test_a_health_check_returns_the_bindings_report(self):
        def check(h):
            h.info("hello")
            r = ReportBuilder()
            r.finding(None, Status.DEGRADED, "node", Action.REBOOT_NODE)
            r.finding(1, Status.UNHEALTHY, "gpu", Action.RESET_GPU)
            r.metric("limit", h.config().u64("limit"))
            return r.finish("ok")

        out = export_health_check(check)().check()
        self.assertEqual(
            out,
            WitReport(
                WitStatus.UNHEALTHY,
                "node; GPU 1: gpu",
                [WitFinding(None, WitStatus.DEGRADED, "node", WitAction.REBOOT_NODE), WitFinding(1, WitStatus.UNHEALTHY, "gpu", WitAction.RESET_GPU)],
                [WitMetric("limit", 3.0)],
            ),
        )
        self.assertEqual(self.logged, [(WitLogLevel.INFO, "hello")])

    def test_a_diagnostic_gets_its_parameters(self):
        def run(h, params):
            self.assertIsInstance(params, Config)
            return ReportBuilder().finish(f"expect {params.u64('expect_gpus')}")

        out = export_diagnostic(run)().run([("expect_gpus", "8")])
        self.assertEqual((out.status, out.message), (WitStatus.HEALTHY, "expect 8"))

    def test_a_check_that_returns_something_else_fails(self):
        with self.assertRaises(TypeError):
            export_health_check(lambda h: "healthy")().check()

    def test_outside_a_component_an_exception_propagates(self):
        def check(h):
            raise ValueError("boom")

        with self.assertRaisesRegex(ValueError, "boom"):
            export_health_check(check)().check()

    def test_every_status_and_action_has_a_binding(self):
        for s in Status:
            self.assertIn(s.name, WitStatus.__members__)
        for a in Action:
            self.assertIn(a.name, WitAction.__members__)
        self.assertIsInstance(Report(Status.HEALTHY, "x"), Report)


if __name__ == "__main__":
    unittest.main()
