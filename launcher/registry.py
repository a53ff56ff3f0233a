"""The models file (the seed's ``models_config.json`` format): which repositories exist, how to run them.

A job ``(repo, model, hyperparameters)`` becomes an argv exactly as the seed's runner builds it:
``[train_script] + [model_flag, model] (unless model is "default") + required_args + [flag, value]...``,
run with the repository's path as working directory. Unlike the seed's runner, a hyperparameter the
file does not know is an error (``--lenient``: a recorded warning), never silently dropped.
"""

from __future__ import annotations

import math
import os
import re
import shlex
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpupair_search.launcher.errors import ConfigError, Problem
from gpupair_search.launcher.file_kinds import MODELS, refuse_other_kind
from gpupair_search.launcher.jsonfile import (
    describe,
    json_path,
    name_shown,
    nearest,
    non_ascii_note,
    read_json,
    show,
    type_name,
)
from gpupair_search.launcher.spec import JobConfig, PairSpec

BATCH_SIZE = "batch_size"
MAX_STEPS = "max_steps"
#: A probe's --max-steps unless the study or --probe-steps says otherwise. The named studies, which run only the
#: built-ins, use BUILTIN_PROBE_STEPS: each built-in's peak at 5 steps is its peak at 30, within allocator noise
#: (bench/probe_steps.py; fewer steps fall short). A user's own script with
#: --max-steps keeps 30: nobody measured where its peak comes.
DEFAULT_PROBE_STEPS = 30
BUILTIN_PROBE_STEPS = 5
MIN_TRAIN_S = "min_train_s"  # built-ins: the first epoch trains at least this long (a probe's steady-state window)
EPOCHS = "epochs"
_MAX_BATCH_SIZE = 65536


#: Our extension of the seed format: the values a training script's own argument check accepts, so that a value
#: it would refuse is an error before anything runs, not a job that fails to start (``"min": 1`` for epochs).
BOUND_KEYS = ("min", "exclusive_min", "max", "exclusive_max", "excluded")


@dataclass(frozen=True)
class Bounds:
    """What a hyperparameter's script accepts: at least ``low`` and at most ``high`` (each bound inclusive or
    not; None: unbounded), and none of ``excluded``."""

    low: float | None = None
    high: float | None = None
    low_inclusive: bool = True
    high_inclusive: bool = True
    excluded: tuple[float, ...] = ()

    def admits(self, value: float) -> bool:
        if self.low is not None and (value < self.low or (value == self.low and not self.low_inclusive)):
            return False
        if self.high is not None and (value > self.high or (value == self.high and not self.high_inclusive)):
            return False
        return value not in self.excluded

    def words(self) -> str:
        """``>= 1``, ``>= 0 and < 1``, ``other than 0``: the condition, as the built-ins' argparse errors say it."""
        parts = []
        if self.low is not None:
            parts.append(f"{'>=' if self.low_inclusive else '>'} {show(self.low)}")
        if self.high is not None:
            parts.append(f"{'<=' if self.high_inclusive else '<'} {show(self.high)}")
        if self.excluded:
            parts.append("other than " + " or ".join(show(v) for v in self.excluded))
        return " and ".join(parts)

    def as_written(self) -> str:
        """The bounds as the models file gives them: ``"min": 0, "exclusive_max": 1``."""
        keys = []
        if self.low is not None:
            keys.append(f'"{"min" if self.low_inclusive else "exclusive_min"}": {show(self.low)}')
        if self.high is not None:
            keys.append(f'"{"max" if self.high_inclusive else "exclusive_max"}": {show(self.high)}')
        if self.excluded:
            keys.append(f'"excluded": [{", ".join(show(v) for v in self.excluded)}]')
        return ", ".join(keys)


@dataclass(frozen=True)
class Hyperparameter:
    name: str
    flag: str
    type: str  # "int", "float", "str" or "bool"
    default: Any = None
    allows_negative: bool = False  # only where the models file's default, range or bounds are negative (n_jobs=-2)
    #: The seed's mutation settings: values are drawn from ``range`` [low, high] by ``distribution``.
    range: tuple[float, float] | None = None
    distribution: str = "uniform"
    bounds: Bounds | None = None  # what the training script accepts, where the models file says (BOUND_KEYS)


@dataclass(frozen=True)
class Repository:
    name: str
    path: Path
    train_script: str
    models: tuple[str, ...]
    hyperparameters: Mapping[str, Hyperparameter]
    model_flag: str | None = None
    required_args: Mapping[str, str] = field(default_factory=dict)
    log_patterns: Mapping[str, str] = field(default_factory=dict)
    #: Optional per-model defaults (our extension of the seed format, which has one default per repository;
    #: the seed's runner ignores the key): {"pcb": {"batch_size": 32}}
    model_defaults: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: Our extension of the seed format: run the job as ``python -m MODULE`` instead of ``train_script``
    #: (the built-in workloads are modules of the installed package; nothing edits ``sys.path``).
    train_module: str | None = None

    def default_batch_size(self, model: str | None = None) -> int | None:
        """The script's own default: a per-model one (our ``model_defaults`` extension) or the repository's."""
        per_model = self.model_defaults.get(model or "", {}).get(BATCH_SIZE)
        if per_model is not None:
            return int(per_model)
        hp = self.hyperparameters.get(BATCH_SIZE)
        return int(hp.default) if hp is not None and hp.default is not None else None


@dataclass(frozen=True)
class Command:
    """What to execute for one job: never through a shell."""

    argv: tuple[str, ...]
    cwd: Path
    #: Set when ``argv`` is ``[python, -m, module, ...]`` for a repository's ``train_module``: such a job
    #: can start warm (:mod:`launcher.warm_start`).
    module: str | None = None

    def display(self) -> str:
        """The command as a person would type it in ``cwd`` (for messages only; never executed)."""
        argv = ["python", *self.argv[1:]] if self.argv[0] == sys.executable else list(self.argv)
        return shlex.join(argv)


