"""A job that never started is its own outcome, with the reason from its first lines, not a measured crash;
and ``run --gpus`` prints why a worker stopped (real processes)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gpupair_search.launcher.outcome import JobEnd, Outcome, classify, scan_log
from tests.conftest import FIXTURES, run_cli


def models_with_script(tmp_path: Path, script: str, executable: bool) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "train.sh").write_text("#!/bin/sh\necho training\n")
    (repo / "train.sh").chmod(0o755 if executable else 0o644)
    body = json.loads((FIXTURES / "models.json").read_text())
    entry = body["models"]["fixture"]
    entry["path"], entry["train_script"] = str(repo), script
    path = tmp_path / "models.json"
    path.write_text(json.dumps(body))
    return path


def test_a_script_that_is_not_executable_never_starts_and_says_why(tmp_path):
    models = models_with_script(tmp_path, "./train.sh", executable=False)
    done = run_cli("pair", "--fg", "fixture/ok", "--device", "cpu", "--models", str(models),
                   "--results", str(tmp_path / "results"))
    assert done.returncode == 3, done.stderr
    assert "outcome: not_started_foreground" in done.stdout
    assert "cannot start './train.sh'" in done.stdout and "Permission denied" in done.stdout


@pytest.mark.parametrize("log", ["/usr/bin/python3: can't open file '/x/train.py': [Errno 2] No such file or directory\n",
                                 "/venv/bin/python: No module named gpupair_search.workloads.nothing\n",
                                 "gpupair-search: cannot start './run.sh': [Errno 13] Permission denied\n"])
def test_the_first_lines_of_a_job_that_never_ran_make_the_outcome(log):
    end = JobEnd(2, False, scan_log(log), 0.1)
    assert classify(end, [], timed_out=False, over_budget=False, background_unstable=False) is Outcome.NOT_STARTED_FOREGROUND
    assert not Outcome.NOT_STARTED_FOREGROUND.is_memory_verdict and not Outcome.NOT_STARTED_FOREGROUND.started


def test_a_crash_after_training_started_is_still_a_crash():
    log = "epoch 1 step 3 loss 0.5\nTraceback (most recent call last):\nValueError: boom\n"
    end = JobEnd(1, False, scan_log(log), 3.0)
    assert classify(end, [], timed_out=False, over_budget=False, background_unstable=False) is Outcome.CRASH_FOREGROUND


def test_run_gpus_prints_each_failed_workers_reason(tmp_path):
    """Without a GPU every worker of ``run --gpus`` stops at once; the parent says why, not only 'see its log'."""
    done = run_cli("run", "--gpus", "0", "--device", "sim", "--results", str(tmp_path / "results"), timeout=120)
    if done.returncode == 0:
        pytest.skip("an NVIDIA GPU is here: the worker ran")
    assert "worker on cuda:0 exited with" in done.stderr
    reason = done.stderr.split("worker on cuda:0 exited with", 1)[1].splitlines()[0]
    assert "error:" in reason, done.stderr
