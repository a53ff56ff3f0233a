"""The CPU device's memory of a job: each process's RSS, but a forked copy of another of the job's processes (a
DataLoader worker) counts only the pages it alone holds, so pages shared since the fork count once."""

from __future__ import annotations

import subprocess
import sys
import time

import psutil
import pytest

from gpupair_search.launcher.devices.cpu import CpuDevice

#: A parent that touches 300 MiB, then forks two children that write 40 MiB of their own and sleep, and starts one
#: other program (a new Python, which shares none of its pages).
PARENT = """
import os, subprocess, sys, time
held = bytearray(300 * 2**20)
for i in range(0, len(held), 4096):
    held[i] = 1
for _ in range(2):
    if os.fork() == 0:
        own = bytearray(40 * 2**20)
        for i in range(0, len(own), 4096):
            own[i] = 1
        time.sleep(30)
        os._exit(0)
other = subprocess.Popen([sys.executable, "-c", "import time; b = bytearray(60 * 2**20); time.sleep(30)"])
print("ready", flush=True)
time.sleep(30)
"""


@pytest.fixture
def family():
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    assert parent.stdout.readline().strip() == "ready"
    time.sleep(1.0)  # the children have written their own pages
    root = psutil.Process(parent.pid)
    yield root
    for proc in [root, *root.children(recursive=True)]:
        proc.kill()
    parent.wait()


def test_forked_workers_count_their_own_pages_and_another_program_its_rss(family):
    procs = [family, *family.children(recursive=True)]
    pids = {p.pid for p in procs}
    read = CpuDevice().memory_by_pid(pids)
    rss = {p.pid: p.memory_info().rss / 2**20 for p in procs}
    forks = [p.pid for p in procs if p.pid != family.pid and p.cmdline() == family.cmdline()]
    [other] = [p.pid for p in procs if p.pid not in forks and p.pid != family.pid]
    assert len(forks) == 2
    assert read[family.pid] == pytest.approx(rss[family.pid], rel=0.05)  # the parent: its RSS, 300 MiB in it
    for fork in forks:
        assert rss[fork] > 300 and 35 < read[fork] < 80  # the shared 300 MiB are the parent's, once
    assert read[other] == pytest.approx(rss[other], rel=0.05)  # another program shares nothing: its RSS
    assert sum(read.values()) < sum(rss.values()) - 500
