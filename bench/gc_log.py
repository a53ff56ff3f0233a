#!/usr/bin/env python3
"""Run a gpupair-search command in this process with every garbage collection timed: does the runner's
interpreter stop long enough to cost the sampler its 50 ms ticks? (A full collection with the matrix's trials
loaded three times over took 45.6 ms on the project's 2-core host.)

    python3 bench/gc_log.py -o gc.json -- run --study matrix --parallel auto --results /tmp/matrix
    python3 bench/gc_log.py --without-freeze -o gc.json -- run ...   # as before the runner froze after each pair
    python3 bench/gc_log.py -o gc.json --ticks ticks.json -- run ...  # and every sampler tick timed

``--ticks``: for every tick of every device sampler (launcher/monitor.py), when it began, how long the device read
took (the NVML call, with getting the interpreter's lock back after it) and the whole tick, and how many pairs it
served; with bench/nvml_witness.py beside it, a missed tick is placed on the runner's interpreter, NVML or the host.

Writes, when the command ends: the collections per generation, their total and longest pause, and every pause
of 10 ms or more with its ``time.monotonic()`` (the clock of the samples' and the jobs' progress stamps).
"""

from __future__ import annotations

import argparse
import atexit
import gc
import json
import runpy
import sys
import time
from pathlib import Path

LONG_MS = 10.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--out", type=Path, required=True)
    parser.add_argument(
        "--without-freeze",
        action="store_true",
        help="make gc.freeze() do nothing (search/engine/executors.py freezes after each pair)",
    )
    parser.add_argument("--ticks", type=Path, help="also time every sampler tick, written here")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the gpupair-search arguments")
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    pauses: list[tuple[float, int, float]] = []
    started: list[float] = []

    def timed(phase: str, info: dict) -> None:
        if phase == "start":
            started.append(time.perf_counter())
        elif started:
            pauses.append((time.monotonic(), info["generation"], 1000 * (time.perf_counter() - started.pop())))

    def write() -> None:
        by_gen = {g: [ms for _, gen, ms in pauses if gen == g] for g in (0, 1, 2)}
        args.out.write_text(
            json.dumps(
                {
                    "command": command,
                    "frozen_after_each_pair": not args.without_freeze,
                    "collections": {
                        str(g): {"count": len(v), "total_ms": round(sum(v), 1), "max_ms": round(max(v, default=0), 1)}
                        for g, v in by_gen.items()
                    },
                    "freezes": len(freezes),
                    "first_freeze": round(freezes[0], 3) if freezes else None,
                    f"pauses_of_{LONG_MS:g}_ms_or_more": [
                        {"monotonic": round(t, 3), "generation": g, "ms": round(ms, 1)}
                        for t, g, ms in pauses
                        if ms >= LONG_MS
                    ],
                },
                indent=2,
            )
            + "\n"
        )

    if args.ticks:
        atexit.register(time_ticks(args.ticks))
    freezes: list[float] = []
    freeze = gc.freeze

    def counted_freeze() -> None:  # the runner's gc.freeze(), timed, or nothing with --without-freeze
        if not args.without_freeze:
            freezes.append(time.monotonic())
            freeze()

    gc.freeze = counted_freeze
    gc.callbacks.append(timed)
    atexit.register(write)
    sys.argv = ["gpupair-search", *command]
    runpy.run_module("gpupair_search.search.cli.app", run_name="__main__", alter_sys=True)


def time_ticks(out: Path):
    """Wrap DeviceSampler.tick and .read to record each tick; returns the function that writes them."""
    from gpupair_search.launcher.monitor import DeviceSampler

    ticks: list[tuple[int, float, float, float, int]] = []  # (sampler, start, read ms, tick ms, pairs served)
    reads: dict[int, float] = {}
    tick, read = DeviceSampler.tick, DeviceSampler.read

    def timed_read(self, pids):
        start = time.monotonic()
        try:
            return read(self, pids)
        finally:
            reads[id(self)] = 1000 * (time.monotonic() - start)

    def timed_tick(self):
        start = time.monotonic()
        reads.pop(id(self), None)
        try:
            tick(self)
        finally:
            ticks.append(
                (id(self), start, reads.get(id(self), -1.0), 1000 * (time.monotonic() - start), len(self._monitors))
            )

    DeviceSampler.tick, DeviceSampler.read = timed_tick, timed_read

    def write() -> None:
        samplers = {s: i for i, s in enumerate(dict.fromkeys(t[0] for t in ticks))}
        out.write_text(
            json.dumps(
                {
                    "columns": ["sampler", "start", "read_ms", "tick_ms", "pairs"],
                    "ticks": [[samplers[s], round(t, 4), round(r, 2), round(ms, 2), n] for s, t, r, ms, n in ticks],
                }
            )
            + "\n"
        )

    return write


if __name__ == "__main__":
    main()
