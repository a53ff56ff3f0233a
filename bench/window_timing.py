"""How much the steady-state window's rate wobbles from *when* progress lines are read, not from the job.

A job that steps at a steady rate prints machine progress lines (``[gpupair] progress steps=N samples=M t=T``).
The launcher's :class:`ProgressTail` reads its log once per monitor tick (20 Hz). Placed at the moment they were
read, a window's first and last lines are each late by up to one tick, so a 2 s window's rate is off by up to
a few percent, differently each time. Placed at the job's own stamp ``T``, they are not.

This bench runs one steady job (tests/fixtures/progress_train.py: each step sleeps ``--step-s``) and reads its
log with two tails at the monitor's rate: one that uses the stamps and one that ignores them. It cuts the run
into back-to-back windows of ``--window-s`` and reports, for each way of placing lines, the windows' rates:
mean, coefficient of variation and the largest deviation from their median. Same job, same lines, same run:
only the placement differs. CPU only (no device is involved); the figures are this host's.

    python3 bench/window_timing.py --seconds 60 --window-s 2 --step-s 0.1 -o window_timing.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gpupair_search.launcher.monitor import DEFAULT_HZ
from gpupair_search.launcher.steady_window import ProgressPoint, ProgressTail, steady_window

JOB = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "progress_train.py"


def windows(points: list[ProgressPoint], window_s: float) -> list[float]:
    """Rates of back-to-back windows of the run: each window runs from a line to the first line at least
    ``window_s`` later, as the launcher's window would over that stretch."""
    rates, i = [], 0
    while i < len(points):
        j = next((k for k in range(i + 1, len(points)) if points[k].t - points[i].t >= window_s), None)
        if j is None:
            break
        window = steady_window(points[i : j + 1], warmup_steps=0)
        if window is not None and window.samples_per_second is not None:
            rates.append(window.samples_per_second)
        i = j
    return rates


def summary(rates: list[float]) -> dict:
    median = statistics.median(rates)
    return {
        "windows": len(rates),
        "mean_samples_per_s": round(statistics.mean(rates), 3),
        "cv_pct": round(100 * statistics.stdev(rates) / statistics.mean(rates), 3),
        "max_deviation_from_median_pct": round(100 * max(abs(r / median - 1) for r in rates), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--window-s", type=float, default=2.0)
    parser.add_argument("--step-s", type=float, default=0.1, help="the built-ins print about every 0.1 s")
    parser.add_argument("--hz", type=float, default=DEFAULT_HZ, help="how often the log is read (the monitor's rate)")
    parser.add_argument("-o", "--output", type=Path)
    args = parser.parse_args()

    log = Path(tempfile.mkdtemp(prefix="window_timing_")) / "job.log"
    steps = int(args.seconds / args.step_s)
    origin = time.monotonic()
    stamped = ProgressTail(log, batch_size=4, clock_origin=origin)
    read_time = ProgressTail(log, batch_size=4)
    with open(log, "wb") as out:
        job = subprocess.Popen(
            [sys.executable, str(JOB), "--steps", str(steps), "--step-s", str(args.step_s)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        next_at = time.monotonic()
        while job.poll() is None:
            now = time.monotonic() - origin
            stamped.poll(now)
            read_time.poll(now)
            next_at += 1 / args.hz
            time.sleep(max(0.0, next_at - time.monotonic()))
    finally:
        job.kill()
        job.wait()
    result = {
        "what": "CPU only, this host: one steady job's window rates, its progress lines placed two ways",
        "args": vars(args) | {"output": str(args.output) if args.output else None},
        "lines": len(stamped.points),
        "placed_at_the_jobs_stamp": summary(windows(stamped.points, args.window_s)),
        "placed_when_read": summary(windows(read_time.points, args.window_s)),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.output:
        args.output.write_text(text + "\n")


if __name__ == "__main__":
    main()
