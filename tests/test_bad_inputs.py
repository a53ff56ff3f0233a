"""Malformed settings and models files: each gives a short error naming the file and the place in it, no traceback.

The corpus is ``tests/bad_inputs/``: ``settings/*.json`` are checked against the seed's models file,
``models/*.json`` are models files checked with the valid ``valid_settings.json``. ``expected.json`` maps each
corpus file to the JSON path (or ``line L column C``) its error must name; ``""`` where only the file can be named.

Every file is checked in-process (fast); a representative subset also goes through the CLI's parser and
error handling (in-process), and a few of those through a real process.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gpupair_search.launcher.errors import ConfigError
from gpupair_search.launcher.experiments import load_experiment
from gpupair_search.launcher.registry import Registry
from gpupair_search.search.cli.app import app

TESTS = Path(__file__).resolve().parent
REPO_ROOT = TESTS.parent
CORPUS = TESTS / "bad_inputs"
VALID_SETTINGS = CORPUS / "valid_settings.json"
SEED_MODELS = TESTS / "fixtures" / "seed_models_config.json"
FIXTURE_MODELS = TESTS / "fixtures" / "models.json"
SEED_PROJECT = TESTS / "fixtures" / "seed_project"  # repos/<name>/ of each repository of the seed's models file
EXPECTED: dict[str, str] = json.loads((CORPUS / "expected.json").read_text(encoding="utf-8"))
MAX_LINES = 8
MAX_LINE_CHARS = 400  # a long file path plus a one-line message; a value dump would be far longer

#: Through a real process as well: where the process itself matters (the bytes that reach stderr, the
#: interpreter's own stack and digit limits), and one of each exit code.
PROCESS_CASES = [
    "settings/not_utf8_latin1.json",
    "settings/nested_too_deeply.json",
    "settings/number_with_5000_digits.json",
    "models/required_args_unbalanced_quote.json",
]

NASTY = "$(touch pwned); rm -rf / | & ; `id` 'single' \"double\" \\ > out < in *"

#: Through the real CLI as well: one of each kind of mistake, both file kinds, both exit codes.
CLI_CASES = [
    "settings/empty.json",
    "settings/whitespace_only.json",
    "settings/not_json_trailing_comma.json",
    "settings/not_utf8_latin1.json",
    "settings/nested_too_deeply.json",
    "settings/number_with_5000_digits.json",
    "settings/top_level_is_array.json",
    "settings/experiments_is_object.json",
    "settings/duplicated_key.json",
    "settings/hyperparameters_is_list.json",
    "settings/unknown_model.json",
    "settings/huge_batch_size.json",
    "settings/learning_rate_huge_integer.json",
    "settings/shell_metacharacters_in_int.json",
    "settings/epochs_is_very_long_string.json",
    "settings/unpaired_surrogate_in_hyperparameter_name.json",
    "settings/gradient_accumulation_key_misspelled.json",
    "settings/top_level_key_misspelled.json",
    "models/empty.json",
    "models/not_json_missing_brace.json",
    "models/model_flag_missing.json",
    "models/required_args_unbalanced_quote.json",
    "models/log_pattern_invalid_regex.json",
    "models/bound_refuses_the_default.json",
]


def _corpus_files() -> list[str]:
    return sorted(str(p.relative_to(CORPUS)) for kind in ("settings", "models") for p in (CORPUS / kind).glob("*.json"))


def _is_json(path: Path) -> bool:
    """Independent oracle for the exit code: 2 (unreadable) exactly when Python's json cannot read the file."""
    try:
        json.loads(path.read_text(encoding="utf-8-sig"))
    except (ValueError, RecursionError):  # JSONDecodeError, UnicodeDecodeError and the int-digits limit
        return False
    return True


def _files_for(case: str) -> tuple[Path, Path]:
    """(settings file, models file) to validate for a corpus entry, and the corpus file is the one to name."""
    path = CORPUS / case
    return (path, SEED_MODELS) if case.startswith("settings/") else (VALID_SETTINGS, path)


