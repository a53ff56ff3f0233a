"""The CPU as a device: host memory (RSS) of each job's tree, against an optional budget."""

from __future__ import annotations

import re

import psutil

from gpupair_search.launcher.devices.base import Device, DeviceReading, DeviceRequest
from gpupair_search.launcher.spec import StudyKind


class CpuDevice(Device):
    kind = "cpu"
    enforces_capacity = True
    choice = "cpu"
    choice_help = "the CPU: host memory (RSS) per job against --cpu-memory; no GPU numbers"
    study_kind = StudyKind.CPU

    @classmethod
    def open(cls, match: re.Match[str], request: DeviceRequest) -> CpuDevice:
        return cls(request.card_mib)

    def __init__(self, budget_mib: float | None = None) -> None:
        self.capacity_mib = budget_mib
        self.name = f"CPU ({psutil.cpu_count()} logical cores, {psutil.virtual_memory().total / 2**30:.0f} GiB)"

    def job_env(self) -> dict[str, str]:
        return {"CUDA_VISIBLE_DEVICES": ""}  # a job on the CPU device must not reach a GPU

    def memory_by_pid(self, pids: set[int]) -> dict[int, float]:
        out: dict[int, float] = {}
        for pid in pids:
            try:
                out[pid] = psutil.Process(pid).memory_info().rss / 2**20
            except psutil.Error:
                pass
        return out

    def reading(self) -> DeviceReading:
        vm = psutil.virtual_memory()
        return DeviceReading(
            used_mib=(vm.total - vm.available) / 2**20, utilization_pct=psutil.cpu_percent(interval=None)
        )
