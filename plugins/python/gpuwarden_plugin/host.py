"""Typed access to the agent's read-only host interface (`gpuwarden:plugin/host@0.1.0`)."""

from __future__ import annotations

from typing import Any, List

from .config import Config
from .model import Action, GpuInfo, GpuSample, HealthEvent, LogLevel, Severity

# The bindings componentize-py generates for the world being built. They exist only while a
# component is built (and inside it); everything else in the SDK works without them, so
# checks can be unit-tested on a plain Python. Imported here, at module load, because a
# component has no files to import from once it runs.
try:
    from wit_world.imports import host as _wit_host
    from wit_world.imports import types as _wit_types
except ImportError:  # not inside a component
    _wit_host = None
    _wit_types = None

IN_COMPONENT = _wit_host is not None
"""Whether this is a component's interpreter (the bindings were there at import)."""


class Host:
    """The node as the agent sees it. Each call asks the agent afresh.

    Inside a component, `Host()` talks to the agent. Elsewhere pass a backend: any object
    with the host interface's functions (`gpus()`, `samples(include_nvlinks)`,
    `previous_samples(include_nvlinks)`, `events_after(cursor, limit)`,
    `previous_cursor()`, `config()`, `log(level, message)`, `monotonic_now_ns()`,
    `wall_clock_unix_ms()`), such as `gpuwarden_plugin.testing.FakeHost`.
    """

    def __init__(self, backend: Any = None):
        if backend is None:
            if _wit_host is None:
                raise RuntimeError(
                    "gpuwarden_plugin.Host() needs the agent (inside a component); "
                    "elsewhere pass a backend such as gpuwarden_plugin.testing.FakeHost"
                )
            backend = _WitBackend()
        self._b = backend

    def gpus(self) -> List[GpuInfo]:
        """The GPUs found when the agent started."""
        return self._b.gpus()

    def samples(self, include_nvlinks: bool = False) -> List[GpuSample]:
        """The latest sample of every GPU (`lost` for a GPU that fell off the bus). NVLink
        state is most of a sample's size: `nvlinks` is filled only with `include_nvlinks`."""
        return self._b.samples(bool(include_nvlinks))

    def previous_samples(self, include_nvlinks: bool = False) -> List[GpuSample]:
        """The samples at this plugin's previous run (empty on the first run)."""
        return self._b.previous_samples(bool(include_nvlinks))

    def events_after(self, cursor: int, limit: int) -> List[HealthEvent]:
        """Health events with `seq > cursor`, oldest first, at most `limit`."""
        return self._b.events_after(int(cursor), int(limit))

    def previous_cursor(self) -> int:
        """The newest event's `seq` when this plugin's previous run started (0 on the first
        run): pass it to `events_after` to see what is new since then."""
        return self._b.previous_cursor()

    def new_events(self, limit: int = 1000) -> List[HealthEvent]:
        """Events recorded since this plugin's previous run started (all held events on the
        first run), at most `limit`."""
        return self.events_after(self.previous_cursor(), limit)

    def config(self) -> Config:
        """This plugin's configuration (`[plugins.config]`)."""
        return Config(self._b.config())

    def log(self, level: LogLevel, message: str) -> None:
        """Writes to the agent's log under the plugin's name (at most 100 lines a run are
        kept)."""
        self._b.log(level, str(message))

    def debug(self, message: str) -> None:
        self.log(LogLevel.DEBUG, message)

    def info(self, message: str) -> None:
        self.log(LogLevel.INFO, message)

    def warn(self, message: str) -> None:
        self.log(LogLevel.WARN, message)

    def error(self, message: str) -> None:
        self.log(LogLevel.ERROR, message)

    def monotonic_now_ns(self) -> int:
        """Monotonic nanoseconds, for measuring durations."""
        return self._b.monotonic_now_ns()

    def wall_clock_unix_ms(self) -> int:
        """Wall-clock time, Unix milliseconds. (Python's own clocks read the Unix epoch in
        the sandbox: use this.)"""
        return self._b.wall_clock_unix_ms()


class _WitBackend:
    """The generated bindings, with the SDK's enums at the edges."""

    def gpus(self):
        return _wit_host.gpus()

    def samples(self, include_nvlinks):
        return _wit_host.samples(include_nvlinks)

    def previous_samples(self, include_nvlinks):
        return _wit_host.previous_samples(include_nvlinks)

    def events_after(self, cursor, limit):
        events = _wit_host.events_after(cursor, limit)
        for e in events:
            # The bindings' enums become the SDK's, so `e.severity is Severity.FATAL` holds.
            e.severity = Severity[e.severity.name]
            e.action = Action[e.action.name]
        return events

    def previous_cursor(self):
        return _wit_host.previous_cursor()

    def config(self):
        return _wit_host.config()

    def log(self, level, message):
        _wit_host.log(_wit_types.LogLevel[level.name], message)

    def monotonic_now_ns(self):
        return _wit_host.monotonic_now_ns()

    def wall_clock_unix_ms(self):
        return _wit_host.wall_clock_unix_ms()
