import unittest

from gpuwarden_plugin import Config
from gpuwarden_plugin._rust import fmt_f64


class ConfigGetters(unittest.TestCase):
    def test_typed_getters_parse_as_rust_does(self):
        c = Config(
            [
                ("n", " 85.5 "),
                ("i", "600"),
                ("plus", "+7"),
                ("neg", "-1"),
                ("under", "1_000"),
                ("arabic", "\u0663"),
                ("big", "18446744073709551616"),
                ("max", "18446744073709551615"),
                ("exp", "1e3"),
                ("dot", ".5"),
                ("inf", "Infinity"),
                ("empty", ""),
                ("hex", "0x10"),
                ("fs", "\x1c5"),
                ("ws", "\u30005\u2029"),
            ]
        )
        self.assertEqual(c.f64("n"), 85.5)
        self.assertEqual(c.u64("i"), 600)
        self.assertEqual(c.f64("i"), 600.0)
        self.assertEqual(c.u64("plus"), 7)
        self.assertIsNone(c.u64("neg"))
        self.assertEqual(c.f64("neg"), -1.0)
        self.assertIsNone(c.u64("n"))
        self.assertIsNone(c.u64("under"))
        self.assertIsNone(c.f64("under"))
        self.assertIsNone(c.u64("arabic"))
        self.assertIsNone(c.f64("arabic"))
        self.assertIsNone(c.u64("big"))
        self.assertEqual(c.u64("max"), 2**64 - 1)
        self.assertEqual(c.f64("exp"), 1000.0)
        self.assertEqual(c.f64("dot"), 0.5)
        self.assertEqual(c.f64("inf"), float("inf"))
        self.assertIsNone(c.f64("empty"))
        self.assertIsNone(c.u64("hex"))
        self.assertIsNone(c.u64("fs"), "U+001C is not whitespace to Rust")
        self.assertEqual(c.u64("ws"), 5)
        self.assertIsNone(c.f64("absent"))
        self.assertEqual(c.f64("absent", 92.0), 92.0)
        self.assertEqual(c.u64("neg", 3), 3)
        self.assertEqual(c.int("i"), 600)
        self.assertEqual(c.float("n"), 85.5)

    def test_bool_list_and_last_value_wins(self):
        c = Config([("a", "YES"), ("b", " off "), ("c", "maybe"), ("a", "0"), ("l", " 43, ,45 ,x")])
        self.assertIs(c.bool("a"), False)
        self.assertIs(c.bool("b"), False)
        self.assertIsNone(c.bool("c"))
        self.assertIs(c.bool("c", True), True)
        self.assertEqual(c.get("a"), "0")
        self.assertEqual(c.str("missing", "d"), "d")
        self.assertEqual(c.list("l"), ["43", "45", "x"])
        self.assertEqual(c.u64_list("l"), [43, 45])
        self.assertEqual(c.u64_list("missing"), [])
        self.assertIn("a", c)
        self.assertNotIn("z", c)
        self.assertEqual(len(c.pairs()), 5)
        self.assertEqual(Config.from_dict({"x": 1}).u64("x"), 1)
        for word in ("true", "1", "yes", "on", "TRUE", "On"):
            self.assertIs(Config([("k", word)]).bool("k"), True, word)


class RustFormatting(unittest.TestCase):
    def test_floats_print_as_rust_prints_them(self):
        cases = {
            97.0: "97",
            97.5: "97.5",
            0.1: "0.1",
            -0.0: "-0",
            1e21: "1000000000000000000000",
            1e16: "10000000000000000",
            1.5e-7: "0.00000015",
            -2.5e-10: "-0.00000000025",
            float("inf"): "inf",
            float("-inf"): "-inf",
            float("nan"): "NaN",
        }
        for x, want in cases.items():
            self.assertEqual(fmt_f64(x), want, repr(x))


if __name__ == "__main__":
    unittest.main()
