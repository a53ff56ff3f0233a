"""A study whose pairs form a foreground × background matrix (the matrix study), seen as that matrix.

When every job runs alone once and every ordered pair of two different jobs once, a verdict per cell says
more at a glance than 121 table rows: which model may run in the background of which. The diagonal is each
job alone. The report draws it (plots.verdict_matrix) and ``status`` prints it compactly (:func:`matrix_text`);
both read the cells from :func:`pair_grid`, so they cannot disagree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gpupair_search.search.policy.planner import PairPlan
from gpupair_search.search.policy.verdict import Verdict
from gpupair_search.search.views.labels import batches

#: One character per verdict for the text matrix, and a short word for the report's cells where there are no safe
#: batch sizes to show: each verdict's own (search/policy/verdict.py), so a new verdict shows in the matrix too.
MARKS: dict[Verdict, tuple[str, str]] = {v: (v.mark, v.cell_word) for v in Verdict}


@dataclass(frozen=True)
class PairGrid:
    """The plans of a matrix study by cell. ``jobs``: ``repo/model`` keys in settings order."""

    jobs: tuple[str, ...]
    cells: dict[tuple[str, str | None], PairPlan]  # (foreground, background); background None: the job alone

    def plan(self, foreground: str, background: str) -> PairPlan:
        """The cell's plan; on the diagonal, the job's solo run."""
        return self.cells[(foreground, None if foreground == background else background)]

    def labels(self) -> list[str]:
        """Short job names: the model, or the repository where the model is called "default" (MRT-OAST); the
        full key where short names would collide."""
        short = [key.split("/", 1)[1] if not key.endswith("/default") else key.split("/", 1)[0] for key in self.jobs]
        return short if len(set(short)) == len(short) else list(self.jobs)


def pair_grid(plans: Sequence[PairPlan]) -> PairGrid | None:
    """The plans as a matrix when they form one: each job alone exactly once, and each ordered pair of two
    different jobs exactly once, nothing else. None for any other study (the 12 groups of feasibility)."""
    cells: dict[tuple[str, str | None], PairPlan] = {}
    for plan in plans:
        cell = (plan.pair.foreground.key, plan.pair.background.key if plan.pair.background else None)
        if cell in cells or cell[0] == cell[1]:
            return None
        cells[cell] = plan
    jobs = tuple(fg for fg, bg in cells if bg is None)
    if len(jobs) < 2 or len(cells) != len(jobs) ** 2:
        return None
    if any((fg, bg) not in cells for fg in jobs for bg in jobs if fg != bg):
        return None
    return PairGrid(jobs, cells)


def safe_batches(plan: PairPlan) -> str:
    """The batch sizes verified safe, as a cell shows them: ``32/64`` for a pair, ``32`` for a job alone; ""
    when the pair has none."""
    if plan.recommended is None:
        return ""
    return batches(plan.recommended) if plan.pair.background is not None else batches(plan.recommended[:1])


def cell_text(plan: PairPlan) -> str:
    """What a cell of the report says: the safe batch sizes, else a word for the verdict."""
    return safe_batches(plan) or MARKS[plan.verdict][1]


def matrix_text(grid: PairGrid) -> str:
    """The matrix in a terminal, at most 80 columns for up to 40 jobs: one mark per cell, the jobs numbered across
    the top, and a key with each verdict's count."""
    labels = grid.labels()
    width = max(len(label) for label in labels)
    number = len(str(len(labels)))
    lines = [
        "pair matrix: foreground (rows) × background (columns, numbered as the rows)",
        " " * (number + 1 + width) + "".join(f" {i + 1:>{number}}" for i in range(len(labels))),
    ]
    for i, (fg, label) in enumerate(zip(grid.jobs, labels)):
        marks = "".join(f" {MARKS[grid.plan(fg, bg).verdict][0]:>{number}}" for bg in grid.jobs)
        lines.append(f"{i + 1:>{number}} {label:<{width}}{marks}")
    counts = {v: sum(p.verdict is v for p in grid.cells.values()) for v in Verdict}
    lines.append("key (the diagonal is the job alone; safe batch sizes: the table above):")
    lines += [f"  {MARKS[v][0]} {v.label}: {n}" for v, n in counts.items() if n]
    return "\n".join(lines)
