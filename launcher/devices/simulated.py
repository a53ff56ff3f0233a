"""A simulated device: pair memory from per-job memory functions, nothing is trained.

For testing the search logic at scale and for predicting a card you do not have. Every result it
produces has ``simulated=True`` and its device says "simulated"; its numbers are predictions.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from gpupair_search.launcher.devices.base import Device, DeviceRequest, NoDeviceError
from gpupair_search.launcher.measurement import EnergyStats, MemoryStats
from gpupair_search.launcher.outcome import Outcome
from gpupair_search.launcher.pair_runner import PairResult
from gpupair_search.launcher.registry import Registry
from gpupair_search.launcher.spec import JobConfig, PairSpec, StudyKind

#: peak MiB of a job at a batch size (None: the job has no batch-size knob)
MemoryFunction = Callable[[JobConfig, "int | None"], float]


class SimulatedDevice(Device):
    """Nothing runs: :meth:`simulate` predicts the pair's result from per-job memory functions."""

    kind = "simulated"
    choice = "sim"
    choice_help = (
        "simulated: memory from fitted per-job models and shipped profiles, nothing is trained (labelled simulated)"
    )
    study_kind = StudyKind.SIMULATED
    simulated = True

    @classmethod
    def open(cls, match: re.Match[str], request: DeviceRequest) -> SimulatedDevice:
        if request.simulation is None:
            raise NoDeviceError(
                "--device sim predicts a whole study from memory profiles: use it with `run` or "
                "`plan`, not with a single pair"
            )
        return request.simulation()

    def __init__(self, memory: MemoryFunction, capacity_mib: float, registry: Registry, label: str = "") -> None:
        self.memory = memory
        self.capacity_mib = capacity_mib
        self.registry = registry
        self.name = f"simulated {capacity_mib / 1024:g} GiB card" + (f" ({label})" if label else "")

    def describe(self) -> dict[str, object]:
        return {"kind": self.kind, "name": self.name, "capacity_mib": self.capacity_mib, "simulated": True}

    def job_env(self) -> dict[str, str]:
        return {}

    def memory_by_pid(self, pids: set[int]) -> dict[int, float]:
        return {}

    def simulate(self, pair: PairSpec) -> PairResult:
        """The background starts first; whichever job's allocation passes the card's capacity fails."""
        fg_bs, bg_bs = self.registry.batch_sizes(pair)
        fg = self.memory(pair.foreground, fg_bs)
        bg = self.memory(pair.background, bg_bs) if pair.background else 0.0
        cap = self.capacity_mib
        if bg > cap:
            outcome, fg_peak, bg_peak, tried = Outcome.OOM_BACKGROUND, 0.0, cap, (None, bg - cap)
        elif fg + bg > cap:
            outcome, fg_peak, bg_peak, tried = Outcome.OOM_FOREGROUND, cap - bg, bg, (fg + bg - cap, None)
        else:
            outcome, fg_peak, bg_peak, tried = Outcome.OK, fg, bg, (None, None)
        memory = MemoryStats(fg_peak, bg_peak, fg_peak + bg_peak, fg_peak + bg_peak, None, tried[0], tried[1])
        return PairResult(
            pair=pair,
            foreground=pair.foreground,
            background=pair.background,
            outcome=outcome,
            memory=memory,
            energy=EnergyStats(window_s=0.0, cpu_energy_note="simulated: nothing ran"),
            device=self.describe(),
            foreground_exit_code=0 if outcome is Outcome.OK else 1,
            foreground_duration_s=0.0,
            background_runs=1 if pair.background else 0,
            error_message="" if outcome is Outcome.OK else f"simulated {outcome.value}",
            batch_sizes={"foreground": fg_bs, "background": bg_bs},
            warnings=list(pair.warnings),
            simulated=True,
        )
