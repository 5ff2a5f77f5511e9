import unittest

from gpuwarden_plugin import Action, ReportBuilder, Status


class Builder(unittest.TestCase):
    def test_the_worst_status_wins_and_the_message_lists_what_is_wrong(self):
        r = ReportBuilder()
        r.finding(0, Status.HEALTHY, "fine", Action.NONE)
        r.finding(1, Status.DEGRADED, "warm", Action.NONE).finding(None, Status.UNKNOWN, "node?", Action.CONTACT_SUPPORT)
        r.metric("n", 3)
        report = r.finish("all good")
        self.assertIs(report.status, Status.DEGRADED)
        self.assertEqual(report.message, "GPU 1: warm; node?")
        self.assertEqual(len(report.findings), 3)
        self.assertEqual(report.metrics[0].name, "n")
        self.assertEqual(report.metrics[0].value, 3.0)
        self.assertIsInstance(report.metrics[0].value, float)
        # The builder is empty afterwards.
        again = r.finish("all good")
        self.assertEqual((again.status, again.message, again.findings, again.metrics), (Status.HEALTHY, "all good", [], []))

    def test_status_order(self):
        order = [Status.HEALTHY, Status.UNKNOWN, Status.DEGRADED, Status.UNHEALTHY]
        self.assertEqual([s.rank for s in order], [0, 1, 2, 3])
        for a in order:
            for b in order:
                self.assertIs(a.worst(b), max(a, b, key=lambda s: s.rank))
        r = ReportBuilder()
        r.finding(2, Status.UNHEALTHY, "hot", Action.CONTACT_SUPPORT)
        r.finding(3, Status.UNKNOWN, "?")
        report = r.finish("ok")
        self.assertIs(report.status, Status.UNHEALTHY)
        self.assertIs(report.findings[1].action, Action.NONE)

    def test_only_healthy_findings_keep_the_ok_message(self):
        r = ReportBuilder()
        r.finding(0, Status.HEALTHY, "fine")
        self.assertEqual(r.finish("ok").message, "ok")

    def test_wrong_types_fail_at_once(self):
        r = ReportBuilder()
        with self.assertRaises(TypeError):
            r.finding(0, "degraded", "x")
        with self.assertRaises(TypeError):
            r.finding(0, Status.DEGRADED, "x", "reset_gpu")


if __name__ == "__main__":
    unittest.main()
