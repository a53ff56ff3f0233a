"""The experiment-settings file (the seed's ``settings/*.json`` format) -> a list of :class:`PairSpec`.

Read with the meaning the user's own runner (the seed's ``mutation/runner.py``) gives it:

* the top-level ``mode`` is only the default of experiments that set none; ``parallel`` entries are pairs,
  ``default`` entries solo jobs (a pair without background), and every other mode word (``mutation``, and any
  the runner does not know, such as ``nonparallel``) a ``mutation`` entry: a solo job (or foreground) whose
  hyperparameters the runner draws from each hyperparameter's ``range`` in the models file; we check them at the
  memory worst case of those ranges (:mod:`launcher.mutation`). An entry or a foreground with no mode at all
  is in the runner's default mode, "mutation": values written there are not what the runner runs, so strict
  mode asks for a mode and ``--lenient`` reads it as the runner does;
* ``runs_per_config`` at the file, experiment and foreground level, with the runner's priority, and identical
  entries, are repeats: one :class:`PairSpec` per distinct configuration, with its ``repeats`` count;
* the runner reads only the keys it knows, each where it stands: any other top-level key is ignored (a
  warning), and an entry with neither a repository nor a foreground is skipped (a separator such as
  ``{"comment": "=== pairs ==="}``);
* in lenient mode what the runner skips (an unknown repository or model, an entry it cannot read) is skipped
  with a warning, as the runner does.

Where a file says something the runner reads otherwise (an unknown mode, a key it would not read where it
stands), strict mode stops with the runner's meaning and the fix; ``--lenient`` takes the runner's meaning with
one warning per place, naming the file and the JSON path. Everything wrong is reported together (a
ConfigError), so one edit fixes it all.
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
from gpupair_search.launcher.mutation import MutationError, distinct_draws, worst_case
from gpupair_search.launcher.registry import Registry
from gpupair_search.launcher.sizes import parse_size_mib
from gpupair_search.launcher.spec import JobConfig, PairSpec

_KNOWN_TOP = {
    "experiment_name",
    "description",
    "governor",
    "runs_per_config",
    "max_retries",
    "mode",
    "experiments",
    "gpupair",
    "use_deduplication",
    "historical_csvs",
}
_MODES = ("default", "mutation", "parallel")  # the seed's runner's modes
_AS_WRITTEN = ("parallel", "default")  # the runner runs every other entry mode (even one it does not know) as mutation
#: Keys whose text changes nothing that runs: repeated, they are warnings; they may appear anywhere.
FREE_TEXT = ("comment", "note", "description")
_OURS = ("gradient_accumulation",)  # export's key, which the runner ignores
#: The keys the runner reads on an experiment, by the experiment's mode, and on each job of a pair.
_ENTRY_READS = {
    "parallel": ("mode", "foreground", "background", "runs_per_config"),
    "default": ("mode", "repo", "model", "hyperparameters", "runs_per_config"),
    "mutation": ("mode", "repo", "model", "mutate", "runs_per_config"),
}
_FOREGROUND_READS = {
    "default": ("repo", "model", "mode", "hyperparameters", "runs_per_config"),
    "mutation": ("repo", "model", "mode", "mutate", "runs_per_config"),
}
_BACKGROUND_READS = ("repo", "model", "hyperparameters", "mode")  # a background's mode: ignored, but common
_ENTRY_KEYS = tuple(dict.fromkeys(k for keys in _ENTRY_READS.values() for k in keys))
_JOB_KEYS = tuple(dict.fromkeys(k for keys in _FOREGROUND_READS.values() for k in keys))
#: The ``gpupair`` block: our settings, which the seed's runner ignores. Sizes need a unit.
GPUPAIR_KEYS = ("gpu_memory", "safe_limit")
_FORMAT_FIX = "see the settings file's format in the documentation (Reference: settings file)"
#: Optional integer settings (top level, and runs_per_config per experiment too) and their least value.
_COUNTS = {"runs_per_config": 0, "max_retries": 0}  # runs_per_config 0: the runner runs the entry 0 times
_ROLES = ("foreground", "background")  # the jobs of a pair, as export's gradient_accumulation names them

#: What the runner does with an experiment holding a value it cannot use (Problem.runner_skips).
_RUNNER_FAILS = "the runner fails on it and goes on to the next experiment"

#: Where a key the runner reads elsewhere belongs, said where it stands instead (the fix of the message).
_INTO_JOB = 'move it inside "foreground" (or "background"), where the seed\'s runner reads it for a pair'
_TO_MUTATE = 'set "mode": "mutation" to draw values from the models file\'s ranges, or remove it'
_AS_WRITTEN_FIX = (
    'set "mode": "default" to run these values as written, or remove them (in mutation mode the '
    "runner draws every value from the models file's ranges)"
)
#: --lenient's reading of a job the runner runs in its default mode, "mutation", though values are written.
_AS_MUTATION = (
    'no "mode": run as "mutation", as the seed\'s runner runs it: values drawn from the models file\'s ranges, '
    "checked at their worst case; the values written here are not used"
)
_TO_PAIR = 'set "mode": "parallel" for a foreground/background pair, or remove it'
_ENTRY_MOVES = {
    "parallel": {"repo": _INTO_JOB, "model": _INTO_JOB, "hyperparameters": _INTO_JOB, "mutate": _INTO_JOB},
    "default": {"mutate": _TO_MUTATE, "foreground": _TO_PAIR, "background": _TO_PAIR},
    "mutation": {"hyperparameters": _AS_WRITTEN_FIX, "foreground": _TO_PAIR, "background": _TO_PAIR},
}
_FOREGROUND_MOVES = {
    "default": {"mutate": 'set the foreground\'s "mode": "mutation" to draw values from the ranges, or remove it'},
    "mutation": {
        "hyperparameters": 'set the foreground\'s "mode": "default" to run these values as written, or '
        "remove them (in mutation mode the runner draws them from the ranges)"
    },
}
_BACKGROUND_MOVES = {
    "mutate": "remove it: the seed's runner runs a background's hyperparameters as written, never mutated",
    "runs_per_config": "move it to the experiment (or its foreground), where the seed's runner reads it",
}
_TO_ENTRY = "move it to the experiment, where the seed's runner reads it"
for _moves in (*_FOREGROUND_MOVES.values(), _BACKGROUND_MOVES):
    _moves.update({key: _TO_ENTRY for key in ("foreground", "background", "gradient_accumulation")})
#: Names users give keys of the runner (only for the hint of a message).
_ALIASES = {
    "repository": "repo",
    "repo_name": "repo",
    "model_name": "model",
    "hyperparams": "hyperparameters",
    "params": "hyperparameters",
}


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
    if _starts_with_bom(path):
        reader.divergence(
            "",
            "starts with a UTF-8 byte-order mark, which the seed's runner's json.load refuses (\"Unexpected UTF-8 "
            'BOM"): it would run nothing from this file',
            "starts with a UTF-8 byte-order mark, which the seed's runner's json.load refuses: read here as if it "
            "had none",
            expected="a UTF-8 file without a byte-order mark",
            fix=f"re-save it without one (some editors call it \"UTF-8 with BOM\"), e.g. sed -i '1s/^\\xEF\\xBB\\xBF//' {path}",
        )
    if not isinstance(data, dict):
        raise ConfigError(
            [
                Problem(
                    str(path),
                    "",
                    f"top level is {type_name(data)}, expected an object",
                    expected='{"experiment_name": ..., "experiments": [...]}',
                )
            ]
        )
    return reader.settings(path, data)


def _starts_with_bom(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            return f.read(3) == b"\xef\xbb\xbf"
    except OSError:
        return False


@dataclass(frozen=True)
class _TopMode:
    """The file's top-level ``mode``: the mode of every experiment that sets none."""

    given: bool = False
    word: Any = None

    @property
    def mode(self) -> str:
        """As the runner reads it: a word it does not know runs as mutation."""
        return self.word if self.word in _AS_WRITTEN else "mutation"


