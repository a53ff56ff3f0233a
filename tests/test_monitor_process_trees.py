"""The monitor's walk of a job's process tree: its own read of /proc gives what psutil gives, on real processes."""

from __future__ import annotations

import subprocess
import sys

import psutil

from gpupair_search.launcher.monitor import children_by_parent, descendants
from tests.conftest import wait_until

# A parent whose own child sleeps, under a name with spaces and parentheses (which /proc/PID/stat shows as is).
CHILD = "open('/proc/self/comm', 'w').write('job) (1 2'); print('named', flush=True); import time; time.sleep(60)"
TREE = f"""
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", {CHILD!r}], stdout=subprocess.PIPE, text=True)
child.stdout.readline()
print(child.pid, flush=True)
time.sleep(60)
"""


def test_a_job_tree_read_from_proc_is_the_tree_psutil_sees():
    parent = subprocess.Popen([sys.executable, "-c", TREE], stdout=subprocess.PIPE, text=True)
    try:
        child = int(parent.stdout.readline())
        wait_until(lambda: psutil.pid_exists(child), timeout=10)
        children = children_by_parent()
        assert psutil.Process(child).name() == "job) (1 2"
        assert children[parent.pid] == [child]
        assert descendants(parent.pid, children) == {child}
        assert {p.pid for p in psutil.Process(parent.pid).children(recursive=True)} == {child}
        assert psutil.Process().pid in children[psutil.Process().ppid()]  # this process, under its own parent
    finally:
        for proc in psutil.Process(parent.pid).children(recursive=True):
            proc.kill()
        parent.kill()
        parent.wait()


def test_packed_pairs_share_one_read_of_proc_per_tree_interval(tmp_path):
    """Pairs started at different times each walk their trees every tree_interval (0.5 s); one sampler serves them
    with one pass over /proc per interval, not one per pair: their walks fall on the same ticks."""
    import time

    from gpupair_search.launcher.devices.cpu import CpuDevice
    from gpupair_search.launcher.monitor import DeviceSampler, Monitor
    from gpupair_search.launcher.process import start_job
    from gpupair_search.launcher.registry import Command

    device = CpuDevice(None)
    sampler = DeviceSampler(device, hz=20)
    monitors, jobs = [], []
    try:
        for k in range(5):  # five pairs, 0.1 s apart: five walk schedules
            job = start_job(
                "foreground",
                Command((sys.executable, "-c", "import time; time.sleep(60)"), tmp_path),
                tmp_path / f"{k}.log",
                {},
                grace=1.0,
            )
            monitor = Monitor(device, sampler=sampler)
            monitor.track("foreground", job)
            monitors.append(monitor.start())
            jobs.append(job)
            time.sleep(0.1)
        assert wait_until(lambda: all(any(s.cpu_s for s in m.samples) for m in monitors), timeout=10)  # all walked
        time.sleep(1.0)
        passes, ticks = sampler.passes, sampler.ticks
        time.sleep(2.0)
        passes, ticks = sampler.passes - passes, sampler.ticks - ticks
        assert ticks >= 10 and passes <= ticks / 10 * 2 + 2, (passes, ticks)  # at most one pass in 0.5 s, and slack
        assert all(m.samples[-1].t - m.samples[0].t > 2.5 for m in monitors)  # every pair still sampled throughout
    finally:
        for monitor in monitors:
            monitor.stop()
        for job in jobs:
            job.stop(1.0)


def test_a_device_process_is_attributed_from_the_last_walks_parent_map_without_asking_proc(tmp_path):
    """Packed pairs see each other's GPU processes; each new one was looked up in /proc by every pair on the next
    tick. The walk's parent map answers instead: here for a pid that /proc does not have at all, which only the
    map can place under the job."""
    import os
    import time

    from gpupair_search.launcher.devices.base import DeviceReading
    from gpupair_search.launcher.devices.cpu import CpuDevice
    from gpupair_search.launcher.monitor import DeviceSnapshot, Monitor
    from gpupair_search.launcher.process import start_job
    from gpupair_search.launcher.registry import Command

    job = start_job(
        "foreground",
        Command((sys.executable, "-c", "import time; time.sleep(60)"), tmp_path),
        tmp_path / "job.log",
        {},
        grace=1.0,
    )
    gone = 4_000_000  # above any pid_max: no such process
    try:
        monitor = Monitor(CpuDevice(None))
        monitor.track("foreground", job)
        listed = {gone: 300.0, gone + 1: 500.0}  # ours (by the map), and another pair's
        snapshot = DeviceSnapshot(time.monotonic(), listed, DeviceReading(), lists_all=True)
        monitor.record(snapshot, parent_of={gone: job.pid, job.pid: os.getpid(), gone + 1: os.getpid()})
        assert monitor.samples[-1].job_mib == {"foreground": 300.0}
        monitor.record(snapshot)  # without the map, /proc is asked: it has neither, so nothing new is attributed
        assert monitor.samples[-1].job_mib == {"foreground": 300.0}  # what was attributed stays
    finally:
        job.stop(1.0)


def test_a_process_started_since_the_last_walk_is_looked_up_once_for_every_pair(tmp_path, monkeypatch):
    """Jobs starting under many packed pairs made one tick as long as many when each pair looked every new process
    up itself. The sampler places a process the last walk did not see with one read of /proc, up to the first parent
    the walk knew, and every pair attributes it from that map."""
    import os
    import time

    from gpupair_search.launcher import monitor as monitor_module
    from gpupair_search.launcher.devices.base import DeviceReading
    from gpupair_search.launcher.devices.cpu import CpuDevice
    from gpupair_search.launcher.monitor import DeviceSampler, DeviceSnapshot, Monitor
    from gpupair_search.launcher.process import start_job
    from gpupair_search.launcher.registry import Command

    reads: list[int] = []
    real = monitor_module.parent_pid
    monkeypatch.setattr(monitor_module, "parent_pid", lambda pid: reads.append(pid) or real(pid))
    script = tmp_path / "tree.py"
    script.write_text(TREE)
    jobs = [
        start_job(label, Command((sys.executable, str(script)), tmp_path), tmp_path / f"{label}.log", {}, grace=1.0)
        for label in ("foreground", "background")
    ]
    try:
        assert wait_until(
            lambda: all((tmp_path / f"{label}.log").read_text().strip() for label in ("foreground", "background")),
            timeout=20,
        )
        child = int((tmp_path / "foreground.log").read_text().split()[-1])
        device = CpuDevice(None)
        sampler = DeviceSampler(device)
        sampler.parent_of = {p.pid: p.ppid() for p in psutil.process_iter() if p.pid != child}  # a walk before it
        snapshot = DeviceSnapshot(time.monotonic(), {child: 300.0}, DeviceReading(), lists_all=True)
        placed = sampler._place(snapshot)
        assert placed[child] == psutil.Process(child).ppid() and reads == [child]  # one read: its parent was known
        monitors = [Monitor(device, sampler=sampler) for _ in range(6)]
        monitors[0].track("foreground", jobs[0])
        for other in monitors[1:]:
            other.track("background", jobs[1])
        for monitor in monitors:
            monitor.record(snapshot, sampler._place(snapshot))
        assert reads == [child]  # the pairs read nothing more, and neither did the next tick
        assert monitors[0].samples[-1].job_mib == {"foreground": 300.0}
        assert all(m.samples[-1].job_mib == {"background": 0.0} for m in monitors[1:])
        assert os.getpid() in placed  # the walk's map is kept, not replaced
    finally:
        for job in jobs:
            job.stop(1.0)
