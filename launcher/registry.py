"""The models file (the seed's ``models_config.json`` format): which repositories exist, how to run them.

A job ``(repo, model, hyperparameters)`` becomes an argv exactly as the seed's runner builds it:
``[train_script] + [model_flag, model] (unless model is "default") + required_args + [flag, value]...``,
run with the repository's path as working directory. Unlike the seed's runner, a hyperparameter the
file does not know is an error (``--lenient``: a recorded warning), never silently dropped.
"""
from __future__ import annotations

import math
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from launcher.errors import ConfigError, Problem
from launcher.jsonfile import read_json, type_name
from launcher.spec import JobConfig

BATCH_SIZE = "batch_size"
MAX_STEPS = "max_steps"
_MAX_BATCH_SIZE = 65536


@dataclass(frozen=True)
class Hyperparameter:
    name: str
    flag: str
    type: str  # "int", "float", "str" or "bool"
    default: Any = None


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

    def default_batch_size(self) -> int | None:
        hp = self.hyperparameters.get(BATCH_SIZE)
        return int(hp.default) if hp is not None and hp.default is not None else None


@dataclass(frozen=True)
class Command:
    """What to execute for one job: never through a shell."""

    argv: tuple[str, ...]
    cwd: Path

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


class Registry:
    """All repositories of one models file."""

    def __init__(self, file: Path, repositories: Mapping[str, Repository]) -> None:
        self.file = file
        self.repositories = dict(repositories)

    @classmethod
    def load(cls, path: Path, base_dir: Path | None = None) -> "Registry":
        """Read a models file; relative repository paths resolve against ``base_dir``
        (default: the current directory, as the seed's runner did)."""
        path = Path(path)
        data = read_json(path, "models file")
        base = Path(base_dir) if base_dir is not None else Path.cwd()
        problems: list[Problem] = []
        repos: dict[str, Repository] = {}
        if not isinstance(data, dict) or not isinstance(data.get("models"), dict):
            got = type_name(data.get("models")) if isinstance(data, dict) else type_name(data)
            raise ConfigError([Problem(str(path), "models", f"missing or not an object (got {got})",
                                       expected='{"models": {"<repo>": {...}}} as in the seed\'s models_config.json')])
        for name, entry in data["models"].items():
            repo = _parse_repository(str(path), name, entry, base, problems)
            if repo is not None:
                repos[name] = repo
        if problems:
            raise ConfigError(problems)
        return cls(path, repos)

    def repository(self, name: str) -> Repository:
        return self.repositories[name]

    def check_job(self, job: JobConfig, where: str, file: str, lenient: bool) -> JobCheck:
        """Check ``job`` (found at ``where`` in ``file``) against this registry."""
        problems: list[Problem] = []
        warnings: list[str] = []
        dropped: list[str] = []
        repo = self.repositories.get(job.repo)
        if repo is None:
            problems.append(Problem(file, f"{where}.repo", f"unknown repository {job.repo!r} (not in {self.file})",
                                    expected="one of: " + ", ".join(sorted(self.repositories)),
                                    fix="fix the name or register the repository in the models file (--models FILE)"))
            return JobCheck(problems, warnings, ())
        if job.model not in repo.models:
            problems.append(Problem(file, f"{where}.model", f"unknown model {job.model!r} for repository {job.repo!r}",
                                    expected="one of: " + ", ".join(repo.models),
                                    fix="fix the name or add the model to the models file"))
        for name, value in job.hyperparameters.items():
            at = f"{where}.hyperparameters.{name}"
            hp = repo.hyperparameters.get(name)
            if hp is None:
                known = ", ".join(sorted(repo.hyperparameters)) or "(none)"
                if lenient:
                    dropped.append(name)
                    warnings.append(f"{file}: {at}: {job.repo} has no hyperparameter {name!r}; "
                                    f"dropped (known: {known})")
                else:
                    problems.append(Problem(file, at, f"{job.repo} has no hyperparameter {name!r}, "
                                                      "so its training script would never see it",
                                            expected="one of: " + known,
                                            fix="remove it, add it to the models file, or run with --lenient "
                                                "to drop it with a recorded warning"))
                continue
            message = _value_problem(hp, value)
            if message:
                problems.append(Problem(file, at, message, expected=_expected(hp),
                                        fix="correct the value in the settings file"))
        return JobCheck(problems, warnings, tuple(dropped))

    def command(self, job: JobConfig) -> Command:
        """The argv the seed's runner would build for ``job`` (which must have passed ``check_job``)."""
        repo = self.repositories[job.repo]
        script = repo.train_script
        argv: list[str] = [sys.executable, script] if script.endswith(".py") else [script]
        if job.model != "default" and repo.model_flag:
            argv += [repo.model_flag, job.model]
        for value in repo.required_args.values():
            argv += shlex.split(str(value))
        for name, value in job.hyperparameters.items():
            hp = repo.hyperparameters[name]
            argv += [hp.flag, _format_value(value)]
        return Command(tuple(argv), repo.path)

    def batch_size(self, job: JobConfig) -> int | None:
        """The job's batch size: its setting, else the registry default; None when it has no knob."""
        repo = self.repositories[job.repo]
        if BATCH_SIZE not in repo.hyperparameters:
            return None
        value = job.hyperparameters.get(BATCH_SIZE)
        return int(value) if value is not None else repo.default_batch_size()

    def supports(self, job: JobConfig, hyperparameter: str) -> bool:
        return hyperparameter in self.repositories[job.repo].hyperparameters


