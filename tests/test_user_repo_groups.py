"""The seed groups as a user's project (bench/user_repo_groups.py): each built-in behind a ``train.sh`` in
``repos/<repository>``, a models file of the seed runner's format, and the tool resolves it all from the project's
root as a user runs it; and the comparison bench's reading of two studies (bench/user_repo_vs_builtin.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.user_repo_groups import parse_groups, write_project
from bench.user_repo_vs_builtin import compare_peaks, compare_verdicts
from gpupair_search.launcher.experiments import load_experiment
from gpupair_search.launcher.registry import BOUND_KEYS, Registry
from gpupair_search.settings import bundled


@pytest.fixture
def project(tmp_path):
    return write_project(tmp_path / "project", (1, 2))


def test_the_project_resolves_from_its_root_without_repos_root(project, monkeypatch):
    monkeypatch.chdir(project.root)
    registry = Registry.load(project.models)  # relative repository paths against the current directory
    experiment = load_experiment(project.settings, registry)
    assert [p.key for p in experiment.pairs] == [
        "g01:examples/mnist_ff+pytorch_resnet_cifar10/resnet20",
        "g02:examples/mnist+VulBERTa/mlp",
    ]
    command = registry.command(experiment.pairs[1].background)
    assert command.argv[:3] == ("./train.sh", "-n", "mlp") and command.module is None  # a cold start, as a user's
    assert command.cwd.resolve() == (project.root / "repos" / "VulBERTa").resolve()


def test_validate_run_from_the_project_root_shows_each_job_through_its_train_sh(project):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "gpupair_search.search.cli.app",
            "validate",
            str(project.settings),
            "--models",
            str(project.models),
        ],
        cwd=project.root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "foreground: ./train.sh -n mnist_ff -e 1" in done.stdout and "2 pair(s)" in done.stdout


def test_the_models_file_is_the_shipped_one_as_a_users(project):
    shipped = json.loads(bundled("models.json").read_text(encoding="utf-8"))["models"]
    written = json.loads((project.root / project.models).read_text(encoding="utf-8"))["models"]
    assert set(written) == {"examples", "pytorch_resnet_cifar10", "VulBERTa"}
    for name, entry in written.items():
        assert (entry["path"], entry["train_script"]) == (f"repos/{name}", "./train.sh")
        assert "train_module" not in entry
        assert entry["models"] == shipped[name]["models"] and entry.get("model_defaults") == shipped[name].get(
            "model_defaults"
        )
        for hp, spec in entry["supported_hyperparams"].items():
            assert spec == {k: v for k, v in shipped[name]["supported_hyperparams"][hp].items() if k not in BOUND_KEYS}


def test_each_train_sh_starts_its_built_in_workload(project):
    done = subprocess.run(
        ["./train.sh", "--help"], cwd=project.root / "repos" / "examples", capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "mnist_ff" in done.stdout  # the built-in's own argument parser answered


def test_groups_are_named_as_the_pair_keys_and_checked():
    assert parse_groups("g01,2", 12) == (1, 2) and parse_groups(None, 3) == (1, 2, 3)
    with pytest.raises(SystemExit, match="g13"):
        parse_groups("g13", 12)


def test_the_bench_compares_each_jobs_peak_and_each_verdict():
    a = {"g01 32/128": {"foreground": 1000.0, "background": 2000.0}}
    b = {"g01 32/128": {"foreground": 1010.0, "background": 2100.0}, "g02 32/2": {"foreground": 5.0, "background": 5.0}}
    rows = compare_peaks(a, b)
    assert [(r["role"], r["rel_diff"], r["within_target"]) for r in rows] == [
        ("foreground", 0.01, True),
        ("background", 0.05, False),
    ]
    verdicts = compare_verdicts(
        {"g01": {"verdict": "fits", "recommended": (32, 128)}}, {"g01": {"verdict": "fits", "recommended": (32, 64)}}
    )
    assert verdicts[0]["same"] is False


def test_a_run_past_its_limit_is_stopped_with_ctrl_c_and_said_to_have_timed_out(tmp_path):
    from bench.user_repo_vs_builtin import timed

    script = (
        "import signal, sys, time\nsignal.signal(signal.SIGINT, lambda *a: (print('stopped'), sys.exit(130)))\n"
        "print('started', flush=True)\ntime.sleep(60)\n"
    )
    run = timed([sys.executable, "-c", script], tmp_path, tmp_path / "run.log", timeout_s=2.0)
    assert run["timed_out"] and run["rc"] is None and run["wall_s"] < 15
    assert run["tail"] == ["started", "stopped"]  # it ended on the Ctrl-C, not on the kill that would follow


def test_the_bench_runs_end_to_end_on_the_simulated_device(tmp_path):
    """Both studies predicted from the same profiles: the bench's plumbing (project, both CLI runs, reading both
    studies back under the seed's group numbers) must find them equal; on a GPU the same code measures."""
    done = subprocess.run(
        [
            sys.executable,
            "bench/user_repo_vs_builtin.py",
            "--device",
            "sim",
            "--groups",
            "g01,g09",
            "--out",
            str(tmp_path / "out"),
            "--work",
            str(tmp_path / "work"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert done.returncode == 0, done.stdout + done.stderr
    data = json.loads((tmp_path / "out" / "user_repo_vs_builtin.json").read_text())
    summary = data["summary"]
    assert summary["both_completed"] and summary["verdicts_equal"] and summary["peaks_within_target"]
    for side in ("builtin", "user"):  # each study read back from its typed trial records, times outside included
        study = data[side]["study"]
        assert study["measured_trials"] > 0 and len(study["outside_jobs_s"]) == study["measured_trials"], study
    assert [row["pair"] for row in data["verdicts"]] == [
        "g01:examples/mnist_ff+pytorch_resnet_cifar10/resnet20",
        "g09:Person_reID_baseline_pytorch/pcb+VulBERTa/mlp",
    ]
    assert data["user"]["run"]["cwd"] == str(tmp_path / "work" / "project")  # run from the project's root
    assert "SIMULATED" in (tmp_path / "out" / "user_repo_vs_builtin.md").read_text()