def _validate_in_process(settings: Path, models: Path) -> tuple[int, str]:
    """What ``gpupair-search validate`` prints on stderr and exits with, without the subprocess."""
    try:
        load_experiment(settings, Registry.load(models, base_dir=SEED_PROJECT))
    except ConfigError as exc:
        return exc.exit_code, f"error: {exc.render()}\n"
    return 0, ""


def _validate_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gpupair_search.search.cli.app", "validate", *args],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=60,
    )


def _check_message(case: str, code: int, stderr: str) -> None:
    path = CORPUS / case
    where = EXPECTED[case]
    assert code == (1 if _is_json(path) else 2), stderr
    assert "Traceback" not in stderr
    lines = stderr.rstrip("\n").splitlines()
    assert 2 <= len(lines) <= MAX_LINES, stderr
    assert all(len(line) <= MAX_LINE_CHARS for line in lines), stderr
    head = f"error: {path}: {where}: " if where else f"error: {path}: "
    assert lines[0].startswith(head), f"expected the first line to start with {head!r}:\n{stderr}"
    assert any(line.startswith(("  expected: ", "  fix: ")) for line in lines[1:]), stderr


def test_the_corpus_is_complete():
    files = _corpus_files()
    assert len(files) >= 50
    assert sorted(EXPECTED) == files, "every corpus file needs an entry in expected.json, and only those"
    assert set(CLI_CASES) <= set(files) and set(PROCESS_CASES) <= set(CLI_CASES)


def test_the_base_files_are_valid():
    registry = Registry.load(SEED_MODELS, base_dir=SEED_PROJECT)
    experiment = load_experiment(VALID_SETTINGS, registry)
    assert len(experiment.pairs) == 3 and experiment.warnings == []


def test_the_seed_models_fixture_is_the_seed_file_unchanged(reference_dir):
    assert SEED_MODELS.read_bytes() == (reference_dir / "seed_models_config.json").read_bytes()


#: Cases whose check starts a process: whether a train module imports is asked of a child ``python``.
STARTS_A_PROCESS = {"models/train_module_not_importable.json"}


@pytest.mark.parametrize(
    "case",
    [pytest.param(case, marks=pytest.mark.e2e) if case in STARTS_A_PROCESS else case for case in _corpus_files()],
)
def test_a_bad_file_gives_a_short_error_naming_the_file_and_the_place(case):
    code, stderr = _validate_in_process(*_files_for(case))
    _check_message(case, code, stderr)


@pytest.mark.parametrize("case", CLI_CASES)
def test_the_cli_prints_the_same_short_error_without_a_traceback(case):
    """The command line's parser and error handling, in-process: an exception that escaped them would be a
    traceback in a terminal, and is ``done.exception`` here."""
    settings, models = _files_for(case)
    done = CliRunner().invoke(
        app, ["validate", str(settings), "--models", str(models), "--repos-root", str(SEED_PROJECT)]
    )
    assert done.exception is None or isinstance(done.exception, SystemExit), repr(done.exception)
    assert "Traceback" not in done.output
    _check_message(case, done.exit_code, done.stderr)
    assert (done.exit_code, done.stderr) == _validate_in_process(settings, models)


@pytest.mark.parametrize("case", PROCESS_CASES)
def test_the_installed_command_prints_the_same_short_error_without_a_traceback(case):
    settings, models = _files_for(case)
    done = _validate_cli(str(settings), "--models", str(models), "--repos-root", str(SEED_PROJECT))
    assert "Traceback" not in done.stdout
    _check_message(case, done.returncode, done.stderr)
    assert (done.returncode, done.stderr) == _validate_in_process(settings, models)


@pytest.mark.parametrize("which", ["settings", "models"])
def test_a_missing_file_or_a_directory_is_unreadable(tmp_path, which):
    for bad in (tmp_path / "nope.json", tmp_path):
        args = (
            [str(bad), "--models", str(SEED_MODELS), "--repos-root", str(SEED_PROJECT)]
            if which == "settings"
            else [str(VALID_SETTINGS), "--models", str(bad), "--repos-root", str(SEED_PROJECT)]
        )
        done = _validate_cli(*args)
        assert done.returncode == 2, done.stderr
        assert done.stderr.startswith(f"error: {bad}: ") and "Traceback" not in done.stderr
        assert len(done.stderr.splitlines()) <= MAX_LINES


