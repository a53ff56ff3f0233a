"""One sampling loop for a pair: memory per job, device power/utilisation/temperature, CPU share per job.

Device memory is read every ``interval`` (default 50 ms: 1 Hz sampling misses short peaks, see
docs/GPU_FACTS.md). Process trees are walked less often (``tree_interval``) because a walk reads all of /proc;
a new GPU process between walks is attributed at once by following its parents to a job's guard.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import psutil

from gpupair_search.launcher.devices.base import Device, DeviceReading
from gpupair_search.launcher.process import RunningJob

DEFAULT_HZ = 20.0


@dataclass(frozen=True)
class Sample:
    t: float  # seconds since the monitor started
    job_mib: dict[str, float]
    device: DeviceReading
    cpu_pct: dict[str, float] = field(default_factory=dict)
    rss_mib: dict[str, float] = field(default_factory=dict)
    host_cpu_pct: float | None = None  # the whole host, 0-100 over all cores (since the last tree walk)


class Monitor:
    """Samples in a thread until :meth:`stop`. Jobs are tracked by label ("foreground", "background");
    re-tracking a label (a background restart) follows the new process."""

    def __init__(self, device: Device, hz: float = DEFAULT_HZ, tree_interval: float = 0.5) -> None:
        self.device = device
        self.interval = 1.0 / hz
        self.tree_interval = tree_interval
        self.samples: list[Sample] = []
        self.errors: list[str] = []
        self.t0 = time.monotonic()
        self._jobs: dict[str, RunningJob] = {}
        self._pids: dict[str, set[int]] = {}
        self._procs: dict[int, psutil.Process] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="gpupair-monitor", daemon=True)
        self._last_tree = 0.0
        self._cpu: dict[str, float] = {}
        self._rss: dict[str, float] = {}
        self._host_cpu: float | None = None
        self._foreign: set[int] = set()  # listed GPU processes found not to be ours, until the next tree walk
        self._host_times = _busy_and_total()

    def start(self) -> "Monitor":
        self._thread.start()
        return self

    def now(self) -> float:
        return time.monotonic() - self.t0

    def track(self, label: str, job: RunningJob) -> None:
        with self._lock:
            self._jobs[label] = job
            self._pids[label] = set()
            self._last_tree = 0.0

    def latest(self) -> Sample | None:
        return self.samples[-1] if self.samples else None

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)

    def sample_once(self) -> Sample:
        with self._lock:
            jobs = dict(self._jobs)
        now = time.monotonic()
        if now - self._last_tree >= self.tree_interval:
            self._walk_trees(jobs)
            self._last_tree = now
        all_pids = set().union(*self._pids.values()) if self._pids else set()
        # One process listing per tick serves both attribution and memory: it was read twice, and on NVML
        # each listing is two queries (compute and graphics), so 9 NVML calls a tick are now 7.
        listed = self.device.all_process_memory()
        pids = all_pids | self._unattributed(jobs, listed)
        by_pid = self.device.memory_by_pid(pids) if listed is None else {p: listed[p] for p in pids if p in listed}
        job_mib = {label: sum(by_pid.get(pid, 0.0) for pid in self._pids.get(label, ())) for label in jobs}
        try:
            reading = self.device.reading()
        except Exception as exc:  # a failing sensor must not end the pair; it is recorded
            reading = DeviceReading()
            self._note_error(f"device reading failed: {exc}")
        sample = Sample(now - self.t0, job_mib, reading, dict(self._cpu), dict(self._rss), self._host_cpu)
        self.samples.append(sample)
        return sample

    def _unattributed(self, jobs: dict[str, RunningJob], listed: dict[int, float] | None) -> set[int]:
        """GPU processes not yet in any job's set: attribute them by ancestry now, not at the next walk."""
        if listed is None:
            return set()
        known = set().union(*self._pids.values()) if self._pids else set()
        roots = {job.pid: label for label, job in jobs.items()}
        found: set[int] = set()
        for pid in listed:
            if pid in known or pid in self._foreign:
                continue
            try:
                for parent in psutil.Process(pid).parents():
                    if parent.pid in roots:
                        self._pids[roots[parent.pid]].add(pid)
                        found.add(pid)
                        break
                else:  # another user's process, or the emulation's memory hog: not walked again each tick
                    self._foreign.add(pid)
            except psutil.Error:
                continue
        return found

    def _walk_trees(self, jobs: dict[str, RunningJob]) -> None:
        self._foreign.clear()  # a PID can be reused; the walk finds our own processes in any case
        busy, total = _busy_and_total()
        if total > self._host_times[1]:
            self._host_cpu = round(100.0 * (busy - self._host_times[0]) / (total - self._host_times[1]), 1)
            self._host_times = (busy, total)
        for label, job in jobs.items():
            pids = job.process_ids()
            self._pids[label] = pids
            cpu = rss = 0.0
            for pid in pids:
                proc = self._procs.get(pid)
                try:
                    if proc is None:
                        proc = self._procs[pid] = psutil.Process(pid)
                        proc.cpu_percent(None)  # first call primes the counter
                    cpu += proc.cpu_percent(None)
                    rss += proc.memory_info().rss / 2**20
                except psutil.Error:
                    self._procs.pop(pid, None)
            self._cpu[label] = cpu
            self._rss[label] = rss

    def _note_error(self, message: str) -> None:
        if message not in self.errors:
            self.errors.append(message)

    def _loop(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            try:
                self.sample_once()
            except Exception as exc:
                self._note_error(f"sampling failed: {exc}")
            next_at += self.interval
            delay = next_at - time.monotonic()
            if delay < 0:  # fell behind (slow NVML call): do not try to catch up in a burst
                next_at = time.monotonic()
                delay = 0
            self._stop.wait(delay)


def _busy_and_total() -> tuple[float, float]:
    """Host CPU seconds busy and in all, over all cores (our own counter: psutil.cpu_percent's is shared)."""
    times = psutil.cpu_times()
    total = sum(times)
    return total - times.idle - getattr(times, "iowait", 0.0), total
