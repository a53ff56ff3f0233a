"""The experiment-settings file (the seed's ``settings/*.json`` format) -> a list of :class:`PairSpec`.

Parallel entries have ``foreground``/``background``; every other entry is a solo job. Jobs are checked
against the models file; all problems are reported together so one edit fixes them all.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpupair_search.launcher.errors import ConfigError, Problem
from gpupair_search.launcher.jsonfile import describe, json_path, read_json, show, type_name
from gpupair_search.launcher.registry import Registry
from gpupair_search.launcher.spec import JobConfig, PairSpec

_KNOWN_TOP = {"experiment_name", "description", "governor", "runs_per_config", "max_retries", "mode",
              "experiments", "gpupair"}
_MODES = ("default", "mutation", "parallel")  # the seed's runner's modes; only "parallel" makes a pair
_FORMAT_FIX = "see the seed's settings/parallel_feasibility_test.json for the format"
#: Optional integer settings (top level, and runs_per_config per experiment too) and their least value.
_COUNTS = {"runs_per_config": 1, "max_retries": 0}


@dataclass(frozen=True)
class Experiment:
    """A loaded settings file."""

    file: Path
    name: str
    description: str
    pairs: list[PairSpec]
    options: dict[str, Any] = field(default_factory=dict)  # the optional "gpupair" block (gpu_memory, safe_limit)
    warnings: list[str] = field(default_factory=list)


def load_experiment(path: Path, registry: Registry, lenient: bool = False) -> Experiment:
    """Read and check a settings file. Raises ConfigError listing every problem found."""
    path = Path(path)
    file = str(path)
    data = read_json(path, "settings file")
    if not isinstance(data, dict):
        raise ConfigError([Problem(file, "", f"top level is {type_name(data)}, expected an object",
                                   expected='{"experiment_name": ..., "experiments": [...]}')])
    problems: list[Problem] = []
    warnings = [f"{file}: {json_path('', key)}: unknown top-level key, ignored" for key in data
                if key not in _KNOWN_TOP and not key.startswith("_")]
    experiments = data.get("experiments")
    if not isinstance(experiments, list) or not experiments:
        got = "missing" if "experiments" not in data else f"{type_name(experiments)}" + (" (empty)" if experiments == [] else "")
        raise ConfigError([Problem(file, "experiments", f"{got}, expected a non-empty array of experiments",
                                   fix=_FORMAT_FIX)])
    name = data.get("experiment_name", path.stem)
    if not isinstance(name, str):
        problems.append(Problem(file, "experiment_name", f"is {describe(name)}, expected a string",
                                fix="give the experiment a name in quotes"))
        name = path.stem
    for key in ("description", "governor"):
        if key in data and not isinstance(data[key], str):
            problems.append(Problem(file, key, f"is {describe(data[key])}, expected a string",
                                    fix=_FORMAT_FIX))
    _check_counts(file, "", data, _COUNTS, problems)
    options = data.get("gpupair", {})
    if not isinstance(options, dict):
        problems.append(Problem(file, "gpupair", f"is {type_name(options)}, expected an object",
                                expected='{"gpu_memory": "8GiB", "safe_limit": "7500MiB"}'))
        options = {}
    default_mode = _mode(file, "mode", data.get("mode", "default"), problems)
    pairs: list[PairSpec] = []
    seen: dict[tuple, int] = {}
    for i, entry in enumerate(experiments):
        pair = _parse_entry(file, i, entry, default_mode, registry, lenient, problems, warnings)
        if pair is None:
            continue
        identity = _identity(pair)
        if identity in seen:
            problems.append(Problem(file, f"experiments[{i}]", f"duplicates experiments[{seen[identity]}]",
                                    fix="remove one of them (runs_per_config repeats a pair)"))
            continue
        seen[identity] = i
        pairs.append(pair)
    if problems:
        raise ConfigError(problems)
    description = data.get("description", "")
    return Experiment(path, name, description if isinstance(description, str) else "", pairs, dict(options), warnings)


def _mode(file: str, at: str, mode: Any, problems: list[Problem]) -> str:
    """``mode`` if it is one of the seed's modes; else a problem, and "default"."""
    if isinstance(mode, str) and mode in _MODES:
        return mode
    problems.append(Problem(file, at, f"unknown mode {show(mode)}" if isinstance(mode, str)
                            else f"is {describe(mode)}, expected a string",
                            expected=" or ".join(f'"{m}"' for m in _MODES),
                            fix='use "parallel" for a foreground/background pair, "default" for a solo job'))
    return "default"


