"""The experiment-settings file (the seed's ``settings/*.json`` format) -> a list of :class:`PairSpec`.

Read with the meaning the user's own runner (the seed's ``mutation/runner.py``) gives it:

* the top-level ``mode`` is only the default of experiments that set none; ``parallel`` entries are pairs,
  ``default`` entries solo jobs (a pair without background), ``mutation`` entries solo jobs (or foregrounds)
  whose hyperparameters the runner draws from each hyperparameter's ``range`` in the models file: we check them
  at the memory worst case of those ranges (:mod:`launcher.mutation`);
* ``runs_per_config`` at the file, experiment and foreground level, with the runner's priority, and identical
  entries, are repeats: one :class:`PairSpec` per distinct configuration, with its ``repeats`` count;
* in lenient mode an unknown repository or model skips its entry with a warning, as the runner does.

Where our reading differs from the runner's, a warning names the file and the JSON path. Everything wrong is
reported together (a ConfigError), so one edit fixes it all.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from gpupair_search.launcher.errors import ConfigError, Problem
from gpupair_search.launcher.jsonfile import (
    Duplicate,
    describe,
    duplicate_problem,
    json_path,
    name_shown,
    nearest,
    read_json_with_duplicates,
    show,
    type_name,
)
from gpupair_search.launcher.mutation import MutationError, worst_case
from gpupair_search.launcher.registry import Registry
from gpupair_search.launcher.sizes import parse_size_mib
from gpupair_search.launcher.spec import JobConfig, PairSpec

_KNOWN_TOP = {"experiment_name", "description", "governor", "runs_per_config", "max_retries", "mode",
              "experiments", "gpupair", "use_deduplication", "historical_csvs"}
_MODES = ("default", "mutation", "parallel")  # the seed's runner's modes
_RUNNER_DEFAULT_MODE = "mutation"  # what the seed's runner uses where neither the entry nor the file sets a mode
#: Keys whose text changes nothing that runs: repeated, they are warnings; they may appear anywhere.
FREE_TEXT = ("comment", "note", "description")
_ENTRY_KEYS = ("mode", "foreground", "background", "runs_per_config", "repo", "model", "hyperparameters", "mutate",
               "gradient_accumulation", *FREE_TEXT)
_JOB_KEYS = ("repo", "model", "hyperparameters", "mode", "mutate", "runs_per_config", *FREE_TEXT)
#: The ``gpupair`` block: our settings, which the seed's runner ignores. Sizes need a unit.
GPUPAIR_KEYS = ("gpu_memory", "safe_limit")
_FORMAT_FIX = "see the seed's settings/parallel_feasibility_test.json for the format"
#: Optional integer settings (top level, and runs_per_config per experiment too) and their least value.
_COUNTS = {"runs_per_config": 1, "max_retries": 0}
_ROLES = ("foreground", "background")  # the jobs of a pair, as export's gradient_accumulation names them


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
    data, duplicates = read_json_with_duplicates(path, "settings file")
    reader = _Reader(str(path), registry, lenient)
    reader.duplicates(duplicates)
    if not isinstance(data, dict):
        raise ConfigError([Problem(str(path), "", f"top level is {type_name(data)}, expected an object",
                                   expected='{"experiment_name": ..., "experiments": [...]}')])
    return reader.settings(path, data)


@dataclass
class _Reader:
    """One settings file being read: what it found so far."""

    file: str
    registry: Registry
    lenient: bool
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def runner_default(self, where: str, text: str) -> None:
        """Where the seed's runner would fall back to its default mode "mutation" and we run the job as written: said
        with --lenient (reading the user's runner files); in strict mode our format's meaning applies silently."""
        if self.lenient:
            self.warn(where, text)

    def warn(self, where: str, text: str) -> str:
        message = f"{self.file}: {where}: {text}" if where else f"{self.file}: {text}"
        self.warnings.append(message)
        return message

    def problem(self, where: str, message: str, expected: str = "", fix: str = "") -> None:
        self.problems.append(Problem(self.file, where, message, expected=expected, fix=fix))

    # -- the file ------------------------------------------------------------------------------------------
    def duplicates(self, duplicates: list[Duplicate]) -> None:
        """A repeated free-text key, or one repeated with equal values, changes nothing: a warning. Otherwise it is
        an error in strict mode (one of the values would be lost) and a warning in lenient mode."""
        for duplicate in duplicates:
            harmless = duplicate.key in FREE_TEXT or duplicate.key.startswith("_") or duplicate.equal
            if harmless or self.lenient:
                self.warn(duplicate.where, f"{duplicate.occurrences()}; the last one is used, as by the seed's runner"
                          + ("" if harmless else " (--lenient)"))
            else:
                self.problems.append(duplicate_problem(self.file, duplicate))

    def settings(self, path: Path, data: dict[str, Any]) -> Experiment:
        misspelled = self.top_keys(data)
        experiments = data.get("experiments")
        if "experiments" not in data and "experiments" in misspelled:
            raise ConfigError(self.problems)  # the misspelling's message says it all, one message for one mistake
        if not isinstance(experiments, list) or not experiments:
            got = "missing" if "experiments" not in data else f"{type_name(experiments)}" + (
                " (empty)" if experiments == [] else "")
            raise ConfigError(self.problems + [Problem(self.file, "experiments", f"{got}, expected a non-empty array "
                                                       "of experiments", fix=_FORMAT_FIX)])
        name = data.get("experiment_name", path.stem)
        if not isinstance(name, str) or not name.strip():
            self.problem("experiment_name", f"is {describe(name)}, expected a name" + ("" if isinstance(name, str) else
                         " in quotes"), fix="give the experiment a name (it names the study), or remove the key "
                         "to use the file's name")
            name = path.stem
        for key in ("description", "governor"):
            if key in data and not isinstance(data[key], str):
                self.problem(key, f"is {describe(data[key])}, expected a string", fix=_FORMAT_FIX)
        self.counts("", data, _COUNTS)
        top_runs = _count(data, "runs_per_config")
        options = self.gpupair(data.get("gpupair", {}))
        default_mode = self.top_mode(data, experiments)
        pairs = self.merge([self.entry(i, entry, default_mode, top_runs) for i, entry in enumerate(experiments)])
        if not self.problems and not pairs:
            self.problem("experiments", "no experiment is left to run: every one was skipped (see the warnings)",
                         fix="fix the repository and model names, or the models file (--models FILE)")
        if self.problems:
            raise ConfigError(_unique(self.problems))
        description = data.get("description", "")
        return Experiment(path, name, description if isinstance(description, str) else "", pairs, options,
                          self.warnings)

    def top_keys(self, data: dict[str, Any]) -> set[str]:
        """A top-level key close to a known one is a typo that would silently change the run (``runs_per_confg``:
        one run per configuration), an error; a free-form one (``comments``, ``author``) is a warning. Returns the
        known keys that were misspelled."""
        misspelled = set()
        for key in data:
            if key in _KNOWN_TOP or key.startswith("_"):
                continue
            where, close = json_path("", key), nearest(key, _KNOWN_TOP)
            if close is None or _free_text(key):
                self.warn(where, "unknown top-level key, ignored" + (f' (did you mean "{close}"?)' if close else ""))
                continue
            self.problem(where, f"unknown top-level key {name_shown(key)}, which the seed's runner would ignore",
                         expected="one of: " + ", ".join(sorted(_KNOWN_TOP)),
                         fix=f'did you mean "{close}"? (prefix a key with _ to keep it as a comment)')
            misspelled.add(close)
        return misspelled

    def top_mode(self, data: dict[str, Any], experiments: list) -> str | None:
        """The file's default mode; None where it sets none (the seed's runner then uses "mutation"). A mode we do
        not know is an error only where an experiment uses it."""
        if "mode" not in data:
            return None
        mode = data["mode"]
        if isinstance(mode, str) and mode in _MODES:
            return mode
        if isinstance(mode, str) and all(isinstance(e, dict) and "mode" in e for e in experiments):
            self.warn("mode", f"{describe(mode)} is not a mode of the seed's runner; unused, since every experiment "
                      "sets its own mode")
            return None
        self.mode_problem("mode", mode)
        return None

    def mode_problem(self, where: str, mode: Any) -> None:
        close = nearest(mode, _MODES) if isinstance(mode, str) else None
        self.problem(where, f"unknown mode {show(mode)}" if isinstance(mode, str) else
                     f"is {describe(mode)}, expected a string", expected=" or ".join(f'"{m}"' for m in _MODES),
                     fix=(f'did you mean "{close}"? ' if close else "")
                     + 'use "parallel" for a foreground/background pair, "default" for a solo job')

    def gpupair(self, block: Any) -> dict[str, Any]:
        """Our block: known keys only, and sizes with a unit in a sane range (checked here, used by ``run``)."""
        if not isinstance(block, dict):
            self.problem("gpupair", f"is {type_name(block)}, expected an object",
                         expected='{"gpu_memory": "8GiB", "safe_limit": "7500MiB"}')
            return {}
        sizes: dict[str, float] = {}
        for key, value in block.items():
            at = json_path("gpupair", key)
            if key.startswith("_") or key in FREE_TEXT:
                continue
            if key not in GPUPAIR_KEYS:
                close = nearest(key, GPUPAIR_KEYS)
                self.problem(at, "unknown key of the gpupair block, so it would be ignored",
                             expected="one of: " + ", ".join(GPUPAIR_KEYS),
                             fix=f'did you mean "{close}"?' if close else "remove it")
                continue
            try:
                sizes[key] = parse_size_mib(value)
            except ValueError as exc:
                self.problem(at, str(exc), expected='a size with its unit, e.g. "8GiB" or "7500MiB"',
                             fix="write the size in quotes with its unit")
        if "gpu_memory" in sizes and "safe_limit" in sizes and sizes["safe_limit"] > sizes["gpu_memory"]:
            self.problem("gpupair.safe_limit", f"{show(block['safe_limit'])} is above gpu_memory "
                         f"{show(block['gpu_memory'])}", expected="a safe limit at most the card's memory",
                         fix="lower the safe limit or correct gpu_memory")
        return dict(block)

    def counts(self, at: str, entry: dict, counts: dict[str, int]) -> None:
        """Each of ``counts``' keys present in ``entry`` must be an integer at least its minimum."""
        for key, least in counts.items():
            if key not in entry:
                continue
            value = entry[key]
            where = json_path(at, key)
            if isinstance(value, bool) or not isinstance(value, int):
                self.problem(where, f"{describe(value)} is not an integer", expected=f"an integer, {least} or more",
                             fix="correct the value")
            elif value < least:
                self.problem(where, f"{show(value)} is less than {least}", expected=f"an integer, {least} or more",
                             fix="correct the value")

    def keys(self, at: str, obj: dict, known: tuple[str, ...]) -> None:
        """A key the runner does not read is a mistake (``hyperparams`` would drop every hyperparameter): an error
        naming the nearest known key; in lenient mode a warning when no known key is close."""
        for key in obj:
            if key in known or key.startswith("_"):
                continue
            where = json_path(at, key)
            close = nearest(key, known)
            if close is None and self.lenient:
                self.warn(where, f"unknown key {name_shown(key)}, ignored as by the seed's runner (--lenient)")
                continue
            self.problem(where, f"unknown key {name_shown(key)}, which the seed's runner would ignore",
                         expected="one of: " + ", ".join(known),
                         fix=f'did you mean "{close}"?' if close else "remove it (or prefix it with _ as a comment)")

    # -- one experiment -------------------------------------------------------------------------------------
    def entry(self, i: int, entry: Any, default_mode: str | None, top_runs: int) -> PairSpec | None:
        at = f"experiments[{i}]"
        if not isinstance(entry, dict):
            self.problem(at, f"is {describe(entry)}, expected an object",
                         expected='{"mode": "parallel", "foreground": {...}, "background": {...}}', fix=_FORMAT_FIX)
            return None
        count, first_warning = len(self.problems), len(self.warnings)
        note = entry.get("note", "")
        if not isinstance(note, str):
            self.problem(f"{at}.note", f"is {describe(note)}, expected a string", fix="write the note in quotes")
            note = ""
        self.counts(at, entry, {"runs_per_config": _COUNTS["runs_per_config"]})
        mode = self.entry_mode(at, entry, default_mode)
        if mode is None:
            return None
        found = self.parallel(at, entry, top_runs) if mode == "parallel" else self.solo(at, entry, mode, top_runs)
        self.keys(at, entry, _ENTRY_KEYS)
        if "gradient_accumulation" in entry:
            self.accumulation(f"{at}.gradient_accumulation", entry["gradient_accumulation"],
                              _ROLES if mode == "parallel" else _ROLES[:1])
        if found is None or len(self.problems) > count:
            return None
        (fg, bg), runs, worst = found
        return PairSpec(group=i + 1, foreground=fg, background=bg, note=note, source=f"{self.file}: {at}",
                        warnings=tuple(self.warnings[first_warning:]), repeats=runs, worst_case=worst)

    def entry_mode(self, at: str, entry: dict, default_mode: str | None) -> str | None:
        """The entry's own mode, else the file's; where neither is set, the seed's runner uses "mutation": we follow
        it for an entry that says what to mutate, and otherwise run the entry as written, with a warning."""
        if "mode" in entry:
            mode = entry["mode"]
            if isinstance(mode, str) and mode in _MODES:
                if mode != "parallel" and ("foreground" in entry or "background" in entry):
                    self.warn(at, f'"mode" is "{mode}", but the entry has a foreground/background: the seed\'s '
                              'runner would skip it; gpupair-search runs it as a pair. Set "mode": "parallel"')
                    return "parallel"
                return mode
            self.mode_problem(f"{at}.mode", mode)
            return None
        if default_mode is not None:
            return default_mode
        if "foreground" in entry or "background" in entry:
            self.runner_default(at, 'no "mode" here nor at the top level, so the seed\'s runner would use "mutation" and skip '
                      'this pair; gpupair-search runs it as a pair. Set "mode": "parallel"')
            return "parallel"
        if "mutate" in entry:
            return "mutation"
        self.runner_default(at, 'no "mode" here nor at the top level, so the seed\'s runner would use "mutation" and draw '
                  'every hyperparameter from its range; gpupair-search runs the hyperparameters as written. Set '
                  '"mode": "default" (or "mutation")')
        return "default"

    def accumulation(self, at: str, steps: Any, roles: tuple[str, ...]) -> None:
        """``export``'s gradient-accumulation steps per job (``{"foreground": 1, "background": 2}``): a solo entry's
        one job is its foreground. Not used to run anything, but read by whoever trains the exported pairs."""
        example = ", ".join(f'"{role}": 2' for role in roles)
        if not isinstance(steps, dict):
            self.problem(at, f"is {describe(steps)}, expected an object", expected="{" + example + "}: the "
                         "accumulation steps of each job", fix="write the steps per job, or remove the key")
            return
        for key in steps:
            if key in roles or key.startswith("_"):
                continue
            close = nearest(key, roles)
            self.problem(json_path(at, key), f"unknown job {name_shown(key)}"
                         + (": the entry has no background job" if key in _ROLES else ""),
                         expected="one of: " + ", ".join(roles),
                         fix=f'did you mean "{close}"?' if close else "remove it")
        self.counts(at, steps, {role: 1 for role in roles})

    def parallel(self, at: str, entry: dict, top_runs: int):
        fg_entry, bg_entry = entry.get("foreground"), entry.get("background")
        fg_mode = "default"
        if isinstance(fg_entry, dict):
            fg_mode = self.foreground_mode(f"{at}.foreground", fg_entry)
        fg, fg_worst = self.job(f"{at}.foreground", fg_entry, fg_mode)
        if "skipped" in fg_worst:
            return None
        bg, _ = self.job(f"{at}.background", bg_entry, "default", background=True)
        if fg is None or bg is None:
            return None
        if isinstance(fg_entry, dict):
            self.counts(f"{at}.foreground", fg_entry, {"runs_per_config": _COUNTS["runs_per_config"]})
        # the runner's priority: the experiment's runs_per_config, then the foreground's, then the file's
        runs = _count(entry, "runs_per_config", _count(fg_entry, "runs_per_config", top_runs))
        return (fg, bg), runs, ({"foreground": fg_worst} if fg_worst else {})

    def foreground_mode(self, at: str, job: dict) -> str:
        mode = job.get("mode")
        if mode is None:
            if "mutate" in job:
                return "mutation"
            self.runner_default(at, 'no "mode": the seed\'s runner would use "mutation" for this foreground and draw its '
                      'hyperparameters from their ranges; gpupair-search runs them as written. Set "mode": "default" '
                      '(or "mutation")')
            return "default"
        if mode in ("default", "mutation"):
            return mode
        self.problem(f"{at}.mode", f"unknown foreground mode {show(mode)}" if isinstance(mode, str)
                     else f"is {describe(mode)}, expected a string", expected='"default" or "mutation"',
                     fix='"default" runs its hyperparameters as written, "mutation" draws them from their ranges')
        return "default"

    def solo(self, at: str, entry: dict, mode: str, top_runs: int):
        job, worst = self.job(at, entry, mode)
        if job is None:
            return None
        return (job, None), _count(entry, "runs_per_config", top_runs), ({"foreground": worst} if worst else {})

    def job(self, at: str, entry: Any, mode: str, background: bool = False) -> tuple[JobConfig | None, dict[str, Any]]:
        """The job at ``at`` checked against the models file, and for a mutation job its worst case."""
        if not isinstance(entry, dict):
            got = "missing" if entry is None else describe(entry)
            self.problem(at, f"{got}, expected an object with repo, model, hyperparameters",
                         expected='{"repo": "examples", "model": "mnist", "hyperparameters": {...}}', fix=_FORMAT_FIX)
            return None, {}
        if at.endswith(("foreground", "background")):
            self.keys(at, entry, _JOB_KEYS)
        bad = False
        for key, example in (("repo", "examples"), ("model", "mnist")):
            if not isinstance(entry.get(key), str) or not entry.get(key):
                got = "missing" if key not in entry else describe(entry[key])
                self.problem(f"{at}.{key}", f"{got}, expected a non-empty string",
                             expected=f'a {key} name of the models file, e.g. "{example}"',
                             fix=f'add "{key}": "<name>"' if key not in entry else "correct the value")
                bad = True
        hyper = entry.get("hyperparameters", {})
        if not isinstance(hyper, dict):
            self.problem(f"{at}.hyperparameters", f"is {describe(hyper)}, expected an object",
                         expected='{"epochs": 1, "learning_rate": 0.01}', fix=_FORMAT_FIX)
            bad = True
        if background and entry.get("mode") == "mutation":
            self.warn(f"{at}.mode", 'the seed\'s runner ignores a background\'s mode and runs its hyperparameters '
                      'as written; so does gpupair-search')
        if bad:
            return None, {}
        worst: dict[str, Any] = {}
        if mode == "mutation":
            if hyper:
                self.warn(f"{at}.hyperparameters", "ignored in mutation mode, as by the seed's runner: values are "
                          "drawn from the models file's ranges")
            found = self.mutation(at, entry)
            if found is None:
                return None, {}
            hyper, worst = found["values"], found
        job = JobConfig(entry["repo"], entry["model"], dict(hyper))
        check = self.registry.check_job(job, at, self.file, self.lenient)
        if check.unknown and self.lenient:
            what = "repository" if job.repo not in self.registry.repositories else "model"
            self.warn(at, f"skipped, as by the seed's runner: {check.problems[0].message} (--lenient)")
            return None, {"skipped": what}
        self.problems.extend(check.problems)
        self.warnings.extend(check.warnings)
        return (job.without(check.dropped) if not check.problems else None), worst

    def mutation(self, at: str, entry: dict) -> dict[str, Any] | None:
        repo = self.registry.repositories.get(entry["repo"])
        if repo is None or entry["model"] not in repo.models:
            return {"values": {}, "at_maximum": []}  # check_job names the unknown name (or skips it, --lenient)
        try:
            found = worst_case(repo, entry.get("mutate", ["all"]), f"{at}.mutate", self.lenient)
        except MutationError as exc:
            if exc.skipped_by_runner and self.lenient:
                self.warn(exc.where, f"{exc.message}; skipped, as the seed's runner would fail on it (--lenient)")
            else:
                self.problem(exc.where, exc.message, expected=exc.expected, fix=exc.fix)
            return None
        for name in found["ignored"]:
            self.warn(f"{at}.mutate", f"{repo.name} has no hyperparameter {name_shown(name)}; not mutated, as by the "
                      "seed's runner (--lenient)")
        return found

    # -- repeats --------------------------------------------------------------------------------------------
    def merge(self, specs: list[PairSpec | None]) -> list[PairSpec]:
        """One PairSpec per distinct configuration: identical entries add their runs to the first one."""
        merged: dict[tuple, PairSpec] = {}
        for spec in specs:
            if spec is None:
                continue
            key = _identity(spec)
            first = merged.get(key)
            if first is None:
                merged[key] = spec
                continue
            merged[key] = replace(first, repeats=first.repeats + spec.repeats,
                                  repeated_at=first.repeated_at + (spec.source.rsplit(": ", 1)[-1],),
                                  warnings=first.warnings + spec.warnings)
        return list(merged.values())


def _free_text(key: str) -> bool:
    """``Description``, ``comments``: a key that only carries text, whatever its case or number."""
    word = key.lower()
    return word in FREE_TEXT or word.removesuffix("s") in FREE_TEXT


def _count(entry: Any, key: str, default: int = 1) -> int:
    value = entry.get(key, default) if isinstance(entry, dict) else default
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 1 else default


def _identity(pair: PairSpec) -> tuple:
    def job(j: JobConfig | None) -> tuple:
        return (j.repo, j.model, tuple(sorted((k, repr(v)) for k, v in j.hyperparameters.items()))) if j else ()
    return job(pair.foreground), job(pair.background), repr(sorted(pair.worst_case.items()))


def _unique(problems: list[Problem]) -> list[Problem]:
    """Each problem once (a missing repository directory is found by every job of that repository)."""
    return list(dict.fromkeys(problems))