@dataclass(frozen=True)
class JobCheck:
    """Result of checking one job against the registry: hard problems and lenient-mode warnings."""

    problems: list[Problem]
    warnings: list[str]
    dropped: tuple[str, ...]  # hyperparameters removed in lenient mode
    unknown: bool = False  # the repository or the model is not in the models file (the seed's runner skips the job)
    read_as: Mapping[str, Any] = field(default_factory=dict)  # lenient: values as the seed's runner reads them

    def applied(self, job: JobConfig) -> JobConfig:
        """``job`` as it runs: dropped hyperparameters removed, the others as the seed's runner reads them."""
        kept = job.without(self.dropped)
        return kept.with_values(self.read_as) if self.read_as else kept


class Registry:
    """All repositories of one models file."""

    def __init__(self, file: Path, repositories: Mapping[str, Repository], require_paths: bool = True) -> None:
        self.file = file
        self.repositories = dict(repositories)
        #: Whether a job's repository directory and train script must be there, ready to start (False only where
        #: nothing will run, e.g. checking an export against a models file of another machine).
        self.require_paths = require_paths
        #: Which directory relative repository paths resolved against, and why, for the CLI to say ("" if none).
        self.root_note = ""

    @classmethod
    def load(cls, path: Path, base_dir: Path | None = None, require_paths: bool = True) -> Registry:
        """Read a models file; relative repository paths resolve against ``base_dir`` (default: the current
        directory; the CLI passes the project root the seed's runner would use, see ``search.inputs``) and must
        stay inside it."""
        path = Path(path)
        data = read_json(path, "models file")
        base = Path(base_dir) if base_dir is not None else Path.cwd()
        problems: list[Problem] = []
        repos: dict[str, Repository] = {}
        refuse_other_kind(str(path), data, MODELS)
        if not isinstance(data, dict) or not isinstance(data.get("models"), dict):
            if isinstance(data, dict):
                got = "missing" if "models" not in data else f"is {describe(data['models'])}, expected an object"
            else:
                got = f"missing: the file's top level is {type_name(data)}, not an object"
            raise ConfigError(
                [
                    Problem(
                        str(path),
                        "models",
                        got,
                        expected='{"models": {"<repo>": {...}}} as in the seed\'s models_config.json',
                    )
                ]
            )
        problems += unknown_key_problems(str(path), "", data, "file")
        for name, entry in data["models"].items():
            repo = _parse_repository(str(path), name, entry, base, problems)
            if repo is not None:
                repos[name] = repo
        if not problems and not repos:
            problems.append(
                Problem(
                    str(path),
                    "models",
                    "has no repositories, so no job could run",
                    expected='{"models": {"<repo>": {...}}} as in the seed\'s models_config.json',
                    fix="add the repositories your settings files name",
                )
            )
        if problems:
            raise ConfigError(problems)
        return cls(path, repos, require_paths)

    def repository(self, name: str) -> Repository:
        return self.repositories[name]

    def start_problems(self, name: str) -> list[Problem]:
        """Why a job of repository ``name`` could not start here (its clone or train script is missing)."""
        return _start_problems(str(self.file), self.repositories[name])

    def check_job(self, job: JobConfig, where: str, file: str, lenient: bool) -> JobCheck:
        """Check ``job`` (found at ``where`` in ``file``) against this registry."""
        problems: list[Problem] = []
        warnings: list[str] = []
        dropped: list[str] = []
        repo = self.repositories.get(job.repo)
        if repo is None:
            problems.append(
                Problem(
                    file,
                    f"{where}.repo",
                    f"unknown repository {name_shown(job.repo)} (not in {self.file}){non_ascii_note(job.repo)}",
                    expected="one of: " + _names(sorted(self.repositories)),
                    fix=_did_you_mean(
                        job.repo,
                        self.repositories,
                        "fix the name or register the repository in the models file (--models FILE)",
                    ),
                )
            )
            return JobCheck(problems, warnings, (), unknown=True)
        if job.model not in repo.models:
            problems.append(
                Problem(
                    file,
                    f"{where}.model",
                    f"unknown model {name_shown(job.model)} for repository {name_shown(job.repo)}"
                    f"{non_ascii_note(job.model)}",
                    expected="one of: " + _names(repo.models),
                    fix=_did_you_mean(job.model, repo.models, "fix the name or add the model to the models file"),
                )
            )
            if lenient:  # the runner skips the job: nothing more of it matters
                return JobCheck(problems, warnings, (), unknown=True)
        unknown_model = bool(problems)  # strict: its hyperparameters are the repository's, checked all the same
        if self.require_paths:
            problems.extend(_start_problems(str(self.file), repo))
        read_as: dict[str, Any] = {}
        for name, value in job.hyperparameters.items():
            at = json_path(f"{where}.hyperparameters", name)
            hp = repo.hyperparameters.get(name)
            if hp is None:
                known = ", ".join(sorted(repo.hyperparameters)) or "(none)"
                if lenient:
                    dropped.append(name)
                    warnings.append(
                        f"{file}: {at}: {job.repo} has no hyperparameter {show(name)}; dropped (known: {known})"
                    )
                else:
                    problems.append(
                        Problem(
                            file,
                            at,
                            f"{job.repo} has no hyperparameter {show(name)}, so its training script would never see it",
                            expected="one of: " + known,
                            fix="remove it, add it to the models file, or run with --lenient "
                            "to drop it with a recorded warning",
                        )
                    )
                continue
            runner_value = _runner_reading(value, hp.type)
            if runner_value is not None and not _value_problem(hp, runner_value):
                wrong = f"{describe(value)} is not {_KIND_WORDS[hp.type]}"
                if lenient:
                    read_as[name] = runner_value
                    warnings.append(
                        f"{file}: {at}: {wrong}; run as {show(runner_value)}, as the seed's runner runs it (--lenient)"
                    )
                else:
                    problems.append(
                        Problem(
                            file,
                            at,
                            f"{wrong}; the seed's runner passes it as {show(runner_value)}",
                            expected=_expected(hp),
                            fix=f"write {show(runner_value)}, or run with --lenient to run it as the runner does",
                        )
                    )
                continue
            message = _value_problem(hp, value)
            if message:
                problems.append(
                    Problem(
                        file,
                        at,
                        message,
                        expected=_expected(hp),
                        fix="correct the value in the settings file",
                        runner_skips=_RUNNER_FAILS if _runner_cannot_write(value, hp.type) else "",
                    )
                )
            elif lost := _float_lost(value, hp.type):
                text = f"{show(value)} is passed as {lost} by the seed's runner, which writes floats with 6 decimals"
                if lenient:
                    warnings.append(f"{file}: {at}: {text}; run as {lost}, as the runner runs it (--lenient)")
                else:
                    problems.append(
                        Problem(
                            file,
                            at,
                            text,
                            expected="a value that 6 decimals hold (0.000001 or more)",
                            fix="write the value the job should get, or run with --lenient to run it as the "
                            "runner does",
                        )
                    )
        return JobCheck(problems, warnings, tuple(dropped), unknown=unknown_model, read_as=read_as)

    def command(self, job: JobConfig) -> Command:
        """The argv the seed's runner would build for ``job`` (which must have passed ``check_job``)."""
        repo = self.repositories[job.repo]
        script = repo.train_script
        if repo.train_module:
            argv: list[str] = [sys.executable, "-m", repo.train_module]
        elif script.endswith(".py"):
            argv = [sys.executable, script]
        else:  # executed directly: a bare name would be looked up on PATH, not in the repository
            argv = [script if "/" in script else f"./{script}"]
        if job.model != "default" and repo.model_flag:
            argv += [repo.model_flag, job.model]
        for value in repo.required_args.values():
            argv += shlex.split(str(value))
        for name, value in job.hyperparameters.items():
            hp = repo.hyperparameters[name]
            argv += [hp.flag, _format_value(value, hp.type)]
        return Command(tuple(argv), repo.path, repo.train_module)

    def batch_size(self, job: JobConfig) -> int | None:
        """The job's batch size: its setting, else the registry default; None when it has no knob."""
        repo = self.repositories[job.repo]
        if BATCH_SIZE not in repo.hyperparameters:
            return None
        value = job.hyperparameters.get(BATCH_SIZE)
        return int(value) if value is not None else repo.default_batch_size(job.model)

    def batch_sizes(self, pair: PairSpec) -> tuple[int | None, int | None]:
        """The pair's (foreground, background) batch sizes as configured; None where a job has none."""
        return self.batch_size(pair.foreground), self.batch_size(pair.background) if pair.background else None

    def supports(self, job: JobConfig, hyperparameter: str) -> bool:
        return hyperparameter in self.repositories[job.repo].hyperparameters


