"""A feasibility study on Optuna: pairs become enqueued trials, failing pairs extend themselves.

Resume is by construction: the trial queue and every measurement live in the storage; planning is a
pure function of stored trials (see planner.py); trials left RUNNING by a dead runner are failed
and re-queued once. A study's definition is fixed when it is created (fixed_definition.py): a later run
with another one stops before it writes anything, and readers never write.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import optuna
import psutil
from optuna.trial import FrozenTrial, TrialState

from gpupair_search.launcher import kill_points
from gpupair_search.launcher.experiments import Experiment
from gpupair_search.launcher.pair_runner import PairResult, with_batch_sizes
from gpupair_search.launcher.registry import Registry
from gpupair_search.launcher.spec import PairSpec, StudyKind
from gpupair_search.search.engine.baselines import (
    BASELINE_PARAM,
    BASELINE_PHASE,
    DEFAULT_BASELINES,
    baseline_specs,
    is_baseline,
    job_identity,
    jobs_at,
    reports_progress,
)
from gpupair_search.search.engine.fixed_definition import (
    DEFINITION_KEY,
    FixedDefinition,
    has_definition,
    stored_definition,
)
from gpupair_search.search.engine.interference import attrs_for_trial, figures_by_trial
from gpupair_search.search.engine.storage import HEARTBEAT_S, open_storage
from gpupair_search.search.engine.work_order import likely_failures_first, pair_order
from gpupair_search.search.policy.confirmation import ConfirmationRule
from gpupair_search.search.policy.extension import Config
from gpupair_search.search.policy.memory_model import LinearMemoryModel, Observation
from gpupair_search.search.policy.planner import ExtensionOptions, PairPlan, fit_models, plan_pair, predict_pair
from gpupair_search.search.record import optuna_adapter as adapter
from gpupair_search.search.record.trial_record import (
    BATCH_DISTRIBUTION,
    BG_PARAM,
    CONFIRM_PHASE,
    EXTENSION,
    FG_PARAM,
    INITIAL,
    PAIR_PARAM,
    SERIAL,
    Queued,
    TrialView,
    mark_duplicate,
    mark_failed,
    mark_placement,
    queue_attrs,
    record_of,
    record_result,
    view,
)

_HOST, _PID = "gpupair:host", "gpupair:pid"


class PairExecutor(Protocol):
    """Runs one pair and returns what it measured (real device or simulated)."""

    def run(self, pair: PairSpec, trial_number: int) -> PairResult: ...


@dataclass(frozen=True)
class StudySettings:
    name: str
    card_mib: float
    safe_limit_mib: float
    extension: ExtensionOptions = ExtensionOptions()


OBJECTIVE_NAME = "pair_peak_mib"  # the objective's name, as optuna-dashboard and ``trials_dataframe`` show it
#: New studies maximise the pair's peak: with OOM and the safe limit as constraints, the best trial (Optuna's
#: ``best_trial``, the dashboard's "Best Trial") is then the largest pair verified to fit, not the smallest pair.
#: Older studies minimise it; everything that reads a study works with either
#: (search/record/feasible_best.py). Trials are enqueued, never sampled, so the direction steers no search.
DIRECTION = "maximize"


_QUEUED_OR_DONE = (TrialState.WAITING, TrialState.RUNNING, TrialState.COMPLETE)
_TrialIndex = dict[tuple, list[FrozenTrial]]


def _params_key(params: dict) -> tuple:
    """``params`` as a dictionary key that compares as the dict does (1 == 1.0)."""
    return tuple(sorted(params.items()))


class FeasibilityStudy:
    def __init__(
        self,
        study: optuna.Study,
        settings: StudySettings,
        experiment: Experiment,
        registry: Registry,
        profile_obs: dict[str, list[Observation]] | None = None,
        definition: FixedDefinition | None = None,
    ) -> None:
        self.study, self.settings, self.experiment, self.registry = study, settings, experiment, registry
        self.profile_obs = profile_obs or {}
        self.definition = definition
        pairs = definition.job_pairs() if definition else experiment.pairs
        self.pairs = {p.key: p for p in pairs}
        self._originals = definition.originals() if definition else {}
        #: Called with each measured trial while it is RUNNING, to attach its files for optuna-dashboard; the CLI
        #: sets it (the files are a view: search/views/artifacts.py).
        self.attach_files: Callable[[optuna.Trial, PairResult], object] | None = None
        self.placement: dict | None = None  # where this worker runs (search/engine/placement.py), put on each trial
        self.pair_choices = tuple(self.pairs)
        #: Work the queue solos first, then likely failures first (search/engine/work_order.py); set by open_study from the
        #: named study. Queue order only: not part of the definition.
        self.likely_failures_first = False
        self.baselines = baseline_specs(self.pairs.values())  # solo runs of each job (search/engine/baselines.py)
        self.baseline_choices = tuple(self.baselines)

    @classmethod
    def open(
        cls,
        storage_url: str | optuna.storages.BaseStorage,
        settings: StudySettings,
        experiment: Experiment,
        registry: Registry,
        profile_obs: dict[str, list[Observation]] | None = None,
        definition: FixedDefinition | None = None,
    ) -> FeasibilityStudy:
        """Create the study, or resume it when ``definition`` is the one it was created with. A stored study with
        another definition raises :class:`DefinitionChanged` before anything is written."""
        storage = open_storage(storage_url)
        existing = _load_study(storage, settings.name)
        if existing is None:
            try:
                study = optuna.create_study(storage=storage, study_name=settings.name, direction=DIRECTION)
            except optuna.exceptions.DuplicatedStudyError:  # another worker created it a moment ago
                existing = _load_study(storage, settings.name, wait_for_definition=definition is not None)
            else:
                definition = definition.for_new_study() if definition is not None else None
                _write_definition(study, settings, experiment, definition)
                return cls(study, settings, experiment, registry, profile_obs, definition)
        stored = stored_definition(existing)
        if stored is not None and definition is not None:
            stored.check_same(definition)
            return cls(existing, settings, experiment, registry, profile_obs, stored)
        if stored is None and definition is not None:  # a study from before definitions were kept
            definition = definition.for_new_study()
            existing.set_user_attr(DEFINITION_KEY, definition.to_json())
        return cls(existing, settings, experiment, registry, profile_obs, definition)

    @classmethod
    def read(
        cls,
        study: optuna.Study,
        settings: StudySettings,
        experiment: Experiment,
        registry: Registry,
        profile_obs: dict[str, list[Observation]] | None = None,
    ) -> FeasibilityStudy:
        """A stored study, for reading only: its own definition (pairs, card, limit), nothing written."""
        return cls(study, settings, experiment, registry, profile_obs, stored_definition(study))

    @property
    def kind(self) -> StudyKind:
        """What the study's numbers are (from its definition; a study from before definitions were kept, from its
        name or its trials)."""
        if self.definition is not None:
            return StudyKind(self.definition.device_kind)
        for kind in StudyKind:
            if kind.name_suffix and self.settings.name.endswith(kind.name_suffix):
                return kind
        simulated = any(v.record.measured and v.record.measured.simulated for v in self.views())
        return StudyKind.SIMULATED if simulated else StudyKind.GPU

    # -- the queue --------------------------------------------------------------------------------
    def original_config(self, pair: PairSpec) -> Config:
        if pair.key in self._originals:
            return self._originals[pair.key]
        return self.registry.batch_sizes(pair)

    @property
    def wants_baselines(self) -> bool:
        """Whether this study measures solo baselines (its definition says; a study without one has none)."""
        if self.definition is not None and self.definition.baselines is not None:
            return self.definition.baselines
        return DEFAULT_BASELINES

    def _params(self, pair: PairSpec, config: Config) -> dict:
        params: dict = {BASELINE_PARAM: job_identity(pair.foreground)} if is_baseline(pair) else {PAIR_PARAM: pair.key}
        if config[0] is not None:
            params[FG_PARAM] = config[0]
        if config[1] is not None:
            params[BG_PARAM] = config[1]
        return params

    def _exists(
        self,
        params: dict,
        states: tuple[TrialState, ...],
        confirming: bool = False,
        trials: _TrialIndex | None = None,
    ) -> bool:
        """A trial of ``params`` in one of ``states``, or a FAIL trial that measured it (a crash is a result:
        it is not queued again on resume; an unmeasured FAIL is re-queued by :meth:`recover_stale`).
        ``confirming``: only trials that measure it alone on the card count (a confirmation, or a serial run).
        ``trials``: the study's trials read once by a caller that checks many configurations (:meth:`_index`)."""
        candidates = (
            trials.get(_params_key(params), [])
            if trials is not None
            else self.study.get_trials(deepcopy=False, states=_QUEUED_OR_DONE + (TrialState.FAIL,))
        )
        for t in candidates:
            if (
                t.state in states + (TrialState.FAIL,)
                and adapter.enqueued_params(t) == params
                and (t.state in states or record_of(t).is_measured(t.state))
                and (not confirming or _measures_alone(t))
            ):
                return True
        return False

    def _index(self) -> _TrialIndex:
        """The trials :meth:`_exists` looks at, by their parameters: one read of the storage for a whole queue
        (reading it once per pair made a settings file of 2,000 pairs take minutes to queue)."""
        index: _TrialIndex = {}
        for t in self.study.get_trials(deepcopy=False, states=_QUEUED_OR_DONE + (TrialState.FAIL,)):
            index.setdefault(_params_key(adapter.enqueued_params(t)), []).append(t)
        return index

    def _enqueue(
        self,
        pair: PairSpec,
        config: Config,
        phase: str,
        predicted: float | None = None,
        extension_step: int | None = None,
        trials: _TrialIndex | None = None,
    ) -> bool:
        params = self._params(pair, config)
        if self._exists(params, _QUEUED_OR_DONE, confirming=phase == CONFIRM_PHASE, trials=trials):
            return False
        key = params.get(PAIR_PARAM) or params[BASELINE_PARAM]
        queued = Queued(
            key, pair.group, phase, pair.note, predicted, pair.key if extension_step else None, extension_step
        )
        self.study.enqueue_trial(params, user_attrs=queue_attrs(queued))
        kill_points.reached("enqueued")
        return True

    def enqueue_initial(self) -> int:
        """One trial per pair at its configured batch sizes; never twice, across resumes. Each carries the
        memory model's prediction (from the shipped profiles), which decides whether packing is worth it."""
        models = self.models()
        pairs = list(self.pairs.values())
        if self.likely_failures_first:
            pairs = pair_order(pairs, {p.key: self.original_config(p) for p in pairs}, models)
        added, trials = 0, self._index()
        for p in pairs:
            config = self.original_config(p)
            predicted = predict_pair(p, config, models)
            added += self._enqueue(
                p, config, INITIAL, None if predicted is None else round(predicted, 1), trials=trials
            )
        return added

    def goes_serial(self, trial: FrozenTrial, models: dict[str, LinearMemoryModel] | None = None) -> bool:
        """Whether a queued trial should wait for the serial phase rather than run packed: a confirmation, or a
        configuration whose packed result could not stand, as predicted by the memory model (``models``: fitted
        to the trials measured so far; else the prediction stored when it was queued). That is a peak near the
        card or the safe limit, which would be measured again alone (search/policy/confirmation.py), and, where the
        study confirms its recommendations (``--confirm recommended``), one that fits clearly and so would be
        recommended and confirmed alone anyway. A wrong prediction costs time, never a verdict: whatever runs
        packed is still judged by the confirmation rule."""
        if record_of(trial).queued.phase in (CONFIRM_PHASE, BASELINE_PHASE):  # baselines: energy needs the GPU alone
            return True
        predicted = self._predicted_peak(trial, models)
        if predicted is None:
            return False
        extension = self.settings.extension
        rule = ConfirmationRule(self.settings.safe_limit_mib, self.settings.card_mib, extension.confirm_margin)
        clearly_fits = predicted <= self.settings.safe_limit_mib * (1 - extension.confirm_margin)
        return rule.near_a_bound(predicted) or (extension.confirms_recommendations and clearly_fits)

    def _predicted_peak(self, trial: FrozenTrial, models: dict[str, LinearMemoryModel] | None) -> float | None:
        """A queued trial's pair peak: the model's prediction now (solos measured since it was queued refine
        it), else the one stored with it."""
        queued = self._initial_pair(trial) if models is not None else None
        predicted = predict_pair(*queued, models) if queued is not None else None
        return predicted if predicted is not None else record_of(trial).queued.predicted_peak_mib

    def enqueue_baselines(self, plans: list[PairPlan] | None = None) -> int:
        """A solo trial of each job at its batch size in every pair's original configuration and, once a pair has
        one, its recommended configuration; never twice, across resumes. None when the study has no baselines.
        ``plans``: the pairs' plans, when the caller has them."""
        if not self.wants_baselines:
            return 0
        wanted: dict[tuple[str, int | None], None] = {}
        for pair in self.pairs.values():
            wanted.update(dict.fromkeys(jobs_at(pair, self.original_config(pair))))
        for plan in plans if plans is not None else self.plans():
            if plan.recommended is not None:
                wanted.update(dict.fromkeys(jobs_at(plan.pair, plan.recommended)))
        trials = self._index()
        return sum(
            self._enqueue(self.baselines[key], (batch, None), BASELINE_PHASE, trials=trials)
            for key, batch in wanted
            if reports_progress(self.baselines[key].foreground, self.registry)
        )

    def views(self) -> list[TrialView]:
        return [view(t) for t in self.study.get_trials(deepcopy=False)]

    def models(self, views: list[TrialView] | None = None) -> dict[str, LinearMemoryModel]:
        return fit_models(views if views is not None else self.views(), self.profile_obs)

    def plans(self) -> list[PairPlan]:
        views = self.views()
        models = self.models(views)
        by_pair: dict[str, list[TrialView]] = {}
        for v in views:
            by_pair.setdefault(v.pair_key, []).append(v)
        return [
            plan_pair(
                p,
                self.original_config(p),
                by_pair.get(k, []),
                models,
                self.settings.safe_limit_mib,
                self.settings.extension,
                self.settings.card_mib,
            )
            for k, p in self.pairs.items()
        ]

    def enqueue_extensions(self, confirmations_only: bool = False) -> int:
        """Queue the next verification trial of every pair whose search is not over (a confirmation alone on
        the card of what was measured packed is queued even when the search is off)."""
        added = 0
        plans = self.plans()
        for plan in plans:
            busy = any(v.state in (TrialState.WAITING, TrialState.RUNNING) for v in plan.trials)
            if plan.next_config is None or busy or (confirmations_only and not plan.next_confirms):
                continue
            predicted = None if plan.next_predicted_mib is None else round(plan.next_predicted_mib, 1)
            if plan.next_confirms:
                added += self._enqueue(plan.pair, plan.next_config, CONFIRM_PHASE, predicted)
            else:
                added += self._enqueue(plan.pair, plan.next_config, EXTENSION, predicted, plan.extension_trials + 1)
        # a new recommendation gets its baselines; recommendations rest on measured trials, so queueing changed none
        return added + self.enqueue_baselines(plans)

    def recover_stale(self) -> int:
        """Fail trials whose runner died (same host: PID gone; any host: heartbeat expired), and re-queue
        every FAIL trial that measured nothing (runner died or was interrupted) exactly once. Returns how many
        were re-queued."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(self.study)
        recovered = 0
        for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            host, pid = t.system_attrs.get(_HOST), t.system_attrs.get(_PID)
            if host == socket.gethostname() and pid is not None and not _alive(int(pid)):
                adapter.fail_running(self.study, t)
        trials = [(t, record_of(t)) for t in self.study.get_trials(deepcopy=False)]
        unmeasured = [
            (t, r)
            for t, r in trials
            if t.state is TrialState.FAIL and not r.is_measured(t.state) and r.skipped_duplicate_of is None
        ]
        retried = {r.queued.retry_of for _, r in trials} if unmeasured else set()
        for t, r in unmeasured:
            if t.number in retried:
                continue  # a measured failure is a result; and each unmeasured trial is re-queued once
            self.study.enqueue_trial(adapter.enqueued_params(t), user_attrs=queue_attrs(r.queued.retried(t.number)))
            recovered += 1
        return recovered

    def pop_trial(self, packable_only: bool = False) -> optuna.Trial | None:
        """Take the next WAITING trial (atomically: a trial another worker took is skipped). A trial whose
        configuration another trial already measured, runs or is queued before it, is closed unrun.
        ``packable_only``: leave the trials that go to the serial phase (:meth:`goes_serial`) in the queue."""
        waiting = self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
        models = self.models() if waiting and (packable_only or self.likely_failures_first) else None
        for t in self._in_order(waiting, models):
            if packable_only and self.goes_serial(t, models):
                continue
            kill_points.reached("before_claim")
            trial = adapter.claim(self.study, t)
            if trial is None:
                continue
            kill_points.reached("claimed")
            adapter.set_system_attr(self.study, trial, _HOST, socket.gethostname())
            kill_points.reached("host_recorded")
            adapter.set_system_attr(self.study, trial, _PID, os.getpid())
            kill_points.reached("pid_recorded")
            twin = self._twin(t)
            if twin is not None:
                mark_duplicate(trial, twin)
                self.study.tell(trial, state=TrialState.FAIL)
                continue
            return trial
        return None

    def _in_order(self, waiting: list[FrozenTrial], models: dict[str, LinearMemoryModel] | None) -> list[FrozenTrial]:
        """WAITING trials in the order to take them: queue order, or likely failures first (by ``models``, fitted
        to the trials measured so far, so each solo that completes refines the order of the pairs after it)."""
        if not self.likely_failures_first or len(waiting) < 2 or models is None:
            return waiting
        return likely_failures_first(waiting, self._initial_pair, models)

    def _initial_pair(self, trial: FrozenTrial) -> tuple[PairSpec, Config] | None:
        """A queued first trial of a pair (a retried one too) and its configuration; None for an extension trial."""
        if record_of(trial).queued.phase != INITIAL:
            return None
        queued = view(trial)
        pair = self.pairs.get(queued.pair_key)
        return None if pair is None else (pair, queued.config)

    def _twin(self, trial) -> int | None:
        """An earlier trial of the same configuration that is done, running or queued (enqueue races
        between workers can queue a configuration twice; it must still run once). A confirmation's twin is
        only another trial that measures alone on the card."""
        params = adapter.enqueued_params(trial)
        confirming = record_of(trial).queued.phase == CONFIRM_PHASE
        for other in self.study.get_trials(deepcopy=False):
            if other.number == trial.number or adapter.enqueued_params(other) != params:
                continue
            if confirming and not _measures_alone(other):
                continue
            if record_of(other).is_measured(other.state):
                return other.number  # measured (a crash too)
            if other.number < trial.number and other.state in (TrialState.RUNNING, TrialState.WAITING):
                return other.number
        return None

    def others_running(self) -> bool:
        return bool(self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))

    def waiting(self) -> int:
        return len(self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))

    # -- running ----------------------------------------------------------------------------------
    def upcoming_pairs(self, limit: int = 1) -> list[PairSpec]:
        """The pairs of the next ``limit`` WAITING trials, in the order :meth:`pop_trial` would take them now,
        without taking them: a guess (an extension queued meanwhile can come first), for jobs started ahead."""
        waiting = self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
        models = self.models() if len(waiting) > 1 and self.likely_failures_first else None
        pairs = [self._pair_of(adapter.enqueued_params(t)) for t in self._in_order(waiting, models)[:limit]]
        return [pair for pair in pairs if pair is not None]

    def _pair_of(self, params: dict) -> PairSpec | None:
        """The pair a trial's enqueued parameters name; None where the settings file no longer has it."""
        if BASELINE_PARAM in params:
            solo = self.baselines.get(params[BASELINE_PARAM])
            return None if solo is None else with_batch_sizes(solo, self.registry, params.get(FG_PARAM), None)
        pair = self.pairs.get(params.get(PAIR_PARAM))
        return (
            None if pair is None else with_batch_sizes(pair, self.registry, params.get(FG_PARAM), params.get(BG_PARAM))
        )

    def pair_for(self, trial: optuna.Trial) -> PairSpec:
        """The pair a running trial measures, its enqueued parameters suggested (they become its ``params``)."""
        fixed = adapter.fixed_params(self.study, trial)
        baseline = BASELINE_PARAM in fixed
        chosen: dict[str, Any] = {}
        if baseline:
            chosen[BASELINE_PARAM] = trial.suggest_categorical(BASELINE_PARAM, self.baseline_choices)
        elif PAIR_PARAM in fixed:
            chosen[PAIR_PARAM] = trial.suggest_categorical(PAIR_PARAM, self.pair_choices)
        for name in (FG_PARAM,) if baseline else (FG_PARAM, BG_PARAM):
            if name in fixed:
                chosen[name] = _suggest_batch(trial, name)
        pair = self._pair_of(chosen)
        if pair is None:
            raise KeyError(f"trial {trial.number} names {chosen}, which the settings file no longer has")
        return pair

    def run_trial(self, trial: optuna.Trial, executor: PairExecutor) -> PairResult | None:
        started = time.monotonic()
        pair = self.pair_for(trial)
        if self.placement:
            mark_placement(trial, self.placement)
        with _Heartbeat(self.study, trial):
            try:
                kill_points.reached("pair_ready")
                result = executor.run(pair, trial.number)
                kill_points.reached("measured")
            except BaseException:  # Ctrl-C, or results not writable: mark it; the next run re-queues it
                mark_failed(trial, "interrupted: stopped by the user or a runner error")
                self.study.tell(trial, state=TrialState.FAIL)
                raise
        if self.attach_files is not None:
            self.attach_files(trial, result)
        # the trial's own bookkeeping counts as outside its jobs (up to here: recording it is a few writes)
        result.outside_jobs_s = round(time.monotonic() - started - result.jobs_s, 3)
        figures = self._interference_figures if self.wants_baselines else None
        state, value = record_result(trial, result, self.settings.safe_limit_mib, figures)
        self.study.tell(trial, value, state=state)
        return result

    def _interference_figures(self, this: TrialView) -> dict | None:
        """The interference figures of a just-measured pair against the baselines measured so far
        (optuna-dashboard shows user attributes; a finished trial's cannot change, so figures whose baseline comes
        later are in status and the report only)."""
        others = [v for v in self.views() if v.number != this.number]
        found = figures_by_trial(others + [this]).get(this.number)
        return attrs_for_trial(found) if found is not None else None

    def run(self, executor: PairExecutor, extend: bool = True, poll_s: float = 2.0) -> None:
        """Run queued trials, extending failing pairs, until nothing is left to do. While trials of other
        runners are RUNNING, stay: they may still extend, or turn out dead (heartbeat) and be queued again."""
        while True:
            self.recover_stale()  # before each trial: a worker that died mid-trial, here or elsewhere
            self.enqueue_extensions(confirmations_only=not extend)
            trial = self.pop_trial()
            if trial is None:
                if self.others_running():
                    time.sleep(poll_s)
                    continue
                break
            start_ahead = getattr(executor, "start_ahead", None)  # an executor that can start the next trial's jobs
            if start_ahead is not None:
                start_ahead(self.upcoming_pairs)  # asked only where it does: each call orders the queue
            self.run_trial(trial, executor)


