"""Between a measured pair and an Optuna trial: values, constraints and user attributes, and back.

* Objective: the pair's peak memory, the sum of each job's own peak (MiB, the safe bound); maximised in new
  studies, so that the best feasible trial is the largest pair that fits (study.py ``DIRECTION``).
* Constraints (Optuna 5 ``trial.set_constraint``; feasible when <= 0):
  ``out_of_memory`` (1 when a job ran out of memory or over the budget, else 0) and
  ``over_safe_limit_mib`` (peak minus the safe limit); also written as the list ``constraints`` (same order),
  the form optuna-dashboard reads.
* An OOM is a COMPLETE trial whose constraints are violated; a crash that is not an OOM is a FAIL
  trial with its reason in ``fail_reason``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from gpupair_search.launcher.outcome import Outcome
from gpupair_search.launcher.pair_runner import PairResult
from gpupair_search.search import optuna_adapter as adapter
from gpupair_search.search.feasible_best import is_feasible

OOM_KEY = "out_of_memory"
MARGIN_KEY = "over_safe_limit_mib"
LIST_CONSTRAINTS_KEY = "constraints"  # the list form, in the order OOM_KEY, MARGIN_KEY
PAIR_PARAM, FG_PARAM, BG_PARAM = "pair", "fg_batch_size", "bg_batch_size"
#: how a trial was measured (user attr ``measurement["mode"]``): alone on the study's card, emulated where the GPU
#: is bigger, with real OOMs; or packed with other trials on a big GPU, each job's peak without the card's limit
SERIAL, PACKED = "serial", "packed"
CONFIRM_PHASE = "confirm"  # a serial trial that re-measures a configuration measured packed
BATCH_DISTRIBUTION = optuna.distributions.IntDistribution(1, 65536, log=True)


def pair_peak_mib(result: PairResult) -> float:
    """Peak used against the limit. For an OOM, what it held plus what it tried to allocate (a lower bound
    of what it needed), so the margin shows how far off it was."""
    m = result.memory
    tried = (m.foreground_tried_to_allocate_mib or 0.0) + (m.background_tried_to_allocate_mib or 0.0)
    return m.sum_of_peaks_mib + (tried if result.outcome.is_oom else 0.0)


def record_result(trial: optuna.Trial, result: PairResult, safe_limit_mib: float,
                  interference: bool = True) -> tuple[TrialState, float | None]:
    """Store everything measured on ``trial``; returns the state and value to ``tell``. ``interference``: the
    study measures solo baselines, so the pair's slowdowns against them are stored too (a study without them
    has none to compare with, and reading every trial for them cost a tenth of a trial's bookkeeping)."""
    peak = pair_peak_mib(result)
    attrs: dict[str, Any] = {
        "outcome": result.outcome.value,
        "peak_mib": round(peak, 1),
        "memory": _rounded(asdict(result.memory)),
        "energy": _rounded(asdict(result.energy)),
        "device": result.device,
        "foreground_exit_code": result.foreground_exit_code,
        "foreground_duration_s": result.foreground_duration_s,
        "foreground_samples_per_second": result.foreground_samples_per_second,
        "background_runs": result.background_runs,
        "background_coverage": result.background_coverage,
        "phase_seconds": result.phase_seconds,
        "window": asdict(result.window) if result.window else None,  # the steady-state window (interference)
        "job_start": result.job_start,
        "performance_metrics": result.performance_metrics,
        "error_message": result.error_message,
        "warnings": result.warnings,
        "simulated": result.simulated,
        "result_dir": str(result.result_dir) if result.result_dir else None,
        "foreground": result.foreground.to_json(),
        "background": result.background.to_json() if result.background else None,
        "repeats": result.pair.repeats,  # how often the user's runner runs this configuration (export writes it back)
        "worst_case": {role: dict(case) for role, case in result.pair.worst_case.items()},  # mutation jobs' checked values
        "measurement": result.measurement or {"mode": SERIAL},
        "probe": result.probe,  # per job: {"rule": ..., "evaluation": ...} (launcher/probe_events.py)
        "outside_jobs_s": result.outside_jobs_s,  # the trial's wall time minus its jobs' own work
    }
    adapter.set_user_attrs(trial, attrs)
    figures = _interference(trial, attrs, result) if interference else None
    if figures is not None:
        trial.set_user_attr("interference", figures)
    if result.outcome.is_memory_verdict:
        constraints = {OOM_KEY: 1.0 if result.outcome.is_oom else 0.0, MARGIN_KEY: round(peak - safe_limit_mib, 1)}
        for key, value in constraints.items():
            trial.set_constraint(key, value)
        # optuna-dashboard (0.21) reads only the list form ``constraints`` (what constraints_func samplers
        # write), not Optuna 5's ``constraints:<key>`` keys: without it every trial shows as feasible there.
        # Optuna reads both forms, so ``trial.constraints`` then also holds "0", "1": the same values, so
        # feasibility (all <= 0) is unchanged.
        adapter.set_system_attr(trial.study, trial, LIST_CONSTRAINTS_KEY, list(constraints.values()))
        return TrialState.COMPLETE, round(peak, 1)
    trial.set_user_attr("fail_reason", f"{result.outcome.value}: {result.error_message}")
    return TrialState.FAIL, None