def _names(names) -> str:
    return ", ".join(name_shown(n) if not n.isascii() else n for n in names)


def _did_you_mean(name: str, known, otherwise: str) -> str:
    close = nearest(name, list(known))
    return f"did you mean {name_shown(close)}? {otherwise}" if close else otherwise


#: The seed's runner writes a float with this many decimals (its hyperparams module, FLOAT_PRECISION).
RUNNER_FLOAT_DECIMALS = 6


def _format_value(value: Any, kind: str) -> str:
    """``value`` as the seed's runner writes it into the command line: an int as ``str(int(value))``, a float
    with 6 decimals (``0.010000``), anything else as ``str(value)`` (``True``, not ``true``)."""
    if kind == "int" and not isinstance(value, bool):
        return str(int(value))
    if kind == "float" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{value:.{RUNNER_FLOAT_DECIMALS}f}"
    return str(value)


def _runner_reading(value: Any, kind: str) -> int | float | None:
    """The number the seed's runner makes of a value of the wrong JSON type, where it makes one: for an integer
    hyperparameter ``int(value)`` (``"32"`` and ``32.0`` become 32, ``32.7`` is cut to 32, ``true`` is 1); for
    a float one, a boolean is 1.0 or 0.0. None where the value has the right type, or where the runner's
    formatting fails on it and it runs nothing."""
    if kind == "int" and (isinstance(value, (bool, str)) or (isinstance(value, float) and math.isfinite(value))):
        try:
            return int(value)
        except ValueError:
            return None
    if kind == "float" and isinstance(value, bool):
        return float(value)
    return None


_RUNNER_FAILS = "the runner cannot write it into the command line, fails and goes on to the next experiment"


def _runner_cannot_write(value: Any, kind: str) -> bool:
    """Whether the seed's runner's formatting raises on ``value`` (``int(None)``, ``f"{'0.01':.6f}"``)."""
    try:
        if kind == "int":
            str(int(value))
        elif kind == "float":
            f"{value:.{RUNNER_FLOAT_DECIMALS}f}"
    except (TypeError, ValueError, OverflowError):
        return True
    return False


def _float_lost(value: Any, kind: str) -> str:
    """What the runner's 6 decimals make of a float that they cannot hold (1e-07 -> 0.000000), or ""."""
    if kind != "float" or isinstance(value, bool) or not isinstance(value, (int, float)) or value == 0:
        return ""
    written = _format_value(value, kind)
    return written if abs(float(written) - value) > abs(value) * 0.01 else ""


_KIND_WORDS = {"int": "an integer", "float": "a number", "str": "a string", "bool": "true or false"}


def _expected(hp: Hyperparameter) -> str:
    if hp.name == BATCH_SIZE:
        return f"an integer from 1 to {_MAX_BATCH_SIZE}"
    if hp.bounds is not None:
        return (
            f"{_KIND_WORDS[hp.type]} {hp.bounds.words()}, as the training script checks "
            f"({hp.bounds.as_written()} in the models file)"
        )
    if hp.type == "int" and not hp.allows_negative:
        return (
            "an integer, 0 or more: nothing the models file says of it is negative (its default, range, bounds); "
            'where the script takes negative values, declare them ("min" in the models file)'
        )
    return _KIND_WORDS.get(hp.type, hp.type)


