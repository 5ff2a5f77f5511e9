"""The XID table shared with the agent and the control plane, and how an XID is classified.

The table itself (`xid_table.py`) is generated from the Rust one; this module reads it the
way `gpuwarden_wire::xid` does. Where the driver's message is at hand (a `HealthEvent`'s
`message`), use `status_of` / `action_of`: some XIDs (NVLink5 144-150, 154) are decided by
their message.
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Tuple

from ._rust import WHITESPACE, ascii_lower
from .model import Action, Severity, Status
from .xid_table import UNKNOWN_XID as _UNKNOWN_ROW
from .xid_table import XID_TABLE as _ROWS

__all__ = [
    "XidInfo",
    "XID_TABLE",
    "UNKNOWN_XID",
    "lookup",
    "classify",
    "severity",
    "action",
    "status",
    "status_of",
    "action_of",
    "recovery_action_from_message",
]


class XidInfo(NamedTuple):
    """What one XID means."""

    code: int
    name: str
    meaning: str
    severity: Severity
    action: Action


XID_TABLE = {
    code: XidInfo(code, name, meaning, Severity(sev), Action(act))
    for code, (name, meaning, sev, act) in sorted(_ROWS.items())
}
"""Every known XID, by code."""

UNKNOWN_XID: Tuple[Severity, Action] = (Severity(_UNKNOWN_ROW[0]), Action(_UNKNOWN_ROW[1]))
"""Severity and action of an XID not in the table."""


def lookup(code: int) -> Optional[XidInfo]:
    """The table's row for `code`, or None."""
    return XID_TABLE.get(code)


def classify(code: int, message: Optional[str] = None) -> Tuple[Severity, Action]:
    """Severity and recommended action of XID `code`, reading the driver's `message` where
    NVIDIA's catalog decides by it:

    - 144-150 (NVLink5): `Fatal` before the `XC<n>` field -> (fatal, reset_gpu), `Nonfatal`
      -> (warning, ignore); without that word the table row (never a reset on a guess).
    - 154: the recovery action the message names, else the table's.
    - every other XID: its table row; an XID not in the table is `UNKNOWN_XID`.
    """
    info = lookup(code)
    row = UNKNOWN_XID if info is None else (info.severity, info.action)
    if message is None:
        return row
    if 144 <= code <= 150:
        fatal = _nvlink5_status(message)
        if fatal is True:
            return (Severity.FATAL, Action.RESET_GPU)
        if fatal is False:
            return (Severity.WARNING, Action.IGNORE)
        return row
    if code == 154:
        return (row[0], recovery_action_from_message(message) or row[1])
    return row


def _words(message: str):
    word = []
    for c in message:
        if c in WHITESPACE or c == ",":
            if word:
                yield "".join(word)
                word = []
        else:
            word.append(c)
    if word:
        yield "".join(word)


def _nvlink5_status(message: str) -> Optional[bool]:
    """Whether an NVLink5 XID message says `Fatal` (True) or `Nonfatal` (False): the word
    right before an `XC<digits>` field, the last such pair in the text winning (a process
    name printed earlier, which its owner chooses, must not decide)."""
    words = list(_words(message))
    for i in range(len(words) - 2, -1, -1):
        xc = words[i + 1]
        if not (xc.startswith("XC") and len(xc) > 2 and all("0" <= c <= "9" for c in xc[2:])):
            continue
        w = ascii_lower(words[i])
        if w == "fatal":
            return True
        if w in ("nonfatal", "non-fatal"):
            return False
    return None


def recovery_action_from_message(message: str) -> Optional[Action]:
    """The action an XID 154 message asks for, read from what follows its last ` to `
    (`... changed from 0x0 (None) to 0x2 (Node Reboot Required)`)."""
    _, sep, after = message.rpartition(" to ")
    to = ascii_lower(after if sep else message)
    if "reboot" in to:
        return Action.REBOOT_NODE
    if "reset" in to:
        return Action.RESET_GPU
    if "none" in to:
        return Action.IGNORE
    return None


def severity(code: int) -> Severity:
    """Severity of an XID known by its code alone; prefer `classify` with the message."""
    return classify(code)[0]


_STATUS = {Severity.FATAL: Status.UNHEALTHY, Severity.WARNING: Status.DEGRADED, Severity.INFO: Status.HEALTHY}


def status_of(code: int, message: Optional[str] = None) -> Status:
    """The status XID `code` with the driver's `message` implies: fatal -> unhealthy,
    warning -> degraded, info -> healthy."""
    return _STATUS[classify(code, message)[0]]


def action_of(code: int, message: Optional[str] = None) -> Action:
    """The recommended action for XID `code` with the driver's `message`."""
    return classify(code, message)[1]


def status(code: int) -> Status:
    """`status_of` without a message."""
    return status_of(code)


def action(code: int) -> Action:
    """`action_of` without a message."""
    return action_of(code)
