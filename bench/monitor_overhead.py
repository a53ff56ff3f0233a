#!/usr/bin/env python3
"""Monitor overhead: a workload's own samples/s with and without our monitor at its default rate.

Runs alternate (without, with, without, with, ...) so drift hits both sides alike; the ratio of medians
is the overhead. Usage (GPU machine): python bench/monitor_overhead.py
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from benchlib import last_float, open_device, one_epoch_probe, registry, stamp, write_json

from launcher.monitor import DEFAULT_HZ, Monitor
from launcher.process import start_job


def one_run(job, reg, device, monitored: bool) -> float | None:
    env = {**os.environ, **device.job_env(), "PYTHONUNBUFFERED": "1"}
    log = Path(tempfile.mkdtemp()) / "run.log"
    monitor = Monitor(device, hz=DEFAULT_HZ) if monitored else None
    running = start_job("foreground", reg.command(job), log, env)
    if monitor:
        monitor.start()
        monitor.track("foreground", running)
    while running.poll() is None:
        time.sleep(0.05)
    if monitor:
        monitor.stop()
    return last_float(r"samples_per_second=([\d.]+)", log.read_text())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workloads", default="pytorch_resnet_cifar10/resnet20,examples/mnist")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda:0", help="cuda:N, or cpu (workloads then train on the CPU)")
    args = parser.parse_args()
    reg, device = registry(), open_device(args.device)
    rows = []
    for key in args.workloads.split(","):
        job = one_epoch_probe(reg, key, args.steps)
        without, with_ = [], []
        for _ in range(args.repeats):
            without.append(one_run(job, reg, device, False))
            with_.append(one_run(job, reg, device, True))
        a, b = statistics.median(without), statistics.median(with_)
        rows.append({"workload": key, "samples_per_s_without": without, "samples_per_s_with": with_,
                     "median_without": a, "median_with": b, "slowdown_pct": round(100 * (a - b) / a, 2)})
        print(rows[-1], flush=True)
    write_json(f"monitor_overhead_{args.device.replace(':', '')}.json", {**stamp(), "device": device.describe(), "monitor_hz": DEFAULT_HZ,
                                         "rows": rows})


if __name__ == "__main__":
    main()
