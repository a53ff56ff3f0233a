"""Sampling: one thread per device reads it, and hands each reading to the monitor of every pair on it.

Device memory is read every ``interval`` (default 50 ms: 1 Hz sampling misses short peaks, see
docs/reference/measured.md). Packed trials share the device, so they share its sampler (:class:`DeviceSampler`):
one NVML process query per tick serves every pair, where a monitor each would multiply the queries and
the threads competing for the host's cores (12 monitors of their own reached only 9 Hz). A :class:`Monitor`
is one pair's view: its jobs, its samples. Process trees are walked less often (``tree_interval``), and in a
thread of their own, because a walk reads /proc; a new GPU process between walks is attributed at once by
following its parents.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from dataclasses import dataclass, field

import psutil

from gpupair_search.launcher.devices.base import Device, DeviceReading
from gpupair_search.launcher.process import RunningJob

DEFAULT_HZ = 20.0
SWITCH_INTERVAL_S = 0.001


@dataclass(frozen=True)
class Sample:
    t: float  # seconds since the monitor started
    job_mib: dict[str, float]
    device: DeviceReading
    cpu_pct: dict[str, float] = field(default_factory=dict)
    rss_mib: dict[str, float] = field(default_factory=dict)
    host_cpu_pct: float | None = None  # the whole host, 0-100 over all cores (since the last tree walk)
    #: on the sample just after a tree walk only: each job's CPU seconds so far (a counter that only grows,
    #: what its ended processes used included) and the host's (busy, total) CPU seconds. cpu_pct is the share
    #: over the walk interval *before* the walk, up to tree_interval late; a window's CPU share interpolates
    #: these counters at its edges instead (launcher/window_stats.py).
    cpu_s: dict[str, float] = field(default_factory=dict)
    host_cpu_s: tuple[float, float] | None = None


@dataclass(frozen=True)
class DeviceSnapshot:
    """One read of the device: memory per process (of the pids asked for, or all when it can list them)."""

    at: float  # time.monotonic()
    by_pid: dict[int, float]
    reading: DeviceReading
    lists_all: bool  # by_pid holds every process on the device, ours or not
    error: str | None = None


class DeviceSampler:
    """Reads one device at ``hz`` in one thread, for every attached :class:`Monitor`. Runs while at least one
    monitor is attached."""

    def __init__(self, device: Device, hz: float = DEFAULT_HZ, whole_device: bool = True) -> None:
        self.device = device
        self.interval = 1.0 / hz
        #: read power, energy, utilisation each tick; not for packed trials, whose device is shared (no
        #: pair's figure), so the tick is one NVML process query
        self.whole_device = whole_device
        self._monitors: list[Monitor] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.ticks = 0
        self.passes = 0  # reads of /proc for the process trees
        self._walker: threading.Thread | None = None  # the walk under way, if any: the next starts after it
        self.parent_of: dict[int, int] = {}  # every process's parent at the last walk, and those placed since
        self._unplaced: set[int] = set()  # device processes /proc did not have since the last walk

    @property
    def attached(self) -> int:
        """How many monitors (pairs) it serves now."""
        with self._lock:
            return len(self._monitors)

    def attach(self, monitor: Monitor) -> None:
        with self._lock:
            self._monitors.append(monitor)
            if self._thread is None:
                self._stop.clear()
                # A thread waiting for the interpreter's lock gets it after at most this long (Python's default
                # is 5 ms): each NVML call and each read gives the lock up and must get it back.
                sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL_S))
                self._thread = threading.Thread(target=self._loop, name="gpupair-sampler", daemon=True)
                self._thread.start()

    def detach(self, monitor: Monitor) -> None:
        with self._lock:
            if monitor in self._monitors:
                self._monitors.remove(monitor)
            thread = self._thread if not self._monitors else None
            if thread is not None:
                self._stop.set()
                self._thread = None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5.0)
        walker = self._walker
        if walker is not None and walker is not threading.current_thread():
            walker.join(timeout=5.0)  # a stopped monitor is touched by no walk

    def tick(self) -> None:
        """Read the device once and give the snapshot to every attached monitor; start a walk of the process
        trees when one is due, without waiting for it (:meth:`walk`)."""
        with self._lock:
            monitors = list(self._monitors)
        walker = self._walker
        if (walker is None or not walker.is_alive()) and any(m.tree_due() for m in monitors):
            walker = threading.Thread(target=self.walk, args=(monitors,), name="gpupair-trees", daemon=True)
            walker.start()
            self._walker = walker  # only once started: detach() joins it from another thread
        snapshot = self.read({pid for m in monitors for pid in m.known_pids()})
        parent_of = self._place(snapshot)
        for monitor in monitors:
            monitor.record(snapshot, parent_of)
        self.ticks += 1

    def walk(self, monitors: list[Monitor]) -> None:
        """One read of /proc for every pair, and their process trees from it, in the walker thread. A walk makes
        hundreds of system calls, each of which gives up the interpreter's lock and waits to get it back behind
        the runner's other threads, so in the tick it delayed the device's reads (bench/sampler_gil.py). The pairs more
        than halfway to their next walk are walked with the one that is due, so that within a walk or two all
        walk together."""
        try:
            children = children_by_parent()
            self.passes += 1
            self.parent_of = {child: parent for parent, kids in children.items() for child in kids}
            self._unplaced = set()
            for monitor in monitors:
                if monitor.tree_due(ahead=monitor.tree_interval / 2):
                    monitor.refresh_trees(children, force=True)
        except Exception as exc:  # noqa: BLE001 - recorded on each monitor, sampling goes on
            for monitor in monitors:
                monitor.note_error(f"walking process trees failed: {exc}")

    def _place(self, snapshot: DeviceSnapshot) -> dict[int, int]:
        """The last walk's parent map, with every device process it lacks (one started since) looked up once, for
        every pair at once. Each pair looking up each new process itself made one tick as long as many (psutil's
        lookups, each system call waiting for the interpreter's lock behind the runner's busy threads;
        bench/tick_gaps.py); here it is one read of /proc per process, kept until the next walk."""
        parent_of = self.parent_of
        new = [pid for pid in snapshot.by_pid if pid not in parent_of and pid not in self._unplaced]
        if not snapshot.lists_all or not new:
            return parent_of
        parent_of = with_parents(new, parent_of)
        self._unplaced.update(pid for pid in new if pid not in parent_of)
        self.parent_of = parent_of  # a walk that ended meanwhile is overwritten by the older map: the next one mends it
        return parent_of

    def read(self, pids: set[int]) -> DeviceSnapshot:
        listed = self.device.all_process_memory()
        by_pid = listed if listed is not None else self.device.memory_by_pid(pids)
        error = None
        if not self.whole_device:
            return DeviceSnapshot(time.monotonic(), by_pid, DeviceReading(), listed is not None)
        try:
            reading = self.device.reading()
        except Exception as exc:  # noqa: BLE001 - a failing sensor must not end the pair; it is recorded
            reading, error = DeviceReading(), f"device reading failed: {exc}"
        return DeviceSnapshot(time.monotonic(), by_pid, reading, listed is not None, error)

    def _loop(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception as exc:  # noqa: BLE001 - recorded on each monitor, sampling goes on
                with self._lock:
                    for monitor in self._monitors:
                        monitor.note_error(f"sampling failed: {exc}")
            next_at += self.interval
            delay = next_at - time.monotonic()
            # A tick a little late (under one interval) is made up by the next one starting at once, so the rate
            # holds (when every late tick reset the schedule, packed runs fell short of the rate asked for).
            # Further behind (a stalled NVML call): start the schedule again, no burst.
            if delay < -self.interval:
                next_at, delay = time.monotonic(), 0.0
            self._stop.wait(max(delay, 0.0))


def children_by_parent() -> dict[int, list[int]]:
    """Every process of the host, by parent pid: one pass over /proc, reading each ``/proc/PID/stat`` directly.
    psutil's ``process_iter`` did the same at several times the CPU (bench/sampler_cost.py)."""
    children: dict[int, list[int]] = {}
    if not os.path.isdir("/proc"):  # not Linux: psutil knows the system's own way
        for proc in psutil.process_iter(["ppid"]):
            children.setdefault(proc.info["ppid"], []).append(proc.pid)
        return children
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        ppid = parent_pid(int(entry.name))
        if ppid is not None:  # else it ended between the listing and the read
            children.setdefault(ppid, []).append(int(entry.name))
    return children


