"""Which reduced batch sizes the extension may recommend: ones a user can train with as configured.

A reduced batch only helps a user who can make up the difference with gradient accumulation. With the
``divisors`` grid (the default) every candidate divides the configured batch, so micro-batch × accumulation
steps is exactly the configured batch: the training a user asked for, in smaller pieces. With ``any``
(what studies ran before the grid existed) every batch size down to the floor is a candidate, and the
accumulation that gets closest from above, ceil(configured / micro-batch), overshoots the configured batch.
"""

from __future__ import annotations

import math
from enum import Enum

from gpupair_search.launcher.errors import UserError

#: What a study stored before it recorded a grid: the unit search is what it ran.
STORED_BEFORE_GRIDS = "any"

Config = tuple[int | None, int | None]  # (foreground batch size, background batch size); None: no knob


class BatchGrid(str, Enum):
    DIVISORS = "divisors"
    ANY = "any"

    def __str__(self) -> str:  # the name a user types and the study stores
        return self.value

    def candidates(self, configured: int, floor: int) -> list[int]:
        """The batch sizes below ``configured`` that a reduction may use, largest first."""
        below = range(configured - 1, floor - 1, -1)
        return list(below) if self is BatchGrid.ANY else [b for b in below if configured % b == 0]

    def snap(self, configured: int, floor: int, wanted: int) -> int:
        """The candidate a path that wants batch ``wanted`` uses: the largest one not above it (or, when none is,
        the smallest there is), so that a shrinking sequence stays a shrinking sequence on the grid. ``any``
        keeps ``wanted`` as it is, as the unit search always did."""
        if self is BatchGrid.ANY:
            return wanted
        allowed = [configured, *self.candidates(configured, floor)]
        return max((b for b in allowed if b <= wanted), default=min(allowed))

    def restrict(self, path: list[Config], original: Config, floor: int) -> list[Config]:
        """``path`` (a policy's unit-step reduction path, largest first) with each batch size moved onto this grid:
        the order of reduction stays the policy's, only the candidates change. Snapping keeps a shrinking path
        shrinking, so repeats are neighbours and are dropped, as is the original configuration."""
        out: list[Config] = []
        for config in path:
            snapped = tuple(
                None if b is None or before is None else self.snap(before, floor, b)
                for before, b in zip(original, config)
            )
            if snapped != original and (not out or out[-1] != snapped):
                out.append(snapped)  # type: ignore[arg-type]
        return out

    def accumulation_steps(self, configured: int, micro: int) -> int:
        """Gradient-accumulation steps for training at ``micro`` instead of ``configured``: exact for ``divisors``
        (micro × steps == configured), the smallest count that reaches it for ``any``."""
        if self is BatchGrid.DIVISORS and configured % micro == 0:
            return configured // micro
        return math.ceil(configured / micro)


def batch_grid(name: str | BatchGrid) -> BatchGrid:
    """The grid named ``name`` (``--batch-grid``), or a clear error listing the names there are."""
    try:
        return BatchGrid(str(name))
    except ValueError:
        raise UserError(f"--batch-grid {name!r}: expected one of {', '.join(g.value for g in BatchGrid)}") from None