@dataclass
class _Reader:
    """One settings file being read: what it found so far."""

    file: str
    registry: Registry
    lenient: bool
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def skip_reasons(self) -> str:
        """Why the entries were skipped (the warnings so far, without the file's name), for the one error that
        says nothing is left: a message that points at warnings must also show them."""
        reasons = [w.removeprefix(f"{self.file}: ") for w in self.warnings]
        if not reasons:
            return ""
        shown = "; ".join(reasons[:5]) + (f"; and {len(reasons) - 5} more" if len(reasons) > 5 else "")
        return f" ({shown})"

    def warn(self, where: str, text: str) -> str:
        message = f"{self.file}: {where}: {text}" if where else f"{self.file}: {text}"
        self.warnings.append(message)
        return message

    def problem(self, where: str, message: str, expected: str = "", fix: str = "", runner_skips: str = "") -> None:
        self.problems.append(Problem(self.file, where, message, expected=expected, fix=fix, runner_skips=runner_skips))

    def skipped_by_runner(self, at: str, since: int) -> bool:
        """--lenient: where every problem found in the experiment at ``at`` since the ``since``-th is one on which
        the seed's runner skips the experiment, skip it too, with one warning that names them; True then."""
        found = self.problems[since:]
        if not (self.lenient and found and all(p.runner_skips for p in found)):
            return False
        del self.problems[since:]
        why = "; ".join(f"{p.where}: {p.message} ({p.runner_skips})" for p in found)
        self.warn(at, f"skipped, as by the seed's runner: {why} (--lenient)")
        return True

    def divergence(self, where: str, message: str, lenient_text: str, expected: str = "", fix: str = "") -> None:
        """Where the file says one thing and the runner does another: an error in strict mode (``message``, what to
        write instead), a warning with the runner's meaning (``lenient_text``) in lenient mode."""
        if self.lenient:
            self.warn(where, lenient_text + " (--lenient)")
        else:
            self.problem(where, message, expected=expected, fix=fix)

    # -- the file ------------------------------------------------------------------------------------------
    def duplicates(self, duplicates: list[Duplicate]) -> None:
        """A repeated free-text key, or one repeated with equal values, changes nothing: a warning. Otherwise it is
        an error in strict mode (one of the values would be lost) and a warning in lenient mode."""
        for duplicate in duplicates:
            harmless = duplicate.key in FREE_TEXT or duplicate.key.startswith("_") or duplicate.equal
            if harmless or self.lenient:
                self.warn(
                    duplicate.where,
                    f"{duplicate.occurrences()}; the last one is used, as by the seed's runner"
                    + ("" if harmless else " (--lenient)"),
                )
            else:
                self.problems.append(duplicate_problem(self.file, duplicate))

    def settings(self, path: Path, data: dict[str, Any]) -> Experiment:
        self.top_keys(data)
        experiments = data.get("experiments")
        if not isinstance(experiments, list) or not experiments:
            raise ConfigError(self.no_experiments(data))
        name = data.get("experiment_name", path.stem)
        if not isinstance(name, str) or not name.strip():
            self.problem(
                "experiment_name",
                f"is {describe(name)}, expected a name" + ("" if isinstance(name, str) else " in quotes"),
                fix="give the experiment a name (it names the study), or remove the key to use the file's name",
            )
            name = path.stem
        for key in ("description", "governor"):
            if key in data and not isinstance(data[key], str):
                self.problem(key, f"is {describe(data[key])}, expected a string", fix=_FORMAT_FIX)
        self.counts("", data, _COUNTS)
        top_runs = _count(data, "runs_per_config")
        options = self.gpupair(data.get("gpupair", {}))
        top = self.top_mode(data, experiments)
        pairs = self.merge([self.entry(i, entry, top, top_runs) for i, entry in enumerate(experiments)])
        if not self.problems and not pairs:
            self.problem(
                "experiments",
                "no experiment is left to run: every one was skipped" + self.skip_reasons(),
                fix="correct what is named above in the settings file, or give the models file it was written "
                "for (--models FILE)",
            )
        if self.problems:
            raise ConfigError(_unique(self.problems))
        description = data.get("description", "")
        return Experiment(
            path, name, description if isinstance(description, str) else "", pairs, options, self.warnings
        )

    def no_experiments(self, data: dict[str, Any]) -> list[Problem]:
        """A file with nothing to run: where a key close to ``experiments`` holds the list, one message naming it."""
        experiments = data.get("experiments")
        close = [key for key in data if key not in _KNOWN_TOP and nearest(key, ["experiments"]) == "experiments"]
        close.sort(key=lambda key: not isinstance(data[key], list))  # the one holding a list first
        if "experiments" not in data and close:
            at = json_path("", close[0])
            return [p for p in self.problems if p.where != at] + [
                Problem(
                    self.file,
                    at,
                    f'unknown top-level key {name_shown(close[0])}, and the file has no "experiments", '
                    "so nothing would run",
                    expected='"experiments": [...]: the list of experiments',
                    fix=f'did you mean "experiments"? rename {name_shown(close[0])} to "experiments"',
                )
            ]
        got = (
            "missing"
            if "experiments" not in data
            else f"{type_name(experiments)}" + (" (empty)" if experiments == [] else "")
        )
        hint = f" (the file has {name_shown(close[0])}: is that the list?)" if close else ""
        return self.problems + [
            Problem(
                self.file, "experiments", f"{got}, expected a non-empty array of experiments{hint}", fix=_FORMAT_FIX
            )
        ]

    def top_keys(self, data: dict[str, Any]) -> None:
        """The runner reads only the top-level keys it knows: any other is ignored, a warning (``comments``,
        ``expected_experiments`` beside ``experiments``). Two exceptions, since they change what runs: a key that
        belongs in each experiment (``hyperparameters``), and in strict mode a near miss of a key that changes what
        runs, holding a value of that key's type (``"runs_per_confg": 2``: the runner would run each configuration
        once; ``"expected_experiments": 44`` is no list of experiments, so it is only a warning)."""
        for key in data:
            if key in _KNOWN_TOP or key.startswith("_"):
                continue
            where, close = json_path("", key), nearest(key, _KNOWN_TOP)
            if key in _ENTRY_KEYS or key in ("foreground", "background"):
                self.divergence(
                    where,
                    f"{name_shown(key)} is read in each experiment, not at the top level: the "
                    "seed's runner ignores it here",
                    f"{name_shown(key)} is read in each experiment, "
                    "not at the top level: ignored, as by the seed's runner",
                    expected="one of: " + ", ".join(sorted(_KNOWN_TOP)),
                    fix="move it into each experiment it is meant for",
                )
                continue
            if self.lenient or not _could_be(close, data[key]) or _free_text(key):
                hint = f' (did you mean "{close}"?)' if _could_be(close, data[key]) and not _free_text(key) else ""
                self.warn(where, f"unknown top-level key, ignored as by the seed's runner{hint}")
                continue
            self.problem(
                where,
                f"unknown top-level key {name_shown(key)}, which the seed's runner would ignore",
                expected="one of: " + ", ".join(sorted(_KNOWN_TOP)),
                fix=f'did you mean "{close}"? (prefix a key with _ to keep it as a comment, or use '
                "--lenient to ignore it)",
            )

    def top_mode(self, data: dict[str, Any], experiments: list) -> _TopMode:
        """The file's default mode, as the runner reads it: a word it does not know is "mutation" for every
        experiment that sets no mode of its own (a divergence, said once, here); unused, only a warning."""
        if "mode" not in data:
            return _TopMode()
        top = _TopMode(True, data["mode"])
        if top.word in _MODES:
            return top
        if not isinstance(top.word, str) and not self.lenient:  # null, a number: the runner's "mutation" too
            self.mode_type("mode", top.word)
            return _TopMode()
        users = [i for i, e in enumerate(experiments) if isinstance(e, dict) and "mode" not in e and not _separator(e)]
        if not users:
            self.warn(
                "mode",
                f"{describe(top.word)} is not a mode of the seed's runner; unused, since every "
                "experiment sets its own mode",
            )
            return top
        more = f" and {len(users) - 4} more" if len(users) > 4 else ""
        which = ", ".join(f"experiments[{i}]" for i in users[:4]) + more
        self.divergence(
            "mode",
            f"{show(top.word)} is not a mode of the seed's runner, which runs the experiments "
            f'that set no mode of their own ({which}) as "mutation"',
            f"{show(top.word)} is not a mode of the seed's runner: the experiments that set no mode "
            f'of their own ({which}) run as "mutation" (values drawn from the models file\'s '
            "ranges), as the runner runs them",
            expected=" or ".join(f'"{m}"' for m in _MODES),
            fix='write "mutation" to keep what the runner does, or the mode those experiments are meant for',
        )
        return top

    def gpupair(self, block: Any) -> dict[str, Any]:
        """Our block: known keys only, and sizes with a unit in a sane range (checked here, used by ``run``)."""
        if not isinstance(block, dict):
            self.problem(
                "gpupair",
                f"is {type_name(block)}, expected an object",
                expected='{"gpu_memory": "8GiB", "safe_limit": "7500MiB"}',
            )
            return {}
        sizes: dict[str, float] = {}
        for key, value in block.items():
            at = json_path("gpupair", key)
            if key.startswith("_") or key in FREE_TEXT:
                continue
            if key not in GPUPAIR_KEYS:
                close = nearest(key, GPUPAIR_KEYS)
                self.problem(
                    at,
                    "unknown key of the gpupair block, so it would be ignored",
                    expected="one of: " + ", ".join(GPUPAIR_KEYS),
                    fix=f'did you mean "{close}"?' if close else "remove it",
                )
                continue
            try:
                sizes[key] = parse_size_mib(value)
            except ValueError as exc:
                self.problem(
                    at,
                    str(exc),
                    expected='a size with its unit, e.g. "8GiB" or "7500MiB"',
                    fix="write the size in quotes with its unit",
                )
        if "gpu_memory" in sizes and "safe_limit" in sizes and sizes["safe_limit"] > sizes["gpu_memory"]:
            self.problem(
                "gpupair.safe_limit",
                f"{show(block['safe_limit'])} is above gpu_memory {show(block['gpu_memory'])}",
                expected="a safe limit at most the card's memory",
                fix="lower the safe limit or correct gpu_memory",
            )
        return dict(block)

    def counts(self, at: str, entry: dict, counts: dict[str, int]) -> None:
        """Each of ``counts``' keys present in ``entry`` must be an integer at least its minimum."""
        for key, least in counts.items():
            if key not in entry:
                continue
            value = entry[key]
            where = json_path(at, key)
            if isinstance(value, bool):
                self.divergence(
                    where,
                    f"{describe(value)} is not an integer",
                    f"{describe(value)} counts as {int(value)} for the seed's runner, as here",
                    expected=f"an integer, {least} or more",
                    fix=f"write {int(value)}",
                )
            elif not isinstance(value, int):
                self.problem(
                    where,
                    f"{describe(value)} is not an integer",
                    expected=f"an integer, {least} or more",
                    fix=f"write {int(value)}"
                    if isinstance(value, float) and value.is_integer()
                    else "correct the value",
                    runner_skips=_RUNNER_FAILS if key == "runs_per_config" else "",
                )
            elif value < least:
                self.problem(
                    where,
                    f"{show(value)} is less than {least}",
                    expected=f"an integer, {least} or more",
                    fix="correct the value",
                    runner_skips="the runner runs it 0 times" if key == "runs_per_config" else "",
                )

    def keys(
        self, at: str, obj: dict, reads: tuple[str, ...], moves: dict[str, str], said: tuple[str, ...] = ()
    ) -> None:
        """Every key of ``obj`` the runner does not read where it stands: a key it reads elsewhere (``moves``: key ->
        where it belongs) or one it knows nowhere (``hyperparams`` would drop every hyperparameter). Each is a
        divergence: an error in strict mode, a warning in lenient mode; the runner ignores it. ``said``: keys a
        message about this place has already covered."""
        for key in obj:
            if key in said or not _unread(key, reads):
                continue
            where = json_path(at, key)
            if key in moves:
                self.divergence(
                    where,
                    f"{name_shown(key)} is not read here by the seed's runner, so it would be ignored",
                    f"{name_shown(key)} is not read here: ignored, as by the seed's runner; {moves[key]}",
                    expected="here: " + ", ".join(reads),
                    fix=moves[key],
                )
                continue
            close = nearest(key, reads) or _ALIASES.get(key.lower())
            self.divergence(
                where,
                f"unknown key {name_shown(key)}, which the seed's runner would ignore",
                f"unknown key {name_shown(key)}, ignored as by the seed's runner"
                + (f' (did you mean "{close}"?)' if close else ""),
                expected="one of: " + ", ".join(reads),
                fix=f'did you mean "{close}"?' if close else "remove it (or prefix it with _ as a comment)",
            )

    # -- one experiment -------------------------------------------------------------------------------------
    def entry(self, i: int, entry: Any, top: _TopMode, top_runs: int) -> PairSpec | None:
        at = f"experiments[{i}]"
        if not isinstance(entry, dict):
            self.problem(
                at,
                f"is {describe(entry)}, expected an object",
                expected='{"mode": "parallel", "foreground": {...}, "background": {...}}',
                fix=_FORMAT_FIX,
            )
            return None
        if _separator(entry) and (self.lenient or all(_free_text(k) or k.startswith("_") for k in entry)):
            self.warn(at, _separator_text(entry))
            return None
        count, first_warning = len(self.problems), len(self.warnings)
        note = entry.get("note", "")
        if not isinstance(note, str):
            self.problem(f"{at}.note", f"is {describe(note)}, expected a string", fix="write the note in quotes")
            note = ""
        self.counts(at, entry, {"runs_per_config": _COUNTS["runs_per_config"]})
        mode, said = self.entry_mode(at, entry, top)
        if mode is None:
            return None
        found = self.parallel(at, entry, top_runs) if mode == "parallel" else self.solo(at, entry, mode, top_runs, said)
        self.keys(at, entry, _ENTRY_READS[mode] + _OURS, _ENTRY_MOVES[mode], ("hyperparameters",) if said else ())
        if "gradient_accumulation" in entry:
            self.accumulation(
                f"{at}.gradient_accumulation",
                entry["gradient_accumulation"],
                _ROLES if mode == "parallel" else _ROLES[:1],
            )
        if self.skipped_by_runner(at, count) or found is None or len(self.problems) > count:
            return None
        (fg, bg), runs, worst = found
        if runs == 0:
            self.warn(
                at, "runs_per_config is 0, so the seed's runner runs this entry 0 times: skipped, as by the runner"
            )
            return None
        return PairSpec(
            group=i + 1,
            foreground=fg,
            background=bg,
            note=note,
            source=f"{self.file}: {at}",
            warnings=tuple(self.warnings[first_warning:]),
            repeats=runs,
            worst_case=worst,
        )

    def entry_mode(self, at: str, entry: dict, top: _TopMode) -> tuple[str | None, bool]:
        """The mode the runner runs the entry in: its own ``mode``, else the file's; "parallel" and "default" as
        such, every other word as "mutation". Returns (mode, whether a message about the mode was given); mode
        None where the runner skips the entry: a pair (foreground/background, no "repo") read in another mode."""
        if "mode" in entry:
            word, where = entry["mode"], f"{at}.mode"
        elif top.given:
            word, where = top.word, "mode"
        else:
            return self.unmarked(at, entry), True
        if not isinstance(word, str) and not self.lenient:  # null, a number: the runner's "mutation" too
            if where != "mode":
                self.mode_type(where, word)
            return None, True
        mode = word if word in _AS_WRITTEN else "mutation"
        if mode != "parallel" and ("foreground" in entry or "background" in entry) and "repo" not in entry:
            self.skipped_pair(at, word, mode, from_top=where == "mode")
            return None, True
        if where == "mode":
            return mode, top.word not in _MODES  # the top level's message covers it
        if word not in _MODES:
            self.unknown_mode(where, word, entry)
            return mode, True
        return mode, False

    def unmarked(self, at: str, entry: dict) -> str | None:
        """No mode here nor at the top level: the runner uses its default, "mutation". A pair (no "repo") it then
        skips; a job it runs with values drawn from the ranges, ignoring any written here. Either way the file
        says one thing and the runner does another: an error in strict mode, the runner's meaning with --lenient.
        An entry that says what to mutate means what the runner does with it."""
        if "foreground" in entry or "background" in entry:
            self.divergence(
                at,
                'no "mode" here nor at the top level: the seed\'s runner reads this entry as "mutation" (its '
                'default), which needs a "repo", and skips the pair',
                'no "mode" here nor at the top level: the seed\'s runner reads it as "mutation" without a "repo": '
                "skipped, as the runner skips it",
                expected='"mode": "parallel" for a foreground/background pair',
                fix='set "mode": "parallel" on the entry, or at the top level for every entry',
            )
            return None
        if "mutate" in entry:
            return "mutation"
        self.divergence(
            at,
            'no "mode" here nor at the top level: the seed\'s runner runs this job as "mutation" (its default), '
            "drawing every hyperparameter from its range and ignoring the values written here",
            _AS_MUTATION,
            expected='"mode": "default" to run the values as written, or "mode": "mutation"',
            fix='set "mode": "default" on the entry (or at the top level) to run these values as written',
        )
        return "mutation"

    def mode_type(self, where: str, word: Any) -> None:
        self.problem(
            where,
            f"is {describe(word)}, expected a mode name in quotes",
            expected=" or ".join(f'"{m}"' for m in _MODES),
            fix='use "parallel" for a foreground/background pair, "default" for a solo job run as written, '
            '"mutation" for one whose values are drawn from the models file\'s ranges',
        )

    def unknown_mode(self, where: str, word: Any, entry: dict) -> None:
        unused = '; its "hyperparameters" are not used' if "hyperparameters" in entry else ""
        self.divergence(
            where,
            f"unknown mode {show(word)}: the seed's runner runs every mode other than "
            '"parallel" and "default" as "mutation"',
            f'{show(word)} is not a mode of the seed\'s runner: run as "mutation", as the runner '
            f'runs every mode other than "parallel" and "default" (values drawn from the models '
            f"file's ranges{unused})",
            expected=" or ".join(f'"{m}"' for m in _MODES) + ': the seed\'s runner runs every other mode as "mutation"',
            fix='write "mutation" for what the runner does with it (values drawn from '
            'the models file\'s ranges), or "default" to run the hyperparameters as written',
        )

    def skipped_pair(self, at: str, word: Any, mode: str, from_top: bool) -> None:
        """A foreground/background entry read in a mode other than parallel: the runner looks for its "repo",
        fails, and skips it."""
        source = f"the top-level mode {show(word)}" if from_top else f"its mode {show(word)}"
        close = isinstance(word, str) and word not in _MODES and nearest(word, ["parallel"]) == "parallel"
        self.divergence(
            f"{at}.mode" if not from_top else at,
            f'{source} makes the seed\'s runner read this foreground/background pair as a "{mode}" '
            'experiment, which needs a "repo": it skips the pair',
            f'{source} makes the seed\'s runner read this foreground/background pair as a "{mode}" '
            'experiment without a "repo": skipped, as the runner skips it',
            expected='"mode": "parallel" for a foreground/background pair',
            fix=('did you mean "parallel"? ' if close else "") + 'set "mode": "parallel" on the entry',
        )

    def accumulation(self, at: str, steps: Any, roles: tuple[str, ...]) -> None:
        """``export``'s gradient-accumulation steps per job (``{"foreground": 1, "background": 2}``): a solo entry's
        one job is its foreground. Not used to run anything, but read by whoever trains the exported pairs."""
        example = ", ".join(f'"{role}": 2' for role in roles)
        if not isinstance(steps, dict):
            self.problem(
                at,
                f"is {describe(steps)}, expected an object",
                expected="{" + example + "}: the accumulation steps of each job",
                fix="write the steps per job, or remove the key",
            )
            return
        for key in steps:
            if key in roles or key.startswith("_"):
                continue
            close = nearest(key, roles)
            self.problem(
                json_path(at, key),
                f"unknown job {name_shown(key)}" + (": the entry has no background job" if key in _ROLES else ""),
                expected="one of: " + ", ".join(roles),
                fix=f'did you mean "{close}"?' if close else "remove it",
            )
        self.counts(at, steps, {role: 1 for role in roles})

    def parallel(self, at: str, entry: dict, top_runs: int):
        fg_entry, bg_entry = entry.get("foreground"), entry.get("background")
        gap = _pair_gap(fg_entry, bg_entry)
        if gap and self.lenient:
            self.warn(at, f"{gap}: skipped, as by the seed's runner (--lenient)")
            return None
        if gap and not (fg_entry and bg_entry):  # an empty job: nothing more in it to name
            self.problem(
                f"{at}.{'foreground' if not fg_entry else 'background'}",
                f"{gap}: the seed's runner skips this pair",
                expected='"foreground": {"repo": ..., "model": ..., "mode": "default"}, "background": {...}',
                fix="fill in the missing job, or remove the experiment",
            )
            return None
        fg_mode, said = "default", False
        if isinstance(fg_entry, dict):
            fg_mode, said = self.foreground_mode(f"{at}.foreground", fg_entry)
        fg, fg_worst = self.job(f"{at}.foreground", fg_entry, fg_mode, said=said)
        if "skipped" in fg_worst:
            return None
        bg, _ = self.job(f"{at}.background", bg_entry, "default", background=True)
        if fg is None or bg is None:
            return None
        if isinstance(fg_entry, dict):
            self.counts(f"{at}.foreground", fg_entry, {"runs_per_config": _COUNTS["runs_per_config"]})
        # the runner's priority: the experiment's runs_per_config, then the foreground's, then the file's
        runs: int | None = _count(entry, "runs_per_config", _count(fg_entry, "runs_per_config", top_runs))
        if fg_worst:
            runs = self.drawable(f"{at}.foreground", fg, fg_worst, runs)
            if runs is None:
                return None
        return (fg, bg), runs, ({"foreground": fg_worst} if fg_worst else {})

    def drawable(self, at: str, job: JobConfig, worst: dict[str, Any], runs: int) -> int | None:
        """``runs`` of a mutation job (``worst``: its worst case, one value per mutated hyperparameter), at most the
        number of different mutations the runner can draw (it never draws one twice, nor the defaults); None, with
        a warning, where it can draw none and runs nothing."""
        repo = self.registry.repositories[job.repo]
        names = list(worst["values"])
        draws = distinct_draws(repo, names)
        if draws is None or runs <= draws:
            return runs
        space = f"{', '.join(names)} within {'their ranges' if len(names) > 1 else 'its range'}"
        if draws == 0:
            self.warn(
                at,
                f"the seed's runner draws no mutation of {space}: the only value there is the models file's "
                "default, which it never draws, so it runs this entry 0 times: skipped, as by the runner",
            )
            return None
        self.warn(
            at,
            f"runs_per_config asks for {runs} runs, but {space} {'give' if len(names) > 1 else 'gives'} only "
            f"{draws} mutation(s) besides the defaults, and the seed's runner draws each once: it runs at most "
            f"{draws} times, counted as {draws}",
        )
        return draws

    def foreground_mode(self, at: str, job: dict) -> tuple[str, bool]:
        """The runner draws a foreground's values when its mode is "mutation" and runs them as written for any
        other mode; no mode: see ``unmarked``. Returns (mode, whether a message about the mode was given)."""
        mode = job.get("mode")
        if mode is None:
            if "mutate" in job:
                return "mutation", False
            self.divergence(
                at,
                'no "mode": the seed\'s runner runs a foreground without one as "mutation", drawing its '
                "hyperparameters from their ranges and ignoring the values written here",
                _AS_MUTATION,
                expected='"mode": "default" to run these values as written, or "mode": "mutation"',
                fix='add "mode": "default" to this foreground to run its hyperparameters as written',
            )
            return "mutation", True
        if mode in ("default", "mutation"):
            return mode, False
        close = nearest(mode, ["default", "mutation"]) if isinstance(mode, str) else None
        self.divergence(
            f"{at}.mode",
            f"unknown foreground mode {show(mode)}"
            if isinstance(mode, str)
            else f"is {describe(mode)}, expected a string",
            f"{show(mode)} is not a foreground mode of the seed's runner: its hyperparameters run as "
            'written, as the runner runs every foreground whose mode is not "mutation"',
            expected='"default" or "mutation"',
            fix=(f'did you mean "{close}"? ' if close else "") + '"default" runs its hyperparameters as '
            'written, "mutation" draws them from their ranges',
        )
        return "default", True

    def solo(self, at: str, entry: dict, mode: str, top_runs: int, said: bool = False):
        if self.lenient and "model" not in entry:
            self.warn(at, 'no "model": skipped, as by the seed\'s runner (--lenient)')
            return None
        job, worst = self.job(at, entry, mode, said=said)
        if job is None:
            return None
        runs = _count(entry, "runs_per_config", top_runs)
        if worst:
            runs = self.drawable(at, job, worst, runs)
            if runs is None:
                return None
        return (job, None), runs, ({"foreground": worst} if worst else {})

    def job(
        self, at: str, entry: Any, mode: str, background: bool = False, said: bool = False
    ) -> tuple[JobConfig | None, dict[str, Any]]:
        """The job at ``at`` checked against the models file, and for a mutation job its worst case. ``said``: a
        message about the job's mode already covers its unused hyperparameters."""
        if not isinstance(entry, dict):
            got = "missing" if entry is None else describe(entry)
            self.problem(
                at,
                f"{got}, expected an object with repo, model, hyperparameters",
                expected='{"repo": "examples", "model": "mnist", "hyperparameters": {...}}',
                fix=_FORMAT_FIX,
                runner_skips=_RUNNER_FAILS if entry is not None else "",
            )
            return None, {}
        if background:
            self.keys(at, entry, _BACKGROUND_READS, _BACKGROUND_MOVES)
        elif at.endswith("foreground"):
            self.keys(at, entry, _FOREGROUND_READS[mode], _FOREGROUND_MOVES[mode], ("hyperparameters",) if said else ())
        bad = False
        for key, example in (("repo", "examples"), ("model", "mnist")):
            if not isinstance(entry.get(key), str) or not entry.get(key):
                got = "missing" if key not in entry else describe(entry[key])
                self.problem(
                    f"{at}.{key}",
                    f"{got}, expected a non-empty string",
                    expected=f'a {key} name of the models file, e.g. "{example}"',
                    fix=f'add "{key}": "<name>"' if key not in entry else "correct the value",
                    runner_skips=_RUNNER_FAILS if key in entry else "",
                )
                bad = True
        hyper = entry.get("hyperparameters", {})
        if not isinstance(hyper, dict):
            self.problem(
                f"{at}.hyperparameters",
                f"is {describe(hyper)}, expected an object",
                expected='{"epochs": 1, "learning_rate": 0.01}',
                fix=_FORMAT_FIX,
                runner_skips=_RUNNER_FAILS,
            )
            bad = True
        if background and entry.get("mode") == "mutation":
            self.warn(
                f"{at}.mode",
                "the seed's runner ignores a background's mode and runs its hyperparameters "
                "as written; so does gpupair-search",
            )
        if bad:
            return None, {}
        worst: dict[str, Any] = {}
        if mode == "mutation":
            found = self.mutation(at, entry)
            if found is None:
                return None, {}
            hyper, worst = found["values"], found
        # a key starting with _ is a comment here too; the runner passes only hyperparameters the models file has
        job = JobConfig(entry["repo"], entry["model"], {k: v for k, v in hyper.items() if not str(k).startswith("_")})
        check = self.registry.check_job(job, at, self.file, self.lenient)
        if check.unknown and self.lenient:
            what = "repository" if job.repo not in self.registry.repositories else "model"
            self.warn(at, f"skipped, as by the seed's runner: {check.problems[0].message} (--lenient)")
            return None, {"skipped": what}
        self.problems.extend(check.problems)  # a value the runner fails on says so (runner_skips)
        self.warnings.extend(check.warnings)
        return (check.applied(job) if not check.problems else None), worst

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
        if isinstance(entry.get("mutate"), str):
            self.warn(
                f"{at}.mutate",
                f'is {describe(entry["mutate"])}: "all" is in it, so the seed\'s runner mutates every '
                'hyperparameter; read as ["all"] (--lenient)',
            )
        for name in found["ignored"]:
            self.warn(
                f"{at}.mutate",
                f"{repo.name} has no hyperparameter {name_shown(name)}; not mutated, as by the "
                "seed's runner (--lenient)",
            )
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
            merged[key] = replace(
                first,
                repeats=first.repeats + spec.repeats,
                repeated_at=first.repeated_at + (spec.source.rsplit(": ", 1)[-1],),
                warnings=first.warnings + spec.warnings,
            )
        return list(merged.values())