def parent_pid(pid: int) -> int | None:
    """``pid``'s parent from ``/proc/PID/stat`` (one read), or None when there is no such process (or no /proc)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return None
    # "PID (COMM) STATE PPID ...": COMM may hold spaces and parentheses, so split after its last ")"
    return int(stat[stat.rindex(b")") + 2 :].split(b" ", 2)[1])


def with_parents(pids: list[int], parent_of: dict[int, int]) -> dict[int, int]:
    """A copy of ``parent_of`` in which each of ``pids`` that exists has its line of parents, read from /proc up to
    the first process the map already has."""
    placed = dict(parent_of)
    for pid in pids:
        while pid > 1 and pid not in placed and (ppid := parent_pid(pid)) is not None:
            placed[pid] = ppid
            pid = ppid
    return placed


def _ancestors(pid: int, parent_of: dict[int, int]) -> list[int]:
    """``pid``'s parent, its parent's parent and so on, as ``parent_of`` has them (nearest first)."""
    found: list[int] = []
    while (pid := parent_of.get(pid, 0)) > 0 and pid not in found:
        found.append(pid)
    return found


def descendants(pid: int, children: dict[int, list[int]]) -> set[int]:
    """``pid``'s descendants in ``children`` (``pid`` itself excluded, like ``Process.children(recursive=True)``)."""
    found: set[int] = set()
    stack = list(children.get(pid, ()))
    while stack:
        child = stack.pop()
        if child not in found:
            found.add(child)
            stack.extend(children.get(child, ()))
    return found


