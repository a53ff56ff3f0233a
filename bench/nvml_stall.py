#!/usr/bin/env python3
"""Does NVML's per-process memory query stall while other processes create or drop their CUDA contexts?

    python3 bench/nvml_stall.py [--seconds 30] [--parallel 4] -o nvml_stall.json

The packed sampler's one call per tick (``nvmlDeviceGetComputeRunningProcesses``) is timed at 20 Hz, first for
``--idle-s`` with nothing else on the GPU, then while ``--parallel`` child processes at a time each import torch,
create a CUDA context (one small tensor), hold it 0.5 s and exit. Each child stamps, on the host's monotonic clock,
when its context creation began and ended and when it began to exit, so each query is placed: during a context's
creation, during a process's exit (0.5 s from its stamp), or neither. Written: each class's query times
(median, 90th and 99th percentile, max, count over 30 ms).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from statistics import median, quantiles

import pynvml

CHILD = """
import sys, time, torch
print("create", time.monotonic(), flush=True)
torch.zeros(1, device="cuda"); torch.cuda.synchronize()
print("created", time.monotonic(), flush=True)
time.sleep(0.5)
print("exit", time.monotonic(), flush=True)
"""
EXIT_WINDOW_S = 0.5


def stats(ms: list[float]) -> dict:
    if not ms:
        return {"count": 0}
    q = quantiles(ms, n=100) if len(ms) > 1 else [ms[0]] * 99
    return {
        "count": len(ms),
        "median_ms": round(median(ms), 2),
        "p90_ms": round(q[89], 2),
        "p99_ms": round(q[98], 2),
        "max_ms": round(max(ms), 2),
        "over_30_ms": sum(m > 30 for m in ms),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", type=int, default=0, help="NVML index")
    parser.add_argument("--idle-s", type=float, default=5.0)
    parser.add_argument("--seconds", type=float, default=30.0, help="how long children are started")
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("-o", "--out", type=Path, required=True)
    args = parser.parse_args()
    pynvml.nvmlInit()
    handle = pynvml.nvmlDeviceGetHandleByIndex(args.device)
    reads: list[tuple[float, float]] = []  # (start, ms)

    def query_until(end: float, children: list[subprocess.Popen] | None = None) -> None:
        next_at = time.monotonic()
        while time.monotonic() < end:
            start = time.monotonic()
            pynvml.nvmlDeviceGetComputeRunningProcesses(handle)
            reads.append((start, 1000 * (time.monotonic() - start)))
            if children is not None:
                refill(children)
            next_at = max(next_at + 0.05, time.monotonic())
            time.sleep(max(next_at - time.monotonic(), 0.0))

    outputs: list[str] = []

    def refill(children: list[subprocess.Popen]) -> None:
        for child in [c for c in children if c.poll() is not None]:
            outputs.append(child.stdout.read())
            children.remove(child)
        while len(children) < args.parallel and time.monotonic() < stop_starting:
            children.append(subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True))

    query_until(time.monotonic() + args.idle_s)
    idle_end = time.monotonic()
    stop_starting = idle_end + args.seconds
    children: list[subprocess.Popen] = []
    refill(children)
    query_until(stop_starting, children)
    for child in children:
        outputs.append(child.communicate(timeout=60)[0])
    creating, exiting = [], []
    for text in outputs:
        stamps = dict((line.split()[0], float(line.split()[1])) for line in text.splitlines() if line.strip())
        if "create" in stamps and "created" in stamps:
            creating.append((stamps["create"], stamps["created"]))
        if "exit" in stamps:
            exiting.append((stamps["exit"], stamps["exit"] + EXIT_WINDOW_S))

    def during(windows, start, ms):
        return any(a <= start + ms / 1000 and start <= b for a, b in windows)

    classes: dict[str, list[float]] = {"idle": [], "context_creating": [], "process_exiting": [], "neither": []}
    for start, ms in reads:
        if start < idle_end:
            classes["idle"].append(ms)
        elif during(creating, start, ms):
            classes["context_creating"].append(ms)
        elif during(exiting, start, ms):
            classes["process_exiting"].append(ms)
        else:
            classes["neither"].append(ms)
    report = {
        "card": pynvml.nvmlDeviceGetName(handle),
        "driver": pynvml.nvmlSystemGetDriverVersion(),
        "children": len(outputs),
        "contexts_created": len(creating),
        "context_creation_s_median": round(median(b - a for a, b in creating), 3) if creating else None,
        "query_ms": {name: stats(ms) for name, ms in classes.items()},
    }
    args.out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
