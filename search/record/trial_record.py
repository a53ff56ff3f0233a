"""The trial record: what a trial holds, typed, and its one mapping to and from Optuna's user attributes.

A trial's user attributes are written in three steps, each a typed record here:

* :class:`Queued`, when the study queues it (pair, phase, the memory model's prediction, what it retries);
* :class:`Measured`, when its pair has run (every field of the :class:`PairResult` that a view reads);
* the closing fields of :class:`TrialRecord` (why it failed, which trial it duplicated, its interference figures).

:meth:`TrialRecord.to_attrs` and :meth:`TrialRecord.from_attrs` are the only code that knows the attribute names;
every view reads the typed record (``TrialView.record``). Attribute layouts written by earlier versions are read
by :func:`migrate`, and only there. A field added to a record is added to its dataclass and its ``to_attrs``:
``from_attrs`` reads every field by its name, and a study stored before the field existed reads its default.

Optuna's side of a trial:

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

import collections.abc
import dataclasses
import typing
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from enum import Enum
from typing import Any, TypeVar

import optuna
from optuna.trial import FrozenTrial, TrialState

from gpupair_search.launcher.errors import UserError
from gpupair_search.launcher.measurement import EnergyStats, MemoryStats
from gpupair_search.launcher.outcome import Outcome
from gpupair_search.launcher.pair_runner import PairResult, probe_label
from gpupair_search.launcher.spec import JobConfig
from gpupair_search.launcher.window_stats import WindowStats
from gpupair_search.search.record import optuna_adapter as adapter
from gpupair_search.search.record.feasible_best import is_feasible

OOM_KEY = "out_of_memory"
MARGIN_KEY = "over_safe_limit_mib"
LIST_CONSTRAINTS_KEY = "constraints"  # the list form, in the order OOM_KEY, MARGIN_KEY
PAIR_PARAM, FG_PARAM, BG_PARAM = "pair", "fg_batch_size", "bg_batch_size"
#: how a trial was measured (``Measured.measurement.mode``): alone on the study's card, emulated where the GPU
#: is bigger, with real OOMs; or packed with other trials on a big GPU, each job's peak without the card's limit
SERIAL, PACKED = "serial", "packed"
INITIAL, EXTENSION = "initial", "extension"  # phases; the others: CONFIRM_PHASE, baselines.BASELINE_PHASE
CONFIRM_PHASE = "confirm"  # a serial trial that re-measures a configuration measured packed
BATCH_DISTRIBUTION = optuna.distributions.IntDistribution(1, 65536, log=True)

_R = TypeVar("_R", bound="_Stored")


# -- the records ------------------------------------------------------------------------------------------
class _Stored:
    """A record stored as user attributes: every field under its own name, encoded by its type (see _encode,
    _decode), so that a new field is one line in its dataclass. ``_KEEP_NONE``: fields written even when None."""

    _KEEP_NONE: frozenset[str] = frozenset()

    def to_attrs(self) -> dict[str, Any]:
        out = {f.name: _encode(getattr(self, f.name)) for f in dataclasses.fields(self)}  # type: ignore[arg-type]
        return {k: v for k, v in out.items() if v is not None or k in self._KEEP_NONE}

    @classmethod
    def from_attrs(cls: type[_R], attrs: Mapping[str, Any]) -> _R:
        """The record from stored attributes; a field stored before it existed (or stored as None where it may not
        be) reads its default."""
        hints = typing.get_type_hints(cls)
        values = {}
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            decoded = _decode(hints[f.name], attrs.get(f.name))
            if decoded is not None or (f.name in attrs and _optional(hints[f.name])):
                values[f.name] = decoded
        return cls(**values)


@dataclass(frozen=True)
class Queued(_Stored):
    """What the study writes when it queues a trial; a retry keeps it, with ``retry_of`` set."""

    pair_key: str = ""
    group: int | None = None
    phase: str = INITIAL  # INITIAL, EXTENSION, CONFIRM_PHASE or baselines.BASELINE_PHASE
    note: str = ""
    predicted_peak_mib: float | None = None  # the memory model's pair peak when it was queued
    extends: str | None = None  # an extension trial: the pair it extends, and its step on the path
    extension_step: int | None = None
    retry_of: int | None = None  # the unmeasured trial this one runs again

    def retried(self, trial_number: int) -> Queued:
        """The queue entry of a re-run of ``trial_number`` (the prediction is made again when it is planned)."""
        return replace(self, predicted_peak_mib=None, retry_of=trial_number)


@dataclass(frozen=True)
class Measurement(_Stored):
    """How a trial was measured: alone on the card (``SERIAL``) or packed with other trials on a big GPU."""

    _KEEP_NONE = frozenset({"card_mib"})

    mode: str = SERIAL
    device: str | None = None
    card_mib: float | None = None  # the card (or host-memory budget) it was judged against; None when packed
    trials_at_start: int | None = None  # packed: trials running when it started, itself included
    jobs_started: str | None = None


@dataclass(frozen=True)
class Measured(_Stored):
    """What a trial's pair measured. A field of :class:`PairResult` with the same name is copied by
    :meth:`from_result` as it is; the others are derived there."""

    _KEEP_NONE = frozenset(
        {
            "memory",
            "energy",
            "window",
            "foreground_exit_code",
            "foreground_samples_per_second",
            "background_coverage",
            "result_dir",
            "background",
            "peak_mib",
            "foreground_duration_s",
            "background_runs",
        }
    )

    outcome: Outcome
    peak_mib: float | None = None  # the pair's peak against the limit (pair_peak_mib), rounded
    memory: MemoryStats | None = None
    energy: EnergyStats | None = None
    device: Mapping[str, Any] = field(default_factory=dict)
    foreground_exit_code: int | None = None
    foreground_duration_s: float | None = None
    foreground_samples_per_second: float | None = None
    background_runs: int | None = None
    background_coverage: float | None = None
    phase_seconds: Mapping[str, float] = field(default_factory=dict)
    window: WindowStats | None = None  # the foreground's steady-state window (interference)
    job_start: Mapping[str, str] = field(default_factory=dict)
    performance_metrics: Mapping[str, float] = field(default_factory=dict)
    error_message: str = ""
    warnings: tuple[str, ...] = ()
    simulated: bool = False
    result_dir: str | None = None
    foreground: JobConfig | None = None  # as run (probe additions included)
    background: JobConfig | None = None
    repeats: int = 1  # how often the user's runner runs this configuration (export writes it back)
    worst_case: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # mutation jobs' checked values
    measurement: Measurement = Measurement()
    #: per role ("foreground", "background"): how its memory was probed, {"rule": ..., "evaluation": ...}
    #: (launcher/probe_events.py); empty for a trial measured before probes were recorded
    probe: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    jobs_s: float | None = None  # seconds its jobs did their own work (PairResult.jobs_s)
    outside_jobs_s: float | None = None  # the trial's wall time minus ``jobs_s``: waits, start-up, bookkeeping
    background_ready_by: str = ""  # what told the runner the background was ready ("" without one)

    @property
    def probe_label(self) -> str:
        """``probe: bounded steps``, ``probe: plateau`` or ``full epoch``, as on the trial's line."""
        return probe_label(self.probe)

    @classmethod
    def from_result(cls, result: PairResult) -> Measured:
        derived = {
            "peak_mib": round(pair_peak_mib(result), 1),
            "memory": _rounded(result.memory),
            "energy": _rounded(result.energy),
            "warnings": tuple(result.warnings),
            "result_dir": str(result.result_dir) if result.result_dir else None,
            "repeats": result.pair.repeats,
            "worst_case": {role: dict(case) for role, case in result.pair.worst_case.items()},
            "measurement": Measurement.from_attrs(result.measurement) if result.measurement else Measurement(),
        }
        same = {
            f.name: getattr(result, f.name)
            for f in dataclasses.fields(cls)
            if f.name not in derived and hasattr(result, f.name)
        }
        return cls(**same, **derived)