class Monitor:
    """One pair's samples, from ``sampler`` (shared by packed pairs) or from a sampler of its own at ``hz``.
    Jobs are tracked by label ("foreground", "background"); re-tracking a label (a background restart)
    follows the new process. Samples are taken from :meth:`start` to :meth:`stop`."""

    def __init__(
        self, device: Device, hz: float = DEFAULT_HZ, tree_interval: float = 0.5, sampler: DeviceSampler | None = None
    ) -> None:
        self.device = device
        self.sampler = sampler or DeviceSampler(device, hz)
        self.tree_interval = tree_interval
        self.samples: list[Sample] = []
        self.errors: list[str] = []
        self.t0 = time.monotonic()
        self._jobs: dict[str, RunningJob] = {}
        self._pids: dict[str, set[int]] = {}
        self._procs: dict[int, tuple[psutil.Process, float, float]] = {}  # pid -> (process, CPU s, at)
        self._lock = threading.Lock()
        self._last_tree = 0.0
        self._cpu: dict[str, float] = {}
        self._rss: dict[str, float] = {}
        self._not_ours: set[int] = set()  # device processes seen that descend from none of our jobs
        self._seen: set[str] = set()  # labels whose current job has shown a process (then walks are at 2 Hz)
        self._host_cpu: float | None = None
        self._host_times = _busy_and_total()
        self._walked: dict[str, set[int]] = {}  # each label's pids at the last walk (sampler thread only)
        self._ended_s: dict[str, float] = {}  # CPU seconds of a label's processes that have left its tree
        self._counters: tuple[dict[str, float], tuple[float, float]] | None = None  # from a walk, not yet recorded

    def start(self) -> Monitor:
        self.t0 = time.monotonic()
        self.sampler.attach(self)
        return self

    def stop(self) -> None:
        self.sampler.detach(self)

    def now(self) -> float:
        return time.monotonic() - self.t0

    def track(self, label: str, job: RunningJob) -> None:
        with self._lock:
            self._jobs[label] = job
            self._pids[label] = set()
            self._seen.discard(label)
            self._last_tree = 0.0
            self._not_ours.clear()

    def saw(self, label: str) -> bool:
        """Whether a process of ``label``'s current job was ever found (by a walk, or on the device)."""
        with self._lock:
            return label in self._seen or bool(self._pids.get(label))

    def latest(self) -> Sample | None:
        return self.samples[-1] if self.samples else None

    def sample_once(self) -> Sample:
        """Take one sample now, outside the sampling thread."""
        self.refresh_trees()
        self.record(self.sampler.read(self.known_pids()))
        return self.samples[-1]

    # -- called by the sampler ---------------------------------------------------------------------
    def known_pids(self) -> set[int]:
        with self._lock:
            return set().union(*self._pids.values()) if self._pids else set()

    def tree_due(self, ahead: float = 0.0) -> bool:
        """A walk every ``tree_interval`` (due ``ahead`` seconds from now), and on every tick while a tracked job has
        no process found yet: a job's first CPU figure must not wait half a second after it started (a short window
        would read idle)."""
        if time.monotonic() + ahead - self._last_tree >= self.tree_interval:
            return True
        with self._lock:
            return any(label not in self._seen for label in self._jobs)

    def refresh_trees(self, children: dict[int, list[int]] | None = None, force: bool = False) -> None:
        """Walk each job's process tree (in ``children``, a parent -> children map of the host, when given)
        for its pids, CPU share and host memory; when a walk is due, or ``force``."""
        if not (force or self.tree_due()):
            return
        now = time.monotonic()
        busy, total = _busy_and_total()
        if total > self._host_times[1]:
            self._host_cpu = round(100.0 * (busy - self._host_times[0]) / (total - self._host_times[1]), 1)
            self._host_times = (busy, total)
        with self._lock:
            jobs = dict(self._jobs)
        cpu_s: dict[str, float] = {}
        for label, job in jobs.items():
            pids = job.process_ids() if children is None else descendants(job.pid, children)
            for pid in self._walked.get(label, set()) - pids:  # ended, or an earlier run's: keep what it used
                self._leave(label, pid)
            cpu = rss = live_s = 0.0
            for pid in pids:
                try:
                    cpu += self._cpu_pct(pid)
                    live_s += self._procs[pid][1]
                    rss += self._procs[pid][0].memory_info().rss / 2**20
                except psutil.Error:
                    self._leave(label, pid)
            self._walked[label] = pids
            with self._lock:
                if self._jobs.get(label) is job:
                    self._pids[label] = pids
                    if pids:
                        self._seen.add(label)
            self._cpu[label], self._rss[label] = cpu, rss
            cpu_s[label] = self._ended_s.get(label, 0.0) + live_s
        with self._lock:  # the walk runs in the walker thread, record() in the sampler's
            self._counters = (cpu_s, (busy, total))
        self._last_tree = now

    def _leave(self, label: str, pid: int) -> None:
        """``pid`` is no longer in ``label``'s tree: its CPU seconds stay in the label's counter."""
        known = self._procs.pop(pid, None)
        if known is not None:
            self._ended_s[label] = self._ended_s.get(label, 0.0) + known[1]

    def _cpu_pct(self, pid: int) -> float:
        """The process's CPU share (100 = one core) since the last walk; a process seen for the first time, since
        it started. psutil's cpu_percent says 0 on its first call, so a job younger than two walks (a short
        solo window on a loaded host) would read as idle."""
        known = self._procs.get(pid)
        proc = known[0] if known else psutil.Process(pid)
        times = proc.cpu_times()
        busy, now = times.user + times.system, time.time()
        since_busy, since = (known[1], known[2]) if known else (0.0, proc.create_time())
        self._procs[pid] = (proc, busy, now)
        return 100.0 * (busy - since_busy) / (now - since) if now > since else 0.0

    def record(self, snapshot: DeviceSnapshot, parent_of: dict[int, int] | None = None) -> None:
        with self._lock:
            jobs = dict(self._jobs)
        if snapshot.lists_all:
            self._attribute_new(snapshot.by_pid, jobs, parent_of)
        with self._lock:
            pids = {label: set(self._pids.get(label, ())) for label in jobs}
        job_mib = {label: sum(snapshot.by_pid.get(pid, 0.0) for pid in pids[label]) for label in jobs}
        if snapshot.error:
            self.note_error(snapshot.error)
        with self._lock:
            counters, self._counters = self._counters, None
        cpu_s, host_cpu_s = counters if counters is not None else ({}, None)
        self.samples.append(
            Sample(
                snapshot.at - self.t0,
                job_mib,
                snapshot.reading,
                dict(self._cpu),
                dict(self._rss),
                self._host_cpu,
                cpu_s,
                host_cpu_s,
            )
        )

    def _attribute_new(
        self, listed: dict[int, float], jobs: dict[str, RunningJob], parent_of: dict[int, int] | None = None
    ) -> None:
        """Device processes not yet in a job's set: attribute them by ancestry now, not at the next walk.
        One that descends from none of this pair's jobs (another packed pair's) is not walked again.
        ``parent_of``: the host's parent map, from the sampler (the last walk's, with the processes started since:
        :meth:`DeviceSampler._place`); without it, /proc is read here."""
        known = self.known_pids()
        roots = {job.pid: label for label, job in jobs.items()}
        self._not_ours &= set(listed)
        new = [pid for pid in listed if pid not in known and pid not in self._not_ours]
        if parent_of is None:
            parent_of = with_parents(new, {})
        for pid in new:
            if pid not in parent_of:
                continue  # /proc does not have it (it ended, or lives in another pid namespace)
            parents = _ancestors(pid, parent_of)
            label = next((roots[p] for p in parents if p in roots), None)
            if label is None:
                self._not_ours.add(pid)
                continue
            with self._lock:
                self._pids[label].add(pid)

    def note_error(self, message: str) -> None:
        if message not in self.errors:
            self.errors.append(message)


def _busy_and_total() -> tuple[float, float]:
    """Host CPU seconds busy and in all, over all cores (our own counter: psutil.cpu_percent's is shared)."""
    times = psutil.cpu_times()
    total = sum(times)
    return total - times.idle - getattr(times, "iowait", 0.0), total
