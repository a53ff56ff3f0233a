"""A job that never started is its own outcome, with the reason from its first lines, not a measured crash;
and ``run --gpus`` prints why a worker stopped (real processes)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpupair_search.launcher.outcome import JobEnd, Outcome, classify, scan_log
from gpupair_search.launcher.process import start_job
from gpupair_search.launcher.registry import Registry
from gpupair_search.launcher.spec import JobConfig
from tests.conftest import FIXTURES, cli_env, run_cli, wait_until


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


def test_a_script_that_is_not_executable_is_refused_before_anything_starts(tmp_path):
    models = models_with_script(tmp_path, "./train.sh", executable=False)
    done = run_cli(
        "pair", "--fg", "fixture/ok", "--device", "cpu", "--models", str(models), "--results", str(tmp_path / "results")
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith(f"error: {models}: models.fixture.train_script: ") and "not executable" in done.stderr
    assert not (tmp_path / "results").exists()


def test_a_script_that_lost_its_execute_bit_after_the_check_never_starts_and_says_why(tmp_path):
    models = models_with_script(tmp_path, "./train.sh", executable=True)
    command = Registry.load(models).command(JobConfig("fixture", "ok", {}))
    (tmp_path / "repo" / "train.sh").chmod(0o644)
    job = start_job("foreground", command, tmp_path / "foreground.log", cli_env())
    assert wait_until(lambda: job.poll() is not None) and job.poll() == 127
    log = (tmp_path / "foreground.log").read_text()
    assert "cannot start './train.sh'" in log and "Permission denied" in log
    end = JobEnd(job.poll(), False, scan_log(log), job.duration())
    assert (
        classify(end, [], timed_out=False, over_budget=False, background_unstable=False)
        is Outcome.NOT_STARTED_FOREGROUND
    )


@pytest.mark.parametrize(
    "log",
    [
        "/usr/bin/python3: can't open file '/x/train.py': [Errno 2] No such file or directory\n",
        "/venv/bin/python: No module named gpupair_search.workloads.nothing\n",
        "gpupair-search: cannot start './run.sh': [Errno 13] Permission denied\n",
    ],
)
def test_the_first_lines_of_a_job_that_never_ran_make_the_outcome(log):
    end = JobEnd(2, False, scan_log(log), 0.1)
    assert (
        classify(end, [], timed_out=False, over_budget=False, background_unstable=False)
        is Outcome.NOT_STARTED_FOREGROUND
    )
    assert not Outcome.NOT_STARTED_FOREGROUND.is_memory_verdict and not Outcome.NOT_STARTED_FOREGROUND.started


def test_a_crash_after_training_started_is_still_a_crash():
    log = "epoch 1 step 3 loss 0.5\nTraceback (most recent call last):\nValueError: boom\n"
    end = JobEnd(1, False, scan_log(log), 3.0)
    assert classify(end, [], timed_out=False, over_budget=False, background_unstable=False) is Outcome.CRASH_FOREGROUND


def test_run_gpus_without_those_gpus_stops_before_storing_a_study(tmp_path):
    """Else the study would be stored, queued, for workers that all fail at once."""
    done = run_cli("run", "--gpus", "0", "--results", str(tmp_path / "results"), timeout=120)
    if done.returncode == 0:
        pytest.skip("an NVIDIA GPU is here: the worker ran")
    assert "--gpus 0: cuda:0 can't be opened" in done.stderr and "Nothing was stored" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "results" / "gpupair.db").exists()


def test_a_failed_workers_reason_is_its_last_error_line(tmp_path):
    from gpupair_search.search.cli.run_study import _last_error

    log = tmp_path / "cuda0.log"
    log.write_text("starting\nerror: first\nsome output\nerror: NVML is not usable here\nbye\n")
    assert _last_error(log) == "error: NVML is not usable here"
    log.write_text("only output\n")
    assert _last_error(log) == "only output"
    assert _last_error(tmp_path / "missing.log") == "(no log)"