def test_a_byte_order_mark_is_a_divergence_because_the_runner_refuses_the_file(tmp_path):
    """The runner's json.load stops at a BOM ("Unexpected UTF-8 BOM") and runs nothing from the file."""
    settings = tmp_path / "bom.json"
    settings.write_bytes(b"\xef\xbb\xbf" + VALID_SETTINGS.read_bytes())
    registry = Registry.load(SEED_MODELS, base_dir=SEED_PROJECT)
    with pytest.raises(ConfigError, match="byte-order mark, which the seed's runner's json.load refuses") as refused:
        load_experiment(settings, registry)
    assert refused.value.exit_code == 1
    lenient = load_experiment(settings, registry, lenient=True)
    assert len(lenient.pairs) == 3 and "byte-order mark" in lenient.warnings[0]


# --- shell metacharacters -----------------------------------------------------------------------------------


def _fixture_settings(tmp_path: Path, **hyperparameters) -> Path:
    """A one-job settings file for the test models file's ``fixture`` repository (it has ``value``, a str)."""
    path = tmp_path / "settings.json"
    path.write_text(
        json.dumps(
            {
                "experiment_name": "nasty",
                "experiments": [
                    {"mode": "default", "repo": "fixture", "model": "ok", "hyperparameters": hyperparameters}
                ],
            }
        ),
        encoding="utf-8",
    )
    return path


def test_shell_metacharacters_in_a_string_hyperparameter_are_valid_and_stay_one_argument(tmp_path):
    registry = Registry.load(FIXTURE_MODELS, base_dir=FIXTURE_MODELS.parent)
    experiment = load_experiment(_fixture_settings(tmp_path, value=NASTY), registry)
    argv = registry.command(experiment.pairs[0].foreground).argv
    assert argv[argv.index("--value") + 1] == NASTY  # a list element, never re-split or interpreted

    done = _validate_cli(
        str(_fixture_settings(tmp_path, value=NASTY)),
        "--models",
        str(FIXTURE_MODELS),
        "--repos-root",
        str(FIXTURE_MODELS.parent),
    )
    assert done.returncode == 0, done.stderr
    shown = next(line for line in done.stdout.splitlines() if "foreground:" in line).split("foreground:", 1)[1]
    words = shlex.split(shown)  # what is printed, typed into a shell, gives the same single argument
    assert words[words.index("--value") + 1] == NASTY
    assert not (REPO_ROOT / "pwned").exists() and not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("name", ["seconds", "batch_size"])  # a float and an int of the test models file
def test_shell_metacharacters_in_a_numeric_hyperparameter_are_a_type_error(tmp_path, name):
    registry = Registry.load(FIXTURE_MODELS, base_dir=FIXTURE_MODELS.parent)
    with pytest.raises(ConfigError) as caught:
        load_experiment(_fixture_settings(tmp_path, **{name: NASTY}), registry)
    [problem] = caught.value.problems
    assert problem.where == f"experiments[0].hyperparameters.{name}"
    assert "is not a" in problem.message and problem.expected


@pytest.mark.parametrize("value, reason", [("a\u0000b", "NUL"), ("a\ud800b", "surrogate")])
def test_a_string_no_argv_can_carry_is_an_error_not_a_crash_at_launch(tmp_path, value, reason):
    registry = Registry.load(FIXTURE_MODELS, base_dir=FIXTURE_MODELS.parent)
    with pytest.raises(ConfigError) as caught:
        load_experiment(_fixture_settings(tmp_path, value=value), registry)
    [problem] = caught.value.problems
    assert problem.where == "experiments[0].hyperparameters.value" and reason in problem.message


# --- keys the seed's runner ignores ---------------------------------------------------------------------------


def _valid_with(tmp_path: Path, change) -> Path:
    data = json.loads(VALID_SETTINGS.read_text(encoding="utf-8"))
    change(data)
    path = tmp_path / "settings.json"
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


def _load_valid_with(tmp_path: Path, change, lenient: bool = False):
    return load_experiment(_valid_with(tmp_path, change), Registry.load(SEED_MODELS, base_dir=SEED_PROJECT), lenient)