def _type_problem(kind: str, value: Any) -> str:
    """Why ``value`` is not of the models file's ``kind`` ("int", "float", "str", "bool"), or "" when it is."""
    if kind == "int" and (isinstance(value, bool) or not isinstance(value, int)):
        return f"{describe(value)} is not an integer"
    if kind == "float" and (isinstance(value, bool) or not isinstance(value, (int, float))):
        return f"{describe(value)} is not a number"
    if kind == "bool" and not isinstance(value, bool):
        return f"{describe(value)} is not true/false"
    if kind == "str" and not isinstance(value, str):
        return f"{describe(value)} is not a string"
    return ""


def _value_problem(hp: Hyperparameter, value: Any) -> str:
    """Why ``value`` does not fit ``hp``, or "" when it does."""
    wrong_type = _type_problem(hp.type, value)
    if wrong_type:
        return wrong_type
    if hp.type == "float" and not _finite(value):
        return f"{show(value)} is not a finite number"
    if hp.bounds is not None and not hp.bounds.admits(value):
        return f"expected {_KIND_WORDS[hp.type]} {hp.bounds.words()}, got {show(value)}"
    if hp.type == "int":
        if not INT64_MIN <= value <= INT64_MAX:
            return (
                f"{show(value)} is beyond a 64-bit integer ({INT64_MIN} to {INT64_MAX}), the most a training "
                "script's numbers can hold (torch.manual_seed refuses 2**64)"
            )
        if value < 0 and not hp.allows_negative:
            return f"{show(value)} is negative"
        if hp.name == BATCH_SIZE and not 1 <= value <= _MAX_BATCH_SIZE:
            return f"batch size {show(value)} is out of range"
    elif hp.type == "str":
        return _argument_problem(value)
    return ""


