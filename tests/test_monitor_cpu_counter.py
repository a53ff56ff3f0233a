"""A job's CPU-seconds counter, on real processes: what a process used stays counted after it has left the tree."""

from __future__ import annotations

import os
import sys
import time

from gpupair_search.launcher.devices.cpu import CpuDevice
from gpupair_search.launcher.monitor import Monitor
from gpupair_search.launcher.process import start_job
from gpupair_search.launcher.registry import Command

# The job's child burns 1.2 s of CPU (CPU time, not wall time, so a loaded host only makes it slower), exits;
# then the job sleeps. Walks every 0.5 s see the child alive at least once.
JOB = """
import subprocess, sys, time
subprocess.run([sys.executable, "-c", "import time\\nwhile time.process_time() < 1.2: pass"])
print("child done", flush=True)
time.sleep(30)
"""


def test_the_cpu_a_child_used_stays_in_its_jobs_counter_after_it_ended(tmp_path):
    job = start_job(
        "foreground", Command((sys.executable, "-c", JOB), tmp_path), tmp_path / "job.log", dict(os.environ)
    )
    monitor = Monitor(CpuDevice()).start()
    monitor.track("foreground", job)
    try:
        deadline = time.monotonic() + 60
        while "child done" not in (tmp_path / "job.log").read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.2)  # two more walks after the child ended
    finally:
        monitor.stop()
        job.popen.terminate()
        job.popen.wait(timeout=10)
    counters = [s.cpu_s["foreground"] for s in monitor.samples if "foreground" in s.cpu_s]
    assert counters == sorted(counters)  # a counter: it never goes back
    assert counters[-1] >= 1.0  # the child's 1.2 s, counted while it lived and kept after it ended
