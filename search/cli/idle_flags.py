"""A flag that has no effect in the mode a command runs in is refused, never accepted without a word.

``run --full-epoch --probe-steps 5`` would run full epochs and ignore the 5: the user believes they set
something they did not. Each rule names a flag, when it has no effect, and why; the command line is checked
against them before anything starts. Only flags the user gave count (a default is never refused). A flag that
is part of the study's stored definition and matters on a later run (``--confirm`` of a study run serially now
and packed later) is not idle.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from gpupair_search.launcher.errors import UserError


@dataclass(frozen=True)
class IdleRule:
    """``option`` (a field of the command's options) has no effect when ``idle`` holds for the options; ``why``
    says so, and how to make it count."""

    option: str
    flag: str
    idle: Callable[[SimpleNamespace], bool]  # of the command's options, read as attributes (``o.probe``)
    why: str


def _simulated(o: SimpleNamespace) -> bool:
    return getattr(o, "device", None) == "sim"


#: ``run`` and ``pair`` share --probe/--full-epoch, so these hold for both.
_PROBE_RULES: tuple[IdleRule, ...] = (
    IdleRule(
        "probe_steps",
        "--probe-steps",
        lambda o: not o.probe,
        "it sets how long a probe trains, and --full-epoch runs the seed's full epoch; drop one of them",
    ),
    IdleRule(
        "min_window_s",
        "--min-window-s",
        lambda o: not o.probe,
        "it sets how long a probe's first epoch trains, and --full-epoch runs whole epochs; drop one of them",
    ),
)

RUN_RULES: tuple[IdleRule, ...] = _PROBE_RULES + (
    IdleRule(
        "policy",
        "--policy",
        lambda o: not o.extend,
        "it chooses how failing pairs' batch sizes are searched, and --no-extend searches none; drop one of them",
    ),
    IdleRule(
        "floor",
        "--floor",
        lambda o: not o.extend,
        "it bounds the batch-size search, and --no-extend searches none; drop one of them",
    ),
    IdleRule(
        "batch_grid",
        "--batch-grid",
        lambda o: not o.extend,
        "it chooses the batch sizes the search tries, and --no-extend searches none; drop one of them",
    ),
    IdleRule("timeout", "--timeout", _simulated, "--device sim runs no job, so nothing can time out; drop it"),
    IdleRule("monitor_hz", "--monitor-hz", _simulated, "--device sim samples no memory; drop it"),
    IdleRule(
        "allow_foreign",
        "--allow-foreign-processes",
        _simulated,
        "--device sim uses no GPU, so no other process can hold its memory; drop it",
    ),
)

PAIR_RULES: tuple[IdleRule, ...] = _PROBE_RULES


def refuse_idle_flags(options: Mapping[str, Any], given: set[str], rules: tuple[IdleRule, ...]) -> None:
    """Raise a :class:`UserError` naming every given flag that ``options`` leave without effect."""
    as_read = SimpleNamespace(**options)
    idle = [rule for rule in rules if rule.option in given and rule.idle(as_read)]
    if idle:
        raise UserError("\n".join(f"{rule.flag}: has no effect here: {rule.why}" for rule in idle))


def given_options(ctx: Any) -> set[str]:
    """The options of a click context that the user gave (on the command line or through the environment)."""
    return {
        name
        for name in ctx.params
        if getattr(ctx.get_parameter_source(name), "name", None) in ("COMMANDLINE", "ENVIRONMENT")
    }
