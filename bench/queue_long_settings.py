#!/usr/bin/env python3
"""Queue cost: how long a settings file of N pairs takes to become a study's queued trials (SQLite, simulated).

Each pair of the bundled 12-group file is repeated with its own seed until there are N distinct pairs; the
study is opened on a fresh SQLite storage and every pair is queued (``FeasibilityStudy.enqueue_initial``), as
``run --settings FILE`` does before its first trial. Runs on any machine: nothing trains.

Usage: python bench/queue_long_settings.py --pairs 500 2000
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import optuna

from gpupair_search.launcher.spec import StudyKind
from gpupair_search.search.engine.session import open_study, resolve_inputs
from gpupair_search.search.policy.planner import ExtensionOptions
from gpupair_search.settings import bundled


def long_settings(pairs: int, folder: Path) -> Path:
    body = json.loads(bundled("parallel_feasibility_test.json").read_text(encoding="utf-8"))
    groups = [e for e in body["experiments"] if isinstance(e, dict) and e.get("mode") == "parallel"]
    experiments = []
    for i in range(pairs):
        entry = json.loads(json.dumps(groups[i % len(groups)]))
        entry["foreground"].setdefault("hyperparameters", {})["seed"] = 1000 + i  # a distinct pair
        experiments.append(entry)
    body.update(experiments=experiments, experiment_name=f"long{pairs}")
    path = folder / f"long{pairs}.json"
    path.write_text(json.dumps(body), encoding="utf-8")
    return path


def queue(pairs: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        settings = long_settings(pairs, folder)
        started = time.perf_counter()
        inputs = resolve_inputs(None, settings, None, None, False, None, None, need_clones=False)
        read = time.perf_counter()
        fs = open_study(inputs, f"sqlite:///{folder / 'q.db'}", folder, ExtensionOptions(), StudyKind.SIMULATED)
        opened = time.perf_counter()
        added = fs.enqueue_initial()
        queued = time.perf_counter()
    assert added == pairs, (added, pairs)
    return {"pairs": pairs, "read_s": read - started, "open_s": opened - read, "queue_s": queued - opened}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, nargs="+", default=[500, 2000])
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    for n in args.pairs:
        row = queue(n)
        print(
            f"{row['pairs']:>6} pairs: read {row['read_s']:.1f} s, open {row['open_s']:.1f} s, "
            f"queue {row['queue_s']:.1f} s ({1000 * row['queue_s'] / n:.1f} ms a pair)"
        )


if __name__ == "__main__":
    main()