def test_a_misspelled_top_level_key_is_an_error_naming_the_key_it_resembles(tmp_path):
    with pytest.raises(ConfigError) as caught:
        _load_valid_with(tmp_path, lambda d: d.update(runs_per_confg=2))
    [problem] = caught.value.problems
    assert problem.where == "runs_per_confg" and '"runs_per_config"' in problem.fix


def test_with_lenient_a_misspelled_top_level_key_is_ignored_as_by_the_runner_with_a_warning(tmp_path):
    experiment = _load_valid_with(tmp_path, lambda d: d.update(runs_per_confg=2), lenient=True)
    [warning] = experiment.warnings
    assert ": runs_per_confg: " in warning and '"runs_per_config"' in warning
    assert all(pair.repeats == 1 for pair in experiment.pairs)  # the runner's reading: the key is not read


def test_free_form_top_level_keys_stay_warnings(tmp_path):
    free = {"comments": "x", "Description": "y", "author": "me", "version": 3, "_comment": "z"}
    experiment = _load_valid_with(tmp_path, lambda d: d.update(free))
    warned = " ".join(experiment.warnings)
    assert len(experiment.pairs) == 3 and all(key in warned for key in ("comments", "Description", "author", "version"))
    done = _validate_cli(
        str(_valid_with(tmp_path, lambda d: d.update(free))),
        "--models",
        str(SEED_MODELS),
        "--repos-root",
        str(SEED_PROJECT),
    )
    assert done.returncode == 0 and "warning: " in done.stderr, done.stderr


def test_a_misspelled_experiments_key_is_one_message(tmp_path):
    with pytest.raises(ConfigError) as caught:
        _load_valid_with(tmp_path, lambda d: d.update(experiment=d.pop("experiments")))
    [problem] = caught.value.problems
    assert problem.where == "experiment" and '"experiments"' in problem.fix


def test_gradient_accumulation_as_export_writes_it_is_valid(tmp_path):
    def accumulate(data):
        data["experiments"][0]["gradient_accumulation"] = {"foreground": 1, "background": 2}
        data["experiments"].append(
            {
                "mode": "default",
                "repo": "examples",
                "model": "mnist",
                "hyperparameters": {"batch_size": 16},
                "gradient_accumulation": {"foreground": 2},
            }
        )

    assert len(_load_valid_with(tmp_path, accumulate).pairs) == 4


@pytest.mark.parametrize(
    "steps, where, says",
    [
        ("lots", "experiments[0].gradient_accumulation", "expected an object"),
        ({"background": -5, "foreground": "x"}, "experiments[0].gradient_accumulation.foreground", "not an integer"),
        ({"background": 0}, "experiments[0].gradient_accumulation.background", "less than 1"),
        ({"backgrund": 2}, "experiments[0].gradient_accumulation.backgrund", 'did you mean "background"?'),
        ({"foreground": 1.5}, "experiments[0].gradient_accumulation.foreground", "not an integer"),
    ],
)
def test_gradient_accumulation_is_checked_with_its_path(tmp_path, steps, where, says):
    with pytest.raises(ConfigError) as caught:
        _load_valid_with(tmp_path, lambda d: d["experiments"][0].update(gradient_accumulation=steps), lenient=True)
    first = caught.value.problems[0]
    assert first.where == where and says in first.render()


def test_every_bad_gradient_accumulation_step_is_reported_at_once(tmp_path):
    with pytest.raises(ConfigError) as caught:
        _load_valid_with(
            tmp_path, lambda d: d["experiments"][0].update(gradient_accumulation={"background": -5, "foreground": "x"})
        )
    assert [p.where for p in caught.value.problems] == [
        "experiments[0].gradient_accumulation.foreground",
        "experiments[0].gradient_accumulation.background",
    ]


def test_a_solo_entry_has_no_background_to_accumulate(tmp_path):
    with pytest.raises(ConfigError) as caught:
        _load_valid_with(
            tmp_path,
            lambda d: d["experiments"].append(
                {"mode": "default", "repo": "examples", "model": "mnist", "gradient_accumulation": {"background": 2}}
            ),
        )
    [problem] = caught.value.problems
    assert problem.where == "experiments[3].gradient_accumulation.background" and "no background job" in problem.message
