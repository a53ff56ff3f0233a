"""The CPU as a device: host memory of each job's processes, against an optional budget.

A job's memory is the RSS of each of its processes, except a forked copy of another of its processes (a
``DataLoader`` worker: same parent in the job, same command line), which counts only the pages it alone holds
(USS): the pages it shares with its parent are in the parent's RSS already. Summing RSS counted them again for
each worker, 2.3x the trainer's memory with two workers (bench/cpu_worker_memory.py).
"""

from __future__ import annotations

import re
import time

import psutil

from gpupair_search.launcher.devices.base import Device, DeviceReading, DeviceRequest
from gpupair_search.launcher.spec import StudyKind

#: A process's USS is read from /proc/PID/smaps_rollup, which takes milliseconds per GiB the process maps: once
#: a second per forked process at most, and at once for a new one.
USS_MAX_AGE_S = 1.0


class CpuDevice(Device):
    kind = "cpu"
    enforces_capacity = True
    choice = "cpu"
    choice_help = (
        "the CPU: host memory per job against --cpu-memory (a forked worker counts its own pages); no GPU numbers"
    )
    study_kind = StudyKind.CPU

    @classmethod
    def open(cls, match: re.Match[str], request: DeviceRequest) -> CpuDevice:
        return cls(request.card_mib)

    def __init__(self, budget_mib: float | None = None) -> None:
        self.capacity_mib = budget_mib
        self.name = f"CPU ({psutil.cpu_count()} logical cores, {psutil.virtual_memory().total / 2**30:.0f} GiB)"
        self._uss: dict[tuple[int, float], tuple[float, float]] = {}  # (pid, start) -> (read at, MiB)

    def job_env(self) -> dict[str, str]:
        return {"CUDA_VISIBLE_DEVICES": ""}  # a job on the CPU device must not reach a GPU

    def memory_by_pid(self, pids: set[int]) -> dict[int, float]:
        out: dict[int, float] = {}
        cmdlines: dict[int, list[str]] = {}  # each process's, read once for this call (workers share a parent)
        for pid in pids:
            try:
                proc = psutil.Process(pid)
                forked = _forked_copy(proc, pids, cmdlines)
                out[pid] = self._own_mib(proc) if forked else proc.memory_info().rss / 2**20
            except psutil.Error:
                pass
        self._forget_all_but(pids)
        return out

    def _own_mib(self, proc: psutil.Process) -> float:
        key, now = (proc.pid, proc.create_time()), time.monotonic()
        known = self._uss.get(key)
        if known is None or now - known[0] >= USS_MAX_AGE_S:
            known = self._uss[key] = (now, proc.memory_full_info().uss / 2**20)
        return known[1]

    def _forget_all_but(self, pids: set[int]) -> None:
        for key in [k for k in self._uss if k[0] not in pids]:
            del self._uss[key]

    def reading(self) -> DeviceReading:
        vm = psutil.virtual_memory()
        return DeviceReading(
            used_mib=(vm.total - vm.available) / 2**20, utilization_pct=psutil.cpu_percent(interval=None)
        )


def budget_warning(budget_mib: float) -> str:
    """Why a host-memory budget above the host's memory measures nothing against it; empty where it does not."""
    host_mib = psutil.virtual_memory().total / 2**20
    if budget_mib <= host_mib:
        return ""
    return (
        f"the host-memory budget ({budget_mib:,.0f} MiB) is more than this host has ({host_mib:,.0f} MiB): a pair "
        "above the host's memory is killed by the kernel (or swaps), not stopped at the budget; --cpu-memory "
        f"{host_mib // 1024:.0f}GiB or less measures against it"
    )


def _forked_copy(proc: psutil.Process, pids: set[int], cmdlines: dict[int, list[str]]) -> bool:
    """Whether ``proc`` is a fork of its parent that has not run another program since (a DataLoader worker), its
    parent one of the job's processes. ``cmdlines``: those read so far, by pid."""
    parent = proc.ppid()
    if parent not in pids:
        return False
    if parent not in cmdlines:
        cmdlines[parent] = psutil.Process(parent).cmdline()
    return proc.cmdline() == cmdlines[parent]
