"""Job start: the time from the start request to a built-in workload's first training step, warm, cold and held.

The clock starts when the runner asks for the job (``start_job``) and stops when the job's log shows its
first progress line (``workloads/common.py`` ``log_progress``; with ``--max-steps 1`` that line is printed
after the first step). *Cold* is a fresh ``python -m`` process under the job guard; *warm* is a fork of the
warm launcher (``launcher/warm_start.py``), whose own start (once per runner) is timed apart and is not in
the medians. *hooked* is a cold start with the probe hook and an open gate (what a user's job gets);
*held* is the same job started ahead (``launcher/held_start.py``): it waits at its gate, is released
``--hold-s`` after it got there, and its clock starts at the release; *preimported* is held too, and is
told, as the runner tells it, the libraries the workload's last *hooked* run imported after its gate (its
``imported`` event), which it imports while it waits. Runs alternate the modes, so that load
on the host falls on all alike. ``--stacks S`` also has every hooked and held job write all its threads'
stacks every S seconds (``faulthandler``), to see where a job's time after its release goes.
Writes ``job_start.json`` (and the stacks) under $OUT.

    python3 bench/job_start.py --device auto --repeats 5
    python3 bench/job_start.py --device auto --modes warm,hooked,held --repeats 2 --stacks 0.25
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
from gpupair_search.launcher.probe_events import IMPORTS_SUFFIX, ProbeEvents, hook_environment
from gpupair_search.launcher.process import RunningJob, start_job

MODES = ("cold", "warm", "hooked", "held", "preimported")
HELD_MODES = ("held", "preimported")
HOOKED_MODES = ("hooked", *HELD_MODES)  # started with the probe hook
STACKS_HOOK = """import faulthandler, os
faulthandler.dump_traceback_later(float(os.environ["BENCH_STACKS_S"]), repeat=True,
                                  file=open(os.environ["BENCH_STACKS_FILE"], "w"))
"""

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


def reached_gate(events: Path, job: RunningJob, deadline: float) -> bool:
    """Wait until the job's probe hook says it waits at its gate (or it ended, or ``deadline``)."""
    while time.perf_counter() < deadline and job.poll() is None:
        if events.exists() and " held " in events.read_text(errors="replace"):
            return True
        time.sleep(0.005)
    return False


def hooked_env(env: dict[str, str], log: Path, hold: Path, stacks_s: float | None) -> dict[str, str]:
    """The probe hook's environment with gate ``hold`` (and, with ``stacks_s``, the stack sampler after it)."""
    out = hook_environment(env, log.with_suffix(".events"), 0, hold=hold)
    if stacks_s:
        sampler = log.parent / "stacks_hook"
        sampler.mkdir(exist_ok=True)
        (sampler / "sitecustomize.py").write_text(STACKS_HOOK)
        out["PYTHONPATH"] += os.pathsep + str(sampler)  # the probe hook runs it after itself
        out.update(BENCH_STACKS_S=str(stacks_s), BENCH_STACKS_FILE=str(log.with_suffix(".stacks")))
    return out


