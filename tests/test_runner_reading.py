"""Settings files as the user's runner (seed_runner.py, ``run_from_experiment_config``) reads them: mode words it
does not know, top-level bookkeeping, separator entries and keys written where the runner does not read them.

The oracle is ``runner_reading`` (tests/runner_oracle.py): the runner's selection and settings logic, written for the tests. Each
class of file loads with ``--lenient`` with one warning per divergence, and strictly where the runner runs it
without one; ``run --device sim`` runs it; ``export`` hands back a file the runner reads the same way. The
project layout tests start ``validate`` and ``run`` from outside a project root that holds ``repos/`` and
``mutation/models_config.json``, as the runner's ``run.sh`` resolves ``$PROJECT_ROOT/$REPO_PATH``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gpupair_search.launcher.errors import ConfigError
from gpupair_search.launcher.experiments import load_experiment
from gpupair_search.search.engine.inputs import find_repos_root, load_registry
from gpupair_search.settings import bundled
from tests.conftest import FIXTURES, cli_env, run_cli
from tests.runner_oracle import our_runs, runner_reading

READING = FIXTURES / "runner_reading"
BUNDLED_MODELS = json.loads(bundled("models.json").read_text(encoding="utf-8"))["models"]


def _data(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture
def registry():  # cheap: a shared one would tie the file's tests to one xdist worker
    return load_registry(None)


#: Each class of file, and the places of its warnings with --lenient: one per divergence.
LENIENT_WARNINGS = {
    "entry_mode_nonparallel": ["experiments[1].mode", "experiments[2].mode"],
    "top_mode_batch": ["mode"],
    "bookkeeping_keys": ["expected_experiments", "expected_total_runs", "created_by"],
    "separator_entries": ["experiments[0]", "experiments[2]", "experiments[4]"],
    "misplaced_keys": [
        "experiments[0].hyperparameters",
        "experiments[1].mutate",
        "experiments[2].background.runs_per_config",
    ],
}
#: Strict mode: the files the runner runs without a divergence load (with the same warnings); the others stop at
#: each divergence.
STRICT_ERRORS = {
    "entry_mode_nonparallel": ["experiments[1].mode", "experiments[2].mode"],
    "top_mode_batch": ["mode"],
    "bookkeeping_keys": None,
    "separator_entries": None,
    "misplaced_keys": [
        "experiments[0].hyperparameters",
        "experiments[1].mutate",
        "experiments[2].background.runs_per_config",
    ],
}


def _places(warnings: list[str]) -> list[str]:
    return [w.split(": ", 2)[1] for w in warnings]


@pytest.mark.parametrize("name", sorted(LENIENT_WARNINGS))
def test_each_class_loads_leniently_with_the_runners_meaning_and_one_warning_per_divergence(name, registry):
    path = READING / f"{name}.json"
    experiment = load_experiment(path, registry, lenient=True)
    assert our_runs(experiment.pairs) == runner_reading(_data(path), BUNDLED_MODELS).runs
    assert _places(experiment.warnings) == LENIENT_WARNINGS[name], experiment.warnings
    assert all(w.startswith(f"{path}: ") for w in experiment.warnings)


@pytest.mark.parametrize("name", sorted(STRICT_ERRORS))
def test_strict_mode_loads_what_the_runner_runs_without_a_divergence_and_names_each_divergence(name, registry):
    path = READING / f"{name}.json"
    if STRICT_ERRORS[name] is None:
        experiment = load_experiment(path, registry)
        assert _places(experiment.warnings) == LENIENT_WARNINGS[name]
        assert our_runs(experiment.pairs) == runner_reading(_data(path), BUNDLED_MODELS).runs
        return
    with pytest.raises(ConfigError) as caught:
        load_experiment(path, registry)
    assert [p.where for p in caught.value.problems] == STRICT_ERRORS[name]
    assert all(p.fix for p in caught.value.problems)


def test_hyperparameters_beside_a_pairs_jobs_are_not_dropped_silently_and_the_fix_says_where_they_go(registry):
    path = READING / "misplaced_keys.json"
    with pytest.raises(ConfigError) as caught:
        load_experiment(path, registry)
    first = caught.value.problems[0]
    assert first.where == "experiments[0].hyperparameters" and 'move it inside "foreground"' in first.fix
    warning = load_experiment(path, registry, lenient=True).warnings[0]
    assert "ignored, as by the seed's runner" in warning and 'move it inside "foreground"' in warning


def test_an_unknown_entry_mode_is_said_as_the_runner_reads_it_not_as_a_near_miss(registry):
    path = READING / "entry_mode_nonparallel.json"
    with pytest.raises(ConfigError) as caught:
        load_experiment(path, registry)
    text = caught.value.render()
    assert '"mutation"' in text and "did you mean" not in text
    warning = load_experiment(path, registry, lenient=True).warnings[1]
    assert 'run as "mutation"' in warning and '"hyperparameters" are not used' in warning


def test_a_pair_whose_mode_is_misspelled_is_skipped_as_by_the_runner_and_named_in_strict_mode(registry, tmp_path):
    data = _data(READING / "separator_entries.json")
    data["experiments"][1]["mode"] = "paralel"
    path = tmp_path / "paralel.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError) as caught:
        load_experiment(path, registry)
    [problem] = caught.value.problems
    assert problem.where == "experiments[1].mode" and 'did you mean "parallel"?' in problem.fix
    experiment = load_experiment(path, registry, lenient=True)
    assert [p.key for p in experiment.pairs] == ["g04:examples/mnist+solo"]
    assert "experiments[1].mode" in _places(experiment.warnings)
    assert our_runs(experiment.pairs) == runner_reading(data, BUNDLED_MODELS).runs


def test_an_unknown_foreground_mode_runs_as_written_with_lenient_as_the_runner_runs_it(registry, tmp_path):
    data = _data(READING / "separator_entries.json")
    data["experiments"][1]["foreground"]["mode"] = "defualt"
    path = tmp_path / "fg_mode.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError) as caught:
        load_experiment(path, registry)
    assert [p.where for p in caught.value.problems] == ["experiments[1].foreground.mode"]
    assert 'did you mean "default"?' in caught.value.problems[0].fix
    experiment = load_experiment(path, registry, lenient=True)
    assert "experiments[1].foreground.mode" in _places(experiment.warnings)
    assert our_runs(experiment.pairs) == runner_reading(data, BUNDLED_MODELS).runs


def test_entries_keyed_repository_are_skipped_leniently_and_nothing_left_is_an_error(registry, tmp_path):
    path = tmp_path / "repository.json"
    path.write_text(
        json.dumps(
            {
                "mode": "default",
                "experiments": [
                    {"repository": "examples", "model": "mnist", "hyperparameters": {"epochs": 1}},
                    {"repository": "examples", "model": "mnist_ff", "hyperparameters": {"epochs": 1}},
                ],
            }
        )
    )
    with pytest.raises(ConfigError) as caught:
        load_experiment(path, registry)
    wheres = [p.where for p in caught.value.problems]
    assert "experiments[0].repo" in wheres and "experiments[0].repository" in wheres
    with pytest.raises(ConfigError) as caught:
        load_experiment(path, registry, lenient=True)
    [problem] = caught.value.problems
    assert problem.where == "experiments" and "every one was skipped" in problem.message


def test_the_skip_warning_of_a_repository_keyed_entry_points_at_repo(registry, tmp_path):
    path = tmp_path / "one_repository.json"
    path.write_text(
        json.dumps(
            {
                "mode": "default",
                "experiments": [
                    {"repository": "examples", "model": "mnist"},
                    {"repo": "examples", "model": "mnist_ff"},
                ],
            }
        )
    )
    experiment = load_experiment(path, registry, lenient=True)
    [warning] = experiment.warnings
    assert "experiments[0]" in warning and "\"repo\" for 'repository'" in warning
    assert [p.key for p in experiment.pairs] == ["g02:examples/mnist_ff+solo"]


@pytest.mark.parametrize("lenient", [False, True])
@pytest.mark.parametrize(
    "change, where, says",
    [
        (lambda d: d.update(experiment_list=d.pop("experiments")), "experiment_list", 'did you mean "experiments"?'),
        (lambda d: d.update(experiments=[]), "experiments", "expected_experiments"),
    ],
    ids=["misspelled", "empty beside a bookkeeping key"],
)
def test_a_missing_or_empty_experiments_list_is_an_error_naming_the_nearest_key(
    registry, tmp_path, lenient, change, where, says
):
    data = _data(READING / "bookkeeping_keys.json")
    change(data)
    path = tmp_path / "s.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError) as caught:
        load_experiment(path, registry, lenient=lenient)
    problem = caught.value.problems[-1]
    assert problem.where == where and says in problem.render()


# -- run --device sim, and export's round trip -----------------------------------------------------------
def _run_sim(path: Path, results: Path, *extra: str):
    return run_cli("run", "--settings", str(path), "--device", "sim", "--results", str(results), *extra, timeout=180)


@pytest.mark.parametrize("name", sorted(LENIENT_WARNINGS))
def test_run_on_the_simulated_device_runs_each_class_and_export_reads_back_the_same(name, tmp_path):
    path = READING / f"{name}.json"
    results = tmp_path / "results"
    done = _run_sim(path, results, "--lenient")
    assert done.returncode == 0, done.stderr + done.stdout
    assert "Traceback" not in done.stderr
    assert sum(line.startswith("warning: ") for line in done.stderr.splitlines()) == len(LENIENT_WARNINGS[name])
    out = tmp_path / "exported.json"
    done = run_cli(
        "export",
        "--settings",
        str(path),
        "--simulated",
        "--lenient",
        "--results",
        str(results),
        "-o",
        str(out),
        timeout=180,
    )
    assert done.returncode == 0, done.stderr + done.stdout
    exported, source = _data(out), _data(path)
    assert exported["_unsafe_pairs"] == []  # every pair fits the simulated 8 GiB card
    assert runner_reading(exported, BUNDLED_MODELS) == runner_reading(source, BUNDLED_MODELS)
    runner_keys = {"governor", "max_retries", "runs_per_config", "mode", "use_deduplication", "historical_csvs"}
    assert set(exported) & runner_keys == set(source) & runner_keys  # nothing the source left to the runner's default


# -- the runner's project layout ---------------------------------------------------------------------------
def _project(root: Path, clones: bool = True) -> Path:
    """A project as the runner lays it out: ``repos/<name>/train.sh``, ``mutation/models_config.json`` with
    relative paths, ``settings/pairs.json``. Returns the settings file."""
    (root / "mutation").mkdir(parents=True)
    (root / "settings").mkdir()
    hyper = {
        "epochs": {"flag": "--epochs", "type": "int", "default": 1},
        "batch_size": {"flag": "--batch-size", "type": "int", "default": 32, "range": [16, 128]},
    }
    models = {
        "models": {
            "examples": {
                "path": "repos/examples",
                "train_script": "./train.sh",
                "model_flag": "-n",
                "models": ["mnist", "mnist_ff"],
                "supported_hyperparams": hyper,
            },
            "VulBERTa": {
                "path": "repos/VulBERTa",
                "train_script": "./train.sh",
                "model_flag": "-n",
                "models": ["mlp"],
                "supported_hyperparams": {**hyper, "batch_size": {**hyper["batch_size"], "default": 2}},
            },
        }
    }
    (root / "mutation" / "models_config.json").write_text(json.dumps(models))
    if clones:
        for name in ("examples", "VulBERTa"):
            script = root / "repos" / name / "train.sh"
            script.parent.mkdir(parents=True)
            script.write_text("#!/bin/sh\nexit 0\n")
            script.chmod(0o755)
    settings = root / "settings" / "pairs.json"
    settings.write_text(
        json.dumps(
            {
                "experiment_name": "layout",
                "mode": "parallel",
                "experiments": [
                    {
                        "foreground": {
                            "repo": "examples",
                            "model": "mnist",
                            "mode": "default",
                            "hyperparameters": {"epochs": 1},
                        },
                        "background": {"repo": "VulBERTa", "model": "mlp", "hyperparameters": {"epochs": 1}},
                    },
                    {"mode": "default", "repo": "examples", "model": "mnist_ff", "hyperparameters": {"batch_size": 16}},
                ],
            }
        )
    )
    return settings


def _cli_in(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """The CLI started in ``cwd``, as a user would start it there."""
    return subprocess.run(
        [sys.executable, "-m", "gpupair_search.search.cli.app", *args],
        cwd=cwd,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_validate_and_run_from_outside_the_project_root_find_it_and_say_so(tmp_path):
    root, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    settings = _project(root)
    elsewhere.mkdir()
    models = str(root / "mutation" / "models_config.json")
    done = _cli_in(elsewhere, "validate", str(settings), "--models", models)
    assert done.returncode == 0, done.stderr
    assert f"resolve against {root}" in done.stdout and "warning" not in done.stderr
    assert f"{root}/repos/examples" not in done.stderr
    done = _cli_in(
        elsewhere,
        "run",
        "--settings",
        str(settings),
        "--models",
        models,
        "--device",
        "sim",
        "--results",
        str(tmp_path / "results"),
    )
    assert done.returncode == 0, done.stderr + done.stdout
    assert f"resolve against {root}" in done.stderr
    assert len([line for line in done.stdout.splitlines() if line[:1].isdigit() and " fits " in line]) == 2
    (root / "repos").rename(tmp_path / "moved")  # reading the stored study needs no clone
    done = _cli_in(
        elsewhere,
        "status",
        "--settings",
        str(settings),
        "--models",
        models,
        "--kind",
        "simulated",
        "--results",
        str(tmp_path / "results"),
    )
    assert done.returncode == 0, done.stderr + done.stdout


def test_without_clones_validate_warns_that_run_needs_them_and_run_refuses(tmp_path):
    root, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    settings = _project(root, clones=False)
    elsewhere.mkdir()
    models = str(root / "mutation" / "models_config.json")
    done = _cli_in(elsewhere, "validate", str(settings), "--models", models)
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 2 and all("`run` needs it" in w for w in warnings)  # one per repository used
    assert f"{root}/repos/VulBERTa" in done.stderr
    results = tmp_path / "results"
    done = _cli_in(
        elsewhere, "run", "--settings", str(settings), "--models", models, "--device", "sim", "--results", str(results)
    )
    assert done.returncode == 1 and "models.examples.path" in done.stderr and "Traceback" not in done.stderr
    assert not results.exists() or not any(results.iterdir())  # a refused run leaves nothing behind
    for command in (
        ["plan", "--gpu-memory", "8GiB", "--settings", str(settings)],
        ["pair", "--fg", "examples/mnist", "--device", "cpu", "--results", str(results)],
    ):
        done = _cli_in(elsewhere, *command, "--models", models)
        assert done.returncode == 1 and "models.examples.path" in done.stderr and "Traceback" not in done.stderr


def test_the_project_root_is_found_where_the_repositories_are(tmp_path):
    root = tmp_path / "project"
    _project(root)
    models = root / "mutation" / "models_config.json"
    assert find_repos_root(models, cwd=tmp_path).path == root  # the folder above the models file's folder
    assert find_repos_root(models, cwd=root).path == root
    assert find_repos_root(models, given=tmp_path / "x", cwd=root).path == tmp_path / "x"
    other = tmp_path / "other"  # the current directory holds the clones, the runner's layout does not
    (other / "repos").mkdir(parents=True)
    (root / "repos").rename(other / "repos")
    found = find_repos_root(models, cwd=other)
    assert found.path == other and "current directory" in found.why
    both = tmp_path / "copy"  # both hold them: the current directory, and the message says how to choose
    _project(both)
    (other / "repos").rename(root / "repos")
    found = find_repos_root(models, cwd=both)
    assert found.path == both and "--repos-root" in found.why


def test_with_no_clones_anywhere_the_runners_layout_is_assumed(tmp_path):
    root = tmp_path / "project"
    _project(root, clones=False)
    found = find_repos_root(root / "mutation" / "models_config.json", cwd=tmp_path)
    assert found.path == root and "no repository is cloned" in found.why


def test_repository_folders_without_their_train_scripts_still_place_the_root_and_say_so(tmp_path):
    root = tmp_path / "project"
    _project(root)
    for script in (root / "repos").glob("*/train.sh"):
        script.unlink()  # a misnamed train_script: the folders are there, the scripts are not
    found = find_repos_root(root / "mutation" / "models_config.json", cwd=tmp_path)
    assert found.path == root and "holds 2 of the models file's 2 repository folders, none with its" in found.why
