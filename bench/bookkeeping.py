#!/usr/bin/env python3
"""What a trial's bookkeeping costs the runner, besides the pair itself (CPU only: no device).

    python3 bench/bookkeeping.py [--trials 150] [--repeats 30] [-o out.json]

Two measurements, each a ratio within one run:

* **Writing a measured trial's results:** the 24 user attributes :func:`search.trial_record.record_result`
  writes, one Optuna call each (a transaction each) against one transaction
  (:func:`search.optuna_adapter.set_user_attrs`), on a SQLite study that already holds ``--trials`` trials.
  Alternating, ``--repeats`` times each.
* **The simulated matrix:** ``run --study matrix --device sim`` (121 pairs and their reductions, no jobs run),
  so its wall time is the study's own bookkeeping; per trial, with the count of trials it ran.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402

from gpupair_search.search.record import optuna_adapter as adapter  # noqa: E402

ATTRS = {f"attr_{i}": {"value": i, "text": "x" * 40, "list": [1.5, 2.5]} for i in range(24)}


def write_costs(trials: int, repeats: int) -> dict:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        study = optuna.create_study(storage=f"sqlite:///{tmp}/b.db")
        for i in range(trials):
            study.enqueue_trial({"x": i}, user_attrs={"pair_key": f"g{i}", "phase": "initial"})
        per_key, one = [], []
        for _ in range(repeats):
            for way, times in (("per_key", per_key), ("one", one)):
                trial = study.ask()
                started = time.perf_counter()
                if way == "per_key":
                    for key, value in ATTRS.items():
                        trial.set_user_attr(key, value)
                else:
                    adapter.set_user_attrs(trial, ATTRS)
                times.append(time.perf_counter() - started)
                assert study.get_trials(deepcopy=False)[trial.number].user_attrs.keys() >= ATTRS.keys()
                study.tell(trial, 1.0)
    return {
        "attributes": len(ATTRS),
        "trials_in_study": trials,
        "repeats": repeats,
        "per_key_median_s": round(statistics.median(per_key), 4),
        "one_transaction_median_s": round(statistics.median(one), 4),
        "ratio_per_key_to_one": round(statistics.median(per_key) / statistics.median(one), 2),
    }


def simulated_matrix() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "gpupair_search.search.cli.app",
                "run",
                "--study",
                "matrix",
                "--device",
                "sim",
                "--results",
                tmp,
            ],
            check=True,
            capture_output=True,
        )
        wall = time.perf_counter() - started
        study = optuna.load_study(study_name="matrix-simulated", storage=f"sqlite:///{tmp}/gpupair.db")
        count = len(study.get_trials(deepcopy=False))
    return {"trials": count, "wall_s": round(wall, 1), "per_trial_s": round(wall / count, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=150)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("-o", "--out", type=Path)
    args = parser.parse_args()
    result = {
        **benchlib.stamp(),
        "device": "none (CPU only)",
        "write": write_costs(args.trials, args.repeats),
        "simulated_matrix": simulated_matrix(),
    }
    benchlib.emit(result, args.out)


if __name__ == "__main__":
    main()
