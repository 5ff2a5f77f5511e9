"""Key/value configuration with typed getters (the Rust SDK's `Config`)."""

from __future__ import annotations

import builtins
from typing import Iterable, List, Optional, Tuple, TypeVar

from ._rust import ascii_lower, parse_f64, parse_u64, trim

T = TypeVar("T")

_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")


class Config:
    """A plugin's `[plugins.config]` values, or a diagnostic's parameters.

    Every getter returns `default` (None unless given) when the key is absent or its value
    does not parse; a key given twice takes its last value. Values are parsed as the Rust
    SDK parses them: numbers after trimming whitespace, with Rust's grammar (no `1_000`, no
    non-ASCII digits).
    """

    def __init__(self, pairs: Iterable[Tuple[str, str]] = ()):
        self._pairs: List[Tuple[str, str]] = [(k, v) for k, v in pairs]

    @classmethod
    def from_dict(cls, values: dict) -> "Config":
        return cls((k, builtins.str(v)) for k, v in values.items())

    def get(self, key: str, default: Optional[str] = None) -> Optional[str]:
        """The raw value of `key`."""
        for k, v in reversed(self._pairs):
            if k == key:
                return v
        return default

    def str(self, key: str, default: Optional[str] = None) -> Optional[str]:
        """The value of `key` as text (the same as `get`)."""
        return self.get(key, default)

    def f64(self, key: str, default: Optional[float] = None) -> Optional[float]:
        """`key` as a number (`85`, `85.5`, `1e3`, `inf`)."""
        v = self.get(key)
        n = None if v is None else parse_f64(trim(v))
        return default if n is None else n

    float = f64

    def u64(self, key: str, default: Optional[int] = None) -> Optional[int]:
        """`key` as an unsigned 64-bit integer (`600`, `+600`; not `-1`, `1.5` or `2^64`)."""
        v = self.get(key)
        n = None if v is None else parse_u64(trim(v))
        return default if n is None else n

    int = u64

    def bool(self, key: str, default: Optional[builtins.bool] = None) -> Optional[builtins.bool]:
        """`key` as a boolean: true/1/yes/on or false/0/no/off, any case."""
        v = self.get(key)
        if v is None:
            return default
        w = ascii_lower(trim(v))
        if w in _TRUE:
            return True
        if w in _FALSE:
            return False
        return default

    def list(self, key: str, default: Optional[List[str]] = None) -> Optional[List[str]]:
        """`key` as a comma-separated list of trimmed, non-empty items (`"43, 45"`)."""
        v = self.get(key)
        if v is None:
            return default
        return [trim(x) for x in v.split(",") if trim(x)]

    def u64_list(self, key: str) -> List[int]:
        """`key` as comma-separated integers; items that do not parse are skipped (the
        Rust `xids` check reads `ignore` this way). Empty when absent."""
        v = self.get(key)
        if v is None:
            return []
        out = []
        for item in v.split(","):
            n = parse_u64(trim(item))
            if n is not None:
                out.append(n)
        return out

    def pairs(self) -> List[Tuple[str, str]]:
        """Every pair, in order."""
        return builtins.list(self._pairs)

    def __contains__(self, key: object) -> builtins.bool:
        return any(k == key for k, _ in self._pairs)

    def __repr__(self) -> builtins.str:
        return f"Config({self._pairs!r})"

    def __eq__(self, other: object) -> builtins.bool:
        return isinstance(other, Config) and self._pairs == other._pairs
