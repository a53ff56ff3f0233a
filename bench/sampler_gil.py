#!/usr/bin/env python3
"""How a sampler thread's rate depends on the runner's other Python threads: the mechanism behind packed
sampling below 20 Hz, on this host (no device).

A thread ticks at 20 Hz on an absolute schedule (as launcher/monitor.py's sampler does), and on each tick makes
7 small reads and, every 10th tick, one pass over /proc (``children_by_parent``): each read gives up the
interpreter's lock and must get it back. Beside it, N threads run Python without pause. Python hands the lock
to a waiting thread only after its switch interval (5 ms by default).

    python3 bench/sampler_gil.py [--seconds 6] [-o out.json]
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402

from gpupair_search.launcher.monitor import children_by_parent  # noqa: E402

HZ = 20.0


def rate(switch_s: float, busy_threads: int, seconds: float) -> float:
    sys.setswitchinterval(switch_s)
    stop = threading.Event()

    def spin() -> None:
        x = 0
        while not stop.is_set():
            for i in range(2000):
                x += i

    spinners = [threading.Thread(target=spin, daemon=True) for _ in range(busy_threads)]
    for thread in spinners:
        thread.start()
    interval, ticks = 1.0 / HZ, 0
    start = next_at = time.monotonic()
    while time.monotonic() - start < seconds:
        if ticks % 10 == 0:
            children_by_parent()
        for _ in range(7):
            with open("/proc/self/stat", "rb") as fh:
                fh.read()
        ticks += 1
        next_at += interval
        delay = next_at - time.monotonic()
        if delay < -interval:
            next_at, delay = time.monotonic(), 0.0
        time.sleep(max(delay, 0.0))
    achieved = ticks / (time.monotonic() - start)
    stop.set()
    for thread in spinners:
        thread.join()
    return round(achieved, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("-o", "--out", type=Path)
    args = parser.parse_args()
    default = sys.getswitchinterval()
    results = [
        {"switch_interval_ms": s * 1000, "busy_threads": n, "achieved_hz": rate(s, n, args.seconds)}
        for s in (0.005, 0.001, 0.0005)
        for n in (0, 1, 3)
    ]
    sys.setswitchinterval(default)
    benchlib.emit({"target_hz": HZ, "host": "this host, CPU only", "runs": results}, args.out)


if __name__ == "__main__":
    main()
