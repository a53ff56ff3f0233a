"""The seed's own files, read unchanged: the argv its runner would build, strict and lenient loading."""

from __future__ import annotations

import filecmp
import subprocess
import sys

import pytest

from gpupair_search.launcher.errors import ConfigError
from gpupair_search.launcher.experiments import load_experiment
from gpupair_search.launcher.registry import Registry
from gpupair_search.launcher.spec import JobConfig
from gpupair_search.settings import bundled
from tests.conftest import FIXTURES, SEED_PROJECT

SEED_MODELS = FIXTURES / "seed_models_config.json"
SEED_SETTINGS = FIXTURES / "seed_parallel_feasibility_test.json"


@pytest.fixture
def seed_registry() -> Registry:
    return Registry.load(SEED_MODELS, base_dir=SEED_PROJECT)


def test_the_fixtures_are_the_seed_files_unchanged(reference_dir):
    assert filecmp.cmp(SEED_SETTINGS, reference_dir / "seed_parallel_feasibility_test.json", shallow=False)
    assert filecmp.cmp(SEED_MODELS, reference_dir / "seed_models_config.json", shallow=False)


@pytest.mark.parametrize(
    "job, argv, repo_dir",
    [
        (
            JobConfig("VulBERTa", "mlp", {"epochs": 1, "learning_rate": 0.00003, "seed": 1334}),
            ["./train.sh", "-n", "mlp", "-d", "d2a", "--epochs", "1", "--learning_rate", "0.000030", "--seed", "1334"],
            "repos/VulBERTa",
        ),
        (
            JobConfig("MRT-OAST", "default", {"epochs": 1, "dropout": 0.2}),
            ["./train.sh", "--epochs", "1", "--dropout", "0.200000"],
            "repos/MRT-OAST",
        ),
        (
            JobConfig("Person_reID_baseline_pytorch", "pcb", {"epochs": 1, "dropout": 0.5}),
            ["./train.sh", "-n", "pcb", "--total_epoch", "1", "--droprate", "0.500000"],
            "repos/Person_reID_baseline_pytorch",
        ),
    ],
    ids=["model flag and required args", "default model has no flag", "hyperparameter flags from the file"],
)
def test_the_argv_is_the_one_the_seed_runner_builds(seed_registry, job, argv, repo_dir):
    command = seed_registry.command(job)
    assert list(command.argv) == argv
    assert command.cwd == SEED_PROJECT / repo_dir


def test_strict_loading_names_the_unknown_hyperparameter_and_what_is_known(seed_registry):
    with pytest.raises(ConfigError) as caught:
        load_experiment(SEED_SETTINGS, seed_registry)
    [problem] = caught.value.problems
    assert problem.where == "experiments[10].background.hyperparameters.epochs"
    assert "alpha, kfold, max_iter, seed" in problem.expected
    assert "--lenient" in problem.fix


def test_lenient_loading_runs_all_twelve_pairs_and_records_the_dropped_hyperparameter(seed_registry):
    experiment = load_experiment(SEED_SETTINGS, seed_registry, lenient=True)
    assert len(experiment.pairs) == 12
    group11 = experiment.pairs[10]
    assert "epochs" not in group11.background.hyperparameters
    assert any("experiments[10].background.hyperparameters.epochs" in w for w in group11.warnings)


def test_a_batchsize_for_pcb_is_an_error_not_silently_ignored(seed_registry, tmp_path):
    settings = tmp_path / "s.json"
    settings.write_text(SEED_SETTINGS.read_text().replace('"dropout": 0.5,', '"dropout": 0.5, "batchsize": 8,', 1))
    with pytest.raises(ConfigError) as caught:
        load_experiment(settings, seed_registry)
    assert caught.value.problems[0].where.endswith("hyperparameters.batchsize")


@pytest.mark.parametrize(
    "args, code, text",
    [
        ([], 1, "experiments[10].background.hyperparameters.epochs"),
        (["--lenient"], 0, "12 pair(s)"),
    ],
    ids=["strict", "lenient"],
)
def test_validate_on_the_seed_files(args, code, text):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "gpupair_search.search.cli.app",
            "validate",
            str(SEED_SETTINGS),
            "--models",
            str(SEED_MODELS),
            "--repos-root",
            str(SEED_PROJECT),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == code
    assert text in done.stdout + done.stderr
    assert "Traceback" not in done.stderr


def test_our_copy_of_the_twelve_groups_validates_strictly_against_the_bundled_models():
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "gpupair_search.search.cli.app",
            "validate",
            str(bundled("parallel_feasibility_test.json")),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "12 pair(s)" in done.stdout
