"""Does the probe of a user's own job see the peak of its full epoch? And what does a trial spend outside its jobs?

For every job of the lab repository in tests/fixtures/user_repo (train.sh execs an argparse trainer with a
DataLoader and worker processes; ``evalheavy``'s evaluation holds 256 MiB more than its training), alone on the
device: the probe (the DataLoader hook bounds each epoch to --probe-steps batches, one epoch, evaluation
included) and the seed's full epoch (--train-batches batches, one epoch, then evaluation). Prints both peaks and
their ratio, the probe's rule and whether evaluation was reached. ``own-loop`` rows are the same jobs batching
without a DataLoader: the probe cannot bound them and falls back to the plateau rule, shown for what it misses
(no pass/fail for them).

Then pairs, as a study runs them (probe mode): user pairs (each job against lab/mlp) and built-in pairs
(warm-started on a GPU, 5 probe steps), each once, and per trial the time outside its jobs: the wall time of running the
pair and writing its results minus the time its jobs did their own work (PairResult.jobs_s). The study's own
storage writes are not in this figure. Writes probe_vs_full.json under $OUT.

    python3 bench/probe_vs_full.py --device cuda:0
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchlib import ROOT, open_device, registry, stamp, write_json

from gpupair_search.launcher.devices import DeviceRequest
from gpupair_search.launcher.pair_runner import RunOptions, run_pair
from gpupair_search.launcher.registry import BUILTIN_PROBE_STEPS, Registry
from gpupair_search.launcher.results import new_pair_dir, new_run_dir, write_pair_results
from gpupair_search.launcher.spec import JobConfig, PairSpec
from gpupair_search.studies.matrix import default_hyperparameters

USER_REPO = ROOT / "tests" / "fixtures" / "user_repo"
USER_JOBS = ["mlp", "evalheavy", "silent", "crash"]
BUILTIN_PAIRS = [
    ("examples/mnist", "pytorch_resnet_cifar10/resnet20"),
    ("pytorch_resnet_cifar10/resnet20", "examples/mnist"),
    ("examples/mnist_ff", "examples/siamese"),
    ("VulBERTa/mlp", "examples/mnist"),
]


def measure(reg: Registry, pair: PairSpec, device, options: RunOptions, work: Path) -> dict:
    pair_dir = new_pair_dir(new_run_dir(work), pair)
    started = time.monotonic()
    result = run_pair(pair, reg, device, options, pair_dir)
    write_pair_results(result, pair_dir)
    wall = time.monotonic() - started
    return {
        "foreground": pair.foreground.key,
        "background": pair.background.key if pair.background else None,
        "outcome": result.outcome.value,
        "foreground_peak_mib": round(result.memory.foreground_peak_mib, 1),
        "background_peak_mib": round(result.memory.background_peak_mib, 1),
        "probe": result.probe,
        "label": result.probe_label,
        "wall_s": round(wall, 3),
        "jobs_s": result.jobs_s,
        "outside_jobs_s": round(wall - result.jobs_s, 3),
        "phase_seconds": result.phase_seconds,
        "hyperparameters": dict(result.foreground.hyperparameters),
    }


def peaks(lab: Registry, device, args, work: Path) -> list[dict]:
    rows = []
    for model in args.jobs.split(","):
        for loop in args.loops.split(","):
            hp = {"train_batches": args.train_batches, "epochs": 1, "loader": loop}
            if loop == "own":
                hp["workers"] = 0
            job = JobConfig("lab", model, hp)
            probe = measure(
                lab,
                PairSpec(1, job, None),
                device,
                RunOptions(probe=True, probe_steps=args.probe_steps, timeout_s=600),
                work,
            )
            full = measure(lab, PairSpec(1, job, None), device, RunOptions(probe=False, timeout_s=600), work)
            ratio = probe["foreground_peak_mib"] / full["foreground_peak_mib"] if full["foreground_peak_mib"] else None
            bounded = loop == "dataloader"
            row = {
                "job": f"{model}" + ("" if bounded else " (own loop)"),
                "probe": probe,
                "full": full,
                "ratio": round(ratio, 4) if ratio else None,
                "within_2pct_or_above": (ratio is not None and ratio >= 0.98) if bounded else None,
            }
            rows.append(row)
            print(
                f"{row['job']:22s} probe {probe['foreground_peak_mib']:9,.0f} MiB {probe['wall_s']:6.1f} s "
                f"[{probe['label']}]   full {full['foreground_peak_mib']:9,.0f} MiB {full['wall_s']:6.1f} s   "
                f"ratio {row['ratio']}  {'' if row['within_2pct_or_above'] is None else 'PASS' if row['within_2pct_or_above'] else 'FAIL'}",
                flush=True,
            )
            write_json("probe_vs_full.json", {**stamp(), "device": device.name, "peaks": rows})
    return rows


def trials(lab: Registry, device, args, work: Path, rows: list[dict]) -> dict:
    user, builtin = [], []
    for model in args.jobs.split(","):
        pair = PairSpec(1, JobConfig("lab", model, {}), JobConfig("lab", "mlp", {}))
        user.append(
            measure(lab, pair, device, RunOptions(probe=True, probe_steps=args.probe_steps, timeout_s=600), work)
        )
    reg = registry()
    options = RunOptions(probe=True, probe_steps=BUILTIN_PROBE_STEPS, timeout_s=600)  # warm on a GPU
    for fg, bg in BUILTIN_PAIRS[: args.builtin_pairs]:
        pair = PairSpec(1, *(JobConfig(*key.rsplit("/", 1), default_hyperparameters(reg, key)) for key in (fg, bg)))
        builtin.append(measure(reg, pair, device, options, work))
    summary = {
        name: {
            "median_outside_jobs_s": statistics.median(r["outside_jobs_s"] for r in runs),
            "max_outside_jobs_s": max(r["outside_jobs_s"] for r in runs),
            "trials": runs,
        }
        for name, runs in (("user", user), ("builtin", builtin))
    }
    for name, part in summary.items():
        for r in part["trials"]:
            print(
                f"{name:8s} {r['foreground']:36s} + {r['background']:36s} {r['outcome']:18s} wall {r['wall_s']:6.1f} s "
                f"outside the jobs {r['outside_jobs_s']:5.2f} s  {r['label']}",
                flush=True,
            )
        print(
            f"{name}: median time outside the jobs {part['median_outside_jobs_s']:.2f} s per trial "
            f"(max {part['max_outside_jobs_s']:.2f} s)",
            flush=True,
        )
    write_json("probe_vs_full.json", {**stamp(), "device": device.name, "peaks": rows, "trials": summary})
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--train-batches", type=int, default=4000, help="the full epoch's batches (keep it < 60 s)")
    parser.add_argument("--probe-steps", type=int, default=RunOptions.probe_steps)
    parser.add_argument("--jobs", default=",".join(USER_JOBS), help="the lab repository's models to measure")
    parser.add_argument("--loops", default="dataloader,own", help="dataloader (bounded by the probe), own (plateau)")
    parser.add_argument("--builtin-pairs", type=int, default=len(BUILTIN_PAIRS))
    parser.add_argument("--skip-trials", action="store_true", help="peaks only")
    args = parser.parse_args()
    os.environ.setdefault("PYTHON", sys.executable)  # the lab's train.sh runs "${PYTHON:-python3}"
    lab = Registry.load(USER_REPO / "models.json", base_dir=USER_REPO)
    device = open_device(args.device, DeviceRequest())
    try:
        with tempfile.TemporaryDirectory() as tmp:
            rows = peaks(lab, device, args, Path(tmp))
            if not args.skip_trials:
                trials(lab, device, args, Path(tmp), rows)
    finally:
        device.close()


if __name__ == "__main__":
    main()
