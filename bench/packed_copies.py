"""Why do packed heavy jobs run 10-100x slower than alone? K copies of one probe at once, cold and warm.

A packed matrix once ran densenet121's 5-step solo probe in over a hundred seconds with six other trials on the
GPU (bench/history/); alone such a probe takes seconds. This starts K copies of one built-in probe at once
on one GPU, each as a study starts a job (``launcher.process.start_job``): *cold* (a fresh process) or *warm*
(forked from the warm launcher), and reads each copy's wall time and its own figures from its log (start-up,
training time, samples/s). If warm copies slow down far more than cold ones, the cause is something the forks
share; if both do, it is the GPU (time-slicing between CUDA contexts) or the host. Writes
``packed_copies.json`` under $OUT.

    python3 bench/packed_copies.py --workload Person_reID_baseline_pytorch/densenet121 --copies 1,4 --steps 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from benchlib import last_float, one_epoch_probe, registry, stamp, write_json

from gpupair_search.launcher import warm_start
from gpupair_search.launcher.process import start_job


def run_copies(command, k: int, warm: bool, work: Path, timeout_s: float) -> dict:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    started = time.perf_counter()
    jobs = [
        start_job(f"copy{i}", command, work / f"{'warm' if warm else 'cold'}_{k}_{i}.log", env, warm=warm)
        for i in range(k)
    ]
    deadline = started + timeout_s
    while any(j.poll() is None for j in jobs) and time.perf_counter() < deadline:
        time.sleep(0.05)
    runs = []
    for job in jobs:
        timed_out = job.poll() is None
        job.stop(1.0)
        text = job.log_path.read_text(errors="replace")
        runs.append(
            {
                "start": job.start,
                "timed_out": timed_out,
                "wall_s": round((job.ended or time.monotonic()) - job.started, 2),
                "startup_s": last_float(r"startup_s=([\d.]+)", text),
                "total_s": last_float(r"\] total_s=([\d.]+)", text),
                "samples_per_second": last_float(r"samples_per_second=([\d.]+)", text),
            }
        )
    walls = [r["wall_s"] for r in runs]
    return {
        "copies": k,
        "start": "warm" if warm else "cold",
        "runs": runs,
        "mean_wall_s": round(statistics.mean(walls), 2),
        "all_done_s": round(time.perf_counter() - started, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", default="Person_reID_baseline_pytorch/densenet121")
    parser.add_argument("--copies", default="1,4")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--starts", default="warm,cold")
    parser.add_argument("--timeout-s", type=float, default=60.0)
    args = parser.parse_args()
    reg = registry()
    command = reg.command(one_epoch_probe(reg, args.workload, args.steps))
    report = {**stamp(), "workload": args.workload, "steps": args.steps, "rows": []}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for k in [int(c) for c in args.copies.split(",")]:
                for start in args.starts.split(","):
                    row = run_copies(command, k, start == "warm", Path(tmp), args.timeout_s)
                    report["rows"].append(row)
                    write_json("packed_copies.json", report)
                    print(
                        f"{args.workload} x{k} {start}: mean wall {row['mean_wall_s']} s, all done "
                        f"{row['all_done_s']} s; "
                        + "; ".join(
                            f"wall {r['wall_s']} startup {r['startup_s']} total {r['total_s']} "
                            f"sps {r['samples_per_second']}{' TIMED OUT' if r['timed_out'] else ''}"
                            for r in row["runs"]
                        ),
                        flush=True,
                    )
    finally:
        warm_start.close_all()


if __name__ == "__main__":
    main()
