#!/usr/bin/env python3
"""Prediction: each measured pair's peak predicted from its jobs' solo profiles, against the measurement.

The prediction is the memory model of search/policy/memory_model.py fitted on the shipped profile points only
(fixed + per-sample part per job, from solo runs), summed over the two jobs at the trial's batch sizes.
Measured: the trial's sum of each job's own peak. Runs on this machine over a study database.

Usage: python bench/prediction.py bench/data/h100_2026-11-27/probe_study.db [--study feasibility]
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import optuna

from gpupair_search.search.policy.planner import fit_models
from gpupair_search.search.policy.profiles import load_profiles, profile_observations


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("db", type=Path)
    parser.add_argument("--study", default="feasibility")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.load_study(study_name=args.study, storage=f"sqlite:///{args.db}")
    models = fit_models([], profile_observations(load_profiles()))
    errors = []
    print("| trial | pair | batch fg/bg | predicted MiB | measured MiB | error |")
    print("|---|---|---|---|---|---|")
    for t in study.get_trials():
        if t.user_attrs.get("outcome") != "ok":
            continue
        predicted = 0.0
        for role, param in (("foreground", "fg_batch_size"), ("background", "bg_batch_size")):
            job = t.user_attrs.get(role)
            if job is None:
                continue
            key = f"{job['repo']}/{job['model']}"
            if key not in models:  # a CPU-only job (bug-localization): no GPU memory, no profile
                continue
            predicted += models[key].predict(t.params.get(param))
        measured = t.user_attrs["memory"]["sum_of_peaks_mib"]
        error = 100 * (predicted - measured) / measured
        errors.append(abs(error))
        print(
            f"| {t.number} | {t.params['pair']} | {t.params.get('fg_batch_size')}/{t.params.get('bg_batch_size')} "
            f"| {predicted:,.0f} | {measured:,.0f} | {error:+.1f}% |"
        )
    print(f"\n{len(errors)} pairs: median |error| {statistics.median(errors):.2f}%, max {max(errors):.2f}%")


if __name__ == "__main__":
    main()
