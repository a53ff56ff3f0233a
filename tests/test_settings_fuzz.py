"""Fuzzing the settings loader (and the models loader): whatever the file holds, the answer is a loaded
experiment or a ConfigError naming a place that exists in the file, never another exception.
"""

from __future__ import annotations

import copy
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gpupair_search.launcher.errors import ConfigError
from gpupair_search.launcher.experiments import load_experiment
from gpupair_search.launcher.registry import Registry

TESTS = Path(__file__).resolve().parent
SEED_MODELS = TESTS / "fixtures" / "seed_models_config.json"
VALID_SETTINGS = TESTS / "bad_inputs" / "valid_settings.json"
SEED_PROJECT = TESTS / "fixtures" / "seed_project"  # repos/<name>/ of each repository of the seed's models file
REGISTRY = Registry.load(SEED_MODELS, base_dir=SEED_PROJECT)
BASE = json.loads(VALID_SETTINGS.read_text(encoding="utf-8"))
MODELS = json.loads(SEED_MODELS.read_text(encoding="utf-8"))

#: ``FUZZ_EXAMPLES=5000 pytest tests/test_settings_fuzz.py`` for a longer hunt; the default keeps the file fast.
FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "200")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

any_text = st.text(st.characters(blacklist_categories=()), max_size=6)  # unpaired surrogates and NUL included
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | st.text(max_size=20)
    | any_text
    | st.sampled_from(["", "parallel", "default", "examples", "mnist", "-1", "1e999"])
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8) | any_text, inner, max_size=4),
    max_leaves=20,
)
#: Keys a path can hold without ambiguity (no ``.`` or ``[``): what the mutations insert.
plain_keys = st.text(st.characters(blacklist_characters=".[]", blacklist_categories=("Cs",)), min_size=1, max_size=12)

repos = st.sampled_from(sorted(REGISTRY.repositories) + ["", "nope", "examples; rm -rf /"])
models = st.sampled_from(["default", "mnist", "mnist_ff", "resnet20", "mlp", "pcb", "MNIST", "$(id)"])
hp_names = (
    st.sampled_from(["epochs", "learning_rate", "batch_size", "seed", "dropout", "max_iter", "alpha", "epoch"])
    | any_text
)
hp_values = (
    st.integers(-5, 10**6)
    | st.floats()
    | st.booleans()
    | st.none()
    | st.text(max_size=10)
    | any_text
    | st.just(2**80)
    | st.lists(st.integers(), max_size=2)
)
hyperparameter_objects = st.dictionaries(hp_names, hp_values, max_size=4)
jobs = st.fixed_dictionaries(
    {"repo": repos, "model": models},
    optional={
        "hyperparameters": hyperparameter_objects | json_values,
        "mode": st.sampled_from(["default", "mutation"]),
    },
)
modes = st.sampled_from(["parallel", "default", "paralel"])
entries = (
    st.fixed_dictionaries(
        {},
        optional={
            "mode": modes | json_values,
            "foreground": jobs | json_values,
            "background": jobs | json_values,
            "note": st.text(max_size=10) | json_values,
            "runs_per_config": st.integers(-2, 3) | json_values,
        },
    )
    | jobs
    | json_values
)
settings_like = st.fixed_dictionaries(
    {"experiments": st.lists(entries, max_size=4) | json_values},
    optional={
        "experiment_name": st.text(max_size=10) | json_values,
        "mode": st.sampled_from(["parallel", "default"]) | json_values,
        "runs_per_config": st.integers(-2, 3) | json_values,
        "max_retries": st.integers(-2, 3) | json_values,
        "gpupair": json_values,
    },
)


