"""Which packed measurements a verdict may rest on, and which must be measured again, alone on the card.

A packed trial runs with other trials on a big GPU, each job's peak measured without the card's limit. Its sum
of peaks is the same number a serial run measures (docs/reference/measured.md: within 2 MiB in 12 of 12 groups), but
near a boundary "the same" is not good enough: only a run on the card itself has its real OOMs and allocator.
So a packed result counts as it is only when it is clearly on one side of both the card and the safe limit
(more than ``margin`` away); a packed crash counts not at all (host memory or CPU shared with other trials may
be its cause). Everything else, and every configuration the study recommends, is confirmed by a serial trial,
whose result replaces the packed one: a confirmation can overturn a packed verdict.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from optuna.trial import TrialState

from gpupair_search.search.record.trial_record import PACKED, SERIAL, TrialView

DEFAULT_MARGIN = 0.10


class Confirm(str, Enum):
    """What a packed study measures again alone on the card (``--confirm``).

    ``recommended``: every configuration it recommends, and every packed result near a boundary; what a user
    will train with has met the card's real OOMs. ``near-limits``: only packed results near a boundary; a
    recommendation measured packed, clearly under the safe limit, rests on that (its export note says so). The
    matrix's default: it surveys 110 pairs, and its packed and serial peaks agree (docs/reference/measured.md)."""

    RECOMMENDED = "recommended"
    NEAR_LIMITS = "near-limits"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class ConfirmationRule:
    safe_limit_mib: float
    card_mib: float | None = None
    margin: float = DEFAULT_MARGIN  # a fraction of the card and of the safe limit

    def trusted(self, v: TrialView) -> bool:
        """Whether the plan may rest on ``v`` as it is: a serial measurement always; a packed one only when it
        completed and its peak is more than ``margin`` away from the card and from the safe limit."""
        if v.mode != PACKED:
            return True
        if v.state is not TrialState.COMPLETE or v.peak_mib is None:
            return False
        return not self.near_a_bound(v.peak_mib)

    def near_a_bound(self, peak_mib: float) -> bool:
        """Whether a pair peak of ``peak_mib`` lies within ``margin`` of the card or of the safe limit: measured
        packed, it would have to be measured again alone."""
        return any(
            abs(peak_mib - bound) <= self.margin * bound for bound in (self.safe_limit_mib, self.card_mib) if bound
        )


@dataclass(frozen=True)
class Evidence:
    """A pair's measured trials, split: what the plan rests on, and the configurations measured only by packed
    trials it may not rest on (each needs a serial trial)."""

    usable: list[TrialView]
    unconfirmed: set[tuple[int | None, int | None]]

    def needs_serial(self, config: tuple[int | None, int | None]) -> bool:
        """True when ``config`` was measured, but only packed: the next trial of it must run alone on the card."""
        return config in self.unconfirmed or self.packed_only(config)

    def packed_only(self, config: tuple[int | None, int | None]) -> bool:
        modes = {v.mode for v in self.usable if v.config == config}
        return bool(modes) and SERIAL not in modes


def evidence(views: list[TrialView], rule: ConfirmationRule) -> Evidence:
    """Per configuration: its serial measurements when it has any (they replace packed ones), else its trusted
    packed ones. Trials that measured nothing are left out."""
    measured = [v for v in views if v.measured]
    serial = {v.config for v in measured if v.mode != PACKED}
    usable = [v for v in measured if v.mode != PACKED or (v.config not in serial and rule.trusted(v))]
    kept = {v.config for v in usable}
    unconfirmed = {v.config for v in measured if v.config not in kept}
    return Evidence(usable, unconfirmed)
