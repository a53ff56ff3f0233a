"""Decide, from the trials so far, each pair's verdict and the next configuration to verify.

Pure functions of stored trials, so a resumed or second worker plans exactly what the first would have.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from optuna.trial import TrialState

from gpupair_search.launcher.spec import PairSpec
from gpupair_search.search.policy.batch_grid import BatchGrid
from gpupair_search.search.policy.confirmation import DEFAULT_MARGIN, Confirm, ConfirmationRule, Evidence, evidence
from gpupair_search.search.policy.extension import Config, Policy, search_policy
from gpupair_search.search.policy.memory_model import (
    LinearMemoryModel,
    Observation,
    fit_linear,
    observations_from_trial,
)
from gpupair_search.search.policy.verdict import Verdict
from gpupair_search.search.record.trial_record import CONFIRM_PHASE, PACKED, TrialView

FITS, FITS_REDUCED, DOES_NOT_FIT = Verdict.FITS, Verdict.FITS_REDUCED, Verdict.DOES_NOT_FIT
NOT_REDUCIBLE, FAILED, PENDING, INFEASIBLE = Verdict.NOT_REDUCIBLE, Verdict.FAILED, Verdict.PENDING, Verdict.INFEASIBLE


@dataclass(frozen=True)
class ExtensionOptions:
    enabled: bool = True
    policy: str = Policy.BACKGROUND_FIRST  # a name of extension.POLICIES
    floor: int = 1
    confirm_margin: float = DEFAULT_MARGIN  # packed results this close to the card or the limit are re-measured
    grid: BatchGrid = BatchGrid.DIVISORS  # which batch sizes are candidates (--batch-grid)
    confirm: Confirm = Confirm.RECOMMENDED  # whether a recommendation measured packed is confirmed alone (--confirm)

    @property
    def confirms_recommendations(self) -> bool:
        return self.confirm is Confirm.RECOMMENDED


@dataclass
class PairPlan:
    pair: PairSpec
    original: Config
    verdict: Verdict = PENDING
    recommended: Config | None = None
    recommended_peak_mib: float | None = None
    path: list[Config] = field(default_factory=list)  # the candidates the search walks, largest first
    next_config: Config | None = None
    next_predicted_mib: float | None = None  # the memory model's peak for next_config, stored on its trial
    next_confirms: bool = False  # next_config was measured packed only: its next trial runs alone on the card
    extension_trials: int = 0
    extension_budget: int = 0
    trials: list[TrialView] = field(default_factory=list)
    detail: str = ""

    @property
    def measured_as(self) -> str:
        """How the pair's trials were measured: "alone" (each on the study's card), "packed", or both with
        counts, e.g. "1 packed + 2 alone" (search/policy/confirmation.py says which results a verdict rests on);
        "simulated" where nothing was measured."""
        modes = [t.mode for t in self.trials if t.mode is not None]
        packed, alone = modes.count(PACKED), len(modes) - modes.count(PACKED)
        if not modes:
            return "-"
        if all(
            t.record.measured is not None and t.record.measured.simulated for t in self.trials if t.mode is not None
        ):
            return "simulated"  # predicted from profiles: nothing was measured, alone or packed
        if not packed or not alone:
            return "packed" if packed else "alone"
        return f"{packed} packed + {alone} alone"

    @property
    def trials_spent(self) -> int:
        return sum(1 for t in self.trials if t.state in (TrialState.COMPLETE, TrialState.FAIL) and t.measured)


def fit_models(views: list[TrialView], profile_obs: dict[str, list[Observation]]) -> dict[str, LinearMemoryModel]:
    data: dict[str, list[Observation]] = {k: list(v) for k, v in profile_obs.items()}
    for v in views:
        if v.state is TrialState.COMPLETE:
            if v.record.measured is None:
                continue
            for key, obs in observations_from_trial(v.record.measured, v.fg_batch, v.bg_batch).items():
                data.setdefault(key, []).extend(obs)
    return {key: model for key, obs in data.items() if (model := fit_linear(obs)) is not None}


def predict_pair(pair: PairSpec, config: Config, models: dict[str, LinearMemoryModel]) -> float | None:
    total = 0.0
    for job, batch in ((pair.foreground, config[0]), (pair.background, config[1])):
        if job is None:
            continue
        model = models.get(job.key)
        if model is None:
            return None
        total += model.predict(batch)
    return total


def plan_pair(
    pair: PairSpec,
    original: Config,
    views: list[TrialView],
    models: dict[str, LinearMemoryModel],
    safe_limit_mib: float,
    options: ExtensionOptions,
    card_mib: float | None = None,
) -> PairPlan:
    """The pair's verdict and next trial. Packed measurements count only as :mod:`.confirmation` allows: a
    configuration measured packed near a boundary, and (``options.confirm``) every recommendation, is measured
    again alone."""
    plan = PairPlan(pair, original, trials=views)
    known = evidence(views, ConfirmationRule(safe_limit_mib, card_mib, options.confirm_margin))
    finished = [v for v in known.usable if v.state in (TrialState.COMPLETE, TrialState.FAIL)]
    initial = next((v for v in finished if v.config == original and v.state is TrialState.COMPLETE), None)
    if initial is None:
        failed = [v for v in finished if v.config == original and v.state is TrialState.FAIL and v.measured]
        if failed:
            plan.verdict, plan.detail = FAILED, (failed[-1].record.fail_reason or "")
        elif known.needs_serial(original):
            _confirm(plan, original, models)
        return plan
    if initial.feasible:
        plan.verdict, plan.recommended, plan.recommended_peak_mib = FITS, original, initial.peak_mib
        return _confirm(plan, original, models) if _unconfirmed(known, original, options) else plan
    if original == (None, None):
        plan.verdict, plan.detail = NOT_REDUCIBLE, "neither job has a batch-size knob"
        return plan
    if not options.enabled:
        plan.verdict = INFEASIBLE
        return plan
    policy = search_policy(options.policy)
    path = plan.path = options.grid.restrict(policy.path(original, options.floor), original, options.floor)
    if not path:
        plan.verdict, plan.detail = DOES_NOT_FIT, "already at the floor batch size"
        return plan
    index = {config: i + 1 for i, config in enumerate(path)}
    on_path = [v for v in finished if v.config in index and v.phase in ("extension", CONFIRM_PHASE)]
    crashed = [v for v in on_path if v.state is TrialState.FAIL and v.measured]
    if crashed:
        plan.verdict, plan.detail = FAILED, "extension trial failed: " + (crashed[-1].record.fail_reason or "")
        return plan
    results = {index[v.config]: bool(v.feasible) for v in on_path if v.state is TrialState.COMPLETE}
    plan.extension_trials = len(results)
    plan.extension_budget = policy.budget(len(path))
    target = safe_limit_mib
    position = policy.next_position(
        len(path), results, _predicted_first_feasible(pair, path, models, target), _distrust(on_path, target)
    )
    if position is not None:
        plan.verdict = Verdict.SEARCHING
        plan.next_config = path[position - 1]
        plan.next_predicted_mib = predict_pair(pair, plan.next_config, models)
        plan.next_confirms = known.needs_serial(plan.next_config)
        return plan
    first = policy.answer(len(path), results)
    if first is None:
        plan.verdict = DOES_NOT_FIT
        plan.detail = f"no configuration down to batch size {options.floor} fits"
        return plan
    plan.verdict, plan.recommended = FITS_REDUCED, path[first - 1]
    plan.recommended_peak_mib = next(
        v.peak_mib for v in on_path if v.config == plan.recommended and v.state is TrialState.COMPLETE
    )
    return _confirm(plan, plan.recommended, models) if _unconfirmed(known, plan.recommended, options) else plan


def _unconfirmed(known: Evidence, recommended: Config, options: ExtensionOptions) -> bool:
    """Whether the recommendation still needs its trial alone on the card: it was measured only packed, and the
    study confirms what it recommends (a packed result near a boundary is never usable, see :func:`evidence`)."""
    return options.confirms_recommendations and known.packed_only(recommended)


def _confirm(plan: PairPlan, config: Config, models: dict[str, LinearMemoryModel]) -> PairPlan:
    """The plan waits for a serial trial of ``config``, measured so far only packed: nothing is recommended
    until it is confirmed."""
    packed = [v.peak_mib for v in plan.trials if v.config == config and v.peak_mib is not None]
    plan.detail = f"packed peak {packed[-1]:,.0f} MiB" if packed else ""
    plan.recommended = plan.recommended_peak_mib = None
    plan.verdict, plan.next_config, plan.next_confirms = Verdict.CONFIRMING, config, True
    plan.next_predicted_mib = predict_pair(plan.pair, config, models)
    return plan


def _distrust(on_path: list[TrialView], target_mib: float) -> int:
    """How far to move past the model's first feasible position, in path positions, while its predictions keep
    turning out wrong the same way (memory is not linear there: an allocator step, say). After a streak of k
    such misses the proposal lands 2**(k-1) - 1 positions beyond the model's guess, so a model that is off by a
    step costs a few trials instead of a walk of single steps; next_position applies it, and its budget clamp
    turns this into bisection when trials run short."""
    streak, direction = 0, 0
    for v in on_path:
        predicted = v.record.queued.predicted_peak_mib
        if v.state is not TrialState.COMPLETE or predicted is None:
            continue
        if (predicted <= target_mib) == bool(v.feasible):
            streak = 0
            continue
        way = 1 if not v.feasible else -1  # it failed where the model said fit: go to smaller batches
        streak, direction = (streak + 1 if way == direction else 1), way
    return direction * (2 ** (streak - 1) - 1) if streak else 0


def _predicted_first_feasible(
    pair: PairSpec, path: list[Config], models: dict[str, LinearMemoryModel], target: float
) -> int | None:
    for position, config in enumerate(path, start=1):
        peak = predict_pair(pair, config, models)
        if peak is None:
            return None
        if peak <= target:
            return position
    return len(path) + 1
