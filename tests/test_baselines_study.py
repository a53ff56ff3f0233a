"""A study with solo baselines, run by the real CLI on the CPU device: one baseline per distinct job, queued
once across resumes, never listed as a pair, and each pair's slowdowns in status."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import optuna

from tests.conftest import FIXTURES, run_cli

ROOT = Path(__file__).resolve().parents[1]

ARGS = [
    "--settings",
    str(FIXTURES / "interference_settings.json"),
    "--models",
    str(FIXTURES / "progress_models.json"),
    "--repos-root",
    str(FIXTURES),
    "--device",
    "cpu",
    "--gpu-memory",
    "2GiB",
    "--safe-limit",
    "1800MiB",
]


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
        'solo:progress/external{"step_s": 0.05, "steps": 60}',
        'solo:progress/sleeper{"step_s": 0.05, "steps": 30}',
        'solo:progress/sleeper{"step_s": 0.05, "steps": 60}',
    ]
    assert all(t.user_attrs["background"] is None and t.user_attrs["window"]["reliable"] for t in solo)
    assert {t.params["fg_batch_size"] for t in solo} == {2, 4}
    pairs = [t for t in trials(results) if t.user_attrs["phase"] == "initial"]
    # baselines run first, so each pair trial carries its figures for optuna-dashboard
    assert all(t.user_attrs["interference"]["foreground_slowdown"] > 0 for t in pairs)
    table = [line for line in done.stdout.splitlines() if line[:1].isdigit()]
    assert len(table) == 2 and not any("solo:" in line for line in table)  # the verdicts are the pairs'
    again = run_cli("run", *ARGS, "--baselines", "--results", str(results))
    assert again.returncode == 0 and "0 trial(s) queued" in again.stderr
    assert len(trials(results)) == 5
    status = run_cli("status", *ARGS[:6], "--results", str(results))
    assert status.returncode == 0, status.stderr
    assert "foreground" in status.stdout and "x slower" in status.stdout
    exported = tmp_path / "safe.json"
    export = run_cli(
        "export",
        *ARGS[:2],
        "--study-models",
        ARGS[3],
        "--repos-root",
        str(FIXTURES),
        "--results",
        str(results),
        "--kind",
        "cpu",
        "-o",
        str(exported),
    )
    assert export.returncode == 0, export.stderr
    assert "solo:" not in exported.read_text()
    notes = [e["note"] for e in json.loads(exported.read_text())["experiments"]]
    assert len(notes) == 2 and all("x slower" in note for note in notes)
    report = run_cli("report", *ARGS[:6], "--results", str(results), "-o", str(tmp_path / "report.html"))
    assert report.returncode == 0, report.stderr
    page = (tmp_path / "report.html").read_text()
    assert "What co-location costs" in page and "Power and CPU" in page
    heatmap = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "interference_heatmap.py"),
            *ARGS[:6],
            "--results",
            str(results),
            "-o",
            str(tmp_path / "heat"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert heatmap.returncode == 0, heatmap.stderr
    figures = json.loads((tmp_path / "heat.json").read_text())["pairs"]
    assert len(figures) == 2 and all(p["foreground_slowdown"] for p in figures)
    assert (tmp_path / "heat.html").stat().st_size > 100_000  # plotly.js inlined: opens with no network


def test_a_study_without_baselines_queues_none_and_keeps_that_in_its_definition(tmp_path):
    results = tmp_path / "results"
    done = run_cli("run", *ARGS, "--no-baselines", "--no-extend", "--results", str(results))
    assert done.returncode == 0, done.stderr
    assert [t.user_attrs["phase"] for t in trials(results)] == ["initial", "initial"]
    changed = run_cli("run", *ARGS, "--baselines", "--no-extend", "--results", str(results))
    assert changed.returncode != 0 and "baselines: stored False, now True" in changed.stderr


def test_a_job_that_cannot_report_progress_gets_no_baseline(fixture_registry):
    """A solo run without a steady-state window measures nothing a baseline is for (a CPU-only built-in's solo
    run takes minutes for no window): such jobs get none; built-ins that train for min_train_s do."""
    from gpupair_search.launcher.registry import Registry
    from gpupair_search.launcher.spec import JobConfig
    from gpupair_search.search.engine.baselines import reports_progress
    from gpupair_search.settings import BUNDLE_ROOT, bundled

    builtins = Registry.load(bundled("models.json"), base_dir=BUNDLE_ROOT)
    assert reports_progress(JobConfig("examples", "mnist"), builtins)
    assert not reports_progress(JobConfig("bug-localization-by-dnn-and-rvsm", "default"), builtins)
    assert not reports_progress(JobConfig("fixture", "ok"), fixture_registry)  # no progress_steps pattern
