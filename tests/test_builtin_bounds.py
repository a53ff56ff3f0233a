"""The bounds of settings/models.json are what each built-in's own argparse accepts, so a value a built-in would
refuse at start is an error at ``validate``, ``plan`` and ``--device sim`` instead (and a user's models file without
bounds reads as before)."""

from __future__ import annotations

import contextlib
import importlib
import json
from pathlib import Path

import pytest

from gpupair_search.launcher.errors import ConfigError
from gpupair_search.launcher.experiments import load_experiment
from gpupair_search.launcher.registry import RUNNER_FLOAT_DECIMALS, Hyperparameter, Registry
from gpupair_search.launcher.spec import JobConfig
from gpupair_search.settings import BUNDLE_ROOT, bundled
from tests.conftest import FIXTURES, SEED_PROJECT, run_cli

# Imported at collection, outside any test: a CUDA build of torch starts a process (ldconfig) on its first import,
# which a unit test may not do.
with contextlib.suppress(ImportError):
    import torch  # noqa: F401
with contextlib.suppress(ImportError):
    import sklearn  # noqa: F401

BUILT_INS = Registry.load(bundled("models.json"), base_dir=BUNDLE_ROOT)
HYPERPARAMETERS = [
    (repo.name, hp.name) for repo in BUILT_INS.repositories.values() for hp in repo.hyperparameters.values()
]


def _candidates(hp: Hyperparameter) -> list[int | float]:
    """Values on and either side of each bound, and a few ordinary ones. A float's neighbours are 0.000001 away:
    the runner writes floats with 6 decimals, and a value they cannot hold is refused as a divergence of its own
    (tests/test_runner_shapes.py), before any bound."""
    edges = [v for v in (hp.bounds.low, hp.bounds.high, *hp.bounds.excluded) if v is not None] if hp.bounds else []
    if hp.type == "int":
        return sorted({v + d for v in [*edges, 0, 1] for d in (-2, -1, 0, 1, 2)})
    step = 10.0**-RUNNER_FLOAT_DECIMALS
    near = [round(v + side * step, RUNNER_FLOAT_DECIMALS) for v in edges for side in (-1, 1)]
    return sorted({*map(float, edges), *near, -1.0, 0.0, step, 0.5, 1.0, 2.0, 3})


def _registry_accepts(repo: str, name: str, value) -> bool:
    model = BUILT_INS.repository(repo).models[0]
    return not BUILT_INS.check_job(JobConfig(repo, model, {name: value}), "job", "test", lenient=False).problems


def _script_accepts(repo: str, name: str, value) -> bool:
    """The built-in's real parser on the argv the registry builds, stopped by --help once every value is parsed."""
    command = BUILT_INS.command(JobConfig(repo, BUILT_INS.repository(repo).models[0], {name: value}))
    assert command.argv[1:3] == ("-m", command.module)
    main = importlib.import_module(command.module).main
    with pytest.raises(SystemExit) as ended:
        main([*command.argv[3:], "--help"])
    assert ended.value.code in (0, 2)
    return ended.value.code == 0


@pytest.mark.parametrize("repo, name", HYPERPARAMETERS, ids=[f"{r}.{n}" for r, n in HYPERPARAMETERS])
def test_each_built_in_hyperparameter_accepts_exactly_what_its_script_accepts(repo, name, capsys):
    pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    hp = BUILT_INS.repository(repo).hyperparameters[name]
    differ = [
        value for value in _candidates(hp) if _registry_accepts(repo, name, value) != _script_accepts(repo, name, value)
    ]
    assert differ == [], (
        f"settings/models.json's bounds of {repo}.{name} ({hp.bounds and hp.bounds.as_written()}) "
        f"and the script disagree on {differ}"
    )


def test_every_numeric_built_in_hyperparameter_declares_its_bounds():
    unbounded = [
        f"{r}.{n}"
        for r, n in HYPERPARAMETERS
        if BUILT_INS.repository(r).hyperparameters[n].type in ("int", "float")
        and BUILT_INS.repository(r).hyperparameters[n].bounds is None
    ]
    assert unbounded == []


def _settings(tmp_path: Path, **foreground) -> Path:
    path = tmp_path / "settings.json"
    path.write_text(
        json.dumps(
            {
                "experiment_name": "bounds",
                "experiments": [
                    {
                        "mode": "parallel",
                        "foreground": {
                            "mode": "default",
                            "repo": "examples",
                            "model": "mnist",
                            "hyperparameters": foreground,
                        },
                        "background": {"repo": "MRT-OAST", "model": "default", "hyperparameters": {"epochs": 1}},
                    }
                ],
            }
        )
    )
    return path


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("epochs", 0, "expected an integer >= 1, got 0"),
        ("learning_rate", -0.1, "expected a number > 0, got -0.1"),
        ("learning_rate", 0, "expected a number > 0, got 0"),
    ],
)
def test_validate_refuses_a_value_the_built_in_would_refuse_at_start(tmp_path, name, value, message):
    settings = _settings(tmp_path, **{name: value})
    done = run_cli("validate", str(settings), timeout=60)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.splitlines()[0] == (
        f"error: {settings}: experiments[0].foreground.hyperparameters.{name}: {message}"
    )


@pytest.mark.parametrize(
    "command",
    [["plan", "--gpu-memory", "6GiB"], ["run", "--device", "sim", "--results"]],
    ids=["plan", "run --device sim"],
)
def test_plan_and_the_simulated_device_refuse_it_before_anything_is_written(tmp_path, command):
    settings, results = _settings(tmp_path, epochs=0), tmp_path / "results"
    done = run_cli(
        *command, *([str(results)] if command[-1] == "--results" else []), "--settings", str(settings), timeout=120
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert "experiments[0].foreground.hyperparameters.epochs: expected an integer >= 1, got 0" in done.stderr
    assert not results.exists()


def test_pair_refuses_a_fg_param_outside_the_bounds(tmp_path):
    done = run_cli(
        "pair",
        "--fg",
        "examples/mnist",
        "--fg-param",
        "epochs=0",
        "--device",
        "cpu",
        "--results",
        str(tmp_path / "results"),
        timeout=60,
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "command line: --fg-param epochs: expected an integer >= 1, got 0" in done.stderr
    assert not (tmp_path / "results").exists()


def test_a_models_file_without_bounds_reads_as_before(tmp_path):
    """The seed's file declares no bounds: epochs 0 is its script's business, as it always was."""
    seed = Registry.load(FIXTURES / "seed_models_config.json", base_dir=SEED_PROJECT)
    settings = tmp_path / "seed.json"
    settings.write_text(
        json.dumps(
            {
                "experiments": [
                    {"mode": "default", "repo": "examples", "model": "mnist", "hyperparameters": {"epochs": 0}}
                ]
            }
        )
    )
    assert load_experiment(settings, seed).pairs[0].foreground.hyperparameters == {"epochs": 0}
    with pytest.raises(ConfigError):  # a negative count is refused with or without bounds, as before
        settings.write_text(settings.read_text().replace('"epochs": 0', '"epochs": -1'))
        load_experiment(settings, seed)