def _check_counts(file: str, at: str, entry: dict, counts: dict[str, int], problems: list[Problem]) -> None:
    """Each of ``counts``' keys present in ``entry`` must be an integer at least its minimum."""
    for key, least in counts.items():
        if key not in entry:
            continue
        value = entry[key]
        where = json_path(at, key)
        if isinstance(value, bool) or not isinstance(value, int):
            problems.append(Problem(file, where, f"{describe(value)} is not an integer",
                                    expected=f"an integer, {least} or more", fix="correct the value"))
        elif value < least:
            problems.append(Problem(file, where, f"{show(value)} is less than {least}",
                                    expected=f"an integer, {least} or more", fix="correct the value"))


def _identity(pair: PairSpec) -> tuple:
    def job(j: JobConfig | None) -> tuple:
        return (j.repo, j.model, tuple(sorted((k, repr(v)) for k, v in j.hyperparameters.items()))) if j else ()
    return job(pair.foreground), job(pair.background)


def _parse_entry(file: str, i: int, entry: Any, default_mode: str, registry: Registry, lenient: bool,
                 problems: list[Problem], warnings: list[str]) -> PairSpec | None:
    at = f"experiments[{i}]"
    if not isinstance(entry, dict):
        problems.append(Problem(file, at, f"is {describe(entry)}, expected an object",
                                expected='{"mode": "parallel", "foreground": {...}, "background": {...}}',
                                fix=_FORMAT_FIX))
        return None
    note = entry.get("note", "")
    if not isinstance(note, str):
        problems.append(Problem(file, f"{at}.note", f"is {describe(note)}, expected a string",
                                fix="write the note in quotes"))
        note = ""
    _check_counts(file, at, entry, {"runs_per_config": _COUNTS["runs_per_config"]}, problems)
    mode = _mode(file, f"{at}.mode", entry["mode"], problems) if "mode" in entry else default_mode
    parallel = mode == "parallel" or "foreground" in entry or "background" in entry
    pair_warnings: list[str] = []
    if parallel:
        fg = _parse_job(file, f"{at}.foreground", entry.get("foreground"), registry, lenient, problems, pair_warnings)
        bg = _parse_job(file, f"{at}.background", entry.get("background"), registry, lenient, problems, pair_warnings)
        if fg is None or bg is None:
            return None
    else:
        fg = _parse_job(file, at, entry, registry, lenient, problems, pair_warnings)
        bg = None
        if fg is None:
            return None
    warnings.extend(pair_warnings)
    return PairSpec(group=i + 1, foreground=fg, background=bg, note=note, source=f"{file}: {at}",
                    warnings=tuple(pair_warnings))


def _parse_job(file: str, at: str, entry: Any, registry: Registry, lenient: bool,
               problems: list[Problem], warnings: list[str]) -> JobConfig | None:
    if not isinstance(entry, dict):
        got = "missing" if entry is None else describe(entry)
        problems.append(Problem(file, at, f"{got}, expected an object with repo, model, hyperparameters",
                                expected='{"repo": "examples", "model": "mnist", "hyperparameters": {...}}',
                                fix=_FORMAT_FIX))
        return None
    bad = False
    for key, example in (("repo", "examples"), ("model", "mnist")):
        if not isinstance(entry.get(key), str) or not entry.get(key):
            got = "missing" if key not in entry else describe(entry[key])
            problems.append(Problem(file, f"{at}.{key}", f"{got}, expected a non-empty string",
                                    expected=f'a {key} name of the models file, e.g. "{example}"',
                                    fix=f'add "{key}": "<name>"' if key not in entry else "correct the value"))
            bad = True
    hyper = entry.get("hyperparameters", {})
    if not isinstance(hyper, dict):
        problems.append(Problem(file, f"{at}.hyperparameters", f"is {describe(hyper)}, expected an object",
                                expected='{"epochs": 1, "learning_rate": 0.01}', fix=_FORMAT_FIX))
        bad = True
    if bad:
        return None
    job = JobConfig(entry["repo"], entry["model"], dict(hyper))
    check = registry.check_job(job, at, file, lenient)
    problems.extend(check.problems)
    warnings.extend(check.warnings)
    return job.without(check.dropped) if not check.problems else None
