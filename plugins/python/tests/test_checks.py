import importlib.util
import os
import unittest

from gpuwarden_plugin import Action, Config, ReportBuilder, Status, checks
from gpuwarden_plugin.checks import clock_event
from gpuwarden_plugin.testing import FakeHost, event, sample, xid_event

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "examples")


def example(name):
    spec = importlib.util.spec_from_file_location(f"example_{name}", os.path.join(EXAMPLES, name, "app.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class Thermal(unittest.TestCase):
    def test_thresholds_and_slowdowns(self):
        samples = [
            sample(0, temperature_celsius=60.0),
            sample(1, temperature_celsius=97.0),
            sample(2, temperature_celsius=85.0, memory_temperature_celsius=95.5),
            sample(3, lost=True),
            sample(4, clock_event_reasons=clock_event.HW_THERMAL_SLOWDOWN | clock_event.HW_SLOWDOWN | clock_event.HW_POWER_BRAKE_SLOWDOWN),
        ]
        r = ReportBuilder()
        checks.thermal(r, samples, Config())
        got = [(f.gpu, f.status, f.message, f.action) for f in r.findings]
        self.assertEqual(
            got,
            [
                (1, Status.UNHEALTHY, "temperature 97°C at or above 92°C", Action.CONTACT_SUPPORT),
                (2, Status.DEGRADED, "temperature 85°C at or above 85°C", Action.NONE),
                (2, Status.DEGRADED, "memory temperature 95.5°C at or above 95°C", Action.NONE),
                (4, Status.DEGRADED, "hardware thermal slowdown active", Action.NONE),
                (4, Status.DEGRADED, "hardware slowdown active", Action.NONE),
            ],
        )

    def test_config_moves_the_thresholds(self):
        r = ReportBuilder()
        cfg = Config([("warning_celsius", "50"), ("critical_celsius", "59.5"), ("memory_max_celsius", "bogus")])
        checks.thermal(r, [sample(0, temperature_celsius=60.0, memory_temperature_celsius=94.0)], cfg)
        self.assertEqual([f.message for f in r.findings], ["temperature 60°C at or above 59.5°C"])

    def test_the_example(self):
        app = example("thermal")
        host = FakeHost(samples=[sample(i, temperature_celsius=40.0) for i in range(8)])
        report = app.check(host)
        self.assertEqual((report.status, report.message), (Status.HEALTHY, "temperatures normal"))
        host = FakeHost(samples=[sample(0, temperature_celsius=40.0), sample(1, temperature_celsius=97.0)])
        report = app.check(host)
        self.assertIs(report.status, Status.UNHEALTHY)
        self.assertEqual(report.message, "GPU 1: temperature 97°C at or above 92°C")
        self.assertTrue(hasattr(app.Checker, "check"))


class Xids(unittest.TestCase):
    def test_recent_keeps_the_window(self):
        events = [event(1, "xid", time_unix_ms=1000), event(2, "xid", time_unix_ms=5000)]
        self.assertEqual([e.seq for e in checks.recent(events, 6000, 1000)], [2])
        self.assertEqual([e.seq for e in checks.recent(events, 6000, 5000)], [1, 2])

    def test_events_become_findings_with_the_tables_verdict(self):
        events = [
            xid_event(1, 79, gpu=0),
            xid_event(2, 43, gpu=1),
            xid_event(3, 145, gpu=2, message="145, RLW_RXPIPE Nonfatal XC0 i0 Link 13"),
            xid_event(4, 9999, gpu=3),
            event(5, "thermal", gpu=4, code=79),
            event(6, "xid", gpu=5),
            xid_event(7, 13, gpu=None),
            xid_event(8, (1 << 32) + 79, gpu=6),
        ]
        r = ReportBuilder()
        n = checks.xids(r, events, Config([("ignore", "43, x")]))
        self.assertEqual(n, 5)
        got = [(f.gpu, f.status, f.message, f.action) for f in r.findings]
        self.assertEqual(got[0][:2], (0, Status.UNHEALTHY))
        self.assertTrue(got[0][2].startswith("XID 79: "))
        self.assertIs(got[0][3], Action.REBOOT_NODE)
        self.assertEqual(got[1][:2], (2, Status.DEGRADED))
        self.assertIs(got[1][3], Action.IGNORE)
        self.assertEqual(got[2], (3, Status.DEGRADED, "XID 9999: unknown XID", Action.CONTACT_SUPPORT))
        self.assertEqual(got[3][:2], (None, Status.DEGRADED))
        self.assertIs(got[3][3], Action.RESTART_APP)
        # A code past u32 is read as the Rust check's `code as u32` reads it.
        self.assertEqual(got[4][:2], (6, Status.UNHEALTHY))
        self.assertTrue(got[4][2].startswith("XID 79: "))

    def test_the_example(self):
        app = example("xid")
        now = 10_000_000
        host = FakeHost(wall_clock_unix_ms=now)
        report = app.check(host)
        self.assertEqual((report.status, report.message), (Status.HEALTHY, "no XID in the window"))
        self.assertEqual([(m.name, m.value) for m in report.metrics], [("xids_in_window", 0.0)])
        events = [xid_event(1, 79, gpu=0, time_unix_ms=now - 700_000), xid_event(2, 48, gpu=3, time_unix_ms=now - 1000)]
        report = app.check(FakeHost(events=events, wall_clock_unix_ms=now))
        self.assertIs(report.status, Status.UNHEALTHY)
        self.assertEqual([(f.gpu, f.action) for f in report.findings], [(3, Action.RESET_GPU)])
        report = app.check(FakeHost(events=events, wall_clock_unix_ms=now, config={"window_seconds": 800}))
        self.assertEqual([(f.gpu, f.action) for f in report.findings], [(0, Action.REBOOT_NODE), (3, Action.RESET_GPU)])
        self.assertEqual(report.metrics[0].value, 2.0)


class FakeHostAccess(unittest.TestCase):
    def test_host_helpers(self):
        host = FakeHost(
            samples=[sample(0, nvlinks=["link"])],
            events=[event(3, "xid"), event(1, "ecc"), event(2, "pcie")],
            previous_cursor=1,
            config=[("a", "1"), ("a", "2")],
            wall_clock_unix_ms=7,
            monotonic_now_ns=9,
        )
        self.assertEqual(host.samples()[0].nvlinks, [])
        self.assertEqual(host.samples(include_nvlinks=True)[0].nvlinks, ["link"])
        self.assertEqual([e.seq for e in host.new_events()], [2, 3])
        self.assertEqual([e.seq for e in host.events_after(0, 2)], [1, 2])
        self.assertEqual(host.config().u64("a"), 2)
        self.assertEqual((host.wall_clock_unix_ms(), host.monotonic_now_ns()), (7, 9))
        host.warn("careful")
        self.assertEqual([(lvl.value, m) for lvl, m in host.logs], [("warn", "careful")])


if __name__ == "__main__":
    unittest.main()
