"""Adaptive batch-size reduction for a pair that does not fit: few trials, each one verified.

The candidate configurations form a *reduction path* from the original batch sizes down to the floor
(background first, foreground first, or both in proportion), on the study's batch grid (search/policy/batch_grid.py:
the divisors of each configured batch size, or every size). Memory only grows with batch size, so
along the path the feasible configurations are a suffix: we look for the first feasible position.

Each step tests the position the fitted memory model predicts to be the boundary (or its neighbour,
whichever leaves less to search if the model is right), clamped so that the remaining candidates can
always be finished by bisection within the budget ``ceil(log2(N)) + 1`` trials, N being the number of
possible answers. With an exact model that is two trials; with a wrong one, never more than the bound.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from gpupair_search.launcher.errors import UserError
from gpupair_search.search.policy.batch_grid import BatchGrid, Config


class Policy(str, Enum):
    """The orders of the model-guided search: which batch size shrinks first."""

    BACKGROUND_FIRST = "background-first"
    FOREGROUND_FIRST = "foreground-first"
    PROPORTIONAL = "proportional"

    def __str__(self) -> str:  # the name a user types and the study stores
        return self.value


def reduction_path(
    fg: int | None, bg: int | None, policy: Policy, floor: int = 1, grid: BatchGrid = BatchGrid.ANY
) -> list[Config]:
    """Positions 1..L of the path (position 0, the original configuration, is not included), on ``grid``."""
    return grid.restrict(_unit_path(fg, bg, policy, floor), (fg, bg), floor)


def _unit_path(fg: int | None, bg: int | None, policy: Policy, floor: int) -> list[Config]:
    path: list[Config] = []

    def add(config: Config) -> None:
        if config != (fg, bg) and (not path or path[-1] != config):
            path.append(config)

    if policy is Policy.PROPORTIONAL and fg is not None and bg is not None:
        steps = max(fg, bg) - floor
        for k in range(1, steps + 1):
            scale = 1 - k / steps
            add((max(floor, round(floor + (fg - floor) * scale)), max(floor, round(floor + (bg - floor) * scale))))
        return path
    order = ["bg", "fg"] if policy is not Policy.FOREGROUND_FIRST else ["fg", "bg"]
    current = {"fg": fg, "bg": bg}
    for which in order:
        start = current[which]
        if start is None:
            continue
        for b in range(start - 1, floor - 1, -1):
            current[which] = b
            add((current["fg"], current["bg"]))
    return path


def budget(path_length: int) -> int:
    """Verification trials allowed for a path of this length: ceil(log2(N)) + 1, N = L + 1 answers."""
    return math.ceil(math.log2(path_length + 1)) + 1 if path_length > 0 else 0


@dataclass(frozen=True)
class SearchState:
    """What is known along a path of length L: the answer lies in positions [low, high] (high = L + 1:
    nothing on the path fits)."""

    low: int
    high: int
    spent: int
    limit: int

    @property
    def done(self) -> bool:
        """Over when no candidate is left between the last one known not to fit and the first known to fit:
        monotone memory decides every other one, so no further trial could change the recommendation."""
        return self.low >= self.high or self.spent >= self.limit


def state_from(path_length: int, results: dict[int, bool], spent: int) -> SearchState:
    """``results``: position -> feasible, for every verified position of this path."""
    infeasible = [p for p, ok in results.items() if not ok]
    feasible = [p for p, ok in results.items() if ok]
    low = max(infeasible, default=0) + 1
    high = min(feasible, default=path_length + 1)
    return SearchState(min(low, high), high, spent, budget(path_length))


def next_position(state: SearchState, predicted_first_feasible: int | None, distrust: int = 0) -> int | None:
    """The position to verify next, or None when the search is over. ``distrust`` moves the model's guess
    that many positions (within what is still open, before the budget clamp) once it has kept missing."""
    if state.done:
        return None
    a, b = state.low, state.high
    half = 2 ** (state.limit - state.spent - 1)  # each branch must be finishable by bisection
    lo_ok, hi_ok = max(a, b - half), min(b - 1, a - 1 + half)
    if lo_ok > hi_ok:  # cannot happen while the budget invariant holds; fall back to bisection
        return (a + b - 1) // 2
    if predicted_first_feasible is None:
        guess = (a + b - 1) // 2
    else:
        j = min(max(predicted_first_feasible, a), b)  # where the model points, within what is still open
        j = min(max(j + distrust, a), b)
        candidates = [p for p in (j, j - 1) if a <= p <= b - 1]
        # If the model is right, testing j leaves {a..j}; testing j-1 leaves {j..b}: take the smaller.
        guess = min(candidates, key=lambda p: (p - a + 1) if p == j else (b - p)) if candidates else (a + b - 1) // 2
    return min(max(guess, lo_ok), hi_ok)


def answer(state: SearchState, path_length: int) -> int | None:
    """The first feasible position once the search is over, or None when the floor does not fit."""
    if state.low >= state.high and state.high <= path_length:
        return state.high
    return None


# -- search policies: how to walk a path ---------------------------------------------------------------
class SearchPolicy(Protocol):
    """How a pair's batch sizes are searched: the candidate configurations, largest first, and which one to
    verify next given the verified ones (position -> fits). The planner and the bench's baselines use the
    same protocol; a new policy is a class here and an entry in :data:`POLICIES`. ``path`` walks in unit
    steps; the planner moves it onto the study's batch grid (:meth:`BatchGrid.restrict`), and the other
    methods see only the length and positions of the path they are given, so every policy works on every grid."""

    @property
    def name(self) -> str:
        """What ``--policy`` calls it (read-only: the policies are frozen records)."""
        ...

    def path(self, original: Config, floor: int) -> list[Config]: ...

    def budget(self, path_length: int) -> int: ...

    def next_position(
        self, path_length: int, results: dict[int, bool], predicted_first_feasible: int | None, distrust: int
    ) -> int | None: ...

    def answer(self, path_length: int, results: dict[int, bool]) -> int | None: ...


@dataclass(frozen=True)
class ModelGuided:
    """Ours: test where the fitted memory model puts the boundary, clamped so that bisection can always
    finish within ``ceil(log2(N)) + 1`` trials."""

    order: Policy

    @property
    def name(self) -> str:
        return self.order.value

    def path(self, original: Config, floor: int) -> list[Config]:
        return reduction_path(original[0], original[1], self.order, floor)

    def budget(self, path_length: int) -> int:
        return budget(path_length)

    def next_position(
        self, path_length: int, results: dict[int, bool], predicted_first_feasible: int | None, distrust: int
    ) -> int | None:
        return next_position(state_from(path_length, results, len(results)), predicted_first_feasible, distrust)

    def answer(self, path_length: int, results: dict[int, bool]) -> int | None:
        return answer(state_from(path_length, results, len(results)), path_length)


@dataclass(frozen=True)
class DoublingBisection:
    """Baseline (Lightning's batch-size finder): from the floor end, double while it fits, then bisect.
    Ignores the memory model."""

    name: str = "doubling-bisection"

    def path(self, original: Config, floor: int) -> list[Config]:
        return reduction_path(original[0], original[1], Policy.BACKGROUND_FIRST, floor)

    def budget(self, path_length: int) -> int:
        return path_length

    def next_position(
        self, path_length: int, results: dict[int, bool], predicted_first_feasible: int | None, distrust: int
    ) -> int | None:
        def ascending(k: int) -> int:  # k-th configuration from the floor end, as a path position
            return path_length + 1 - k

        k, last_ok, first_bad = 1, 0, path_length + 1
        while k <= path_length:  # replay the doubling phase on what is known
            position = ascending(k)
            if position not in results:
                return position
            if not results[position]:
                first_bad = k
                break
            last_ok, k = k, k * 2
        lo, hi = last_ok, first_bad
        while hi - lo > 1:  # then the bisection
            mid = (lo + hi) // 2
            if ascending(mid) not in results:
                return ascending(mid)
            lo, hi = (mid, hi) if results[ascending(mid)] else (lo, mid)
        return None

    def answer(self, path_length: int, results: dict[int, bool]) -> int | None:
        return min((p for p, ok in results.items() if ok), default=None)


@dataclass(frozen=True)
class Backoff:
    """Baseline (Accelerate's ``find_executable_batch_size``): multiply the batch size by ``factor`` after each
    OOM, background first, then foreground; stop at the first configuration that fits."""

    factor: float = 0.9
    name: str = "backoff-0.9"

    def path(self, original: Config, floor: int) -> list[Config]:
        fg, bg = original
        path: list[Config] = []
        while True:
            if bg is not None and bg > floor:
                bg = max(floor, min(bg - 1, int(bg * self.factor)))
            elif fg is not None and fg > floor:
                fg = max(floor, min(fg - 1, int(fg * self.factor)))
            else:
                return path
            path.append((fg, bg))

    def budget(self, path_length: int) -> int:
        return path_length

    def next_position(
        self, path_length: int, results: dict[int, bool], predicted_first_feasible: int | None, distrust: int
    ) -> int | None:
        if any(results.values()):
            return None
        position = len(results) + 1
        return position if position <= path_length else None

    def answer(self, path_length: int, results: dict[int, bool]) -> int | None:
        return min((p for p, ok in results.items() if ok), default=None)


_ALL_POLICIES: tuple[SearchPolicy, ...] = (*(ModelGuided(order) for order in Policy), DoublingBisection(), Backoff())
POLICIES: dict[str, SearchPolicy] = {p.name: p for p in _ALL_POLICIES}


def search_policy(name: str) -> SearchPolicy:
    """The policy named ``name`` (``--policy``), or a clear error listing the names there are."""
    try:
        return POLICIES[str(name.value if isinstance(name, Policy) else name)]
    except KeyError:
        raise UserError(f"--policy {name!r}: expected one of {', '.join(POLICIES)}") from None


def search(
    policy: SearchPolicy, original: Config, floor: int, fits: Callable[[Config], bool], grid: BatchGrid = BatchGrid.ANY
) -> tuple[int, Config | None]:
    """Run ``policy`` against an oracle (no model): the trials it spends and the configuration it answers."""
    path = grid.restrict(policy.path(original, floor), original, floor)
    results: dict[int, bool] = {}
    while (position := policy.next_position(len(path), results, None, 0)) is not None:
        results[position] = fits(path[position - 1])
    first = policy.answer(len(path), results)
    return len(results), (path[first - 1] if first else None)
