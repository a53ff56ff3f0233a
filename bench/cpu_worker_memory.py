"""What the CPU device reads for a job with DataLoader workers, against two other ways to add up its processes.

Runs the lab trainer of tests/fixtures/user_repo (``evalheavy``: its evaluation holds a 256 MiB cache) for a
short epoch with 0, 2 and 4 DataLoader workers, and samples its process tree at 20 Hz with three sums:

* ``rss_sum``: each process's RSS, as the CPU device summed before: a forked worker counts the trainer's pages
  again, for as long as it lives;
* ``device``: what :class:`CpuDevice` reads now (RSS, but a forked copy counts its own pages only, its USS);
* ``pss_sum``: the kernel's proportional share, each shared page split among the processes that map it: the
  reference for "what the job holds", since the job's pages are shared only within the job here.

Prints the peak of each and the ratios to ``pss_sum``; writes cpu_worker_memory.json under $OUT.

    python3 bench/cpu_worker_memory.py
"""

from __future__ import annotations

import subprocess
import sys
import time

import psutil
from benchlib import ROOT, stamp, write_json

from gpupair_search.launcher.devices.cpu import CpuDevice

TRAINER = ROOT / "tests" / "fixtures" / "user_repo" / "trainer.py"


def tree(root: psutil.Process) -> list[psutil.Process]:
    try:
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def peaks(workers: int) -> dict[str, float]:
    argv = [sys.executable, str(TRAINER), "--model", "evalheavy", "--device", "cpu", "--epochs", "1"]
    argv += ["--train-batches", "300", "--workers", str(workers)]
    job = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
    root, device = psutil.Process(job.pid), CpuDevice()
    best = {"rss_sum": 0.0, "device": 0.0, "pss_sum": 0.0}
    started = time.monotonic()
    while job.poll() is None:
        procs = tree(root)
        try:
            rss = sum(p.memory_info().rss for p in procs) / 2**20
            pss = sum(p.memory_full_info().pss for p in procs) / 2**20
        except psutil.Error:  # a worker ended between the walk and the read
            continue
        ours = sum(device.memory_by_pid({p.pid for p in procs}).values())
        for name, value in (("rss_sum", rss), ("device", ours), ("pss_sum", pss)):
            best[name] = max(best[name], value)
        time.sleep(0.05)
    return {**{k: round(v, 1) for k, v in best.items()}, "wall_s": round(time.monotonic() - started, 1)}


def main() -> None:
    rows = {}
    for workers in (0, 2, 4):
        row = peaks(workers)
        row["rss_sum_over_pss"] = round(row["rss_sum"] / row["pss_sum"], 3)
        row["device_over_pss"] = round(row["device"] / row["pss_sum"], 3)
        rows[f"workers={workers}"] = row
        print(f"workers={workers}: {row}", flush=True)
    path = write_json("cpu_worker_memory.json", {**stamp(), "host": CpuDevice().name, "peaks_mib": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
