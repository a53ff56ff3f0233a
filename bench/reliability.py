"""Reliability: inject each fault N times (CPU device, the fake training script) and count what it cost.

    python bench/reliability.py            # 5 injections of each fault
    python bench/reliability.py -n 3 --faults sigint,hang

The faults are the scenarios of tests/test_faults.py (``SCENARIOS``): SIGKILL and SIGINT of the runner
mid-trial (then the same command again), a hanging workload (--timeout), a background that dies mid-run,
NVML failing mid-run, storage unreachable at start, the results directory becoming unwritable mid-study;
and, when GPUPAIR_TEST_POSTGRES is set (``eval "$(bash .ci/postgres.sh)"``), SIGKILL of one of three
workers on a PostgreSQL study (its trial recovered by heartbeat). For each injection it counts

* trials run: configurations measured (a trial closed unrun as a duplicate is not a run);
* processes left behind: every process the runner/workers started (seen by PID and start time while the
  scenario ran, plus the jobs' own pidfiles) still alive afterwards; must be 0;
* trials lost: queued configurations that never got a measured COMPLETE/FAIL trial; must be 0.

Writes reliability.json (every injection) to $OUT or results/bench and prints the markdown table.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

from bench.benchlib import stamp, write_json
from tests.test_faults import SCENARIOS, FaultReport, ProcessWatch, lost, measured

ROOT = Path(__file__).resolve().parents[1]


def worker_sigkill(work: Path) -> FaultReport:
    """Three workers on a PostgreSQL study; one is SIGKILLed mid-trial after its trial was made to look like
    another host's, so only the heartbeat can tell it died; the other two must recover it and finish."""
    from optuna.trial import TrialState

    from tests import test_postgres_workers as pg

    report = FaultReport("SIGKILL of one of 3 workers (PostgreSQL, heartbeat)")
    name, settings = pg.study_settings(work, seconds=3.0, extension=False)
    pg.enqueue(settings, work / "enqueuer")
    watch = ProcessWatch(work / "pids")
    workers = [watch.add_root(w) for w in pg.start_workers(settings, work)]
    try:
        trial, pair_processes = pg.kill_mid_trial(name, workers[0], work)
    except AssertionError as exc:
        trial, pair_processes = None, []
        report.expect(False, str(exc))
        workers[0].kill()
    for pid in pair_processes:
        watch._record(pid)
    ends = pg.finish(workers[1:], timeout=120)
    for code, text in ends:
        report.expect(code == 0, f"a surviving worker exited {code}: {text[-1500:]}")
    trials = pg.load(name)
    if trial is not None:
        again = [
            t
            for t in trials
            if pg.config(t) == pg.config(trial) and t.number > trial.number and "outcome" in t.user_attrs
        ]
        report.expect(len(again) == 1, "the killed worker's trial was not run again exactly once")
    report.trials_run = sum(measured(trials).values())
    report.trials_lost = len(lost(trials))
    report.processes_left = watch.left()
    report.expect(not report.processes_left, f"processes left behind: {report.processes_left}")
    report.expect(max(measured(trials).values(), default=0) <= 1, "a configuration ran twice")
    report.expect(
        not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)], "trials left RUNNING/WAITING"
    )
    return report


def scenarios() -> dict:
    found = dict(SCENARIOS)
    if os.environ.get("GPUPAIR_TEST_POSTGRES"):
        found["worker_sigkill"] = worker_sigkill
    return found


def inject(name: str, scenario, work: Path) -> dict:
    started = time.monotonic()
    try:
        report = scenario(work)
    except Exception as exc:  # noqa: BLE001 - a scenario that breaks is a failed injection, counted as such
        report = FaultReport(name, problems=[f"{type(exc).__name__}: {exc}\n{traceback.format_exc()[-2000:]}"])
    return {
        "scenario": name,
        "fault": report.fault,
        "seconds": round(time.monotonic() - started, 1),
        "trials_run": report.trials_run,
        "processes_left": len(report.processes_left),
        "left_pids": report.processes_left,
        "trials_lost": report.trials_lost,
        "passed": not report.problems and not report.processes_left and report.trials_lost == 0,
        "problems": report.problems,
    }


def table(rows: list[dict], order: list[str]) -> str:
    lines = [
        "| fault | injections | passed | trials run | processes left behind | trials lost | s / injection |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name in order:
        mine = [r for r in rows if r["scenario"] == name]
        if not mine:
            continue
        lines.append(
            f"| {mine[0]['fault']} | {len(mine)} | {sum(r['passed'] for r in mine)}/{len(mine)} | "
            f"{sum(r['trials_run'] for r in mine)} | {sum(r['processes_left'] for r in mine)} | "
            f"{sum(r['trials_lost'] for r in mine)} | {sum(r['seconds'] for r in mine) / len(mine):.0f} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--injections", type=int, default=5, help="injections of each fault (default 5)")
    parser.add_argument("--faults", default="", help="comma-separated subset of: " + ", ".join(scenarios()))
    parser.add_argument(
        "--device",
        default="cpu",
        help="the runner's --device for the study scenarios (cuda:0 on the GPU machine: an 8 GiB card, emulated)",
    )
    parser.add_argument(
        "--runner-args", default="", help="more runner flags for the study scenarios, e.g. '--parallel 3' (packing on)"
    )
    args = parser.parse_args()
    # read by tests/test_faults.py when its scenarios build the runner's argv (set before they are imported)
    os.environ["GPUPAIR_FAULT_DEVICE"], os.environ["GPUPAIR_FAULT_RUNNER_ARGS"] = args.device, args.runner_args
    available = scenarios()
    chosen = [f.strip() for f in args.faults.split(",") if f.strip()] or list(available)
    unknown = [f for f in chosen if f not in available]
    if unknown:
        parser.error(f"unknown fault(s) {unknown}; choose from {list(available)}")
    os.chdir(ROOT)
    rows: list[dict] = []
    started = time.monotonic()
    for round_ in range(args.injections):  # round-robin: a slow machine shows in every fault, not the last one
        for name in chosen:
            with tempfile.TemporaryDirectory(prefix=f"gpupair-reliability-{name}-") as tmp:
                row = inject(name, available[name], Path(tmp))
            rows.append(row)
            status = "ok" if row["passed"] else "FAILED: " + "; ".join(p.splitlines()[0] for p in row["problems"])
            print(
                f"[{round_ + 1}/{args.injections}] {name}: {row['trials_run']} trials, "
                f"{row['processes_left']} left, {row['trials_lost']} lost, {row['seconds']} s  {status}",
                file=sys.stderr,
                flush=True,
            )
    summary = table(rows, chosen)
    path = write_json(
        "reliability.json",
        {
            **stamp(),
            "injections_per_fault": args.injections,
            "total_seconds": round(time.monotonic() - started),
            "rows": rows,
            "table": summary,
        },
    )
    print(summary)
    print(f"\n{path}", file=sys.stderr)
    return 0 if all(r["passed"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
