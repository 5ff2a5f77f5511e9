"""XID classification against the vectors rendered from the Rust table and `classify`
(plugins/xid-vectors.json), and the Rust SDK's own XID tests."""

import json
import os
import unittest

from gpuwarden_plugin import Action, Severity, Status, xid
from gpuwarden_plugin.xid import classify, recovery_action_from_message

VECTORS = os.path.join(os.path.dirname(__file__), "..", "..", "xid-vectors.json")


class Vectors(unittest.TestCase):
    def test_every_vector_classifies_as_the_rust_code_does(self):
        with open(VECTORS, encoding="utf-8") as f:
            vectors = json.load(f)
        self.assertGreater(len(vectors), 100, "too few vectors: is the file complete?")
        for v in vectors:
            with self.subTest(code=v["code"], message=v["message"]):
                want = (Severity(v["severity"]), Action(v["action"]))
                self.assertEqual(classify(v["code"], v["message"]), want)
                want_status = {
                    Severity.FATAL: Status.UNHEALTHY,
                    Severity.WARNING: Status.DEGRADED,
                    Severity.INFO: Status.HEALTHY,
                }[want[0]]
                self.assertIs(xid.status_of(v["code"], v["message"]), want_status)
                self.assertIs(xid.action_of(v["code"], v["message"]), want[1])

    def test_the_vectors_cover_the_whole_table_and_the_message_rules(self):
        with open(VECTORS, encoding="utf-8") as f:
            vectors = json.load(f)
        plain = {v["code"] for v in vectors if v["message"] is None}
        self.assertTrue(set(xid.XID_TABLE) <= plain, set(xid.XID_TABLE) - plain)
        with_message = {v["code"] for v in vectors if v["message"] is not None}
        self.assertTrue({144, 145, 146, 147, 148, 149, 150, 154} <= with_message)


class Table(unittest.TestCase):
    def test_lookup_finds_every_row(self):
        self.assertTrue(len(xid.XID_TABLE) > 100)
        for code, info in xid.XID_TABLE.items():
            self.assertEqual(xid.lookup(code), info)
            self.assertEqual(info.code, code)
            self.assertIsInstance(info.severity, Severity)
            self.assertIsInstance(info.action, Action)
            self.assertIsNot(info.action, Action.NONE)
        self.assertIsNone(xid.lookup(9999))

    def test_fatal_xids_ask_for_reset_or_reboot_and_app_faults_do_not(self):
        self.assertEqual((xid.severity(79), xid.action(79)), (Severity.FATAL, Action.REBOOT_NODE))
        self.assertEqual((xid.severity(48), xid.action(48)), (Severity.FATAL, Action.RESET_GPU))
        self.assertEqual((xid.severity(13), xid.action(13)), (Severity.WARNING, Action.RESTART_APP))
        self.assertEqual((xid.severity(9999), xid.action(9999)), xid.UNKNOWN_XID)
        self.assertEqual(xid.UNKNOWN_XID, (Severity.WARNING, Action.CONTACT_SUPPORT))
        self.assertEqual(classify(110), (Severity.FATAL, Action.RESET_GPU))
        for code in (43, 45, 63, 92, 121):
            self.assertIs(xid.action(code), Action.IGNORE, code)
        self.assertIs(xid.status(79), Status.UNHEALTHY)
        self.assertIs(xid.status(13), Status.DEGRADED)
        self.assertIs(xid.status(43), Status.HEALTHY)


class MessageRules(unittest.TestCase):
    def test_nvlink5_xids_follow_the_status_the_driver_prints(self):
        nonfatal = "NVRM: Xid (PCI:0000:18:00): 145, RLW_RXPIPE Nonfatal XC0 i0 Link 13 (0x0409a0c2 0x00000008 0x00000001 0x00000000 0x00100000 0x00000004)"
        self.assertEqual(classify(145, nonfatal), (Severity.WARNING, Action.IGNORE))
        fatal = "NVRM: Xid (PCI:0000:04:00): 149, NETIR_LINK_EVT/NETIR_LINK_DOWN Fatal XC0 i0 Link 00 (0x00000011 0x00000000 0x00000000 0x00000000)"
        self.assertEqual(classify(149, fatal), (Severity.FATAL, Action.RESET_GPU))
        agent = f"XID 144: NVLink5 SAW error ({fatal[29:]})"
        self.assertEqual(classify(144, agent), (Severity.FATAL, Action.RESET_GPU))
        for m in (None, "garbled"):
            self.assertEqual(classify(146, m), (Severity.WARNING, Action.CONTACT_SUPPORT))
        self.assertEqual(classify(79, "Nonfatal"), (Severity.FATAL, Action.REBOOT_NODE))
        # Rust's whitespace and ASCII-only case folding.
        self.assertEqual(classify(145, "145,FATAL\u3000XC7"), (Severity.FATAL, Action.RESET_GPU))
        self.assertEqual(classify(145, "145, Non-Fatal XC7"), (Severity.WARNING, Action.IGNORE))
        self.assertEqual(classify(145, "145, Fatal\x1cXC7"), (Severity.WARNING, Action.CONTACT_SUPPORT))
        self.assertEqual(classify(145, "145, Fatal XC"), (Severity.WARNING, Action.CONTACT_SUPPORT))
        self.assertEqual(classify(145, "145, Fatal XC\u0661"), (Severity.WARNING, Action.CONTACT_SUPPORT))
        self.assertEqual(classify(145, "145, Fatal xc1"), (Severity.WARNING, Action.CONTACT_SUPPORT))

    def test_a_process_name_cannot_decide_an_nvlink5_xid(self):
        hidden = "149, pid=4242, name=job Nonfatal, NETIR_LINK_EVT/NETIR_LINK_DOWN Fatal XC0 i0 Link 00 (0x00000011 0x00000000)"
        self.assertEqual(classify(149, hidden), (Severity.FATAL, Action.RESET_GPU))
        forged = "145, pid=4243, name=a Fatal, RLW_RXPIPE Nonfatal XC0 i0 Link 13 (0x0409a0c2 0x00000008)"
        self.assertEqual(classify(145, forged), (Severity.WARNING, Action.IGNORE))
        forged = "145, pid=1, name=x Fatal XC0, RLW_RXPIPE Nonfatal XC0 i0 Link 13 (0x0409a0c2)"
        self.assertEqual(classify(145, forged), (Severity.WARNING, Action.IGNORE))
        self.assertEqual(classify(146, "146, pid=1, name=Fatal"), (Severity.WARNING, Action.CONTACT_SUPPORT))

    def test_xid_154_message_names_the_action(self):
        m = "GPU recovery action changed from 0x0 (None) to 0x2 (Node Reboot Required)"
        self.assertIs(recovery_action_from_message(m), Action.REBOOT_NODE)
        self.assertEqual(classify(154, m), (Severity.WARNING, Action.REBOOT_NODE))
        m = "GPU recovery action changed from 0x2 (Node Reboot Required) to 0x1 (GPU Reset Required)"
        self.assertIs(recovery_action_from_message(m), Action.RESET_GPU)
        self.assertEqual(classify(154, m), (Severity.WARNING, Action.RESET_GPU))
        self.assertIsNone(recovery_action_from_message("garbled"))
        self.assertIs(recovery_action_from_message("changed to 0x0 (NONE)"), Action.IGNORE)


if __name__ == "__main__":
    unittest.main()