def _finite(value: int | float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer beyond the float range
        return False


#: The kernel's limit on one command-line argument (Linux's MAX_ARG_STRLEN, 32 pages of 4 KiB): a longer one
#: makes starting the job fail with "Argument list too long".
MAX_ARGUMENT_BYTES = 131072
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def _argument_problem(text: str) -> str:
    """Why ``text`` cannot reach a training script as one literal argv element, or "" when it can."""
    if "\0" in text:
        return f"{show(text)} contains a NUL character, which no command-line argument can carry"
    size = len(text.encode("utf-8", "surrogatepass"))
    if size >= MAX_ARGUMENT_BYTES:
        return (
            f"a string of {size:,} bytes: the operating system starts no program with an argument of "
            f"{MAX_ARGUMENT_BYTES:,} bytes or more"
        )
    return ""


_REPO_KEYS = {"path": str, "train_script": str, "models": list, "supported_hyperparams": dict}
_DISTRIBUTIONS = ("uniform", "log_uniform")
_SPEC_KEYS = ("flag", "type", "default", "range", "distribution", *BOUND_KEYS)

#: Every key a models file may hold, per level: anything else would be read as nothing (``requried_args`` would
#: run the job without its required arguments), so it is an error, with the known key it resembles. A key that
#: starts with "_" is a comment at any level.
ALLOWED_KEYS: dict[str, tuple[str, ...]] = {
    "file": ("models",),
    "repository": (*_REPO_KEYS, "model_flag", "required_args", "performance_metrics", "model_defaults", "train_module"),
    "hyperparameter": _SPEC_KEYS,
    "performance_metrics": ("log_patterns",),
}


def unknown_key_problems(file: str, at: str, data: dict, level: str) -> list[Problem]:
    """A problem for each key of ``data`` (found at ``at``) that a models file does not have at ``level``."""
    allowed = ALLOWED_KEYS[level]
    problems = []
    for key in data:
        if key in allowed or key.startswith("_"):
            continue
        close = nearest(key, allowed)
        problems.append(
            Problem(
                file,
                json_path(at, key),
                f"unknown key {name_shown(key)}, so it would be read as nothing",
                expected="one of: " + ", ".join(allowed),
                fix=(f'did you mean "{close}"? ' if close else "")
                + 'correct the key, or start it with "_" if it is a comment',
            )
        )
    return problems


_MODULE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_FORMAT_FIX = "see the models file's format in the documentation (Reference: models file)"


def _parse_repository(file: str, name: str, entry: Any, base: Path, problems: list[Problem]) -> Repository | None:
    at = json_path("models", name)
    if name.startswith("_"):
        return None
    if not isinstance(entry, dict):
        problems.append(
            Problem(
                file,
                at,
                f"is {type_name(entry)}, expected an object",
                expected='{"path": ..., "train_script": ..., "models": [...], "supported_hyperparams": {...}}',
                fix=_FORMAT_FIX,
            )
        )
        return None
    problems.extend(unknown_key_problems(file, at, entry, "repository"))
    ok = True
    for key, kind in _REPO_KEYS.items():
        value = entry.get(key)
        if not isinstance(value, kind) or (kind is str and not value):
            got = "missing" if key not in entry else describe(value)
            module_only = key == "train_script" and key not in entry and "train_module" in entry
            problems.append(
                Problem(
                    file,
                    f"{at}.{key}",
                    f"{got}, expected a non-empty {type_name(kind())}"
                    if kind is str
                    else f"{got}, expected {type_name(kind())}",
                    fix='add "train_script": the script the seed\'s runner starts (gpupair-search starts '
                    "train_module instead, but the file stays one the runner reads)"
                    if module_only
                    else _FORMAT_FIX,
                )
            )
            ok = False
    if not ok:
        return None
    count = len(problems)
    models = _parse_models(file, at, entry["models"], entry.get("model_flag"), problems)
    hyper = _parse_hyperparameters(file, f"{at}.supported_hyperparams", entry["supported_hyperparams"], problems)
    required = _parse_required_args(file, f"{at}.required_args", entry.get("required_args", {}), problems)
    patterns = _parse_log_patterns(file, f"{at}.performance_metrics", entry.get("performance_metrics", {}), problems)
    module = entry.get("train_module")
    if module is not None and not (isinstance(module, str) and _MODULE_NAME.fullmatch(module)):
        problems.append(
            Problem(
                file,
                f"{at}.train_module",
                f"{describe(module)}, expected a dotted module name",
                expected='e.g. "gpupair_search.workloads.examples.train", or leave the key out',
            )
        )
    path = _repository_path(file, at, entry["path"], base, problems)
    if path is not None:
        _check_train_script(file, at, entry["train_script"], path, problems)
    if len(problems) == count:
        _check_flags(file, at, hyper, entry.get("model_flag"), required, problems)
    if len(problems) > count or path is None:
        return None
    return Repository(
        name=name,
        path=path,
        train_script=entry["train_script"],
        models=models,
        hyperparameters=hyper,
        model_flag=entry.get("model_flag"),
        required_args=required,
        log_patterns=patterns,
        model_defaults=_parse_model_defaults(file, at, entry.get("model_defaults", {}), models, problems),
        train_module=module,
    )


def _inside(path: Path, root: Path) -> bool:
    path, root = path.resolve(), root.resolve()
    return path == root or root in path.parents


def _repository_path(file: str, at: str, text: str, base: Path, problems: list[Problem]) -> Path | None:
    """The repository directory: an absolute ``path`` as given; a relative one under ``base`` (where the seed's
    runner resolves it), never outside it (``../elsewhere``)."""
    path = Path(text)
    if path.is_absolute():
        return path
    resolved = base / path
    if not _inside(resolved, base):
        problems.append(
            Problem(
                file,
                f"{at}.path",
                f"{show(text)} resolves to {resolved.resolve()}, outside "
                f"{base.resolve()} (the directory relative repository paths resolve against)",
                expected="a path inside that directory, or an absolute path",
                fix="fix the path, or give --repos-root DIR for the directory that holds the clones",
            )
        )
        return None
    return resolved


def _check_train_script(file: str, at: str, script: str, repo_path: Path, problems: list[Problem]) -> None:
    """A train script runs with the repository as working directory, and must be a file of that repository."""
    resolved = repo_path / script
    if "\0" in script or not _inside(resolved, repo_path):
        problems.append(
            Problem(
                file,
                f"{at}.train_script",
                f"{show(script)} resolves to "
                f"{resolved.resolve() if chr(0) not in script else show(script)}, outside the "
                f"repository {repo_path.resolve()}",
                expected='a script inside the repository, e.g. "./train.sh"',
                fix="fix the script's path, or the repository's \"path\"",
            )
        )


def windows_shebang(script: Path) -> str:
    """Why a script saved with Windows line endings cannot start, or "": its ``#!`` line ends in a carriage
    return, so the system looks for an interpreter named ``/bin/bash\\r`` and reports "No such file or directory"
    for a file that is plainly there."""
    try:
        with script.open("rb") as f:
            first = f.readline(512)
    except OSError:
        return ""
    if first.startswith(b"#!") and first.rstrip(b"\n").endswith(b"\r"):
        shown = first.rstrip(b"\r\n").decode(errors="replace")
        return (
            f"has Windows line endings (CRLF): its first line {shown!r} ends in a carriage return, so it cannot start"
        )
    return ""


def _start_problems(file: str, repo: Repository) -> list[Problem]:
    """Why a job of ``repo`` could not start on this machine: checked for the jobs a settings file uses (a models
    file may list repositories not cloned here), before anything runs."""
    if not repo.path.is_dir():
        return [
            Problem(
                file,
                f"{json_path('models', repo.name)}.path",
                f"repository {name_shown(repo.name)} is at {repo.path}, which "
                f"{'is not a directory' if repo.path.exists() else 'does not exist'}",
                expected="the directory of the repository's clone",
                fix='clone the repository there, fix its "path", or give --repos-root DIR '
                "(relative paths resolve against it)",
            )
        ]
    if repo.train_module:  # run as ``python -m``: the module is what starts, not the train script
        if module_can_start(repo.train_module, repo.path):
            return []
        return [
            Problem(
                file,
                f"{json_path('models', repo.name)}.train_module",
                f"{show(repo.train_module)} of repository {name_shown(repo.name)} cannot be imported by "
                f"`python -m` in {repo.path}, so the job would fail to start",
                expected="a module importable in the repository's directory (a .py file or package there, "
                "or an installed one)",
                fix='correct "train_module", install the package, or leave the key out to run "train_script"',
            )
        ]
    script = repo.path / repo.train_script
    by_python = repo.train_script.endswith(".py")
    if script.is_file() and (by_python or os.access(script, os.X_OK)):
        crlf = "" if by_python else windows_shebang(script)
        if not crlf:
            return []
        return [
            Problem(
                file,
                f"{json_path('models', repo.name)}.train_script",
                f"{script} {crlf}",
                expected="a script with Unix line endings (LF)",
                fix=f"convert it: sed -i 's/\\r$//' {script}  (or dos2unix)",
            )
        ]
    fix = 'fix "train_script" (it is relative to the repository\'s "path") or the "path"'
    if script.is_file():
        state = "is not executable, and a script whose name does not end in .py is executed directly"
        fix = f"make it executable (chmod +x {script}), or {fix}"
    elif script.is_dir():
        state = "is a directory"
    elif script.exists():
        state = "is not a regular file"
    else:
        state = "is a symbolic link to nothing" if script.is_symlink() else "does not exist"
    return [
        Problem(
            file,
            f"{json_path('models', repo.name)}.train_script",
            f"{show(repo.train_script)} of repository {name_shown(repo.name)} is {script}, which {state}",
            expected="the repository's training script: a file, executable unless its name ends in .py "
            "(run with python)",
            fix=fix,
        )
    ]


_MODULES_FOUND: dict[tuple[str, Path], bool] = {}


def module_can_start(module: str, cwd: Path) -> bool:
    """Whether ``python -m module`` run in ``cwd`` finds the module (cached). Our own workloads are looked up
    here; any other module in a child process, as the job would be, so its packages' code runs there, not in us."""
    key = (module, Path(cwd))
    if key not in _MODULES_FOUND:
        if module.split(".")[0] == __name__.split(".")[0]:
            import importlib.util

            try:
                _MODULES_FOUND[key] = importlib.util.find_spec(module) is not None
            except (ImportError, ValueError):
                _MODULES_FOUND[key] = False
        else:
            import subprocess

            probe = "import importlib.util, sys; sys.exit(0 if importlib.util.find_spec(sys.argv[1]) else 1)"
            try:
                done = subprocess.run([sys.executable, "-c", probe, module], cwd=cwd, capture_output=True, timeout=60)
                _MODULES_FOUND[key] = done.returncode == 0
            except (OSError, subprocess.TimeoutExpired):
                _MODULES_FOUND[key] = False
    return _MODULES_FOUND[key]


def _check_flags(
    file: str,
    at: str,
    hyper: Mapping[str, Hyperparameter],
    model_flag: Any,
    required: Mapping[str, str],
    problems: list[Problem],
) -> None:
    """No two arguments of one repository's command share a flag: the script would see one value twice."""
    owners: dict[str, str] = {}
    if isinstance(model_flag, str):
        owners[model_flag] = "model_flag"
    for key, value in required.items():
        for word in shlex.split(value):
            if word.startswith("-"):
                owners.setdefault(word, json_path("required_args", key))
    for hp in hyper.values():
        where = json_path("supported_hyperparams", hp.name)
        if hp.flag in owners:
            problems.append(
                Problem(
                    file,
                    f"{json_path(f'{at}.supported_hyperparams', hp.name)}.flag",
                    f"flag {show(hp.flag)} is also the flag of {owners[hp.flag]}: the training script "
                    "would get both values and keep one",
                    expected="a flag of its own for every hyperparameter",
                    fix="correct the flag (see the script's --help)",
                )
            )
        else:
            owners[hp.flag] = where


def _parse_model_defaults(
    file: str, at: str, value: Any, models: tuple[str, ...], problems: list[Problem]
) -> dict[str, dict[str, Any]]:
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        problems.append(
            Problem(
                file,
                f"{at}.model_defaults",
                f"is {type_name(value)}, expected an object of objects",
                expected='{"pcb": {"batch_size": 32}}',
            )
        )
        return {}
    unknown = [m for m in value if m not in models]
    if unknown:
        problems.append(
            Problem(
                file,
                json_path(f"{at}.model_defaults", unknown[0]),
                "names a model the entry does not list",
                expected="one of: " + ", ".join(models),
            )
        )
    return {m: dict(v) for m, v in value.items()}


_FLAG = re.compile(r"--?[A-Za-z_][A-Za-z0-9_.\-]*")
_FLAG_EXPECTED = 'an option as the script\'s argparse defines it: "-" or "--" and a name, e.g. "--lr" or "-b"'


def _flag_problem(flag: str) -> str:
    """Why argparse would not read ``flag`` followed by a value as that option, or "" when it would. The value
    goes in the next argument, so ``"--lr="`` would reach the script as ``--lr= 0.1``; a space splits nothing
    (no shell); a name that does not start with "-" is no option at all."""
    if _FLAG.fullmatch(flag):
        return ""
    if flag.startswith("-") and "=" in flag:
        return (
            f'flag {show(flag)} contains "=": the value is passed as the next argument, so the script '
            f"would get {show(flag)} and the value apart, which argparse refuses"
        )
    if any(c.isspace() for c in flag):
        return f"flag {show(flag)} contains white space: it is passed as one argument, which no option matches"
    if not flag.startswith("-"):
        return f'flag {show(flag)} does not start with "-", so argparse would read it as a positional argument'
    return f"flag {show(flag)} is not an option name argparse accepts"


def _parse_models(file: str, at: str, models: list, model_flag: Any, problems: list[Problem]) -> tuple[str, ...]:
    if not models:
        problems.append(
            Problem(
                file,
                f"{at}.models",
                "is empty, expected at least one model name",
                expected='e.g. ["default"] or ["resnet20", "resnet32"]',
                fix=_FORMAT_FIX,
            )
        )
    for i, model in enumerate(models):
        if not isinstance(model, str) or not model:
            problems.append(
                Problem(
                    file,
                    f"{at}.models[{i}]",
                    f"{describe(model)}, expected a non-empty model name",
                    expected='e.g. "resnet20"',
                )
            )
    if model_flag is not None and (not isinstance(model_flag, str) or not model_flag):
        problems.append(
            Problem(
                file,
                f"{at}.model_flag",
                f"is {describe(model_flag)}, expected a non-empty string",
                expected='e.g. "-n"',
            )
        )
    elif isinstance(model_flag, str) and _flag_problem(model_flag):
        problems.append(
            Problem(
                file,
                f"{at}.model_flag",
                _flag_problem(model_flag),
                expected=_FLAG_EXPECTED,
                fix="correct the flag (see the script's --help)",
            )
        )
    elif model_flag is None and len(models) > 1:
        problems.append(
            Problem(
                file,
                f"{at}.model_flag",
                f"missing, but there are {len(models)} models: "
                "without it the training script is never told which one to train",
                expected='the flag that selects the model, e.g. "-n"',
                fix='add "model_flag" to the repository entry',
            )
        )
    return tuple(m for m in models if isinstance(m, str))


def _parse_hyperparameters(file: str, at: str, specs: dict, problems: list[Problem]) -> dict[str, Hyperparameter]:
    hyper: dict[str, Hyperparameter] = {}
    for hp_name, spec in specs.items():
        hp_at = json_path(at, hp_name)
        if not isinstance(spec, dict):
            problems.append(
                Problem(
                    file,
                    hp_at,
                    f"is {type_name(spec)}, expected an object",
                    expected='{"flag": "--lr", "type": "float", "default": 0.1}',
                    fix=_FORMAT_FIX,
                )
            )
            continue
        unknown = unknown_key_problems(file, hp_at, spec, "hyperparameter")
        if unknown:
            problems.extend(unknown)
            continue
        flag = spec.get("flag")
        if not isinstance(flag, str) or not flag:
            got = "missing" if "flag" not in spec else describe(flag)
            problems.append(
                Problem(
                    file,
                    f"{hp_at}.flag",
                    f"{got}, expected a non-empty string",
                    expected='e.g. "--lr"',
                    fix=_FORMAT_FIX,
                )
            )
            continue
        if _flag_problem(flag):
            problems.append(
                Problem(
                    file,
                    f"{hp_at}.flag",
                    _flag_problem(flag),
                    expected=_FLAG_EXPECTED,
                    fix="correct the flag (see the script's --help)",
                )
            )
            continue
        kind = spec.get("type", "str")
        if kind not in ("int", "float", "str", "bool"):
            problems.append(
                Problem(
                    file,
                    f"{hp_at}.type",
                    f"unknown type {show(kind)}",
                    expected='"int", "float", "str" or "bool"',
                    fix=_FORMAT_FIX,
                )
            )
            continue
        if hp_name == BATCH_SIZE and kind != "int":
            problems.append(
                Problem(
                    file,
                    f"{hp_at}.type",
                    f"batch size of type {show(kind)}",
                    expected='"int": batch sizes are whole numbers',
                    fix='set "type": "int"',
                )
            )
            continue
        default = spec.get("default")
        if default is not None and _type_problem(kind, default):
            problems.append(
                Problem(
                    file,
                    f"{hp_at}.default",
                    _type_problem(kind, default),
                    expected=f'a value of type {kind} (the hyperparameter\'s "type")',
                    fix="correct the default or the type",
                )
            )
            continue
        if kind == "int" and default is not None and not INT64_MIN <= default <= INT64_MAX:
            problems.append(
                Problem(
                    file,
                    f"{hp_at}.default",
                    f"{show(default)} is beyond a 64-bit integer",
                    expected=f"an integer from {INT64_MIN} to {INT64_MAX}",
                    fix="correct the default",
                )
            )
            continue
        if hp_name == BATCH_SIZE and default is not None and not 1 <= default <= _MAX_BATCH_SIZE:
            problems.append(
                Problem(
                    file,
                    f"{hp_at}.default",
                    f"batch size {show(default)} is out of range",
                    expected=f"an integer from 1 to {_MAX_BATCH_SIZE}, the script's own default",
                    fix="correct the default",
                )
            )
            continue
        bounds = _parse_range(file, hp_at, hp_name, kind, spec, problems)
        if bounds is False:
            continue
        accepted = _parse_bounds(file, hp_at, kind, spec, problems)
        if accepted is False or not _within_bounds(file, hp_at, default, bounds, accepted, problems):
            continue
        negative = any(
            isinstance(v, (int, float)) and not isinstance(v, bool) and v < 0
            for v in [default, *(bounds or ()), accepted.low if accepted else None]
        )
        hyper[hp_name] = Hyperparameter(
            hp_name, flag, kind, default, negative, bounds or None, spec.get("distribution", "uniform"), accepted
        )
    return hyper


def _parse_bounds(file: str, at: str, kind: str, spec: dict, problems: list[Problem]) -> Bounds | None | bool:
    """The script's accepted values (BOUND_KEYS; None when the entry gives none); False, with a problem, when they
    are unusable. A key that is nearly a bound key (``"exclusiveMinimum"``) is a problem too: the bound would be
    lost."""
    count = len(problems)
    given = {key: spec[key] for key in BOUND_KEYS if key in spec}
    if not given:
        return None if len(problems) == count else False
    if kind not in ("int", "float"):
        problems.append(
            Problem(
                file,
                json_path(at, next(iter(given))),
                f"a bound on a hyperparameter of type {show(kind)}",
                expected='bounds only on "int" and "float" hyperparameters',
                fix="remove the bound",
            )
        )
        return False
    for key, value in given.items():
        values = value if key == "excluded" and isinstance(value, list) else [value]
        if key == "excluded" and not isinstance(value, list):
            problems.append(
                Problem(
                    file,
                    f"{at}.excluded",
                    f"is {describe(value)}",
                    expected="a list of the values the script refuses, e.g. [0]",
                    fix="correct the bound",
                )
            )
        for i, v in enumerate(values):
            if _type_problem(kind, v) or not _finite(v):
                where = f"{at}.excluded[{i}]" if key == "excluded" else f"{at}.{key}"
                problems.append(
                    Problem(
                        file,
                        where,
                        f"is {describe(v)}",
                        expected=f"{'an integer' if kind == 'int' else 'a finite number'}, "
                        f'the hyperparameter\'s "type"',
                        fix="correct the bound",
                    )
                )
    for one, other in (("min", "exclusive_min"), ("max", "exclusive_max")):
        if one in given and other in given:
            problems.append(
                Problem(
                    file,
                    f"{at}.{other}",
                    f'is given with "{one}": two bounds on one side',
                    expected=f'either "{one}" (inclusive) or "{other}"',
                    fix="remove one of them",
                )
            )
    if len(problems) > count:
        return False
    low, high = given.get("min", given.get("exclusive_min")), given.get("max", given.get("exclusive_max"))
    accepted = Bounds(
        low,
        high,
        low_inclusive="exclusive_min" not in given,
        high_inclusive="exclusive_max" not in given,
        excluded=tuple(given.get("excluded", ())),
    )
    if (
        low is not None
        and high is not None
        and (low > high or (low == high and not (accepted.low_inclusive and accepted.high_inclusive)))
    ):
        problems.append(
            Problem(
                file,
                f"{at}.{'max' if accepted.high_inclusive else 'exclusive_max'}",
                f"no value is {accepted.words()}",
                expected="a lower bound below the upper bound",
                fix="swap or correct the bounds",
            )
        )
        return False
    return accepted


def _within_bounds(
    file: str,
    at: str,
    default: Any,
    drawn: tuple[float, float] | None,
    accepted: Bounds | None,
    problems: list[Problem],
) -> bool:
    """The script's own default, and the ends of the mutation range, must be values the script accepts."""
    if accepted is None:
        return True
    if default is not None and not accepted.admits(default):
        problems.append(
            Problem(
                file,
                f"{at}.default",
                f"the default {show(default)} is not {accepted.words()}, "
                "so the bounds would refuse the script's own default",
                expected=f"bounds ({accepted.as_written()}) that admit the default",
                fix="correct the bounds or the default",
            )
        )
        return False
    if drawn is not None and not all(accepted.admits(v) for v in drawn):
        problems.append(
            Problem(
                file,
                f"{at}.range",
                f"{show(list(drawn))} reaches values that are not "
                f"{accepted.words()}, so a mutation run could draw a value the script refuses",
                expected=f"a range inside the bounds ({accepted.as_written()})",
                fix="narrow the range or correct the bounds",
            )
        )
        return False
    return True


def _parse_range(
    file: str, at: str, name: str, kind: str, spec: dict, problems: list[Problem]
) -> tuple[float, float] | None | bool:
    """The mutation ``range`` [low, high] (None when absent); False, with a problem, when it is unusable (the seed's
    runner would fail on it when drawing a value)."""
    if "range" not in spec:
        return None
    bounds, distribution = spec["range"], spec.get("distribution", "uniform")
    numbers = (
        isinstance(bounds, list)
        and len(bounds) == 2
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) and _finite(v) for v in bounds)
    )
    if not numbers or (kind == "int" and not all(isinstance(v, int) for v in bounds)) or kind not in ("int", "float"):
        problems.append(
            Problem(
                file,
                f"{at}.range",
                f"is {describe(bounds)}",
                expected=f"[low, high], two {'integers' if kind == 'int' else 'numbers'}"
                if kind in ("int", "float")
                else "no range: only int and float hyperparameters are drawn",
                fix="correct the range",
            )
        )
        return False
    low, high = bounds
    if low > high:
        problems.append(
            Problem(
                file,
                f"{at}.range",
                f"low {show(low)} is above high {show(high)}",
                expected="[low, high] with low <= high",
                fix="swap the bounds",
            )
        )
        return False
    if distribution not in _DISTRIBUTIONS:
        problems.append(
            Problem(
                file,
                f"{at}.distribution",
                f"unknown distribution {show(distribution)}",
                expected=" or ".join(f'"{d}"' for d in _DISTRIBUTIONS),
                fix="correct the distribution",
            )
        )
        return False
    if distribution == "log_uniform" and low <= 0:
        problems.append(
            Problem(
                file,
                f"{at}.range",
                f"low {show(low)} with a log_uniform distribution",
                expected="a low bound above 0 (log_uniform draws on a log scale)",
                fix='raise the low bound or use "distribution": "uniform"',
            )
        )
        return False
    if name == BATCH_SIZE and not (low >= 1 and high <= _MAX_BATCH_SIZE):
        problems.append(
            Problem(
                file,
                f"{at}.range",
                f"batch sizes {show(low)} to {show(high)} are out of range",
                expected=f"batch sizes from 1 to {_MAX_BATCH_SIZE}",
                fix="correct the range",
            )
        )
        return False
    return float(low) if kind == "float" else low, float(high) if kind == "float" else high


