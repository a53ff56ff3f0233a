#!/usr/bin/env python3
"""Run a gpupair-search command in this process with every garbage collection timed: does the runner's
interpreter stop long enough to cost the sampler its 50 ms ticks? (A full collection with the matrix's trials
loaded three times over took 45.6 ms on the project's 2-core host.)

    python3 bench/gc_log.py -o gc.json -- run --study matrix --parallel auto --results /tmp/matrix
    python3 bench/gc_log.py --without-freeze -o gc.json -- run ...   # as before the runner froze after each pair

Writes, when the command ends: the collections per generation, their total and longest pause, and every pause
of 20 ms or more with its ``time.monotonic()`` (the clock of the samples' and the jobs' progress stamps).
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

LONG_MS = 20.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--out", type=Path, required=True)
    parser.add_argument("--without-freeze", action="store_true",
                        help="make gc.freeze() do nothing (search/executors.py freezes after each pair)")
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
        args.out.write_text(json.dumps({
            "command": command, "frozen_after_each_pair": not args.without_freeze,
            "collections": {str(g): {"count": len(v), "total_ms": round(sum(v), 1), "max_ms": round(max(v, default=0), 1)}
                            for g, v in by_gen.items()},
            f"pauses_of_{LONG_MS:g}_ms_or_more": [{"monotonic": round(t, 3), "generation": g, "ms": round(ms, 1)}
                                                  for t, g, ms in pauses if ms >= LONG_MS],
        }, indent=2) + "\n")

    if args.without_freeze:
        gc.freeze = lambda: None
    gc.callbacks.append(timed)
    atexit.register(write)
    sys.argv = ["gpupair-search", *command]
    runpy.run_module("gpupair_search.search.cli", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
