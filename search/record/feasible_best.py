"""The best trial of a study is a feasible one: what optuna-dashboard shows as "Best Trial" follows Optuna's rule.

Optuna 5's ``Study.best_trial`` picks the best value among COMPLETE trials whose constraints are all <= 0
(optuna/optuna#5426), but ``BaseStorage.get_best_trial``, which optuna-dashboard (0.21) calls for its "Best
Trial" card, ignores constraints (optuna/optuna-dashboard#772): it would show an out-of-memory pair as the
best. So the dashboard is served through :class:`FeasibleBestStorage`, a storage whose ``get_best_trial`` applies
Optuna's rule, and through :func:`drop_infeasible_best`, which empties the card when no trial is feasible
(the dashboard asks for a best trial whenever one is COMPLETE, and has no way to be told "none").

What "best" means depends on the study's direction: studies created since 2026-12-01 maximise the pair's
peak (best: the largest pair verified to fit under the safe limit); older ones minimise it (best: the
smallest feasible pair). Both read correctly; the rule is the same.
"""

from __future__ import annotations

import abc
import inspect
from collections.abc import Callable, Sequence
from typing import Any

from optuna.storages import BaseStorage
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

STUDY_DETAIL_ROUTE = ("GET", "/api/studies/<study_id:int>")  # optuna-dashboard 0.21, _app.py get_study_detail


def is_feasible(trial: FrozenTrial) -> bool:
    """Optuna's rule: every constraint <= 0 (a trial without constraints is feasible)."""
    return all(value <= 0.0 for value in trial.constraints.values())


def feasible_best(trials: Sequence[FrozenTrial], direction: StudyDirection) -> FrozenTrial | None:
    """The COMPLETE feasible trial with the best value, the first of equals; None when there is none."""
    feasible = [t for t in trials if t.state is TrialState.COMPLETE and t.value is not None and is_feasible(t)]
    if not feasible:
        return None
    sign = 1.0 if direction is StudyDirection.MAXIMIZE else -1.0

    def rank(trial: FrozenTrial) -> tuple[float, int]:
        assert trial.value is not None  # filtered above
        return sign * trial.value, -trial.number

    return max(feasible, key=rank)


def _delegating(cls: type) -> type:
    """Give ``cls`` every public method of BaseStorage it does not define, each calling ``self.inner``'s."""

    def delegate(name: str) -> Callable[..., Any]:
        def method(self: Any, *args: Any, **kwargs: Any) -> Any:
            return getattr(self.inner, name)(*args, **kwargs)

        method.__name__ = method.__qualname__ = name
        return method

    for name, _ in inspect.getmembers(BaseStorage, inspect.isfunction):
        if not name.startswith("_") and name not in vars(cls):
            setattr(cls, name, delegate(name))
    return abc.update_abstractmethods(cls)


@_delegating
class FeasibleBestStorage(BaseStorage):
    """Another storage, unchanged but for ``get_best_trial``: the best feasible trial (Optuna's ``best_trial``).

    When no COMPLETE trial is feasible it returns the storage's own choice, an infeasible trial; the dashboard
    then drops it (:func:`drop_infeasible_best`)."""

    def __init__(self, inner: BaseStorage) -> None:
        self.inner = inner

    def get_best_trial(self, study_id: int) -> FrozenTrial:
        trials = self.inner.get_all_trials(study_id, deepcopy=False, states=(TrialState.COMPLETE,))
        directions = self.inner.get_study_directions(study_id)
        best = feasible_best(trials, directions[0]) if len(directions) == 1 else None
        return best if best is not None else self.inner.get_best_trial(study_id)

    def __getattr__(self, name: str) -> Any:  # what a concrete storage adds (heartbeats, remove_session, ...)
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)


def drop_infeasible_best(app: Any) -> None:
    """Make optuna-dashboard's study view (a Bottle ``app``) list no best trial rather than an infeasible one."""
    method, rule = STUDY_DETAIL_ROUTE
    route = next((r for r in app.routes if r.method == method and r.rule == rule), None)
    if route is None:
        raise RuntimeError(f"optuna-dashboard has no route {method} {rule}: this version is not supported")
    view = route.callback

    def study_detail(*args: Any, **kwargs: Any) -> Any:
        body = view(*args, **kwargs)
        if isinstance(body, dict) and isinstance(body.get("best_trials"), list):
            body["best_trials"] = [t for t in body["best_trials"] if all(v <= 0 for v in t.get("constraints") or [])]
        return body

    route.callback = study_detail
    route.reset()