def keys_not_read(entry: dict[str, Any], top_mode: Any = None) -> list[tuple[str | None, str]]:
    """The keys of one experiment that the seed's runner does not read where they stand, as (``None`` for the
    experiment itself or the job's role, key): the runner ignores them and a strict load stops at each. Free
    text and ``_`` comments are read by no one and are kept."""
    mode = entry.get("mode", top_mode)
    reads = _ENTRY_READS[mode if mode in _AS_WRITTEN else "mutation"] + _OURS
    found: list[tuple[str | None, str]] = [(None, key) for key in entry if _unread(key, reads)]
    if mode == "parallel":
        for role in _ROLES:
            job = entry.get(role)
            if isinstance(job, dict):
                job_reads = (
                    _BACKGROUND_READS if role == "background" else _FOREGROUND_READS.get(job.get("mode"), _JOB_KEYS)
                )
                found += [(role, key) for key in job if _unread(key, job_reads)]
    return found


def top_keys_not_read(settings: dict[str, Any]) -> list[str]:
    """The top-level keys of a settings file that neither the seed's runner nor gpupair-search reads."""
    return [key for key in settings if _unread(key, tuple(_KNOWN_TOP))]


def _unread(key: str, reads: tuple[str, ...]) -> bool:
    return key not in reads and not key.startswith("_") and not _free_text(key)


