"""``mutation`` entries: the seed's runner draws each mutated hyperparameter from its ``range`` in the models file
(``seed_hyperparams.py``: uniform or log-uniform between the two bounds). A memory verdict must hold for every
value it may draw, so a mutation job is checked at its memory worst case: each memory-relevant hyperparameter
(the batch size, and any whose name says it sets a size: sequence length, hidden size, image size, ...) at the
top of its range, every other one at its default when the range holds it, else at the range's low end.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from gpupair_search.launcher.jsonfile import describe, json_path, name_shown, nearest, show
from gpupair_search.launcher.registry import BATCH_SIZE, Hyperparameter, Repository

#: Names of hyperparameters that change how much memory a job needs (besides ``batch_size``).
MEMORY_RELEVANT = re.compile(
    r"batch|seq|length|_len$|bptt|context|block_size|hidden|embed|emsize|nhid|width|"
    r"image_size|img_size|resolution|crop|n_?layers|num_layers|heads|max_tokens",
    re.I,
)


@dataclass
class MutationError(Exception):
    """A mutation entry that cannot be drawn from; ``skipped_by_runner``: the seed's runner fails on it and skips
    the entry (so lenient mode skips it too)."""

    where: str
    message: str
    expected: str = ""
    fix: str = ""
    skipped_by_runner: bool = True


def is_memory_relevant(name: str) -> bool:
    return name == BATCH_SIZE or bool(MEMORY_RELEVANT.search(name))


#: Beyond this many different mutations, a mutation entry's space is no limit on its runs.
_MANY = 10**6


def distinct_draws(repo: Repository, names: list[str]) -> int | None:
    """How many different mutations the seed's runner can draw for ``names``: it keeps only mutations it has not
    drawn yet (floats compared with 6 decimals) and never the models file's defaults, so an entry runs at most
    this many times, whatever its runs_per_config. None where the space is too large to limit anything."""
    space, all_defaults_drawable = 1, True
    for name in names:
        hp = repo.hyperparameters[name]
        if hp.range is None:
            return None
        low, high = hp.range
        if hp.type == "int":
            values = int(high) - int(low) + 1
            drawable = isinstance(hp.default, int) and not isinstance(hp.default, bool) and low <= hp.default <= high
        elif hp.type == "float":
            values = math.floor(high * 1e6) - math.ceil(low * 1e6) + 1
            drawable = isinstance(hp.default, (int, float)) and low <= hp.default <= high
        else:
            return None
        space *= max(values, 0)
        all_defaults_drawable = all_defaults_drawable and drawable
        if space > _MANY:
            return None
    return space - 1 if all_defaults_drawable and space else space


def worst_case(repo: Repository, mutate: Any, where: str, lenient: bool = False) -> dict[str, Any]:
    """``{"values": {name: value}, "at_maximum": [names], "ignored": [names]}`` for the hyperparameters the runner
    would mutate (``mutate``, default ``["all"]``, as the runner reads it)."""
    if isinstance(mutate, str) and "all" in mutate:
        if not lenient:
            raise MutationError(
                where,
                f'is {describe(mutate)}; the seed\'s runner finds "all" in it and mutates every hyperparameter',
                expected='a list of hyperparameter names, or ["all"]',
                fix='write ["all"], or run with --lenient to read it as the runner does',
                skipped_by_runner=False,
            )
        mutate = ["all"]
    not_names: list[str] = []
    if isinstance(mutate, list) and lenient and all(m is None or isinstance(m, (str, int, float)) for m in mutate):
        not_names = [show(m) for m in mutate if not isinstance(m, str)]  # no such hyperparameter: passed over
        mutate = [m for m in mutate if isinstance(m, str)]
    if not isinstance(mutate, list) or not all(isinstance(m, str) for m in mutate):
        raise MutationError(
            where,
            f"is {describe(mutate)}",
            expected='a list of hyperparameter names, or ["all"]',
            fix='write e.g. ["learning_rate", "batch_size"]',
        )
    known = repo.hyperparameters
    unknown = [m for m in mutate if m != "all" and m not in known]
    if unknown and not lenient:
        close = nearest(unknown[0], list(known))
        raise MutationError(
            json_path(where, mutate.index(unknown[0])),
            f"{repo.name} has no hyperparameter {name_shown(unknown[0])}, so the seed's runner would "
            "silently not mutate it",
            expected="one of: all, " + ", ".join(known),
            fix=(f'did you mean "{close}"? ' if close else "") + "or run with --lenient to drop it",
            skipped_by_runner=False,
        )
    names = list(known) if "all" in mutate else [m for m in mutate if m in known]
    if not names:
        raise MutationError(
            where,
            f"names no hyperparameter of {repo.name} to mutate",
            expected="one of: all, " + ", ".join(known),
            fix="list what to mutate",
        )
    values: dict[str, Any] = {}
    at_maximum: list[str] = []
    for name in names:
        hp = known[name]
        if hp.range is None:
            raise MutationError(
                f"{where}",
                f'{name_shown(name)} has no "range" in the models file, so the seed\'s runner cannot draw it',
                expected=f'a range for {name} in {repo.name}\'s supported_hyperparams, e.g. "range": [16, 128]',
                fix='add the range to the models file, or leave the hyperparameter out of "mutate"',
            )
        values[name], top = _worst_value(hp)
        if top:
            at_maximum.append(name)
    return {"values": values, "at_maximum": at_maximum, "ignored": unknown + not_names}


def _worst_value(hp: Hyperparameter) -> tuple[Any, bool]:
    low, high = hp.range
    if is_memory_relevant(hp.name):
        return (int(high) if hp.type == "int" else high), True
    if hp.default is not None and low <= hp.default <= high:
        return hp.default, False
    return (int(low) if hp.type == "int" else low), False
