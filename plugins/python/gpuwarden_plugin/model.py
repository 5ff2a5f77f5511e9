"""The contract's types (`gpuwarden:plugin/types@0.1.0`) as Python.

Inside a component the host hands back the bindings' own dataclasses; they have exactly these
fields (snake_case, as in the Rust SDK), so code written against these types works on both.
These classes are what `gpuwarden_plugin.testing` builds for tests outside a component.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import List, Optional


class Status(enum.Enum):
    """A verdict."""

    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNHEALTHY = "unhealthy"
    UNKNOWN = "unknown"

    @property
    def rank(self) -> int:
        """How bad: healthy 0 < unknown 1 < degraded 2 < unhealthy 3."""
        return _RANK[self]

    def worst(self, other: "Status") -> "Status":
        """The worse of two statuses."""
        return other if other.rank > self.rank else self


_RANK = {Status.HEALTHY: 0, Status.UNKNOWN: 1, Status.DEGRADED: 2, Status.UNHEALTHY: 3}


class Action(enum.Enum):
    """The recommended immediate action (the XID table's vocabulary, and `none`)."""

    NONE = "none"
    IGNORE = "ignore"
    RESTART_APP = "restart_app"
    RESET_GPU = "reset_gpu"
    REBOOT_NODE = "reboot_node"
    CONTACT_SUPPORT = "contact_support"


class Severity(enum.Enum):
    """How serious a health event is."""

    INFO = "info"
    WARNING = "warning"
    FATAL = "fatal"


class LogLevel(enum.Enum):
    TRACE = "trace"
    DEBUG = "debug"
    INFO = "info"
    WARN = "warn"
    ERROR = "error"


@dataclass
class GpuInfo:
    """Static facts about one GPU."""

    index: int
    uuid: str = ""
    model: str = ""
    pci_bus_id: str = ""
    serial: Optional[str] = None
    memory_total_bytes: int = 0
    power_limit_watts: Optional[float] = None
    pcie_max_generation: Optional[int] = None
    pcie_max_width: Optional[int] = None
    nvlink_count: int = 0
    slowdown_temperature_celsius: Optional[float] = None
    shutdown_temperature_celsius: Optional[float] = None


@dataclass
class Nvlink:
    link: int
    up: bool = True
    replay_errors: Optional[int] = None
    recovery_errors: Optional[int] = None
    crc_flit_errors: Optional[int] = None
    crc_data_errors: Optional[int] = None


@dataclass
class EccCounts:
    corrected_volatile: Optional[int] = None
    uncorrected_volatile: Optional[int] = None
    corrected_aggregate: Optional[int] = None
    uncorrected_aggregate: Optional[int] = None


@dataclass
class RemappedRows:
    correctable: int = 0
    uncorrectable: int = 0
    pending: bool = False
    failure: bool = False


@dataclass
class GpuSample:
    """One GPU's latest reading. `lost` is true when the GPU cannot be read (fell off the bus);
    every other field is then absent. A field the GPU does not support is None."""

    index: int
    lost: bool = False
    utilization: Optional[float] = None
    memory_utilization: Optional[float] = None
    memory_used_bytes: Optional[int] = None
    memory_free_bytes: Optional[int] = None
    memory_reserved_bytes: Optional[int] = None
    temperature_celsius: Optional[float] = None
    memory_temperature_celsius: Optional[float] = None
    power_watts: Optional[float] = None
    energy_joules: Optional[float] = None
    sm_clock_hertz: Optional[float] = None
    memory_clock_hertz: Optional[float] = None
    clock_event_reasons: Optional[int] = None
    pcie_generation: Optional[int] = None
    pcie_width: Optional[int] = None
    pcie_replays: Optional[int] = None
    ecc: EccCounts = field(default_factory=EccCounts)
    remapped_rows: Optional[RemappedRows] = None
    nvlinks: List[Nvlink] = field(default_factory=list)
    fan_speed: Optional[float] = None
    recovery_action: Optional[int] = None
    compute_processes: Optional[int] = None
    compute_processes_memory_bytes: Optional[int] = None


@dataclass
class HealthEvent:
    """A health event recorded by the agent. `kind` is one of xid, ecc, thermal, nvlink, pcie,
    power, throttle, gpu_lost, recovery_action, row_remap, plugin."""

    seq: int
    time_unix_ms: int
    kind: str
    message: str = ""
    gpu: Optional[int] = None
    uuid: Optional[str] = None
    code: Optional[int] = None
    severity: Severity = Severity.INFO
    action: Action = Action.NONE


@dataclass
class Finding:
    """What a plugin found about one GPU (or the node, with `gpu` None)."""

    gpu: Optional[int]
    status: Status
    message: str
    action: Action


@dataclass
class Metric:
    """A named number the agent exposes as `gpuwarden_plugin_value{plugin, name}`."""

    name: str
    value: float


@dataclass
class Report:
    status: Status
    message: str
    findings: List[Finding] = field(default_factory=list)
    metrics: List[Metric] = field(default_factory=list)