def one_start(
    reg,
    key: str,
    mode: str,
    env: dict[str, str],
    logs: Path,
    n: int,
    timeout: float,
    hold_s: float = 1.0,
    stacks_s: float | None = None,
    imports: tuple[str, ...] = (),
) -> dict:
    command = reg.command(one_epoch_probe(reg, key, steps=1))
    log = logs / f"{key.replace('/', '_')}_{mode}_{n}.log"
    gate = log.with_suffix(".go")
    if mode in HOOKED_MODES:
        if mode == "hooked":
            gate.touch()
        if mode == "preimported" and imports:
            gate.with_name(gate.name + IMPORTS_SUFFIX).write_text("\n".join(imports) + "\n")
        env = hooked_env(env, log, gate, stacks_s)
    requested = time.perf_counter()
    job = start_job("foreground", command, log, env, warm=mode == "warm")
    launched = time.perf_counter() - requested
    extra: dict[str, object] = {}
    if mode in HELD_MODES:
        extra["gated"] = reached_gate(log.with_suffix(".events"), job, requested + timeout)
        extra["gate_s"] = round(time.perf_counter() - requested, 3)
        time.sleep(hold_s)
        requested = time.perf_counter()  # a held job's start is its release, as in the runner
        gate.touch()
    phases = first_step_s(job, requested, timeout)
    seconds = phases["first_step_s"]
    code = job.stop() if seconds is None else job.popen.wait(timeout=timeout)  # let it finish: no kill in the log
    text = log.read_text(errors="replace")
    events = ProbeEvents(log.with_suffix(".events")).poll() if mode in HOOKED_MODES else None
    if events is not None:
        extra.update(imported=list(events.imported), preimported=events.preimported)
    return {
        "start": mode if mode in HELD_MODES else job.start,
        **phases,
        **extra,
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
    hold_s: float = 1.0,
    stacks_s: float | None = None,
) -> dict:
    runs: dict[str, list[dict]] = {mode: [] for mode in MODES}
    imports: tuple[str, ...] = ()  # what the last hooked run imported after its gate
    for n in range(repeats):
        for mode in modes:
            run = one_start(reg, key, mode, env, logs, n, timeout, hold_s, stacks_s, imports)
            imports = tuple(run.get("imported") or ()) if mode == "hooked" else imports
            runs[mode].append(run)
            print(key, mode, run["start"], run["first_step_s"], f"rc={run['exit_code']}", *run["notes"], flush=True)
    cold = [r["first_step_s"] for r in runs["cold"] if r["first_step_s"] is not None and r["start"] == "cold"]
    warm = [r["first_step_s"] for r in runs["warm"] if r["first_step_s"] is not None and r["start"] == "warm"]
    row = {"workload": key, "runs": runs, "median_cold_s": median(cold), "median_warm_s": median(warm)}
    for mode in HOOKED_MODES:  # a held job's clock starts at its release
        row[f"median_{mode}_s"] = median([r["first_step_s"] for r in runs[mode] if r["first_step_s"] is not None])
        row[f"median_{mode}_config_s"] = median([r["config_s"] for r in runs[mode] if r["config_s"] is not None])
    for phase in ("first_output_s", "config_s"):  # where a warm start's time goes (the rest is the first step)
        row[f"median_warm_{phase}"] = median(
            [r[phase] for r in runs["warm"] if r[phase] is not None and r["start"] == "warm"]
        )
    row["warm_over_cold"] = round(row["median_warm_s"] / row["median_cold_s"], 3) if cold and warm else None
    return row


def warm_up_server(reg, key: str, env: dict[str, str], logs: Path, timeout: float) -> dict:
    """The warm launcher's own start (imports), paid once per runner: timed with its first job, kept apart."""
    run = one_start(reg, key, "warm", env, logs, -1, timeout)
    print("warm launcher started with its first job:", run["first_step_s"], "s", *run["notes"], flush=True)
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto, cuda:N or cpu (the jobs' environment)")
    parser.add_argument("--workloads", default=",".join(DEFAULT_WORKLOADS))
    parser.add_argument("--repeats", type=int, default=5, help="starts per workload and mode (the median of N)")
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--modes", default="cold,warm", help="of cold,warm,hooked,held (alternating)")
    parser.add_argument("--hold-s", type=float, default=1.0, help="how long a held job waits at its gate")
    parser.add_argument("--stacks", type=float, help="hooked and held jobs write their stacks every S seconds")
    parser.add_argument("--out", type=Path, help="where the logs and stacks are kept (default: removed)")
    args = parser.parse_args()
    modes = tuple(args.modes.split(","))
    if not modes or set(modes) - set(MODES):
        parser.error(f"--modes {args.modes!r}: expected some of {','.join(MODES)}")
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
            logs = args.out or Path(tmp)
            logs.mkdir(parents=True, exist_ok=True)
            if "warm" in modes:
                report["first_warm_job"] = warm_up_server(reg, keys[0], env, logs, args.timeout)
            for key in keys:
                report["workloads"].append(
                    bench_workload(reg, key, env, logs, args.repeats, args.timeout, modes, args.hold_s, args.stacks)
                )
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
            f"hooked {row['median_hooked_s']} s  held (from its release) {row['median_held_s']} s  "
            f"held and preimported {row['median_preimported_s']} s  "
            f"ratio {row['warm_over_cold']}; warm: first output {row['median_warm_first_output_s']} s, "
            f"model and batches on the device {row['median_warm_config_s']} s"
        )
    print(f"all: cold {report['median_cold_s']} s, warm {report['median_warm_s']} s, ratio {report['warm_over_cold']}")
    print(write_json("job_start.json", report))


if __name__ == "__main__":
    main()
