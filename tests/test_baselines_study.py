"""A study with solo baselines, run by the real CLI on the CPU device: one baseline per distinct job, queued
once across resumes, never listed as a pair, and each pair's slowdowns in status."""
from __future__ import annotations

import optuna

from tests.conftest import FIXTURES, run_cli

ARGS = ["--settings", str(FIXTURES / "interference_settings.json"), "--models", str(FIXTURES / "progress_models.json"),
        "--repos-root", str(FIXTURES), "--device", "cpu", "--gpu-memory", "2GiB", "--safe-limit", "1800MiB"]


def trials(results):
    storage = f"sqlite:///{results / 'gpupair.db'}"
    return optuna.load_study(study_name="interference_study-cpu", storage=storage).get_trials()


def test_baselines_run_once_per_job_and_are_not_pairs(tmp_path):
    results = tmp_path / "results"
    done = run_cli("run", *ARGS, "--baselines", "--results", str(results))
    assert done.returncode == 0, done.stderr
    assert "5 trial(s) queued" in done.stderr  # two pairs, three distinct jobs
    solo = [t for t in trials(results) if t.user_attrs["phase"] == "baseline"]
    assert sorted(t.params["baseline"] for t in solo) == [
        'solo:progress/external{"step_s": 0.05, "steps": 60}', 'solo:progress/sleeper{"step_s": 0.05, "steps": 30}',
        'solo:progress/sleeper{"step_s": 0.05, "steps": 60}']
    assert all(t.user_attrs["background"] is None and t.user_attrs["window"]["reliable"] for t in solo)
    assert {t.params["fg_batch_size"] for t in solo} == {2, 4}
    table = [line for line in done.stdout.splitlines() if line[:1].isdigit()]
    assert len(table) == 2 and not any("solo:" in line for line in table)  # the verdicts are the pairs'
    again = run_cli("run", *ARGS, "--baselines", "--results", str(results))
    assert again.returncode == 0 and "0 trial(s) queued" in again.stderr
    assert len(trials(results)) == 5
    status = run_cli("status", *ARGS[:6], "--results", str(results))
    assert status.returncode == 0, status.stderr
    assert "foreground" in status.stdout and "x slower" in status.stdout
    exported = tmp_path / "safe.json"
    export = run_cli("export", *ARGS[:2], "--study-models", ARGS[3], "--repos-root", str(FIXTURES),
                     "--results", str(results), "--kind", "cpu", "-o", str(exported))
    assert export.returncode == 0, export.stderr
    assert "solo:" not in exported.read_text()


def test_a_study_without_baselines_queues_none_and_keeps_that_in_its_definition(tmp_path):
    results = tmp_path / "results"
    done = run_cli("run", *ARGS, "--no-baselines", "--no-extend", "--results", str(results))
    assert done.returncode == 0, done.stderr
    assert [t.user_attrs["phase"] for t in trials(results)] == ["initial", "initial"]
    changed = run_cli("run", *ARGS, "--baselines", "--no-extend", "--results", str(results))
    assert changed.returncode != 0 and "baselines: stored False, now True" in changed.stderr
