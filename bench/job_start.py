"""Job start: the time from the start request to a built-in workload's first training step, warm and cold.

The clock starts when the runner asks for the job (``start_job``) and stops when the job's log shows its
first progress line (``workloads/common.py`` ``log_progress``; with ``--max-steps 1`` that line is printed
after the first step). *Cold* is a fresh ``python -m`` process under the job guard; *warm* is a fork of the
warm launcher (``launcher/warm_start.py``), whose own start (once per runner) is timed apart and is not in
the medians. Runs alternate cold and warm, so that load on the host falls on both alike.
Writes ``job_start.json`` under $OUT.

    python3 bench/job_start.py --device auto --repeats 5
    python3 bench/job_start.py --device cpu --workloads examples/mnist --repeats 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from benchlib import last_float, one_epoch_probe, open_device, registry, stamp, write_json

from gpupair_search.launcher import warm_start
from gpupair_search.launcher.cpu_share import available_cores
from gpupair_search.launcher.outcome import TRAINING_PROGRESS
from gpupair_search.launcher.process import RunningJob, start_job

CONFIG_LINE = "[gpupair] config "
DEFAULT_WORKLOADS = [
    "examples/mnist",
    "pytorch_resnet_cifar10/resnet20",
    "Person_reID_baseline_pytorch/pcb",
    "VulBERTa/mlp",
    "MRT-OAST/default",
]


def first_step_s(job: RunningJob, requested: float, timeout: float) -> dict[str, float | None]:
    """Seconds from ``requested`` until the log's first output, its ``[gpupair] config`` line (the workloads print
    it once the model and its batches are on the device) and its first progress line (after the first step);
    None for what the job ended without."""
    deadline = requested + timeout
    seen: dict[str, float | None] = {"first_output_s": None, "config_s": None, "first_step_s": None}
    while time.perf_counter() < deadline:
        text = job.log_path.read_text(errors="replace") if job.log_path.exists() else ""
        now = time.perf_counter() - requested
        if text and seen["first_output_s"] is None:
            seen["first_output_s"] = now
        if seen["config_s"] is None and CONFIG_LINE in text:
            seen["config_s"] = now
        if TRAINING_PROGRESS.search(text):
            seen["first_step_s"] = now
            break
        if job.poll() is not None:
            break
        time.sleep(0.005)
    return {k: None if v is None else round(v, 3) for k, v in seen.items()}


def one_start(reg, key: str, warm: bool, env: dict[str, str], logs: Path, n: int, timeout: float) -> dict:
    command = reg.command(one_epoch_probe(reg, key, steps=1))
    log = logs / f"{key.replace('/', '_')}_{'warm' if warm else 'cold'}_{n}.log"
    requested = time.perf_counter()
    job = start_job("foreground", command, log, env, warm=warm)
    launched = time.perf_counter() - requested
    phases = first_step_s(job, requested, timeout)
    seconds = phases["first_step_s"]
    code = job.stop() if seconds is None else job.popen.wait(timeout=timeout)  # let it finish: no kill in the log
    text = log.read_text(errors="replace")
    return {
        "start": job.start,
        **phases,
        "launch_call_s": round(launched, 4),
        "exit_code": code,
        "notes": job.notes,
        "own_startup_s": last_float(r"startup_s=([\d.]+)", text),
    }


def median(values: list[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None


def bench_workload(
    reg,
    key: str,
    env: dict[str, str],
    logs: Path,
    repeats: int,
    timeout: float,
    modes: tuple[str, ...] = ("cold", "warm"),
) -> dict:
    runs: dict[str, list[dict]] = {"cold": [], "warm": []}
    for n in range(repeats):
        for mode in modes:
            run = one_start(reg, key, mode == "warm", env, logs, n, timeout)
            runs[mode].append(run)
            print(key, mode, run["start"], run["first_step_s"], f"rc={run['exit_code']}", *run["notes"], flush=True)
    cold = [r["first_step_s"] for r in runs["cold"] if r["first_step_s"] is not None and r["start"] == "cold"]
    warm = [r["first_step_s"] for r in runs["warm"] if r["first_step_s"] is not None and r["start"] == "warm"]
    row = {"workload": key, "runs": runs, "median_cold_s": median(cold), "median_warm_s": median(warm)}
    for phase in ("first_output_s", "config_s"):  # where a warm start's time goes (the rest is the first step)
        row[f"median_warm_{phase}"] = median(
            [r[phase] for r in runs["warm"] if r[phase] is not None and r["start"] == "warm"]
        )
    row["warm_over_cold"] = round(row["median_warm_s"] / row["median_cold_s"], 3) if cold and warm else None
    return row


def warm_up_server(reg, key: str, env: dict[str, str], logs: Path, timeout: float) -> dict:
    """The warm launcher's own start (imports), paid once per runner: timed with its first job, kept apart."""
    run = one_start(reg, key, True, env, logs, -1, timeout)
    print("warm launcher started with its first job:", run["first_step_s"], "s", *run["notes"], flush=True)
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto, cuda:N or cpu (the jobs' environment)")
    parser.add_argument("--workloads", default=",".join(DEFAULT_WORKLOADS))
    parser.add_argument("--repeats", type=int, default=5, help="starts per workload and mode (the median of N)")
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--modes", default="cold,warm", help="cold,warm (alternating) or one of them")
    args = parser.parse_args()
    modes = tuple(args.modes.split(","))
    if not modes or set(modes) - {"cold", "warm"}:
        parser.error(f"--modes {args.modes!r}: expected cold, warm or cold,warm")
    reg, device = registry(), open_device(args.device)
    env = {**os.environ, **device.job_env(), "PYTHONUNBUFFERED": "1"}
    keys = args.workloads.split(",")
    report = {
        **stamp(),
        "device": device.describe(),
        "cores": len(available_cores()),
        "repeats": args.repeats,
        "workloads": [],
    }
    try:
        with tempfile.TemporaryDirectory(prefix="gpupair-job-start-") as tmp:
            report["first_warm_job"] = warm_up_server(reg, keys[0], env, Path(tmp), args.timeout)
            for key in keys:
                report["workloads"].append(bench_workload(reg, key, env, Path(tmp), args.repeats, args.timeout, modes))
    finally:
        warm_start.close_all()
        device.close()
    rows = report["workloads"]
    cold = [r["first_step_s"] for row in rows for r in row["runs"]["cold"] if r["first_step_s"] is not None]
    warm = [
        r["first_step_s"]
        for row in rows
        for r in row["runs"]["warm"]
        if r["first_step_s"] is not None and r["start"] == "warm"
    ]
    report["median_cold_s"], report["median_warm_s"] = median(cold), median(warm)
    report["warm_over_cold"] = round(median(warm) / median(cold), 3) if cold and warm else None
    for row in rows:
        print(
            f"{row['workload']:40s} cold {row['median_cold_s']} s  warm {row['median_warm_s']} s  "
            f"ratio {row['warm_over_cold']}; warm: first output {row['median_warm_first_output_s']} s, "
            f"model and batches on the device {row['median_warm_config_s']} s"
        )
    print(f"all: cold {report['median_cold_s']} s, warm {report['median_warm_s']} s, ratio {report['warm_over_cold']}")
    print(write_json("job_start.json", report))


if __name__ == "__main__":
    main()