@dataclass(frozen=True)
class Closing(_Stored):
    """What is written when a trial ends without (or after) its measurement."""

    fail_reason: str | None = None  # written last: a FAIL trial with an outcome and this was measured in full
    skipped_duplicate_of: int | None = None  # closed unrun: this trial measured (or runs) the same configuration
    interference: Mapping[str, Any] | None = None  # interference.attrs_for_trial, for the dashboard and export
    placement: Mapping[str, Any] | None = None  # where it ran (search/engine/placement.py)
    artifact_errors: tuple[str, ...] | None = None  # files that could not be attached to it


@dataclass(frozen=True)
class TrialRecord:
    """Everything a trial holds beyond its parameters, typed: the one thing every view reads. Stored flat: the
    queue's fields, the measurement's and the closing ones side by side (what optuna-dashboard shows)."""

    queued: Queued = Queued()
    measured: Measured | None = None  # None: its pair has not run, or the runner died before recording it
    closing: Closing = Closing()

    @property
    def fail_reason(self) -> str | None:
        return self.closing.fail_reason

    @property
    def skipped_duplicate_of(self) -> int | None:
        return self.closing.skipped_duplicate_of

    def to_attrs(self) -> dict[str, Any]:
        return {
            **self.queued.to_attrs(),
            **(self.measured.to_attrs() if self.measured else {}),
            **self.closing.to_attrs(),
        }

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any]) -> TrialRecord:
        attrs = migrate(attrs)
        return cls(
            queued=Queued.from_attrs(attrs),
            measured=Measured.from_attrs(attrs) if "outcome" in attrs else None,
            closing=Closing.from_attrs(attrs),
        )

    def is_measured(self, state: TrialState) -> bool:
        """A finished trial whose result was recorded in full: COMPLETE with an outcome, or FAIL with its outcome
        and ``fail_reason`` (written last). A runner killed while recording leaves an outcome alone: not measured."""
        return self.measured is not None and (
            state is TrialState.COMPLETE or (state is TrialState.FAIL and self.fail_reason is not None)
        )

    def mode(self, state: TrialState) -> str | None:
        """ "serial" or "packed" once measured; None before."""
        return self.measured.measurement.mode if self.is_measured(state) and self.measured else None