def _parse_required_args(file: str, at: str, required: Any, problems: list[Problem]) -> dict[str, str]:
    if not isinstance(required, dict):
        problems.append(
            Problem(
                file,
                at,
                f"is {type_name(required)}, expected an object of strings",
                expected='{"dataset": "-d d2a"}',
                fix=_FORMAT_FIX,
            )
        )
        return {}
    for key, value in required.items():
        if not isinstance(value, str):
            problems.append(
                Problem(
                    file,
                    json_path(at, key),
                    f"{describe(value)}, expected a string",
                    expected='arguments as typed in a shell, e.g. "-d d2a"',
                )
            )
            continue
        try:
            words = shlex.split(value)
        except ValueError as exc:
            problems.append(
                Problem(
                    file,
                    json_path(at, key),
                    f"cannot be split into arguments: {exc}",
                    expected='arguments as typed in a shell, e.g. "-d d2a"',
                    fix="close the quotation or escape the quote character",
                )
            )
            continue
        if key.startswith("-") and key not in words:  # {"--data-dir": "/data"}: the flag would never be passed
            name = key.lstrip("-").replace("-", "_") or "arg"
            problems.append(
                Problem(
                    file,
                    json_path(at, key),
                    f"the key {show(key)} looks like a flag, but only the value is passed to the script "
                    f"({shlex.join(words)}), as the seed's runner passes it: the flag would be lost",
                    expected='a name as the key and the whole arguments as the value, e.g. "dataset": "-d d2a"',
                    fix=f'write "{name}": "{shlex.join([key, *words])}"',
                )
            )
    return required