def _free_text(key: str) -> bool:
    """``Description``, ``comments``: a key that only carries text, whatever its case or number."""
    word = key.lower()
    return word in FREE_TEXT or word.removesuffix("s") in FREE_TEXT


#: The top-level keys that change what the runner runs, and the JSON type of their values.
_TOP_TYPES = {
    "runs_per_config": int,
    "max_retries": int,
    "mode": str,
    "experiments": list,
    "gpupair": dict,
    "governor": str,
    "use_deduplication": bool,
    "historical_csvs": list,
}


def _could_be(known: str | None, value: Any) -> bool:
    """Whether ``value`` could be meant for the top-level key ``known``: one that changes what runs, and a value of
    its type (a near miss holding it is then likely a misspelling of it)."""
    kind = _TOP_TYPES.get(known or "")
    return kind is not None and isinstance(value, kind) and (kind is bool or not isinstance(value, bool))


def _separator(entry: dict) -> bool:
    """An entry with neither a repository nor a foreground: the runner fails on it (``'repo'``) and goes on."""
    return "repo" not in entry and "foreground" not in entry


def _separator_text(entry: dict) -> str:
    others = [k for k in entry if not (_free_text(k) or k.startswith("_"))]
    hints = [f'"{_ALIASES[k.lower()]}" for {name_shown(k)}' for k in others if k.lower() in _ALIASES]
    has = (
        f" (it has {', '.join(name_shown(k) for k in others)}"
        + (f"; did you mean {', '.join(hints)}?" if hints else "")
        + ")"
        if others
        else ""
    )
    return (
        f'no "repo" and no "foreground"{has}: skipped, as the seed\'s runner skips it (it reports "Error running '
        "experiment: 'repo'\" and goes on)"
    )