def _load(data: bytes | str, lenient: bool = False, registry: Registry = REGISTRY):
    """Write ``data`` as a settings file and load it: the experiment, or the ConfigError."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "settings.json"
        path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
        try:
            experiment = load_experiment(path, registry, lenient=lenient)
        except ConfigError as exc:
            assert exc.problems and all(p.file == str(path) for p in exc.problems)
            assert "Traceback" not in exc.render()
            return exc
    _assert_printable(experiment, registry)
    return experiment


def _assert_printable(experiment, registry: Registry) -> None:
    """What ``validate`` prints for a loaded file can be printed, and every job has its command."""
    lines = [experiment.name, *experiment.warnings]
    for pair in experiment.pairs:
        lines += [pair.key, pair.note] + [
            registry.command(job).display() for job in (pair.foreground, pair.background) if job is not None
        ]
    "\n".join(lines).encode("utf-8")


_TOKEN = re.compile(r'\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]|\.?([^.\[\]"\s]+)')


def _steps(where: str) -> list[str | int]:
    """``experiments[0].foreground.hyperparameters["a.b"]`` -> ["experiments", 0, "foreground", ..., "a.b"]."""
    steps: list[str | int] = []
    pos = 0
    while pos < len(where):
        match = _TOKEN.match(where, pos)
        assert match, f"not a JSON path: {where!r}"
        index, quoted, plain = match.groups()
        steps.append(int(index) if index is not None else json.loads(quoted) if quoted is not None else plain)
        pos = match.end()
    return steps


def _exists(data: Any, steps: list[str | int]) -> bool:
    for step in steps:
        if (
            isinstance(step, int)
            and isinstance(data, list)
            and step < len(data)
            or isinstance(step, str)
            and isinstance(data, dict)
            and step in data
        ):
            data = data[step]
        else:
            return False
    return True


def _assert_places_exist(error: Any, data: Any) -> None:
    if not isinstance(error, ConfigError):
        return
    for problem in error.problems:
        steps = _steps(problem.where)
        assert _exists(data, steps) or _exists(data, steps[:-1]), f"{problem.where!r} is not in the file"


# (a) arbitrary JSON --------------------------------------------------------------------------------------------


@FUZZ
@given(json_values, st.booleans())
def test_any_json_value_loads_or_is_a_config_error(value, lenient):
    _assert_places_exist(_load(json.dumps(value), lenient), value)


@FUZZ
@given(settings_like, st.booleans())
def test_any_settings_shaped_json_loads_or_is_a_config_error(value, lenient):
    _assert_places_exist(_load(json.dumps(value), lenient), value)


FIXTURE_REGISTRY = Registry.load(TESTS / "fixtures" / "models.json", base_dir=TESTS / "fixtures")


@FUZZ
@given(
    st.dictionaries(
        st.sampled_from(["value", "pidfile", "seconds", "batch_size"]) | any_text,
        hp_values | any_text | st.just("$(touch x); rm -rf / | & `id` ' \""),
        max_size=3,
    ),
    st.booleans(),
)
def test_any_value_of_a_string_knob_reaches_the_argv_literally_or_is_refused(hyperparameters, lenient):
    text = json.dumps({"experiments": [{"repo": "fixture", "model": "ok", "hyperparameters": hyperparameters}]})
    result = _load(text, lenient, FIXTURE_REGISTRY)
    _assert_places_exist(result, json.loads(text))
    if isinstance(result, ConfigError):
        return
    job = result.pairs[0].foreground
    argv = FIXTURE_REGISTRY.command(job).argv
    assert all("\0" not in arg for arg in argv)
    for name in ("value", "pidfile"):
        if name in job.hyperparameters:
            flag = FIXTURE_REGISTRY.repository("fixture").hyperparameters[name].flag
            assert argv[argv.index(flag) + 1] == hyperparameters[name]


# (b) structured mutations of a valid file ----------------------------------------------------------------------


def _places(data: Any, at: tuple = ()) -> list[tuple]:
    """Every path in ``data`` (as tuples of keys and indexes), the root included."""
    found = [at]
    if isinstance(data, dict):
        for key, value in data.items():
            found += _places(value, at + (key,))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            found += _places(value, at + (i,))
    return found


def _get(data: Any, at: tuple) -> Any:
    for step in at:
        data = data[step]
    return data


def _other_type(value: Any) -> st.SearchStrategy:
    kinds = {
        bool: st.booleans(),
        int: st.integers(-(2**40), 2**40),
        float: st.floats(),
        str: st.text(max_size=8),
        type(None): st.none(),
        list: st.lists(scalars, max_size=2),
        dict: st.dictionaries(plain_keys, scalars, max_size=2),
    }
    return st.one_of([strategy for kind, strategy in kinds.items() if type(value) is not kind])


@st.composite
def mutated(draw, base: Any) -> Any:
    data = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.sampled_from(_places(data)))
        target = _get(data, at)
        parent = _get(data, at[:-1]) if at else None
        op = draw(st.sampled_from(["drop", "retype", "negative", "insert", "duplicate"]))
        if op == "drop" and at:
            del parent[at[-1]]
        elif op == "retype" and at:
            parent[at[-1]] = draw(_other_type(target))
        elif op == "negative" and at and isinstance(target, (int, float)) and not isinstance(target, bool):
            parent[at[-1]] = -abs(target) - draw(st.integers(0, 2**64))
        elif op == "insert" and isinstance(target, dict):
            target[draw(plain_keys | hp_names)] = draw(hp_values | scalars)
        elif op == "duplicate" and isinstance(target, list) and target:
            target.insert(draw(st.integers(0, len(target))), copy.deepcopy(draw(st.sampled_from(target))))
    return data


@FUZZ
@given(mutated(BASE), st.booleans())
def test_a_mutated_valid_file_loads_or_names_a_place_in_it(data, lenient):
    result = _load(json.dumps(data, indent=2), lenient)
    _assert_places_exist(result, data)
    if json.dumps(data) == json.dumps(BASE):  # (True == 1 in Python, not in a settings file)
        assert not isinstance(result, ConfigError)


def test_the_unmutated_file_loads():
    assert not isinstance(_load(VALID_SETTINGS.read_bytes()), ConfigError)


@FUZZ
@given(mutated(MODELS))
def test_a_mutated_models_file_loads_or_names_a_place_in_it(data):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "models.json"
        path.write_text(json.dumps(data, indent=2), encoding="utf-8")
        try:
            registry = Registry.load(path, base_dir=SEED_PROJECT)
        except ConfigError as exc:
            assert exc.exit_code == 1
            _assert_places_exist(exc, data)
            return
        try:  # a models file that loads must be usable: check the valid settings against it
            load_experiment(VALID_SETTINGS, registry)
        except ConfigError as exc:
            _assert_places_exist(exc, BASE)


# (c) arbitrary bytes -------------------------------------------------------------------------------------------


def _assert_bytes_handled(raw: bytes) -> None:
    result = _load(raw)
    try:
        json.loads(raw.decode("utf-8-sig"))
        parses = True
    except (ValueError, RecursionError):
        parses = False
    if not parses:
        assert isinstance(result, ConfigError) and result.exit_code == 2
    if isinstance(result, ConfigError) and result.exit_code == 2:
        [problem] = result.problems
        assert problem.where == "" or re.fullmatch(r"line \d+ column \d+", problem.where), problem.where


@FUZZ
@given(st.binary(max_size=200))
def test_arbitrary_bytes_are_unreadable_or_load(raw):
    _assert_bytes_handled(raw)


@FUZZ
@given(st.data())
def test_a_damaged_valid_file_is_unreadable_or_loads(data):
    raw = bytearray(VALID_SETTINGS.read_bytes())
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(raw)))
        op = data.draw(st.sampled_from(["insert", "delete", "replace", "truncate"]))
        piece = data.draw(
            st.binary(min_size=1, max_size=3) | st.sampled_from([b",", b"}", b"]", b'"', b"\xff", b"\x00"])
        )
        if op == "insert":
            raw[i:i] = piece
        elif op == "delete":
            del raw[i : i + len(piece)]
        elif op == "replace":
            raw[i : i + len(piece)] = piece
        else:
            del raw[i:]
    _assert_bytes_handled(bytes(raw))
