"""The device interface the monitor samples."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from gpupair_search.launcher.errors import UserError
from gpupair_search.launcher.spec import StudyKind


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


@dataclass(frozen=True)
class DeviceRequest:
    """What a command asks of the device it opens."""

    #: the card to fit on: a bigger NVIDIA GPU emulates it with real OOMs; the CPU device's host-memory budget
    card_mib: float | None = None
    #: for ``sim``: builds the simulated device's memory model (the study's shipped profiles); None: unavailable
    simulation: Callable[[], Any] | None = None


class Device(ABC):
    """One device a pair runs on.

    Each concrete class names the ``--device`` choice it opens (``choice``, a regular expression) and opens
    it (:meth:`open`); :mod:`.factory` finds every class of this package, so a new kind of device is one
    module here. Optional capabilities are declared below with their defaults."""

    #: ``--device`` values this class opens (a regular expression), with the words ``--help`` shows
    choice: ClassVar[str | None] = None
    choice_help: ClassVar[str] = ""
    #: what the study's numbers are (each kind is stored as its own study)
    study_kind: ClassVar[StudyKind] = StudyKind.GPU
    #: True when nothing runs: the device predicts a pair's result (:meth:`simulate`)
    simulated: ClassVar[bool] = False

    kind: str  # "nvidia", "cpu", "simulated"
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

    def close(self) -> None:  # noqa: B027 - optional: a device that holds nothing keeps this
        """Release what the device holds (e.g. an emulation allocation)."""

    # -- optional capabilities ----------------------------------------------------------------------
    uuid: str | None = None  # the physical device's id, where it has one (NVIDIA)

    def all_process_memory(self) -> dict[int, float] | None:
        """Memory of every process on the device, ours or not (None: the device cannot list them): lets
        the monitor attribute a new process by ancestry at once."""
        return None

    @classmethod
    def open(cls, match: re.Match[str], request: DeviceRequest) -> Device:
        """Open the device for the ``--device`` value ``match`` (of :attr:`choice`)."""
        raise NotImplementedError(cls.__name__)
