#!/usr/bin/env python3
"""Were the jobs themselves slower in one run than in another? For each configuration of a stored study measured
in both runs, the foreground's own training throughput (samples/s, from its log) and its duration, as ratios
of run B to run A. The runner's code does not enter a job's own throughput, so a ratio far from 1 says the
machines (or what ran beside the jobs) differed.

    python3 bench/compare_calls.py A.db B.db [--study feasibility] [-o out.json]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import optuna

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402


def foregrounds(db: Path, study: str) -> dict[tuple, tuple[float, float]]:
    """(pair, fg batch, bg batch) -> (foreground samples/s, foreground seconds), for trials that ran ok."""
    out = {}
    for trial in optuna.load_study(study_name=study, storage=f"sqlite:///{db}").get_trials(deepcopy=False):
        attrs = trial.user_attrs
        if attrs.get("outcome") != "ok" or not attrs.get("foreground_samples_per_second"):
            continue
        key = (
            attrs["pair_key"],
            attrs["foreground"]["hyperparameters"].get("batch_size"),
            ((attrs.get("background") or {}).get("hyperparameters") or {}).get("batch_size"),
        )
        out[key] = (attrs["foreground_samples_per_second"], attrs["foreground_duration_s"])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", type=Path)
    parser.add_argument("b", type=Path)
    parser.add_argument("--study", default="feasibility")
    parser.add_argument("-o", "--out", type=Path)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    a, b = foregrounds(args.a, args.study), foregrounds(args.b, args.study)
    both = sorted(set(a) & set(b))
    throughput = [b[k][0] / a[k][0] for k in both]
    duration = [b[k][1] / a[k][1] for k in both]
    benchlib.emit(
        {
            "a": str(args.a),
            "b": str(args.b),
            "configurations": len(both),
            "throughput_b_over_a": {
                "median": round(statistics.median(throughput), 2),
                "min": round(min(throughput), 2),
                "max": round(max(throughput), 2),
            },
            "foreground_seconds_b_over_a": {"median": round(statistics.median(duration), 2)},
        },
        args.out,
    )


if __name__ == "__main__":
    main()
