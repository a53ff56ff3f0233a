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