def _parse_log_patterns(file: str, at: str, metrics: Any, problems: list[Problem]) -> dict[str, str]:
    if not isinstance(metrics, dict):
        problems.append(
            Problem(
                file,
                at,
                f"is {type_name(metrics)}, expected an object",
                expected='{"log_patterns": {"<metric>": "<regular expression>"}}',
                fix=_FORMAT_FIX,
            )
        )
        return {}
    problems.extend(unknown_key_problems(file, at, metrics, "performance_metrics"))
    patterns = metrics.get("log_patterns", {})
    if not isinstance(patterns, dict):
        problems.append(
            Problem(
                file,
                f"{at}.log_patterns",
                f"is {type_name(patterns)}, expected an object",
                expected='{"<metric>": "<regular expression>"}',
                fix=_FORMAT_FIX,
            )
        )
        return {}
    for metric, pattern in patterns.items():
        where = json_path(f"{at}.log_patterns", metric)
        if not isinstance(pattern, str):
            problems.append(
                Problem(
                    file,
                    where,
                    f"{describe(pattern)}, expected a string",
                    expected="a regular expression with one group, the metric's value",
                )
            )
            continue
        try:
            compiled = re.compile(pattern)
        except (re.error, OverflowError, RecursionError, ValueError) as exc:
            problems.append(
                Problem(
                    file,
                    where,
                    f"not a valid regular expression: {exc}",
                    expected="a Python regular expression with one group, the metric's value",
                    fix="fix the pattern (escape backslashes twice in JSON)",
                )
            )
            continue
        if compiled.groups != 1:
            problems.append(
                Problem(
                    file,
                    where,
                    f"the pattern has {compiled.groups} capturing groups, so no single value can be read from a match",
                    expected='exactly one capturing group, the metric\'s value, e.g. "Accuracy[:\\\\s]+([0-9.]+)"',
                    fix="make the other groups non-capturing: (?:...)",
                )
            )
    return patterns
