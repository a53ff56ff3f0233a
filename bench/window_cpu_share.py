#!/usr/bin/env python3
"""A window's CPU share two ways, on real processes (CPU only): from the jobs' CPU-seconds counters at the tree
walks, interpolated at the window's edges (what the launcher reports), and as the mean of the samples' per-walk
shares (the older method, which lags by up to one walk, 0.5 s).

One job spins on one core for about 1 s of steady-state window, alone, ``--runs`` times.

    PYTHONPATH=. python3 bench/window_cpu_share.py [--runs 5] [-o window_cpu_share.json]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path

from benchlib import ROOT, stamp, write_json

from gpupair_search.launcher.devices.cpu import CpuDevice
from gpupair_search.launcher.pair_runner import RunOptions, run_pair
from gpupair_search.launcher.registry import Registry
from gpupair_search.launcher.spec import JobConfig, PairSpec

FIXTURES = ROOT / "tests" / "fixtures"


def one_run(registry: Registry, core: int) -> dict:
    job = JobConfig("progress", "spinner", {"spin": 200_000, "steps": 60, "cpu": core, "batch_size": 4})
    options = RunOptions(background_settle_s=0.3, background_min_run_s=1.0, grace_s=1.0)
    result = run_pair(PairSpec(1, job, None), registry, CpuDevice(), options, Path(tempfile.mkdtemp()))
    w = result.window
    inside = [
        s.cpu_pct["foreground"]
        for s in result.samples
        if w.start_t <= s.t <= w.start_t + w.window_s and "foreground" in s.cpu_pct
    ]
    return {
        "window_s": w.window_s,
        "by_counter_pct": w.foreground_cpu_pct,
        "mean_of_walk_shares_pct": round(statistics.mean(inside), 3),
        "host_pct": w.host_cpu_pct,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("-o", "--out", default="window_cpu_share.json")
    args = parser.parse_args()
    registry = Registry.load(FIXTURES / "progress_models.json", base_dir=FIXTURES)
    core = sorted(os.sched_getaffinity(0))[-1]
    runs = [one_run(registry, core) for _ in range(args.runs)]
    for run in runs:
        print(run, flush=True)
    print(f"wrote {write_json(args.out, {**stamp(), 'core': core, 'runs': runs})}")


if __name__ == "__main__":
    main()