def _pair_gap(fg: Any, bg: Any) -> str:
    """What the runner finds missing in a pair before it skips it ("" where nothing is)."""
    if not fg or not bg:
        missing = [role for role, job in (("foreground", fg), ("background", bg)) if not job]
        return (
            f'a parallel experiment needs a "foreground" and a "background"; {" and ".join(missing)} '
            f"{'is' if len(missing) == 1 else 'are'} missing or empty"
        )
    for role, job in (("foreground", fg), ("background", bg)):
        if isinstance(job, dict):
            for key in ("repo", "model"):
                if key not in job:
                    return f'the {role} has no "{key}"'
    return ""


def _count(entry: Any, key: str, default: int = 1) -> int:
    """A count as the runner uses it (``[run] * value``): ``true`` is 1, ``false`` 0; anything else not a count
    was reported where it stands and counts as ``default``."""
    value = entry.get(key, default) if isinstance(entry, dict) else default
    return int(value) if isinstance(value, int) and value >= 0 else default


def _identity(pair: PairSpec) -> tuple:
    def job(j: JobConfig | None) -> tuple:
        return (j.repo, j.model, tuple(sorted((k, repr(v)) for k, v in j.hyperparameters.items()))) if j else ()

    return job(pair.foreground), job(pair.background), repr(sorted(pair.worst_case.items()))


def _unique(problems: list[Problem]) -> list[Problem]:
    """Each problem once (a missing repository directory is found by every job of that repository)."""
    return list(dict.fromkeys(problems))
