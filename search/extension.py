"""Adaptive batch-size reduction for a pair that does not fit: few trials, each one verified.

The candidate configurations form a *reduction path* from the original batch sizes down to the floor
(background first, foreground first, or both in proportion). Memory only grows with batch size, so
along the path the feasible configurations are a suffix: we look for the first feasible position.

Each step tests the position the fitted memory model predicts to be the boundary (or its neighbour,
whichever leaves less to search if the model is right), clamped so that the remaining candidates can
always be finished by bisection within the budget ``ceil(log2(N)) + 1`` trials, N being the number of
possible answers. With an exact model that is two trials; with a wrong one, never more than the bound.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum


class Policy(str, Enum):
    BACKGROUND_FIRST = "background-first"
    FOREGROUND_FIRST = "foreground-first"
    PROPORTIONAL = "proportional"


Config = tuple[int | None, int | None]  # (foreground batch size, background batch size); None: no knob


def reduction_path(fg: int | None, bg: int | None, policy: Policy, floor: int = 1) -> list[Config]:
    """Positions 1..L of the path (position 0, the original configuration, is not included)."""
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
