"""Settings files in the layouts the user's runner (seed_runner.py) runs load with the runner's meaning: what
runs, in which mode, how many times. The oracle is ``runner_reading`` (tests/runner_oracle.py), our own reading of the runner's
selection logic (``run_from_experiment_config``), written for the tests; our loader must agree with it, the study
must run it (``run --device sim``), and ``export`` must hand it back with the same meaning."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest

from gpupair_search.launcher.errors import ConfigError
from gpupair_search.launcher.experiments import load_experiment
from gpupair_search.search.engine.inputs import load_registry
from gpupair_search.settings import bundled
from tests.conftest import FIXTURES, run_cli
from tests.runner_oracle import our_runs, runner_reading

SHAPES = FIXTURES / "runner_shapes"
BG = {"repo": "examples", "model": "mnist_ff"}
BUNDLED_MODELS = json.loads(bundled("models.json").read_text(encoding="utf-8"))["models"]


# -- the oracle: which experiments the user's runner runs, in which mode, how many times ----------------------
SHAPE_FILES = [
    "mixed_modes",
    "repeats_every_level",
    "mutation_ranges",
    "duplicate_comments",
    "skipped_repositories",
    "repeated_pair",
    "repeated_solo_job",
    "mutation_space",
]
#: Warnings each file must give with --lenient: one per place where our reading differs or something is dropped.
WARNINGS = {
    "mixed_modes": ["mode"],
    "repeats_every_level": [],
    "mutation_ranges": [],
    "duplicate_comments": [
        "description",
        "experiments[0].comment",
        "experiments[0].foreground.hyperparameters.batch_size",
        "experiments[1].note",
    ],
    "skipped_repositories": ["experiments[1].foreground", "experiments[2].background", "experiments[3]"],
    "repeated_pair": [],
    "repeated_solo_job": [],
    "mutation_space": [
        "experiments[0]",
        "experiments[1].foreground",
        "experiments[2].mutate",
        "experiments[3].mutate",
    ],
}


@pytest.fixture
def registry():  # cheap: a shared one would tie the file's tests to one xdist worker
    return load_registry(None)


@pytest.mark.parametrize("shape", SHAPE_FILES)
def test_each_shape_loads_leniently_with_the_runners_meaning_and_one_warning_per_divergence(shape, registry):
    path = SHAPES / f"{shape}.json"
    experiment = load_experiment(path, registry, lenient=True)
    assert (
        our_runs(experiment.pairs) == runner_reading(json.loads(path.read_text(encoding="utf-8")), BUNDLED_MODELS).runs
    )
    places = [w.split(": ", 2)[1] for w in experiment.warnings]
    assert places == WARNINGS[shape], experiment.warnings
    assert all(w.startswith(f"{path}: ") for w in experiment.warnings)


def test_repeats_are_one_pair_per_distinct_configuration_with_the_runners_counts(registry):
    experiment = load_experiment(SHAPES / "repeats_every_level.json", registry)
    counts = {p.key: p.repeats for p in experiment.pairs}
    assert counts == {
        "g01:examples/mnist+VulBERTa/mlp": 4,  # file level 2, listed twice
        "g02:examples/mnist_rnn+VulBERTa/mlp": 3,  # experiment level
        "g03:examples/siamese+VulBERTa/mlp": 4,  # foreground level
        "g04:examples/mnist_ff+VulBERTa/mlp": 1,  # experiment level beats foreground level
        "g06:examples/mnist+solo": 3,
    }  # a solo job, experiment level
    assert experiment.pairs[0].repeated_at == ("experiments[4]",)


def test_a_mutation_job_is_checked_at_the_top_of_its_memory_ranges(registry):
    experiment = load_experiment(SHAPES / "mutation_ranges.json", registry)
    solo, every, pair = experiment.pairs
    assert solo.foreground.hyperparameters == {"learning_rate": 0.01, "batch_size": 128}  # default lr, top batch
    assert solo.worst_case == {
        "foreground": {
            "values": {"learning_rate": 0.01, "batch_size": 128},
            "at_maximum": ["batch_size"],
            "ignored": [],
        }
    }
    assert every.foreground.hyperparameters["batch_size"] == 128 and every.repeats == 1
    assert every.foreground.hyperparameters["weight_decay"] == 1e-05  # default 0.0 is outside its range: the low end
    assert pair.background.hyperparameters == {"epochs": 1} and pair.worst_case["foreground"]["at_maximum"] == [
        "batch_size"
    ]


def test_validate_shows_the_worst_case_and_the_repeat_counts():
    done = run_cli("validate", str(SHAPES / "mutation_ranges.json"), timeout=60)
    assert done.returncode == 0, done.stderr
    assert (
        "checked at the memory worst case of its ranges: learning_rate=0.01, batch_size=128 (top of its range)"
        in done.stdout
    )
    assert "×3 runs" in done.stdout and "would run 7 times in all" in done.stdout


def test_strict_mode_keeps_unknown_repositories_and_differing_duplicates_as_errors(registry, tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_experiment(SHAPES / "skipped_repositories.json", registry)
    assert [p.where for p in caught.value.problems] == [
        "experiments[1].foreground.repo",
        "experiments[2].background.model",
        "experiments[3].repo",
    ]
    path = tmp_path / "dup.json"
    path.write_text(
        '{"mode": "default", "experiments": [{"repo": "examples", "model": "mnist", '
        '"hyperparameters": {"epochs": 1, "epochs": 2}}]}'
    )
    with pytest.raises(ConfigError) as caught:
        load_experiment(path, registry)
    [problem] = caught.value.problems
    assert problem.where == "experiments[0].hyperparameters.epochs" and "1, then 2" in problem.message
    lenient = load_experiment(path, registry, lenient=True)
    assert lenient.pairs[0].foreground.hyperparameters == {"epochs": 2}  # the last one, as json and the runner
    assert "1, then 2" in lenient.warnings[0]


def test_a_job_with_no_mode_is_the_runners_mutation_strict_asks_for_one_and_lenient_reads_it_so(registry, tmp_path):
    """No mode on the entry (nor at the top) or on a foreground: the runner runs "mutation", its default, and never
    the values written there. Checking those values would pass a file whose real runs were never checked."""
    path = tmp_path / "unmarked.json"
    path.write_text(
        json.dumps(
            {
                "experiments": [
                    {"repo": "examples", "model": "mnist", "hyperparameters": {"epochs": 1}},
                    {
                        "mode": "parallel",
                        "foreground": {"repo": "examples", "model": "mnist_ff", "hyperparameters": {"epochs": 1}},
                        "background": {"repo": "examples", "model": "siamese"},
                    },
                ]
            }
        )
    )
    with pytest.raises(ConfigError) as refused:
        load_experiment(path, registry)
    message = str(refused.value)
    assert 'experiments[0]: no "mode"' in message and 'experiments[1].foreground: no "mode"' in message
    assert 'set "mode": "default"' in message and 'add "mode": "default"' in message
    experiment = load_experiment(path, registry, lenient=True)
    assert [w.split(": ", 2)[1] for w in experiment.warnings] == ["experiments[0]", "experiments[1].foreground"]
    assert all('run as "mutation"' in w for w in experiment.warnings)
    for pair in experiment.pairs:  # checked at the worst case of the ranges, as the runner draws them
        assert pair.worst_case["foreground"]["values"] == pair.foreground.hyperparameters
        assert pair.foreground.hyperparameters != {"epochs": 1}


# -- the study runs each shape, and its export reads back with the same meaning ---------------------------
def _trials(results: Path) -> list[optuna.trial.FrozenTrial]:
    storage = f"sqlite:///{results / 'gpupair.db'}"
    [summary] = optuna.get_all_study_summaries(storage)
    return optuna.load_study(study_name=summary.study_name, storage=storage).get_trials()


@pytest.mark.parametrize(
    "shape", ["mixed_modes", "repeats_every_level", "mutation_ranges", "duplicate_comments", "skipped_repositories"]
)
def test_run_on_the_simulated_device_runs_each_shape_one_trial_per_configuration(shape, tmp_path, registry):
    path = SHAPES / f"{shape}.json"
    results = tmp_path / "results"
    done = run_cli(
        "run", "--settings", str(path), "--device", "sim", "--lenient", "--results", str(results), timeout=120
    )
    assert done.returncode == 0, done.stderr + done.stdout
    assert "Traceback" not in done.stderr
    pairs = load_experiment(path, registry, lenient=True).pairs
    initial = [t for t in _trials(results) if t.user_attrs.get("phase", "initial") == "initial"]
    assert sorted(t.params["pair"] for t in initial) == sorted(p.key for p in pairs)
    by_key = {p.key: p for p in pairs}
    for trial in initial:
        pair = by_key[trial.params["pair"]]
        assert trial.user_attrs["repeats"] == pair.repeats
        assert trial.user_attrs["worst_case"] == json.loads(json.dumps(dict(pair.worst_case)))
        assert (trial.user_attrs["background"] is None) == (pair.background is None)


@pytest.mark.parametrize("shape", ["repeats_every_level", "mixed_modes"])
def test_export_of_such_a_study_reads_back_with_the_same_runs_in_the_runners_logic(shape, tmp_path):
    path = SHAPES / f"{shape}.json"
    results = tmp_path / "results"
    assert (
        run_cli(
            "run", "--settings", str(path), "--device", "sim", "--lenient", "--results", str(results), timeout=120
        ).returncode
        == 0
    )
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
        timeout=120,
    )
    assert done.returncode == 0, done.stderr + done.stdout
    exported = json.loads(out.read_text(encoding="utf-8"))
    assert exported["_unsafe_pairs"] == []  # every pair fits on the simulated 8 GiB card
    assert runner_reading(exported, BUNDLED_MODELS) == runner_reading(
        json.loads(path.read_text(encoding="utf-8")), BUNDLED_MODELS
    )


def test_when_every_entry_is_skipped_the_error_says_why_each_was(registry, tmp_path):
    path = tmp_path / "all_skipped.json"
    pair = {
        "foreground": {"mode": "default", "repo": "examples", "model": "mnist"},
        "background": {"repo": "examples", "model": "siamese"},
    }
    path.write_text(
        json.dumps({"experiments": [{"mode": "Parallel", **pair}, {"mode": "default", "repo": "nosuch", "model": "m"}]})
    )
    with pytest.raises(ConfigError) as refused:
        load_experiment(path, registry, lenient=True)
    message = str(refused.value)
    assert "every one was skipped (experiments[0].mode: its mode 'Parallel'" in message
    assert "experiments[1]: skipped, as by the seed's runner: unknown repository 'nosuch'" in message


def test_values_reach_the_command_line_as_the_runner_writes_them(tmp_path):
    """The runner writes an int as str(int(v)), a float with 6 decimals and anything else as str(v): a bool is
    "True", which an argparse type=eval or a "True" check of the user's script expects; a float 6 decimals cannot
    hold is a divergence (the job would get 0.000000)."""
    from gpupair_search.launcher.registry import Registry
    from gpupair_search.launcher.spec import JobConfig

    models = tmp_path / "models.json"
    hyper = {
        "batch_size": {"flag": "-b", "type": "int", "default": 8},
        "lr": {"flag": "--lr", "type": "float", "default": 0.01},
        "amp": {"flag": "--amp", "type": "bool", "default": False},
    }
    repo = {"path": ".", "train_script": "train.sh", "models": ["m"], "supported_hyperparams": hyper}
    models.write_text(json.dumps({"models": {"lab": repo}}))
    registry = Registry.load(models, base_dir=tmp_path, require_paths=False)
    job = JobConfig("lab", "m", {"batch_size": 32, "lr": 0.01, "amp": True})
    assert list(registry.command(job).argv[1:]) == ["-b", "32", "--lr", "0.010000", "--amp", "True"]
    tiny = JobConfig("lab", "m", {"lr": 1e-7})
    [problem] = registry.check_job(tiny, "experiments[0]", "s.json", lenient=False).problems
    assert problem.where == "experiments[0].hyperparameters.lr" and "0.000000" in problem.message
    [warning] = registry.check_job(tiny, "experiments[0]", "s.json", lenient=True).warnings
    assert "run as 0.000000, as the runner runs it" in warning


def test_runs_per_config_zero_skips_the_entry_as_the_runner_does_and_true_counts_once_with_lenient(registry, tmp_path):
    path = tmp_path / "counts.json"
    entries = [
        {"mode": "default", "repo": "examples", "model": "mnist", "runs_per_config": 0},
        {"mode": "default", "repo": "examples", "model": "mnist_ff", "runs_per_config": True},
        {"mode": "default", "repo": "examples", "model": "siamese", "runs_per_config": 2},
    ]
    path.write_text(json.dumps({"experiments": entries}))
    with pytest.raises(ConfigError, match=r"experiments\[1\].runs_per_config: boolean true is not an integer"):
        load_experiment(path, registry)
    experiment = load_experiment(path, registry, lenient=True)
    assert [(p.foreground.model, p.repeats) for p in experiment.pairs] == [("mnist_ff", 1), ("siamese", 2)]
    assert "experiments[0]: runs_per_config is 0" in experiment.warnings[0]


def test_a_key_starting_with_an_underscore_is_a_comment_among_hyperparameters_too(registry, tmp_path):
    path = tmp_path / "commented.json"
    hyper = {"_comment": "the lab's usual learning rate", "epochs": 1}
    path.write_text(
        json.dumps(
            {"experiments": [{"mode": "default", "repo": "examples", "model": "mnist", "hyperparameters": hyper}]}
        )
    )
    experiment = load_experiment(path, registry)
    assert experiment.pairs[0].foreground.hyperparameters == {"epochs": 1} and experiment.warnings == []


def test_a_number_of_the_wrong_json_type_is_what_the_runner_makes_of_it_with_lenient_and_an_error_without(tmp_path):
    """The runner passes an int hyperparameter as str(int(v)): "32" and 32.0 run as 32, 12.7 is cut to 12, true
    is 1; a float one formats true as 1.000000. Strict mode names the value the runner would pass; lenient mode
    runs it, with a warning. A string int() refuses stops the runner too, so it stays an error either way."""
    from gpupair_search.launcher.registry import Registry
    from gpupair_search.launcher.spec import JobConfig

    models = tmp_path / "models.json"
    hyper = {
        "batch_size": {"flag": "-b", "type": "int", "default": 8},
        "seed": {"flag": "--seed", "type": "int", "default": 1},
        "lr": {"flag": "--lr", "type": "float", "default": 0.01},
    }
    repo = {"path": ".", "train_script": "train.sh", "models": ["m"], "supported_hyperparams": hyper}
    models.write_text(json.dumps({"models": {"lab": repo}}))
    registry = Registry.load(models, base_dir=tmp_path, require_paths=False)
    job = JobConfig("lab", "m", {"batch_size": "32", "seed": 12.7, "lr": True})
    strict = registry.check_job(job, "experiments[0]", "s.json", lenient=False)
    assert [(p.where, p.fix.split(",")[0]) for p in strict.problems] == [
        ("experiments[0].hyperparameters.batch_size", "write 32"),
        ("experiments[0].hyperparameters.seed", "write 12"),
        ("experiments[0].hyperparameters.lr", "write 1.0"),
    ]
    assert "string '32' is not an integer; the seed's runner passes it as 32" in strict.problems[0].message
    lenient = registry.check_job(job, "experiments[0]", "s.json", lenient=True)
    assert lenient.problems == [] and len(lenient.warnings) == 3
    runs = lenient.applied(job)
    assert runs.hyperparameters == {"batch_size": 32, "seed": 12, "lr": 1.0}
    assert list(registry.command(runs).argv[1:]) == ["-b", "32", "--seed", "12", "--lr", "1.000000"]
    for value in ("32x", "0", 0.5):  # int() refuses it, or the runner's 0 is no batch size
        [problem] = registry.check_job(
            JobConfig("lab", "m", {"batch_size": value}), "experiments[0]", "s.json", lenient=True
        ).problems
        assert problem.where == "experiments[0].hyperparameters.batch_size"


def test_export_leaves_out_what_the_runner_does_not_read_and_validates_strictly(tmp_path):
    """Keys the runner ignores where they stand changed nothing, and bookkeeping such as expected_experiments would
    be stale in a file of other experiments: export leaves them out, says so, and its file loads strictly; a
    foreground that ran as written says "default". A key given twice, which the study's lenient load accepted,
    does not stop export either."""
    fg = {"repo": "examples", "model": "mnist", "mode": "parallel", "hyperparameters": {"epochs": 1}}  # as written
    bg = {"repo": "examples", "model": "mnist_ff", "hyperparameters": {"epochs": 1}, "priority": "low"}
    entry = {"mode": "parallel", "hyperparameters": {"epochs": 1}, "foreground": fg, "background": bg}
    text = json.dumps({"experiment_name": "ignored", "expected_experiments": 1, "experiments": [entry]})
    path = tmp_path / "ignored.json"
    path.write_text(text.replace('"epochs": 1}', '"epochs": 1, "epochs": 2}', 1))  # given twice, in the entry's
    results, out = tmp_path / "results", tmp_path / "exported.json"
    ran = run_cli("run", "--settings", str(path), "--device", "sim", "--lenient", "--results", str(results))
    assert ran.returncode == 0, ran.stderr
    done = run_cli("export", "--settings", str(path), "--results", str(results), "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert "g01: hyperparameters: not read by the seed's runner where it stood" in done.stderr
    assert "g01: background.priority: not read" in done.stderr
    assert "expected_experiments: read neither by the seed's runner nor by gpupair-search" in done.stderr
    exported = json.loads(out.read_text(encoding="utf-8"))
    [written] = exported["experiments"]
    assert "hyperparameters" not in written and "priority" not in written["background"]
    assert written["foreground"]["mode"] == "default"  # the word the runner reads as "run as written"
    assert "expected_experiments" not in exported
    valid = run_cli("validate", str(out))
    assert valid.returncode == 0, valid.stderr


def test_a_mutation_entry_runs_at_most_as_often_as_there_are_different_draws_and_strict_asks_for_a_list(registry):
    """The runner draws each mutation once and never the defaults: epochs 5..15 without 10 give 10 runs, whatever
    runs_per_config asks. A string holding "all" mutates everything for the runner; strict mode asks for ["all"]."""
    path = SHAPES / "mutation_space.json"
    counts = {p.foreground.key: p.repeats for p in load_experiment(path, registry, lenient=True).pairs}
    assert counts == {"examples/mnist": 10, "MRT-OAST/default": 10, "examples/mnist_ff": 2, "examples/siamese": 3}
    with pytest.raises(ConfigError) as refused:
        load_experiment(path, registry)
    messages = {p.where: p for p in refused.value.problems}
    assert set(messages) == {"experiments[2].mutate", "experiments[3].mutate"}
    assert messages["experiments[2].mutate"].fix.startswith('write ["all"]')


def test_a_mode_of_null_or_a_number_is_the_runners_mutation_with_lenient_and_an_error_without(registry, tmp_path):
    path = tmp_path / "null_modes.json"
    pair = {"foreground": {"repo": "examples", "model": "mnist", "mode": "default"}, "background": BG}
    entries = [{"repo": "examples", "model": "mnist", "mutate": ["batch_size"]}, {"mode": 5, **pair}]
    path.write_text(json.dumps({"mode": None, "experiments": entries}))
    with pytest.raises(ConfigError) as refused:
        load_experiment(path, registry)
    assert [p.where for p in refused.value.problems] == ["mode", "experiments[1].mode"]
    experiment = load_experiment(path, registry, lenient=True)
    [solo] = experiment.pairs  # the pair read as mutation has no "repo": skipped, as by the runner
    assert solo.worst_case["foreground"]["values"] == {"batch_size": 128}
    assert [w.split(": ", 2)[1] for w in experiment.warnings] == ["mode", "experiments[1].mode"]


def test_with_lenient_an_experiment_the_runner_fails_on_is_skipped_with_the_reason_and_the_rest_runs(
    registry, tmp_path
):
    """The runner runs each experiment inside its own try: a value it cannot write into the command line, a
    hyperparameters object that is not one, a count it cannot multiply by, skip that experiment only; a negative
    count runs it 0 times. Strict mode names each; --lenient skips those experiments, as the runner does."""
    job = {"repo": "examples", "model": "mnist"}
    entries = [
        {**job, "hyperparameters": {"learning_rate": "0.01"}},
        {**job, "hyperparameters": None},
        {**job, "hyperparameters": {"epochs": None}},
        {**job, "runs_per_config": "3"},
        {**job, "runs_per_config": -1},
        {"repo": ["examples"], "model": "mnist"},
        {"mode": "parallel", "foreground": [1], "background": BG},
        {"repo": "examples", "model": "mnist_ff", "hyperparameters": {"epochs": 2}},
    ]
    path = tmp_path / "runner_fails.json"
    path.write_text(json.dumps({"mode": "default", "experiments": entries}))
    with pytest.raises(ConfigError) as refused:
        load_experiment(path, registry)
    assert len(refused.value.problems) == 7
    experiment = load_experiment(path, registry, lenient=True)
    assert [p.foreground.key for p in experiment.pairs] == ["examples/mnist_ff"]
    skipped = [w.split(": ", 2)[1:] for w in experiment.warnings]
    assert [where for where, _ in skipped] == [f"experiments[{i}]" for i in range(7)]
    assert all(text.startswith("skipped, as by the seed's runner: ") for _, text in skipped)
    assert "(the runner runs it 0 times)" in skipped[4][1]
    entries.append({**job, "hyperparameters": {"epochs": 0}})  # the runner runs it; the job refuses it
    path.write_text(json.dumps({"mode": "default", "experiments": entries}))
    with pytest.raises(ConfigError, match=r"experiments\[8\].hyperparameters.epochs: expected an integer >= 1"):
        load_experiment(path, registry, lenient=True)
