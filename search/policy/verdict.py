"""What the study concludes about a pair: the verdict, with what it means and how every view shows it.

One enum, so a new verdict is added here (and produced by the planner) and the table, the report, the
dashboard and the export all show it the same way.
"""

from __future__ import annotations

from enum import Enum


class Verdict(str, Enum):
    FITS = "fits"
    FITS_REDUCED = "fits_reduced"
    SEARCHING = "searching"
    CONFIRMING = "confirming"
    DOES_NOT_FIT = "does_not_fit"
    NOT_REDUCIBLE = "not_reducible"
    INFEASIBLE = "infeasible"
    FAILED = "failed"
    PENDING = "pending"

    @property
    def label(self) -> str:
        """The words every view uses for it (legend, table, note)."""
        return _STYLE[self][0]

    @property
    def colour(self) -> str:
        return _STYLE[self][1]

    @property
    def mark(self) -> str:
        """One character, for the text pair matrix."""
        return _STYLE[self][2]

    @property
    def cell_word(self) -> str:
        """A short word for a matrix cell that has no safe batch sizes to show ("" for the verdicts that do)."""
        return _STYLE[self][3]

    @property
    def is_safe(self) -> bool:
        """A configuration of the pair was verified under the limit: it can be exported."""
        return self in (Verdict.FITS, Verdict.FITS_REDUCED)

    @property
    def is_measured(self) -> bool:
        """Something was measured at the configured batch sizes (everything but PENDING)."""
        return self is not Verdict.PENDING

    @property
    def shows_frontier(self) -> bool:
        """The pair went through the batch-size search, so its feasible frontier is worth a figure."""
        return self in (Verdict.FITS_REDUCED, Verdict.DOES_NOT_FIT, Verdict.SEARCHING)

    def __str__(self) -> str:  # f-strings and tables print the stored value, as before the enum
        return self.value


_STYLE: dict[Verdict, tuple[str, str, str, str]] = {  # verdict -> (label, colour, matrix mark, matrix cell word)
    Verdict.FITS: ("fits at the configured batch sizes", "#2ca02c", "F", ""),
    Verdict.FITS_REDUCED: ("fits after batch-size reduction", "#1f77b4", "R", ""),
    Verdict.SEARCHING: ("does not fit as configured; smaller batch sizes being verified", "#ffbf00", "?", "searching"),
    Verdict.CONFIRMING: ("measured packed; being confirmed alone on the card", "#9edae5", "c", "confirming"),
    Verdict.DOES_NOT_FIT: ("does not fit, even at the floor", "#d62728", "X", "no fit"),
    Verdict.NOT_REDUCIBLE: ("does not fit, no batch-size knob", "#8c1c13", "N", "no fit"),
    Verdict.INFEASIBLE: ("does not fit (extension off)", "#9467bd", "I", "no fit"),
    Verdict.FAILED: ("failed (crash; peak until the crash)", "#7f7f7f", "!", "crash"),
    Verdict.PENDING: ("not measured yet", "#c7c7c7", ".", "pending"),
}