def _format_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _expected(hp: Hyperparameter) -> str:
    if hp.name == BATCH_SIZE:
        return f"an integer from 1 to {_MAX_BATCH_SIZE}"
    return {"int": "an integer", "float": "a number", "str": "a string", "bool": "true or false"}.get(hp.type, hp.type)


def _value_problem(hp: Hyperparameter, value: Any) -> str:
    """Why ``value`` does not fit ``hp``, or "" when it does."""
    if hp.type == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            return f"{type_name(value)} {value!r} is not an integer"
        if value < 0:
            return f"{value} is negative"
        if hp.name == BATCH_SIZE and not 1 <= value <= _MAX_BATCH_SIZE:
            return f"batch size {value} is out of range"
    elif hp.type == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"{type_name(value)} {value!r} is not a number"
        if not math.isfinite(value):
            return f"{value!r} is not a finite number"
    elif hp.type == "bool":
        if not isinstance(value, bool):
            return f"{type_name(value)} {value!r} is not true/false"
    elif hp.type == "str":
        if not isinstance(value, str):
            return f"{type_name(value)} {value!r} is not a string"
    return ""


_REPO_KEYS = {"path": str, "train_script": str, "models": list, "supported_hyperparams": dict}


def _parse_repository(file: str, name: str, entry: Any, base: Path, problems: list[Problem]) -> Repository | None:
    at = f"models.{name}"
    if name.startswith("_"):
        return None
    if not isinstance(entry, dict):
        problems.append(Problem(file, at, f"is {type_name(entry)}, expected an object"))
        return None
    ok = True
    for key, kind in _REPO_KEYS.items():
        if not isinstance(entry.get(key), kind):
            got = "missing" if key not in entry else f"{type_name(entry[key])}"
            problems.append(Problem(file, f"{at}.{key}", f"{got}, expected {type_name(kind())}",
                                    fix="see the seed's models_config.json for the format"))
            ok = False
    if not ok:
        return None
    models = entry["models"]
    if not models or not all(isinstance(m, str) and m for m in models):
        problems.append(Problem(file, f"{at}.models", "must be a non-empty list of model names"))
        return None
    hyper: dict[str, Hyperparameter] = {}
    for hp_name, spec in entry["supported_hyperparams"].items():
        hp_at = f"{at}.supported_hyperparams.{hp_name}"
        if not isinstance(spec, dict) or not isinstance(spec.get("flag"), str) or not spec.get("flag"):
            problems.append(Problem(file, f"{hp_at}.flag", "missing or not a string", expected='e.g. "--lr"'))
            continue
        kind = spec.get("type", "str")
        if kind not in ("int", "float", "str", "bool"):
            problems.append(Problem(file, f"{hp_at}.type", f"unknown type {kind!r}", expected="int, float, str or bool"))
            continue
        hyper[hp_name] = Hyperparameter(hp_name, spec["flag"], kind, spec.get("default"))
    model_flag = entry.get("model_flag")
    if model_flag is not None and not isinstance(model_flag, str):
        problems.append(Problem(file, f"{at}.model_flag", f"is {type_name(model_flag)}, expected a string"))
    required = entry.get("required_args", {})
    if not isinstance(required, dict) or not all(isinstance(v, str) for v in required.values()):
        problems.append(Problem(file, f"{at}.required_args", "expected an object of strings", expected='{"dataset": "-d d2a"}'))
        required = {}
    patterns = entry.get("performance_metrics", {}).get("log_patterns", {}) if isinstance(entry.get("performance_metrics"), dict) else {}
    path = Path(entry["path"])
    return Repository(
        name=name,
        path=path if path.is_absolute() else base / path,
        train_script=entry["train_script"],
        models=tuple(models),
        hyperparameters=hyper,
        model_flag=model_flag if isinstance(model_flag, str) else None,
        required_args=required,
        log_patterns=patterns if isinstance(patterns, dict) else {},
    )
