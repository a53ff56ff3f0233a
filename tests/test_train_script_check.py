"""A job whose training script cannot start (missing, a directory, not executable where it is executed directly) is
refused by ``validate``, ``pair`` and ``run`` at the models file's ``train_script``, before anything starts or is
written; only the repositories the settings use are checked (real files, real subprocesses)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from gpupair_search.launcher.experiments import load_experiment
from gpupair_search.launcher.registry import Registry
from gpupair_search.launcher.spec import JobConfig
from tests.conftest import FIXTURES, run_cli


def _project(root: Path, script: str, state: str) -> tuple[Path, Path]:
    """A models file whose ``scripted`` repository runs ``script`` (in ``state``: executable, plain, directory,
    missing), a ``fixture`` repository that runs fake_train.py, and a settings file pairing the two."""
    repo = root / "repos" / "scripted"
    repo.mkdir(parents=True)
    shutil.copy(FIXTURES / "fake_train.py", repo / "fake_train.py")
    if state == "directory":
        (repo / script).mkdir()
    elif state == "crlf":  # saved on Windows: the #! line names "/bin/sh\r"
        (repo / script).write_bytes(b"#!/bin/sh\r\nexit 0\r\n")
        (repo / script).chmod(0o755)
    elif state != "missing":
        (repo / script).write_text("#!/bin/sh\nexit 0\n")
        (repo / script).chmod(0o755 if state == "executable" else 0o644)
    body = json.loads((FIXTURES / "models.json").read_text(encoding="utf-8"))
    fixture = body["models"]["fixture"]
    fixture["path"] = "repos/scripted"
    fixture["train_script"] = "fake_train.py"
    body["models"]["scripted"] = {**fixture, "train_script": script}
    body["models"]["not_cloned_here"] = {**fixture, "path": "repos/elsewhere", "train_script": "./missing.sh"}
    (root / "models.json").write_text(json.dumps(body), encoding="utf-8")
    job = {"repo": "fixture", "model": "ok", "hyperparameters": {"seconds": 30}}
    (root / "settings.json").write_text(
        json.dumps(
            {
                "experiment_name": "scripts",
                "experiments": [
                    {
                        "mode": "parallel",
                        "foreground": {"mode": "default", "repo": "scripted", "model": "ok"},
                        "background": job,
                    }
                ],
            }
        )
    )
    return root / "settings.json", root / "models.json"


@pytest.mark.parametrize(
    "script, state, why",
    [
        ("./nosuch.sh", "missing", "does not exist"),
        ("nosuch.py", "missing", "does not exist"),
        ("./train.sh", "directory", "is a directory"),
        ("./train.sh", "plain", "is not executable"),
        ("./train.sh", "crlf", "has Windows line endings (CRLF)"),
    ],
)
def test_validate_names_the_train_script_that_cannot_start_and_run_refuses_it(tmp_path, script, state, why):
    settings, models = _project(tmp_path, script, state)
    done = run_cli("validate", str(settings), "--models", str(models), "--repos-root", str(tmp_path), timeout=60)
    assert done.returncode == 0 and "Traceback" not in done.stderr  # validate checks meaning: a warning
    [line] = done.stderr.splitlines()
    assert line.startswith(f"warning: {models}: models.scripted.train_script: ") and why in line, done.stderr
    assert line.endswith("`run` needs it (`validate` checks only the files' meaning)")
    done = run_cli(
        "run",
        "--settings",
        str(settings),
        "--models",
        str(models),
        "--repos-root",
        str(tmp_path),
        "--device",
        "sim",
        "--results",
        str(tmp_path / "results"),
        timeout=60,
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert lines[0].startswith(f"error: {models}: models.scripted.train_script: ") and why in lines[0], done.stderr
    assert len(lines) == 3 and lines[1].startswith("  expected: ") and lines[2].startswith("  fix: ")


def test_run_refuses_before_the_background_starts_and_stores_nothing(tmp_path):
    settings, models = _project(tmp_path, "./nosuch.sh", "missing")
    results = tmp_path / "results"
    done = run_cli(
        "run",
        "--settings",
        str(settings),
        "--models",
        str(models),
        "--repos-root",
        str(tmp_path),
        "--device",
        "cpu",
        "--gpu-memory",
        "400MiB",
        "--safe-limit",
        "250MiB",
        "--results",
        str(results),
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith(f"error: {models}: models.scripted.train_script: "), done.stderr
    assert not results.exists()  # no study, no trial, no log: the background never started


def test_pair_refuses_before_anything_starts(tmp_path):
    _, models = _project(tmp_path, "./train.sh", "plain")
    done = run_cli(
        "pair",
        "--fg",
        "scripted/ok",
        "--bg",
        "fixture/ok",
        "--device",
        "cpu",
        "--models",
        str(models),
        "--repos-root",
        str(tmp_path),
        "--results",
        str(tmp_path / "results"),
        timeout=60,
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith(f"error: {models}: models.scripted.train_script: "), done.stderr
    assert f"chmod +x {tmp_path / 'repos' / 'scripted' / 'train.sh'}" in done.stderr
    assert not (tmp_path / "results").exists()


def test_a_repository_the_settings_do_not_use_needs_no_clone_nor_script(tmp_path):
    settings, models = _project(tmp_path, "./train.sh", "executable")  # not_cloned_here is in the models file
    done = run_cli("validate", str(settings), "--models", str(models), "--repos-root", str(tmp_path), timeout=60)
    assert done.returncode == 0, done.stderr


def test_a_python_script_is_run_by_python_and_needs_no_execute_bit(tmp_path):
    settings, models = _project(tmp_path, "train.py", "plain")
    done = run_cli("validate", str(settings), "--models", str(models), "--repos-root", str(tmp_path), timeout=60)
    assert done.returncode == 0, done.stderr
    assert "foreground: python train.py -n ok" in done.stdout


def test_a_bare_script_name_is_executed_from_the_repository_not_looked_up_on_path(tmp_path):
    _, models = _project(tmp_path, "train.sh", "executable")
    command = Registry.load(models, base_dir=tmp_path).command(JobConfig("scripted", "ok", {}))
    assert command.argv[0] == "./train.sh"
    assert subprocess.run(list(command.argv), cwd=command.cwd, timeout=30).returncode == 0


def test_checking_against_another_machines_models_file_skips_what_is_on_disk(tmp_path):
    """export's check of its output against a target models file: the target's clones are not here."""
    settings, models = _project(tmp_path, "./nosuch.sh", "missing")
    registry = Registry.load(models, base_dir=tmp_path, require_paths=False)
    assert len(load_experiment(settings, registry).pairs) == 1


def test_the_built_in_workloads_run_as_modules_and_pass():
    done = run_cli(
        "validate", str(Path(__file__).parents[1] / "settings" / "parallel_feasibility_test.json"), timeout=60
    )
    assert done.returncode == 0, done.stderr


def test_a_boolean_a_store_true_flag_refused_is_named_with_the_fix(tmp_path):
    """A real argparse script with ``--amp`` as ``store_true``, given ``--amp True`` as the runner writes a
    boolean: its log says only "unrecognized arguments: True"; the warning names the flag and the change."""
    import subprocess
    import sys

    from gpupair_search.launcher.pair_runner import boolean_value_refused

    script = tmp_path / "train.py"
    script.write_text(
        "import argparse\n"
        "p = argparse.ArgumentParser()\n"
        "p.add_argument('--amp', action='store_true')\n"
        "p.add_argument('--epochs', type=int)\n"
        "p.parse_args()\n"
    )
    argv = [sys.executable, str(script), "--epochs", "1", "--amp", "True"]
    log = subprocess.run(argv, capture_output=True, text=True, timeout=60).stderr
    (warning,) = boolean_value_refused("foreground", argv, log)
    assert "refused --amp True" in warning and "store_true" in warning and "type=lambda s: s == 'True'" in warning
    assert boolean_value_refused("foreground", [sys.executable, str(script), "--amp"], "usage: ...") == []
    unrelated = "error: unrecognized arguments: --lr 0.1"  # nothing boolean in it
    assert boolean_value_refused("background", argv, unrelated) == []