def _interference(trial: optuna.Trial, attrs: dict[str, Any], result: PairResult) -> dict[str, Any] | None:
    """The pair's interference figures against the baselines measured so far (optuna-dashboard shows user
    attributes; a finished trial's cannot change, so figures whose baseline comes later are in status and the
    report only)."""
    if result.background is None or result.outcome is not Outcome.OK:
        return None
    from gpupair_search.search import interference  # it reads TrialViews, defined here

    params = dict(trial.params)
    this = TrialView(trial.number, TrialState.COMPLETE, params.get(PAIR_PARAM, ""), params.get(FG_PARAM),
                     params.get(BG_PARAM), trial.user_attrs.get("phase", "initial"), True, None, result.outcome.value, {**dict(trial.user_attrs), **attrs})
    others = [view(t) for t in trial.study.get_trials(deepcopy=False) if t.number != trial.number]
    found = interference.figures_by_trial(others + [this]).get(trial.number)
    return interference.attrs_for_trial(found) if found is not None else None


def _rounded(d: dict[str, Any]) -> dict[str, Any]:
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in d.items()}


@dataclass(frozen=True)
class TrialView:
    """A finished or pending trial, read back for planning, tables, plots and export."""

    number: int
    state: TrialState
    pair_key: str
    fg_batch: int | None
    bg_batch: int | None
    phase: str  # "initial", "extension" or "retry"
    feasible: bool | None  # None: not COMPLETE
    peak_mib: float | None
    outcome: str | None
    attrs: dict[str, Any]

    @property
    def measured(self) -> bool:
        """False for a trial that ended without a measurement (runner died, interrupted): it is re-run."""
        return is_measured(self.state, self.attrs)

    @property
    def config(self) -> tuple[int | None, int | None]:
        return self.fg_batch, self.bg_batch

    @property
    def mode(self) -> str | None:
        """"serial" or "packed" once measured (trials from before packing existed: serial); None before."""
        return measurement_mode(self.state, self.attrs)


def measurement_mode(state: TrialState, attrs: dict[str, Any]) -> str | None:
    if not is_measured(state, attrs):
        return None
    return (attrs.get("measurement") or {}).get("mode", SERIAL)


def is_measured(state: TrialState, attrs: dict[str, Any]) -> bool:
    """A finished trial whose result was recorded in full: COMPLETE with an outcome, or FAIL with its outcome and
    ``fail_reason`` (written last). A runner killed while recording leaves an outcome alone: not measured."""
    return "outcome" in attrs and (state is TrialState.COMPLETE or (state is TrialState.FAIL and "fail_reason" in attrs))


def view(trial: FrozenTrial) -> TrialView:
    params = trial.params or trial.system_attrs.get("fixed_params", {})
    feasible = None
    if trial.state is TrialState.COMPLETE:
        feasible = is_feasible(trial)
    return TrialView(
        number=trial.number, state=trial.state, pair_key=params.get(PAIR_PARAM, trial.user_attrs.get("pair_key", "")),
        fg_batch=params.get(FG_PARAM), bg_batch=params.get(BG_PARAM),
        phase=trial.user_attrs.get("phase", "initial"), feasible=feasible,
        peak_mib=trial.user_attrs.get("peak_mib"), outcome=trial.user_attrs.get("outcome"),
        attrs=dict(trial.user_attrs),
    )
