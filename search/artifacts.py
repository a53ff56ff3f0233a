"""Attach a trial's files (logs, experiment.json, timeline) to it in an Optuna artifact store.

Called while the trial is still RUNNING: Optuna refuses attributes on finished trials.
"""
from __future__ import annotations

import optuna

from launcher.pair_runner import PairResult


def attach_trial_artifacts(trial: optuna.Trial, result: PairResult, store) -> None:
    """Upload what the trial's results directory holds. Implemented with the dashboard (issue 5)."""
    return None
