#!/usr/bin/env python3
"""A second NVML sampler in a process of its own, beside a runner: when the runner's sampler misses ticks, did
this one miss them too (the host or NVML), or not (the runner's own interpreter)?

    python3 bench/nvml_witness.py --device 0 -o witness.json &   # then run the study; SIGTERM writes the file

It keeps the runner's schedule (``launcher/monitor.py``: a tick every 50 ms, a late tick made up at once, the
schedule restarted when more than a tick behind) and makes the packed tick's one call, the compute-process list.
Per tick it records when it began and how long the NVML call took, on ``time.monotonic()``, the clock of the
runner's samples (CLOCK_MONOTONIC, one per host). Twice a second it reads the host's CPU use (/proc/stat) and CPU
pressure (/proc/pressure/cpu, where the kernel has it). It imports nothing of this project.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path

import pynvml

INTERVAL_S = 0.05
HOST_EVERY_S = 0.5


def host_cpu() -> tuple[float, float]:
    """(busy, total) jiffies over all cores."""
    fields = [float(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)
    return sum(fields) - idle, sum(fields)


def cpu_pressure() -> float | None:
    """The share of the last 10 s in which some runnable task waited for a core (%), or None."""
    try:
        line = Path("/proc/pressure/cpu").read_text().split("\n", 1)[0]
    except OSError:
        return None
    return float(dict(kv.split("=") for kv in line.split()[1:])["avg10"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", type=int, default=0, help="NVML index")
    parser.add_argument("-o", "--out", type=Path, required=True)
    parser.add_argument("--seconds", type=float, default=600.0, help="stop after this long at most")
    args = parser.parse_args()
    pynvml.nvmlInit()
    handle = pynvml.nvmlDeviceGetHandleByIndex(args.device)
    ticks: list[tuple[float, float, int]] = []  # (start, NVML call ms, processes listed)
    host: list[tuple[float, float, float | None]] = []  # (at, busy % over all cores since the last, pressure)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    began = next_at = time.monotonic()
    last_host, last_cpu = began, host_cpu()
    while not stop and time.monotonic() - began < args.seconds:
        start = time.monotonic()
        procs = pynvml.nvmlDeviceGetComputeRunningProcesses(handle)
        ticks.append((start, 1000 * (time.monotonic() - start), len(procs)))
        if start - last_host >= HOST_EVERY_S:
            cpu = host_cpu()
            share = 100 * (cpu[0] - last_cpu[0]) / (cpu[1] - last_cpu[1]) if cpu[1] > last_cpu[1] else 0.0
            host.append((start, round(share, 1), cpu_pressure()))
            last_host, last_cpu = start, cpu
        next_at += INTERVAL_S
        delay = next_at - time.monotonic()
        if delay < -INTERVAL_S:
            next_at, delay = time.monotonic(), 0.0
        if delay > 0:
            time.sleep(delay)
    args.out.write_text(
        json.dumps(
            {
                "interval_s": INTERVAL_S,
                "ticks": [[round(t, 4), round(ms, 2), n] for t, ms, n in ticks],
                "host": [[round(t, 3), share, psi] for t, share, psi in host],
            }
        )
        + "\n"
    )
    print(f"{len(ticks)} ticks in {time.monotonic() - began:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
