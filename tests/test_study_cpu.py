"""A study of three pairs runs end to end as real processes; killing the runner loses and duplicates nothing."""

from __future__ import annotations

import collections
import signal
import subprocess
import sys

import optuna
from optuna.trial import TrialState

from tests.conftest import CPU_CARD_ARGS, FIXTURES, cli_env, wait_until

STUDY_ARGS = ["--settings", str(FIXTURES / "study_settings.json"), *CPU_CARD_ARGS]


def cli(*args, results):
    return [sys.executable, "-m", "gpupair_search.search.cli.app", *args, "--results", str(results)]


def load(results):
    storage = f"sqlite:///{results / 'gpupair.db'}"
    return optuna.load_study(study_name="fixture_study-cpu", storage=storage)


def test_study_of_three_pairs_runs_end_to_end_and_extends_the_failing_pair(tmp_path):
    results = tmp_path / "results"
    done = subprocess.run(
        cli("run", *STUDY_ARGS, results=results), env=cli_env(), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    lines = {line.split()[0]: line for line in done.stdout.splitlines() if line[:1].isdigit()}
    assert " fits " in lines["1"]
    assert "fits_reduced" in lines["2"]
    assert "failed" in lines["3"] and "crash_foreground" in lines["3"]
    study = load(results)
    trials = study.get_trials()
    assert all(t.state in (TrialState.COMPLETE, TrialState.FAIL) for t in trials)
    crash = [t for t in trials if t.params["pair"].startswith("g03")]
    assert [t.state for t in crash] == [TrialState.FAIL] and "crash_foreground" in crash[0].user_attrs["fail_reason"]
    extension = [t for t in trials if t.user_attrs.get("phase") == "extension"]
    assert extension and all(t.user_attrs["extends"].startswith("g02") for t in extension)
    initial_g2 = next(t for t in trials if t.params["pair"].startswith("g02") and t.user_attrs["phase"] == "initial")
    assert initial_g2.constraints["over_safe_limit_mib"] > 0  # infeasible: the reason it was extended
    # every measured number lands in user attributes and in the results directory
    assert initial_g2.user_attrs["memory"]["background_peak_mib"] > 0
    assert (results.glob("run_*/fixture_ok_parallel_001/experiment.json")).__next__().exists()
    status = subprocess.run(
        cli("status", *STUDY_ARGS[:6], results=results), env=cli_env(), capture_output=True, text=True, timeout=60
    )
    assert status.returncode == 0 and "fits_reduced" in status.stdout
    # each trial's time outside its jobs' own work, and how its jobs were probed (fake_train has --max-steps)
    assert all(0 <= t.user_attrs["outside_jobs_s"] < 30 for t in trials)
    assert initial_g2.user_attrs["probe"]["foreground"]["rule"] == "bounded steps"
    assert "time outside the jobs: median" in status.stdout and "× probe: bounded steps" in status.stdout


def test_cpu_memory_is_the_cpu_studys_card_so_another_budget_is_another_definition(tmp_path):
    results = tmp_path / "results"
    args = [*STUDY_ARGS[:8], "--safe-limit", "250MiB", "--no-extend"]  # without --gpu-memory 400MiB

    def run(*budget):
        return subprocess.run(
            cli("run", *args, *budget, results=results), env=cli_env(), capture_output=True, text=True, timeout=300
        )

    first = run("--cpu-memory", "400MiB")
    assert first.returncode == 0, first.stderr
    assert "host-memory budget 400 MiB" in first.stderr
    assert run("--gpu-memory", "400MiB").returncode == 0  # the same budget, by the other flag: the same study
    other = run("--cpu-memory", "300MiB")
    assert other.returncode != 0 and "card_mib: stored 400, now 300" in other.stderr


def test_sigkill_mid_study_then_the_same_command_loses_and_duplicates_nothing(tmp_path):
    results = tmp_path / "results"
    runner = subprocess.Popen(
        cli("run", *STUDY_ARGS, results=results), env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )

    def second_trial_running():
        try:
            return any(t.number >= 1 and t.state is TrialState.RUNNING for t in load(results).get_trials())
        except Exception:  # noqa: BLE001 - the storage may be mid-write by the runner; ask again
            return False

    assert wait_until(second_trial_running, timeout=120)
    runner.send_signal(signal.SIGKILL)
    runner.wait(timeout=30)
    killed = [t for t in load(results).get_trials() if t.state is TrialState.RUNNING]
    assert len(killed) == 1
    again = subprocess.run(
        cli("run", *STUDY_ARGS, results=results), env=cli_env(), capture_output=True, text=True, timeout=300
    )
    assert again.returncode == 0, again.stderr
    trials = load(results).get_trials()
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    stale = [t for t in trials if t.state is TrialState.FAIL and "outcome" not in t.user_attrs]
    assert [t.number for t in stale] == [killed[0].number]
    retries = [t for t in trials if t.user_attrs.get("retry_of") == killed[0].number]
    # killed before it suggested its parameters, a trial has none yet: its enqueued ones are what it was to measure
    queued_with = killed[0].system_attrs.get("fixed_params") or killed[0].params
    assert len(retries) == 1 and retries[0].params == queued_with
    measured = collections.Counter(
        (t.params["pair"], t.params.get("fg_batch_size"), t.params.get("bg_batch_size"))
        for t in trials
        if "outcome" in t.user_attrs
    )
    assert max(measured.values()) == 1  # no configuration ran twice
    assert {p for p, _, _ in measured} == {p["key"] for p in load(results).user_attrs["definition"]["pairs"]}
