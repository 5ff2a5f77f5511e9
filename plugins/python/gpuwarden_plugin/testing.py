"""A fake agent for unit-testing checks on a plain Python, outside a component::

    from gpuwarden_plugin.testing import FakeHost, sample, xid_event

    host = FakeHost(samples=[sample(0, temperature_celsius=97.0)], config={"warning_celsius": "90"})
    report = check(host)
"""

from __future__ import annotations

from typing import Dict, Iterable, List, Optional, Tuple, Union

from .host import Host
from .model import Action, GpuInfo, GpuSample, HealthEvent, LogLevel, Severity

__all__ = ["FakeHost", "FakeBackend", "sample", "gpu", "event", "xid_event"]


def gpu(index: int, **fields) -> GpuInfo:
    """A GpuInfo; unspecified fields are empty."""
    return GpuInfo(index=index, **fields)


def sample(index: int, **fields) -> GpuSample:
    """A GpuSample; unspecified fields are None (unsupported)."""
    return GpuSample(index=index, **fields)


def event(seq: int, kind: str, time_unix_ms: int = 0, **fields) -> HealthEvent:
    """A HealthEvent."""
    return HealthEvent(seq=seq, kind=kind, time_unix_ms=time_unix_ms, **fields)


def xid_event(seq: int, code: int, gpu: Optional[int] = 0, time_unix_ms: int = 0, message: Optional[str] = None) -> HealthEvent:
    """An XID event, worded as the agent words one when `message` is not given."""
    return HealthEvent(
        seq=seq,
        kind="xid",
        time_unix_ms=time_unix_ms,
        gpu=gpu,
        code=code,
        message=f"XID {code}" if message is None else message,
        severity=Severity.WARNING,
        action=Action.CONTACT_SUPPORT,
    )


class FakeBackend:
    """The host interface over fixed data; `logs` collects what the plugin logged."""

    def __init__(
        self,
        gpus: Iterable[GpuInfo] = (),
        samples: Iterable[GpuSample] = (),
        previous_samples: Iterable[GpuSample] = (),
        events: Iterable[HealthEvent] = (),
        previous_cursor: int = 0,
        config: Union[Dict[str, object], Iterable[Tuple[str, str]]] = (),
        wall_clock_unix_ms: int = 0,
        monotonic_now_ns: int = 0,
    ):
        self._gpus = list(gpus)
        self._samples = list(samples)
        self._previous = list(previous_samples)
        self._events = sorted(events, key=lambda e: e.seq)
        self._cursor = previous_cursor
        if isinstance(config, dict):
            config = [(k, str(v)) for k, v in config.items()]
        self._config = list(config)
        self.now_ms = wall_clock_unix_ms
        self.now_ns = monotonic_now_ns
        self.logs: List[Tuple[LogLevel, str]] = []

    @staticmethod
    def _strip(samples, include_nvlinks):
        if include_nvlinks:
            return list(samples)
        out = []
        for s in samples:
            c = GpuSample(**{k: getattr(s, k) for k in GpuSample.__dataclass_fields__})
            c.nvlinks = []
            out.append(c)
        return out

    def gpus(self):
        return list(self._gpus)

    def samples(self, include_nvlinks):
        return self._strip(self._samples, include_nvlinks)

    def previous_samples(self, include_nvlinks):
        return self._strip(self._previous, include_nvlinks)

    def events_after(self, cursor, limit):
        return [e for e in self._events if e.seq > cursor][:limit]

    def previous_cursor(self):
        return self._cursor

    def config(self):
        return list(self._config)

    def log(self, level, message):
        self.logs.append((level, message))

    def monotonic_now_ns(self):
        return self.now_ns

    def wall_clock_unix_ms(self):
        return self.now_ms


class FakeHost(Host):
    """A `Host` over a `FakeBackend` built from the same arguments; `host.logs` is what the
    plugin logged."""

    def __init__(self, **kwargs):
        self.backend = FakeBackend(**kwargs)
        super().__init__(self.backend)

    @property
    def logs(self) -> List[Tuple[LogLevel, str]]:
        return self.backend.logs
