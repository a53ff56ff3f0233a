"""The experiment-settings file (the seed's ``settings/*.json`` format) -> a list of :class:`PairSpec`.

Parallel entries have ``foreground``/``background``; every other entry is a solo job. Jobs are checked
against the models file; all problems are reported together so one edit fixes them all.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from launcher.errors import ConfigError, Problem
from launcher.jsonfile import read_json, type_name
from launcher.registry import Registry
from launcher.spec import JobConfig, PairSpec

_KNOWN_TOP = {"experiment_name", "description", "governor", "runs_per_config", "max_retries", "mode",
              "experiments", "gpupair"}


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
    warnings = [f"{file}: {key}: unknown top-level key, ignored" for key in data
                if key not in _KNOWN_TOP and not key.startswith("_")]
    experiments = data.get("experiments")
    if not isinstance(experiments, list) or not experiments:
        got = "missing" if "experiments" not in data else f"{type_name(experiments)}" + (" (empty)" if experiments == [] else "")
        raise ConfigError([Problem(file, "experiments", f"{got}, expected a non-empty array of experiments",
                                   fix="see the seed's settings/parallel_feasibility_test.json for the format")])
    name = data.get("experiment_name", path.stem)
    if not isinstance(name, str):
        problems.append(Problem(file, "experiment_name", f"is {type_name(name)}, expected a string"))
        name = path.stem
    options = data.get("gpupair", {})
    if not isinstance(options, dict):
        problems.append(Problem(file, "gpupair", f"is {type_name(options)}, expected an object",
                                expected='{"gpu_memory": "8GiB", "safe_limit": "7500MiB"}'))
        options = {}
    default_mode = data.get("mode", "default")
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
    return Experiment(path, name, str(data.get("description", "")), pairs, dict(options), warnings)


def _identity(pair: PairSpec) -> tuple:
    def job(j: JobConfig | None) -> tuple:
        return (j.repo, j.model, tuple(sorted((k, repr(v)) for k, v in j.hyperparameters.items()))) if j else ()
    return job(pair.foreground), job(pair.background)


def _parse_entry(file: str, i: int, entry: Any, default_mode: str, registry: Registry, lenient: bool,
                 problems: list[Problem], warnings: list[str]) -> PairSpec | None:
    at = f"experiments[{i}]"
    if not isinstance(entry, dict):
        problems.append(Problem(file, at, f"is {type_name(entry)}, expected an object"))
        return None
    note = entry.get("note", "")
    if not isinstance(note, str):
        problems.append(Problem(file, f"{at}.note", f"is {type_name(note)}, expected a string"))
        note = ""
    mode = entry.get("mode", default_mode)
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
        got = "missing" if entry is None else f"{type_name(entry)}"
        problems.append(Problem(file, at, f"{got}, expected an object with repo, model, hyperparameters"))
        return None
    bad = False
    for key in ("repo", "model"):
        if not isinstance(entry.get(key), str) or not entry.get(key):
            got = "missing" if key not in entry else f"{type_name(entry[key])} {entry[key]!r}"
            problems.append(Problem(file, f"{at}.{key}", f"{got}, expected a non-empty string"))
            bad = True
    hyper = entry.get("hyperparameters", {})
    if not isinstance(hyper, dict):
        problems.append(Problem(file, f"{at}.hyperparameters", f"is {type_name(hyper)}, expected an object"))
        bad = True
    if bad:
        return None
    job = JobConfig(entry["repo"], entry["model"], dict(hyper))
    check = registry.check_job(job, at, file, lenient)
    problems.extend(check.problems)
    warnings.extend(check.warnings)
    return job.without(check.dropped) if not check.problems else None