def migrate(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """Attributes in the layout :meth:`TrialRecord.from_attrs` reads, from any version's.

    The one place that knows earlier layouts: a trial measured before packing existed has no ``measurement``
    (it was measured alone: serial); a field written before it existed reads its default (``_Stored.from_attrs``,
    ``_build``), and a field that is renamed one day is mapped from its old name here. An outcome this version
    does not know is refused: its numbers cannot be judged."""
    out = dict(attrs)
    if "outcome" in out and _outcome(out["outcome"]) is None:
        raise UserError(
            f"a trial holds the outcome {out['outcome']!r}, which this version does not know; read the "
            "study with the version that measured it"
        )
    if "outcome" in out and not out.get("measurement"):
        out["measurement"] = {"mode": SERIAL}
    return out


# -- writing ----------------------------------------------------------------------------------------------
def pair_peak_mib(result: PairResult) -> float:
    """Peak used against the limit. For an OOM, what it held plus what it tried to allocate (a lower bound
    of what it needed), so the margin shows how far off it was."""
    m = result.memory
    tried = (m.foreground_tried_to_allocate_mib or 0.0) + (m.background_tried_to_allocate_mib or 0.0)
    return m.sum_of_peaks_mib + (tried if result.outcome.is_oom else 0.0)


def record_result(
    trial: optuna.Trial,
    result: PairResult,
    safe_limit_mib: float,
    figures: Callable[[TrialView], Mapping[str, Any] | None] | None = None,
) -> tuple[TrialState, float | None]:
    """Store everything measured on ``trial``; returns the state and value to ``tell``. ``figures``: the
    interference figures of the trial as just measured (a study without solo baselines has none to compare
    with, and reading every trial for them cost a tenth of a trial's bookkeeping)."""
    measured = Measured.from_result(result)
    adapter.set_user_attrs(trial, measured.to_attrs())
    if figures is not None and result.background is not None and result.outcome is Outcome.OK:
        found = figures(view_running(trial, measured))
        if found is not None:
            _close(trial, Closing(interference=found))
    peak = pair_peak_mib(result)
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
    mark_failed(trial, f"{result.outcome.value}: {result.error_message}")
    return TrialState.FAIL, None


def queue_attrs(queued: Queued) -> dict[str, Any]:
    """The user attributes to enqueue a trial with."""
    return queued.to_attrs()


def mark_failed(trial: optuna.Trial, reason: str) -> None:
    _close(trial, Closing(fail_reason=reason))


def mark_duplicate(trial: optuna.Trial, twin: int) -> None:
    _close(trial, Closing(skipped_duplicate_of=twin))


def mark_placement(trial: optuna.Trial, placement: Mapping[str, Any]) -> None:
    _close(trial, Closing(placement=placement))


def mark_artifact_errors(trial: optuna.Trial, errors: list[str]) -> None:
    _close(trial, Closing(artifact_errors=tuple(errors)))


def _close(trial: optuna.Trial, fields: Closing) -> None:
    """Write the closing fields that are set (each its own attribute: the others may be there already)."""
    for key, value in fields.to_attrs().items():
        trial.set_user_attr(key, value)


# -- reading ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrialView:
    """A finished or pending trial, read back for planning, tables, plots and export."""

    number: int
    state: TrialState
    pair_key: str
    fg_batch: int | None
    bg_batch: int | None
    feasible: bool | None  # None: not COMPLETE
    record: TrialRecord

    @classmethod
    def of(
        cls,
        number: int,
        state: TrialState,
        pair_key: str,
        fg_batch: int | None,
        bg_batch: int | None,
        feasible: bool | None,
        attrs: Mapping[str, Any],
    ) -> TrialView:
        """A view of a trial with these user attributes (tests and tools build trials this way)."""
        return cls(number, state, pair_key, fg_batch, bg_batch, feasible, TrialRecord.from_attrs(attrs))

    @property
    def phase(self) -> str:
        return self.record.queued.phase

    @property
    def peak_mib(self) -> float | None:
        return self.record.measured.peak_mib if self.record.measured else None

    @property
    def outcome(self) -> str | None:
        return self.record.measured.outcome.value if self.record.measured else None

    @property
    def measured(self) -> bool:
        """False for a trial that ended without a measurement (runner died, interrupted): it is re-run."""
        return self.record.is_measured(self.state)

    @property
    def config(self) -> tuple[int | None, int | None]:
        return self.fg_batch, self.bg_batch

    @property
    def mode(self) -> str | None:
        """ "serial" or "packed" once measured (trials from before packing existed: serial); None before."""
        return self.record.mode(self.state)


def record_of(trial: FrozenTrial | optuna.Trial) -> TrialRecord:
    return TrialRecord.from_attrs(trial.user_attrs)


def view(trial: FrozenTrial) -> TrialView:
    params = trial.params or adapter.enqueued_params(trial)
    record = record_of(trial)
    feasible = is_feasible(trial) if trial.state is TrialState.COMPLETE else None
    return TrialView(
        number=trial.number,
        state=trial.state,
        pair_key=params.get(PAIR_PARAM, record.queued.pair_key),
        fg_batch=params.get(FG_PARAM),
        bg_batch=params.get(BG_PARAM),
        feasible=feasible,
        record=record,
    )


def view_running(trial: optuna.Trial, measured: Measured) -> TrialView:
    """A running trial as it will read once told COMPLETE with ``measured``."""
    params = dict(trial.params)
    record = replace(record_of(trial), measured=measured)
    return TrialView(
        trial.number,
        TrialState.COMPLETE,
        params.get(PAIR_PARAM, ""),
        params.get(FG_PARAM),
        params.get(BG_PARAM),
        True,
        record,
    )


def is_measured(state: TrialState, attrs: Mapping[str, Any]) -> bool:
    """:meth:`TrialRecord.is_measured` of a trial's raw attributes (tools that hold FrozenTrials)."""
    return TrialRecord.from_attrs(attrs).is_measured(state)


def measurement_mode(state: TrialState, attrs: Mapping[str, Any]) -> str | None:
    return TrialRecord.from_attrs(attrs).mode(state)


# -- helpers ----------------------------------------------------------------------------------------------
def _encode(value: Any) -> Any:
    """A field's value as JSON (what Optuna stores)."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, JobConfig):
        return value.to_json()
    if isinstance(value, _Stored):
        return value.to_attrs()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    if isinstance(value, Mapping):
        return {k: _encode(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [_encode(v) for v in value]
    return value


def _decode(hint: Any, raw: Any) -> Any:
    """A stored value as the field's type; None for None."""
    if raw is None:
        return None
    target = next((a for a in typing.get_args(hint) if a is not type(None)), hint) if _optional(hint) else hint
    origin = typing.get_origin(target) or target
    if target is JobConfig:
        return _job(raw)
    if isinstance(target, type) and issubclass(target, Enum):
        return target(raw)
    if isinstance(target, type) and issubclass(target, _Stored):
        return target.from_attrs(raw)
    if dataclasses.is_dataclass(target):
        return _build(target, raw)
    if origin is tuple:
        return tuple(raw)
    if origin in (Mapping, dict, collections.abc.Mapping):
        return dict(raw)
    if target is float and isinstance(raw, int):
        return float(raw)
    return raw


def _optional(hint: Any) -> bool:
    return type(None) in typing.get_args(hint)


def _build(cls: Any, data: Mapping[str, Any] | None) -> Any:
    """``cls`` from a stored dict: fields it no longer has are dropped, fields added since read their default
    (None for a field without one)."""
    if not isinstance(data, Mapping):
        return None
    names = {f.name: f for f in dataclasses.fields(cls)}
    values = {k: v for k, v in data.items() if k in names}
    for name, f in names.items():
        if name not in values and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            values[name] = None
    return cls(**values)


def _job(data: Mapping[str, Any] | None) -> JobConfig | None:
    if not data:
        return None
    return JobConfig(data["repo"], data["model"], dict(data.get("hyperparameters") or {}))


def _outcome(value: Any) -> Outcome | None:
    try:
        return Outcome(value)
    except ValueError:
        return None


def _rounded(stats: Any) -> Any:
    return replace(stats, **{k: round(v, 3) for k, v in asdict(stats).items() if isinstance(v, float)})