def _measures_alone(t: FrozenTrial) -> bool:
    """A confirmation (queued or done), or a trial measured serially."""
    record = record_of(t)
    return record.queued.phase == CONFIRM_PHASE or record.mode(t.state) == SERIAL


def _suggest_batch(trial: optuna.Trial, name: str) -> int:
    d = BATCH_DISTRIBUTION
    return trial.suggest_int(name, d.low, d.high, log=d.log)  # returns the enqueued value


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _load_study(storage, name: str, wait_for_definition: bool = False) -> optuna.Study | None:
    if name not in {s.study_name for s in storage.get_all_studies()}:
        return None
    study = optuna.load_study(study_name=name, storage=storage)
    deadline = time.monotonic() + 10
    while wait_for_definition and not has_definition(study) and time.monotonic() < deadline:
        time.sleep(0.2)  # its creator writes the definition right after creating it
    return study


def _write_definition(
    study: optuna.Study, settings: StudySettings, experiment: Experiment, definition: FixedDefinition | None
) -> None:
    with warnings.catch_warnings():  # "experimental" since Optuna 3.2, and what the dashboard shows
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names([OBJECTIVE_NAME])
    attrs = {
        "settings_file": str(experiment.file),
        "card_mib": settings.card_mib,
        "safe_limit_mib": settings.safe_limit_mib,
        "policy": str(settings.extension.policy),
        "floor": settings.extension.floor,
    }
    if definition is not None:
        attrs[DEFINITION_KEY] = definition.to_json()
    for key, value in attrs.items():
        study.set_user_attr(key, value)


class _Heartbeat:
    """Record a heartbeat for a running trial, so other workers can tell it is alive."""

    def __init__(self, study: optuna.Study, trial: optuna.Trial) -> None:
        self.study, self.trial = study, trial
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._beat, daemon=True)

    def _beat(self) -> None:
        while not self.stop.is_set():
            try:
                if not adapter.record_heartbeat(self.study, self.trial):
                    return
            except Exception:  # noqa: BLE001 - a missed beat is not fatal; the storage may be busy
                pass
            self.stop.wait(HEARTBEAT_S)

    def __enter__(self) -> _Heartbeat:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(timeout=2)
