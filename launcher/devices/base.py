"""The device interface the monitor samples."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from gpupair_search.launcher.errors import UserError


class NoDeviceError(UserError):
    """The requested device cannot be used here."""


@dataclass(frozen=True)
class DeviceReading:
    """Whole-device values at one instant; None where the device cannot tell."""

    used_mib: float | None = None
    power_w: float | None = None
    utilization_pct: float | None = None
    temperature_c: float | None = None
    energy_mj: float | None = None  # cumulative counter


@dataclass(frozen=True)
class ForeignProcess:
    pid: int
    command: str
    used_mib: float


class Device(ABC):
    """One device a pair runs on."""

    kind: str  # "nvidia", "cpu"
    name: str  # human-readable, e.g. "NVIDIA H100 80GB HBM3 (cuda:0)"
    #: Memory the pair may use, MiB (the emulated card size, or the CPU budget); None: unbounded.
    capacity_mib: float | None = None
    #: When True, a job whose memory passes ``capacity_mib`` is killed and counts as over budget
    #: (the CPU device; a GPU enforces its own limit through real OOMs).
    enforces_capacity: bool = False

    @abstractmethod
    def job_env(self) -> dict[str, str]:
        """Environment additions that confine a job to this device."""

    @abstractmethod
    def memory_by_pid(self, pids: set[int]) -> dict[int, float]:
        """Memory in MiB held on this device by each of ``pids`` (absent: none)."""

    def reading(self) -> DeviceReading:
        return DeviceReading()

    def foreign_processes(self, ours: set[int]) -> list[ForeignProcess]:
        """Processes other than ``ours`` that hold memory on the device."""
        return []

    def describe(self) -> dict[str, object]:
        return {"kind": self.kind, "name": self.name, "capacity_mib": self.capacity_mib}

    def close(self) -> None:
        """Release what the device holds (e.g. an emulation allocation)."""
