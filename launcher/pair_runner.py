"""Run one foreground/background pair on one device and measure it.

Order of events: background starts -> it is *really* running (memory stopped growing, or a bound passed)
-> foreground starts -> both monitored -> foreground ends -> background stopped. Packed trials start both
jobs at once (``RunOptions.start_together``): without the card's limit the order changes no peak. The background is
restarted after each normal exit; quick exits again and again make the pair ``background_unstable``
(the seed once ran 103 restarts of a stub and called it a pair).
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpupair_search.launcher import kill_points
from gpupair_search.launcher.devices.base import Device
from gpupair_search.launcher.errors import ResultsDirError, UserError
from gpupair_search.launcher.held_start import HeldStarts, JobToHold
from gpupair_search.launcher.log_metrics import extract_metrics
from gpupair_search.launcher.measurement import (
    BG,
    FG,
    EnergyStats,
    MemoryStats,
    RaplCounter,
    energy_stats,
    memory_stats,
)
from gpupair_search.launcher.monitor import DEFAULT_HZ, DeviceSampler, Monitor, Sample
from gpupair_search.launcher.outcome import (
    TRAINING_PROGRESS,
    JobEnd,
    Outcome,
    PairLimits,
    classify,
    explain,
    read_log,
    scan_log,
)
from gpupair_search.launcher.probe_events import (
    BOUNDED,
    EVAL_NOT_REACHED,
    EVAL_REACHED,
    FULL_EPOCH,
    PLATEAU,
    RAN_TO_END,
    UNBOUNDED,
    ProbeEvents,
    evaluation_dwell_s,
    hook_environment,
)
from gpupair_search.launcher.process import RunningJob, start_job
from gpupair_search.launcher.registry import (
    BATCH_SIZE,
    DEFAULT_PROBE_STEPS,
    EPOCHS,
    MAX_STEPS,
    MIN_TRAIN_S,
    Command,
    Registry,
)
from gpupair_search.launcher.spec import JobConfig, PairSpec, StudyKind
from gpupair_search.launcher.steady_window import ProgressTail, user_steps_pattern
from gpupair_search.launcher.window_stats import WindowStats, background_warning, window_stats

_THROUGHPUT = re.compile(r"samples_per_second=([\d.]+)")
_RESERVED = re.compile(r"max_memory_reserved_mib=([\d.]+)")


class ForeignProcessesError(UserError):
    pass


class PairAborted(Exception):
    """The runner asked a pair to stop (Ctrl-C while packed trials run): its jobs are stopped, nothing measured."""


@dataclass(frozen=True)
class RunOptions:
    monitor_hz: float = DEFAULT_HZ
    timeout_s: float = 3600.0
    probe: bool = False
    probe_steps: int = (
        DEFAULT_PROBE_STEPS  # --max-steps for jobs that have it, in probe mode (a study's: its definition's)
    )
    #: probe mode, jobs that have --min-train-s: the foreground trains at least this long, so that its steady-state
    #: window has >= 1 s of energy counter even for a fast model; the background BACKGROUND_TRAIN_FACTOR times as
    #: long, so that it trains through the foreground's start-up and window instead of restarting
    min_window_s: float = 0.0
    probe_plateau_s: float = 15.0  # external scripts in probe mode: stop once memory is flat this long
    #: a job the DataLoader hook bounds, once it trained: stopped when it asked for no batch and its memory did
    #: not grow for this long, or 3x its longest wait between batches so far (a hang, or a wait that never ends)
    probe_stall_s: float = 60.0
    background_settle_s: float = 2.0
    #: a background that can say when it trained (its probe hook reports optimizer steps and batches, or its log
    #: has a progress pattern) and has not yet: its memory flat this long is taken as its training memory. Flat
    #: memory before the first step is set-up (the model on the device while the job imports torch._dynamo at
    #: its first optimizer, or loads its data), not training: measured on an H100, BENCHMARKS.md, User repositories
    background_untrained_settle_s: float = 20.0
    background_ready_timeout_s: float = 120.0
    background_cpu_only_after_s: float = 15.0  # no device memory by then: a CPU job, judge it by host memory
    background_min_run_s: float = 2.0  # a real cold run, even a probe, takes longer (imports, CUDA init)
    background_max_quick_exits: int = 3
    allow_foreign_processes: bool = False
    grace_s: float = 3.0
    #: how often the pair's own loop checks its jobs (exits, budget, timeout); memory is sampled by the monitor
    #: at monitor_hz whatever this is. Packed pairs check less often: each loop wakes the runner's threads.
    poll_s: float = 0.05
    #: fork built-in workloads from the warm launcher (launcher.warm_start), and start a user's jobs ahead of
    #: their trials, held (launcher.held_start); None: where the device measures GPU memory only (on the CPU
    #: device a fork's RSS includes pages it shares with the launcher, and a held job is held at its first GPU use)
    warm_start: bool | None = None
    #: start the foreground right after the background instead of once it is ready. Only where the order changes
    #: no measurement: packed trials, whose jobs' peaks are measured without the card's limit (nobody can OOM
    #: because the other came first), and whose throughput and energy are not figures of the pair alone anyway
    start_together: bool = False


@dataclass
class PairResult:
    """Everything measured for one pair; what the study turns into trial values and the results files."""

    pair: PairSpec
    foreground: JobConfig  # as run (probe additions included)
    background: JobConfig | None
    outcome: Outcome
    memory: MemoryStats
    energy: EnergyStats
    device: dict[str, Any]
    foreground_exit_code: int | None
    foreground_duration_s: float
    background_runs: int
    error_message: str = ""
    performance_metrics: dict[str, float] = field(default_factory=dict)
    foreground_samples_per_second: float | None = None
    background_coverage: float | None = None  # fraction of the foreground window with a background alive
    foreground_reported_reserved_mib: float | None = None
    background_reported_reserved_mib: float | None = None
    batch_sizes: dict[str, int | None] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    simulated: bool = False
    samples: list[Sample] = field(default_factory=list, repr=False)
    foreground_window: tuple[float, float] = (0.0, 0.0)
    background_logs: list[Path] = field(default_factory=list)
    result_dir: Path | None = None
    phase_seconds: dict[str, float] = field(default_factory=dict)  # where the pair's wall time went
    job_start: dict[str, str] = field(default_factory=dict)  # per job: "warm", "cold" or "held" (its first run's)
    #: how it was measured: {"mode": "serial" | "packed", "device": ..., ...} (search/engine/packing.py)
    measurement: dict[str, Any] = field(default_factory=dict)
    #: the foreground's steady-state window: throughput, energy, CPU (launcher/window_stats.py)
    window: WindowStats | None = None
    #: per role ("foreground", "background"): how its memory was probed ({"rule": BOUNDED | PLATEAU | FULL_EPOCH,
    #: "evaluation": EVAL_REACHED | RAN_TO_END | EVAL_NOT_REACHED}, launcher/probe_events.py)
    probe: dict[str, dict[str, str]] = field(default_factory=dict)
    #: seconds its jobs did their own work (each from its process start): the background until the runner knew
    #: it was ready, the foreground's run, the background's probe finishing; see :meth:`PairRun._jobs_seconds`
    jobs_s: float = 0.0
    #: the pair's (after the study's bookkeeping: the trial's) wall time minus ``jobs_s``: waits, start-up of
    #: the runner's side, stopping, bookkeeping
    outside_jobs_s: float = 0.0
    #: what told the runner the background was ready: "a training step", "a run ended normally", "memory
    #: settled", "host memory settled", "timeout" (no fact: the whole wait is outside the jobs); "" without one
    background_ready_by: str = ""

    @property
    def probe_label(self) -> str:
        """``probe: bounded steps``, ``probe: plateau`` or ``full epoch`` (the background's too where it
        differs), and whether the foreground's evaluation was not reached."""
        return probe_label(self.probe)


def probe_label(probe: dict[str, dict[str, str]]) -> str:
    """The words of a trial line for a PairResult's ``probe`` (also as stored with a trial)."""
    fg, bg = probe.get("foreground") or {}, probe.get("background") or {}
    if not fg:
        return ""
    words = _rule_words(fg.get("rule", ""))
    if bg and bg.get("rule") != fg.get("rule"):
        words += f" (background: {_rule_words(bg.get('rule', ''))})"
    if fg.get("evaluation") == EVAL_NOT_REACHED:
        words += ", evaluation not reached"
    return words


def _rule_words(rule: str) -> str:
    return rule if rule == FULL_EPOCH else f"probe: {rule}"


BACKGROUND_TRAIN_FACTOR = 5.0


def probe_job(job: JobConfig, registry: Registry, steps: int, min_train_s: float = 0.0) -> JobConfig:
    """In probe mode a built-in trains one epoch of ``steps`` steps (at least ``min_train_s`` seconds of training,
    where it has --min-train-s) and one evaluation pass. One epoch: --max-steps caps the steps *per epoch*, and
    every later epoch repeats the first one's batches, memory and evaluation, so it could only add time (a
    models-file default of 200 epochs made a short probe a long one: bench/probe_steps.py)."""
    if registry.supports(job, MAX_STEPS) and not job.hyperparameters.get(MAX_STEPS):
        job = job.with_hyperparameter(MAX_STEPS, steps)
        if registry.supports(job, EPOCHS):
            job = job.with_hyperparameter(EPOCHS, 1)
    elif hooked(job, registry) and registry.supports(job, EPOCHS):
        job = job.with_hyperparameter(EPOCHS, 1)  # the hook bounds each epoch; the first holds the peak
    if min_train_s > 0 and registry.supports(job, MIN_TRAIN_S) and not job.hyperparameters.get(MIN_TRAIN_S):
        job = job.with_hyperparameter(MIN_TRAIN_S, round(min_train_s, 3))
    return job


def probe_jobs(pair: PairSpec, registry: Registry, options: RunOptions) -> tuple[JobConfig, JobConfig | None]:
    """The pair's foreground and background as they run: in probe mode, bounded (:func:`probe_job`)."""
    fg, bg = pair.foreground, pair.background
    if not options.probe:
        return fg, bg
    return (
        probe_job(fg, registry, options.probe_steps, options.min_window_s),
        probe_job(bg, registry, options.probe_steps, BACKGROUND_TRAIN_FACTOR * options.min_window_s) if bg else None,
    )


def hooked(job: JobConfig, registry: Registry) -> bool:
    """Whether a probe bounds ``job`` through the DataLoader hook (launcher/probe_hook): a user's job, script or
    ``train_module``, with no --max-steps of its own (the built-ins have one). It starts as a process of its own,
    never forked warm: the hook is installed when its interpreter starts."""
    return not registry.supports(job, MAX_STEPS)


class PairRun:
    """One execution of a pair. Use :func:`run_pair`."""

    def __init__(
        self,
        pair: PairSpec,
        registry: Registry,
        device: Device,
        options: RunOptions,
        work_dir: Path,
        observer: Callable[[str, Sample | None], None] | None = None,
        sampler: DeviceSampler | None = None,
        abort: threading.Event | None = None,
        held: HeldStarts | None = None,
        ahead: Sequence[PairSpec] = (),
    ):
        self.pair, self.registry, self.device, self.options = pair, registry, device, options
        self.abort = abort
        self.observer = observer
        self._last_report = 0.0
        self.work_dir = work_dir
        self.fg_job, self.bg_job = fg, bg = probe_jobs(pair, registry, options)
        self.held, self.ahead = held, ahead
        self.env = job_environment(device)
        self.monitor = Monitor(device, options.monitor_hz, sampler=sampler)
        self.fg: RunningJob | None = None
        self.bg: RunningJob | None = None
        self.bg_ends: list[JobEnd] = []
        self.bg_logs: list[Path] = []
        self.quick_exits = 0
        self.bg_trained_runs = 0  # background runs that trained and ended normally
        self.timed_out = self.over_budget = self.unstable = self.probe_stopped = False
        self.fg_window = (0.0, 0.0)
        self.bg_coverage: float | None = None
        self.fg_exited_itself = False
        self.phase_seconds: dict[str, float] = {}
        self.job_start: dict[str, str] = {}
        self.start_notes: list[str] = []
        self.fg_progress: ProgressTail | None = None
        self.bg_progress: list[ProgressTail] = []  # one per background run
        #: probe mode, jobs the DataLoader hook bounds: what their loaders did (one per background run)
        self.fg_hooked = options.probe and hooked(fg, registry)
        self.bg_hooked = options.probe and bg is not None and hooked(bg, registry)
        self.fg_events: ProbeEvents | None = None
        self.bg_events: list[ProbeEvents] = []
        self.bg_gate: ProbeEvents | None = None  # the current run's gate events (held starts, not bounded by the hook)
        self.bg_completed_runs = 0  # background runs that ended normally: each showed its whole run's memory
        self.ready_by = ""  # what told the runner the background was ready
        self.ready_known_t: float | None = None  # time.monotonic() when the runner knew (see _jobs_seconds)
        self.bg_first_started: float | None = None
        self.fg_done_t: float | None = None  # when the foreground ended, or the runner decided to stop it
        self.finish_work_s = 0.0  # the background's probe run finishing, after the foreground
        self.probe_complete = False  # the foreground started a second training epoch after its evaluation
        self.stalled_s: float | None = None  # the hooked foreground asked for no batch this long: stopped
        self.dwell_s = evaluation_dwell_s(
            options.monitor_hz, self.monitor.tree_interval, device.study_kind == StudyKind.CPU
        )

    # -- background -------------------------------------------------------------------------------
    def _start_background(self) -> None:
        n = len(self.bg_logs) + 1
        log = self.work_dir / "background_logs" / f"run_{n}.log"
        self.bg_logs.append(log)
        self.bg_progress.append(self._progress_tail(self.bg_job, log))
        events = self._events(f"background_run_{n}") if self.bg_hooked else None
        if events is not None:
            self.bg_events.append(events)
        self.bg = self._start(BG, self.bg_job, log, events)
        self.bg_gate = ProbeEvents(_gate_path(log)) if events is None and self.held is not None else None
        if n == 1:
            self.bg_first_started = self.bg.started

    def _bg_stepped(self) -> bool:
        """The background's current run finished a training step, as its probe hook saw it: a DataLoader asked
        for its second batch, or (any loop, the hook installed for held starts only) an optimizer stepped."""
        events = self._bg_events_now()
        return bool(events and events.trained_step)

    def _bg_events_now(self) -> ProbeEvents | None:
        """The background's current run's events: the probe hook's, or its gate's (held starts), read up to now."""
        return self._current_bg_events() or (self.bg_gate.poll() if self.bg_gate is not None else None)

    def _events(self, name: str) -> ProbeEvents:
        path = self.work_dir / "probe_events" / f"{name}.events"
        path.parent.mkdir(parents=True, exist_ok=True)
        return ProbeEvents(path)

    def _current_bg_events(self) -> ProbeEvents | None:
        return self.bg_events[-1].poll() if self.bg_events and len(self.bg_events) == len(self.bg_logs) else None

    def _progress_tail(self, job: JobConfig, log: Path) -> ProgressTail:
        patterns = self.registry.repository(job.repo).log_patterns
        return ProgressTail(log, self.registry.batch_size(job), user_steps_pattern(patterns), self.monitor.t0)

    def _read_progress(self) -> None:
        """Timestamp the progress lines the jobs wrote since the last tick (the running background run's only:
        an ended run's last lines were read when it ended)."""
        now = self.monitor.now()
        if self.fg_progress is not None:
            self.fg_progress.poll(now)
        if self.bg_progress:
            self.bg_progress[-1].poll(now)

    def _check_background(self) -> bool:
        """Restart a background that ended normally; False when the pair must stop."""
        if self.bg is None:
            return True
        code = self.bg.poll()
        if code is None:
            return True
        self._read_progress()
        text = read_log(self.bg.log_path)
        end = JobEnd(code, False, scan_log(text), self.bg.duration())
        self.bg_ends.append(end)
        if code != 0 or end.log.oom:
            return False
        # A short run that trained is a real one: a warm-started probe has no imports to wait for. An external
        # script shows its training through its progress pattern, or, probed, through its DataLoader.
        trained = (
            bool(TRAINING_PROGRESS.search(text))
            or bool(self.bg_progress and self.bg_progress[-1].points)
            or self._bg_stepped()
        )
        self.bg_trained_runs += trained
        quick = end.duration_s < self.options.background_min_run_s and not trained
        self.bg_completed_runs += not quick  # it ran and ended normally: its whole run's memory was seen
        self.quick_exits = self.quick_exits + 1 if quick else 0
        if self.quick_exits >= self.options.background_max_quick_exits:
            self.unstable = True
            return False
        self._start_background()
        return True

    def _wait_background_ready(self) -> bool:
        """Wait until the background is really running: its device memory stopped growing for
        ``background_settle_s``, or one run of it ended normally, for any job (a short run that loops restarts
        before its memory can look flat, but a whole run has shown its peak), or, in a probe that
        measures memory only, it trains (:meth:`_background_training`), or, for a job that
        never touches the device (a CPU job such as bug-localization), its host memory settled after
        ``background_cpu_only_after_s``; at most ``background_ready_timeout_s``. Never a fixed sleep."""
        started = time.monotonic()
        deadline = started + self.options.background_ready_timeout_s
        device_memory, host_memory = (
            _Plateau(self.options.background_settle_s),
            _Plateau(self.options.background_settle_s),
        )
        while time.monotonic() < deadline:
            if not self._check_background():
                return False
            if self.bg_trained_runs or self.bg_completed_runs:
                return self._ready("a run ended normally")
            if self._background_training():
                return self._ready("a training step")
            sample = self.monitor.latest()
            mib = sample.job_mib.get(BG, 0.0) if sample else 0.0
            rss = sample.rss_mib.get(BG, 0.0) if sample else 0.0
            if device_memory.settled(mib) and self._settled_is_training(device_memory.flat_s()):
                return self._ready("memory settled", device_memory.flat_s())
            cpu_only = mib == 0 and time.monotonic() - started >= self.options.background_cpu_only_after_s
            if host_memory.settled(rss) and cpu_only:
                return self._ready("host memory settled", self.options.background_settle_s)
            self._check_budget()
            if self.over_budget:
                return False
            self._report("background starting")
            time.sleep(self.options.poll_s)
        self.ready_by = "timeout"  # no fact: the whole wait is the runner's (outside_jobs_s)
        return True

    def _settled_is_training(self, flat_s: float) -> bool:
        """Whether the background's flat memory is its training memory: always for a job that cannot say when it
        trained; for one that can, once it did, or after ``background_untrained_settle_s`` flat."""
        events = self._bg_events_now()
        tail = self.bg_progress[-1] if self.bg_progress else None
        can_say = bool(events and events.reports_steps) or bool(tail and tail.steps_pattern)
        stepped = bool(events and events.trained_step) or bool(tail and tail.points)
        return not can_say or stepped or flat_s >= self.options.background_untrained_settle_s

    def _ready(self, by: str, waited_s: float = 0.0) -> bool:
        """Record what made the background ready and when that was known (a settled memory was known
        ``waited_s`` before: the settling window is a wait of the runner's)."""
        self.ready_by, self.ready_known_t = by, time.monotonic() - waited_s
        return True

    def _background_training(self) -> bool:
        """A memory-only probe (no steady-state window): the background's current run holds all the device memory
        it holds in training. Either it reported a finished training step, so it holds its model, optimizer state
        and a step's activations; or, on a GPU, it said in its config line that it trains on the CPU
        (bug-localization), so it holds none of the GPU's memory (finding that out by waiting
        ``background_cpu_only_after_s`` took most of such a trial: bench/study_timeline.py).
        Waiting for the background's whole run instead made the foreground start while the background
        restarted, with its memory at zero again. Where a window is measured (interference), the background
        must be past its warm-up: not then."""
        if not self.options.probe or self.options.min_window_s > 0 or not self.bg_progress:
            return False
        current = self.bg_progress[-1]
        on_the_cpu = (
            current.declared_device == "cpu" and self.device.study_kind == StudyKind.GPU
        )  # (the CPU device: its RSS)
        return on_the_cpu or any(point.steps >= 1 for point in current.points) or self._bg_stepped()

    def _limits(self) -> PairLimits:
        o = self.options
        return PairLimits(
            self.device.capacity_mib,
            o.timeout_s,
            o.background_max_quick_exits,
            o.background_min_run_s,
            len(self.bg_logs),
        )

    def _start(self, label: str, job: JobConfig, log: Path, events: ProbeEvents | None = None) -> RunningJob:
        command = self.registry.command(job)
        warm = self._forks_warm(job, command)
        if self.held is not None and not warm:
            gate_events = events.path if events else _gate_path(log)
            started = self.held.start(label, command, self._held_env(job, gate_events), log, gate_events)
        else:
            env = (
                self.env
                if events is None
                else hook_environment(self.env, events.path, self.options.probe_steps, self.dwell_s)
            )
            started = start_job(label, command, log, env, self.options.grace_s, warm=warm)
        self.job_start.setdefault(label, started.start)  # the first run: the one a trial waits for
        self.start_notes += [note for note in started.notes if note not in self.start_notes]
        self.monitor.track(label, started)
        kill_points.reached(f"{label}_started")
        return started

    def _forks_warm(self, job: JobConfig, command: Command) -> bool:
        """Whether the job is forked from the warm launcher: a module, where jobs start warm, that the probe hook
        does not bound (the hook is installed when a job's interpreter starts). Held starts take every other job."""
        probed = self.options.probe and hooked(job, self.registry)
        return starts_warm(self.options, self.device) and command.module is not None and not probed

    def _held_env(self, job: JobConfig, events: Path) -> dict[str, str]:
        """A held start's environment: the probe hook, which bounds a hooked job's DataLoaders and, for a job that
        bounds itself (its own --max-steps), only holds it at its gate."""
        if self.options.probe and hooked(job, self.registry):
            return hook_environment(self.env, events, self.options.probe_steps, self.dwell_s)
        return hook_environment(self.env, events, 0)

    def _hold(self, jobs: list[tuple[str, JobConfig | None]]) -> None:
        """Hold exactly these of the trials' jobs (those held starts take) for when they are started."""
        if self.held is None:
            return
        wanted = []
        for label, job in jobs:
            if job is None:
                continue
            command = self.registry.command(job)
            if not self._forks_warm(job, command):
                wanted.append(JobToHold(label, command, self._held_env(job, Path())))
        self.held.prepare(wanted)

    def _hold_next_trial(self) -> None:
        """The foreground is released: keep the next queued trials' jobs held while this trial runs."""
        self._hold(self._ahead_jobs())

    def _ahead_jobs(self) -> list[tuple[str, JobConfig | None]]:
        """The jobs of the trials queued after this one, in the order they will start."""
        ahead = [probe_jobs(pair, self.registry, self.options) for pair in self.ahead]
        return [job for fg, bg in ahead for job in ((BG, bg), (FG, fg))]

    # -- foreground -------------------------------------------------------------------------------
    def _check_budget(self) -> None:
        cap = self.device.capacity_mib
        if not self.device.enforces_capacity or cap is None:
            return
        sample = self.monitor.latest()
        if sample and sum(sample.job_mib.values()) > cap:
            self.over_budget = True

    def _plateaued(self, since_t: float) -> bool:
        """External scripts in probe mode: the foreground's memory has not grown for probe_plateau_s."""
        return memory_plateaued(self._fg_points(since_t), self.options.probe_plateau_s)

    def _fg_points(self, since_t: float) -> list[tuple[float, float]]:
        return [(s.t, s.job_mib.get(FG, 0.0)) for s in self.monitor.samples if s.t >= since_t]

    def _stalled(self, since_t: float) -> bool:
        """A foreground the hook bounds that trained, then asked for no batch for probe_stall_s (or 3x its longest
        wait between batches) while its memory did not grow: after its evaluation pass its memory has been seen
        (the probe is complete); before it, the job hangs (a timeout, said as such)."""
        events = self.fg_events
        if events is None or not events.effective or events.last_event_t is None:
            return False
        limit = max(self.options.probe_stall_s, 3 * events.longest_gap_s)
        idle = time.monotonic() - events.last_event_t
        if idle < limit:  # the common case, each tick: no pass over the samples
            return False
        points = self._fg_points(since_t)
        if not points or not memory_plateaued(points, min(limit, (points[-1][0] - points[0][0]) / 2)):
            return False
        self.stalled_s = idle
        if events.eval_ended:
            self.probe_complete = True
        else:
            self.timed_out = True
        return True

    def _fg_trained_or_silent(self) -> bool:
        """A plateau counts only once the foreground trained, where it can say so (a declared progress
        pattern, or the DataLoader hook): memory flat during a slow start-up is not training's."""
        tail, events = self.fg_progress, self.fg_events
        if events is not None and events.train_started:
            return True
        return tail is None or tail.steps_pattern is None or bool(tail.points)

    def _run_foreground(self) -> None:
        self.fg_progress = self._progress_tail(self.fg_job, self.work_dir / "training.log")
        self.fg_events = self._events("foreground") if self.fg_hooked else None
        self.fg = self._start(FG, self.fg_job, self.work_dir / "training.log", self.fg_events)
        self._hold_next_trial()
        t_start = self.monitor.now()
        plateau_rule = self.options.probe and not self.registry.supports(self.fg_job, MAX_STEPS)
        alive_ticks = ticks = 0
        while self.fg.poll() is None:
            if self.fg_events is not None and self.fg_events.poll().effective:
                plateau_rule = False  # the hook bounds its epochs: it ends by itself, evaluation passed
                if self.fg_events.repeating:  # no epochs hyperparameter: the next epoch repeats the first
                    self.probe_complete = True
                    break
            ticks += 1
            if self.bg is not None and self.bg.poll() is None:
                alive_ticks += 1
            if not self._check_background():
                break
            self._check_budget()
            if self.over_budget:
                break
            if self.fg.duration() > self.options.timeout_s:
                self.timed_out = True
                break
            if plateau_rule and self._plateaued(t_start) and self._fg_trained_or_silent():
                self.probe_stopped = True
                break
            if self._stalled(t_start):
                break
            self._report("foreground running")
            time.sleep(self.options.poll_s)
        self.fg_done_t = self.fg.ended or time.monotonic()
        if self.fg_events is not None:
            self.fg_events.poll()
        self._read_progress()
        self.fg_window = (t_start, self.monitor.now())
        self.bg_coverage = alive_ticks / ticks if ticks and self.bg is not None else None

    def _finish_background_probe(self) -> None:
        """Probe mode: the background's peak comes with its evaluation pass; let its first run complete.
        Not for a background that never held device memory (a CPU job): its device peak is already known, 0."""
        if not (self.options.probe and self.bg is not None and not self.bg_ends):
            return
        if self._foreground_crashed():
            return  # the verdict is a crash: the background's peak changes nothing (an OOM's search uses it)
        events = self._current_bg_events()
        bounded = self.registry.supports(self.bg_job, MAX_STEPS) or bool(events and events.effective)
        if not bounded or not self._background_used_device():
            return
        started = time.monotonic()
        deadline = started + self.options.timeout_s
        while self.bg.poll() is None and time.monotonic() < deadline:
            if events is not None and events.poll().eval_ended:  # its evaluation pass was seen: its peak too
                break
            self._check_budget()
            if self.over_budget:
                return
            self._report("background finishing its probe")
            time.sleep(self.options.poll_s)
        self.finish_work_s = time.monotonic() - started
        self._check_background()

    def _fg_memory_read(self) -> bool:
        """Whether a sample read the foreground's memory. On the CPU device every live process holds some, so
        none read means it ended between two samples: measured nothing. On a GPU 0 MiB is a job that never
        touched it (a CPU job)."""
        return self.device.study_kind != StudyKind.CPU or self._held_memory(FG)

    def _foreground_crashed(self) -> bool:
        """The foreground ended with a failure that is not an OOM."""
        if self.fg is None or self.fg.poll() in (0, None):
            return False
        return not scan_log(read_log(self.fg.log_path)).oom

    def _background_used_device(self) -> bool:
        return self._held_memory(BG)

    def _held_memory(self, label: str) -> bool:
        """Whether any sample read memory of ``label``'s job."""
        return any(s.job_mib.get(label, 0.0) > 0 for s in self.monitor.samples)

    def _timed(self, phase: str, step: Callable[[], Any]) -> Any:
        started = time.monotonic()
        try:
            return step()
        finally:
            self.phase_seconds[phase] = round(time.monotonic() - started, 2)

    def _report(self, phase: str) -> None:
        if self.abort is not None and self.abort.is_set():  # the runner is stopping: every loop passes here
            raise PairAborted(f"{phase}: the runner is stopping")
        self._read_progress()
        if self.observer is not None and time.monotonic() - self._last_report >= 0.5:
            self._last_report = time.monotonic()
            self.observer(phase, self.monitor.latest())

    # -- the whole pair ---------------------------------------------------------------------------
    def run(self) -> PairResult:
        self.run_started = time.monotonic()
        self._refuse_foreign_processes()
        self.work_dir.mkdir(parents=True, exist_ok=True)
        rapl = RaplCounter()
        self.monitor.start()
        fg_code: int | None = None
        try:
            started_ok = True
            if self.bg_job is not None:
                self._timed("background_start", self._start_background)  # a warm launcher still importing: here
                # the foreground starts while the background gets ready, held, and so do the next trials' jobs: a
                # start (interpreter, imports) takes longer than a probed trial (BENCHMARKS.md, User repositories)
                self._hold([(FG, self.fg_job), *self._ahead_jobs()])
                if not self.options.start_together:
                    started_ok = self._timed("background_ready", self._wait_background_ready)
            if started_ok:
                self._timed("foreground", self._run_foreground)
                self._timed("background_finish", self._finish_background_probe)
        finally:
            stopping = time.monotonic()
            self.fg_exited_itself = self.fg is not None and self.fg.poll() is not None
            fg_code = self.fg.stop(self.options.grace_s) if self.fg else None
            if self.bg is not None and len(self.bg_ends) < len(self.bg_logs):  # current run not yet recorded
                running = self.bg.poll() is None
                code = self.bg.stop(self.options.grace_s)
                self.bg_ends.append(
                    JobEnd(None if running else code, running, scan_log(read_log(self.bg.log_path)), self.bg.duration())
                )
            self.monitor.stop()
            if self.held is not None:
                self.start_notes += self.held.pop_notes()
            self.phase_seconds["stop"] = round(time.monotonic() - stopping, 2)
        result = self._result(fg_code, rapl)
        result.jobs_s = round(self._jobs_seconds(), 3)
        result.outside_jobs_s = round(time.monotonic() - self.run_started - result.jobs_s, 3)
        return result

    def _jobs_seconds(self) -> float:
        """The time the pair's jobs did their own work, each from its process start: the background until the
        runner knew it was ready (by a fact: its training step, a run that ended; a settled memory counts up
        to where it settled; a timeout, nothing), the foreground until it ended or the runner decided to stop
        it, then the background finishing its probe. The rest of the pair's wall time is the runner's own:
        starting and stopping processes, polling latency, waits, results. Packed (jobs started together): the
        foreground's run only, the background's overlaps it."""
        seconds = self.finish_work_s
        if self.bg_first_started is not None and self.ready_known_t is not None:
            seconds += max(0.0, self.ready_known_t - self.bg_first_started)
        if self.fg is not None:
            seconds += max(0.0, (self.fg_done_t or self.fg.ended or time.monotonic()) - self.fg.started)
        dwells = self.fg_events.eval_ends if self.fg_events else 0  # (the background's finish ends before its hold)
        return max(0.0, seconds - dwells * self.dwell_s)  # the evaluation passes' holds are the probe's waits

    def _refuse_foreign_processes(self) -> None:
        if self.options.allow_foreign_processes:
            return
        foreign = self.device.foreign_processes(_our_descendants())
        if foreign:
            lines = "\n".join(f"  PID {p.pid:>7}  {p.used_mib:>8.0f} MiB  {p.command[:100]}" for p in foreign)
            raise ForeignProcessesError(
                f"{self.device.name}: other processes hold GPU memory, so the pair's numbers would be wrong:\n"
                f"{lines}\nStop them (a leftover job can hold memory long after its run), "
                "or pass --allow-foreign-processes."
            )

    def _result(self, fg_code: int | None, rapl: RaplCounter) -> PairResult:
        fg_text = read_log(self.work_dir / "training.log")
        fg_log = scan_log(fg_text)
        fg_end = JobEnd(fg_code, not self.fg_exited_itself, fg_log, self.fg.duration() if self.fg else 0.0)
        started_fg = self.fg is not None
        outcome = classify(
            fg_end,
            self.bg_ends,
            timed_out=self.timed_out,
            over_budget=self.over_budget,
            background_unstable=self.unstable,
            foreground_seen=self.fg is None or (self.monitor.saw(FG) and self._fg_memory_read()),
        )
        if not started_fg and outcome is Outcome.OK:  # background never got ready and did not say why
            outcome = Outcome.CRASH_BACKGROUND
        bg_tried = next((e.log.tried_to_allocate_mib for e in reversed(self.bg_ends) if e.log.oom), None)
        bg_text = "\n".join(read_log(p) for p in self.bg_logs)
        memory = memory_stats(self.monitor.samples, fg_log.tried_to_allocate_mib, bg_tried)
        energy = energy_stats(self.monitor.samples, *self.fg_window, rapl.joules_since_start(), rapl.note)
        metrics, metric_warnings = extract_metrics(self.registry.repository(self.fg_job.repo).log_patterns, fg_text)
        window = window_stats(
            self.fg_progress.points if self.fg_progress else [],
            [tail.points for tail in self.bg_progress],
            self.monitor.samples,
            solo=self.bg_job is None,
        )
        starting = background_warning(window, len(self.bg_logs))
        probe = self._probe_records(fg_code)
        return PairResult(
            pair=self.pair,
            foreground=self.fg_job,
            background=self.bg_job,
            outcome=outcome,
            memory=memory,
            energy=energy,
            device=self.device.describe(),
            foreground_exit_code=fg_code,
            foreground_duration_s=round(self.fg.duration(), 3) if self.fg else 0.0,
            background_runs=len(self.bg_logs),
            error_message=self._stall_words(outcome) or explain(outcome, fg_end, self.bg_ends, self._limits()),
            performance_metrics=metrics,
            foreground_samples_per_second=_last_float(_THROUGHPUT, fg_text),
            background_coverage=self.bg_coverage,
            foreground_reported_reserved_mib=_last_float(_RESERVED, fg_text),
            background_reported_reserved_mib=_last_float(_RESERVED, bg_text),
            batch_sizes={
                "foreground": self.registry.batch_size(self.fg_job),
                "background": self.registry.batch_size(self.bg_job) if self.bg_job else None,
            },
            warnings=list(self.pair.warnings)
            + self.monitor.errors
            + metric_warnings
            + self.start_notes
            + ([starting] if starting else [])
            + self._probe_warnings(probe)
            + _caught_error_warning(fg_code if self.fg_exited_itself else None, fg_text, fg_log.last_error)
            + boolean_value_refused(FG, self.registry.command(self.fg_job).argv, fg_text)
            + (boolean_value_refused(BG, self.registry.command(self.bg_job).argv, bg_text) if self.bg_job else []),
            samples=self.monitor.samples,
            foreground_window=self.fg_window,
            background_logs=list(self.bg_logs),
            phase_seconds=dict(self.phase_seconds),
            job_start=dict(self.job_start),
            window=window,
            probe=probe,
            background_ready_by=self.ready_by,
        )

    def _stall_words(self, outcome: Outcome) -> str:
        """Why a foreground that stalled before its evaluation pass was stopped (its outcome is a timeout)."""
        if self.stalled_s is None or outcome is not Outcome.TIMEOUT:
            return ""
        return (
            f"the foreground trained, then asked its DataLoader for no batch for {self.stalled_s:.0f} s while its "
            "memory did not grow: stopped as hung (a deadlock, or a wait for something that never comes), before "
            "its evaluation pass"
        )

    def _probe_records(self, fg_code: int | None) -> dict[str, dict[str, str]]:
        """How each job's memory was probed, and whether its evaluation pass was part of it."""
        ended_well = self.fg_exited_itself and fg_code == 0
        fg_events = [self.fg_events] if self.fg_events else []
        fg = self._probe_record(self.fg_job, fg_events, ended_well, self.probe_stopped)
        records = {"foreground": fg}
        if self.bg_job is not None:
            records["background"] = self._probe_record(self.bg_job, self.bg_events, self.bg_completed_runs > 0, False)
        return records

    def _probe_record(
        self, job: JobConfig, events: list[ProbeEvents], ended_well: bool, at_plateau: bool
    ) -> dict[str, str]:
        seen = [e.poll() for e in events]
        if not self.options.probe:
            rule = FULL_EPOCH
        elif self.registry.supports(job, MAX_STEPS) or any(e.effective for e in seen):
            rule = BOUNDED
        else:  # it ran its whole (first-epoch) run before a plateau, was stopped at one, or neither
            rule = FULL_EPOCH if ended_well else PLATEAU if at_plateau else UNBOUNDED
        evaluation = (
            EVAL_REACHED if any(e.eval_started for e in seen) else RAN_TO_END if ended_well else EVAL_NOT_REACHED
        )
        record = {"rule": rule, "evaluation": evaluation}
        if any(e.failed for e in seen):
            record["hook"] = "failed: the job's DataLoaders ran unbounded"
        elif self.options.probe and events and not any(e.effective for e in seen):
            record["hook"] = "no DataLoader training loop seen"
        return record

    def _probe_warnings(self, probe: dict[str, dict[str, str]]) -> list[str]:
        fg = probe["foreground"]
        if fg["rule"] == BOUNDED and fg["evaluation"] == EVAL_NOT_REACHED and self.probe_complete:
            return [
                "probe: the foreground restarted its training loop with no evaluation seen (none through a "
                "DataLoader with gradients off) and was stopped at its third training iterator; an evaluation "
                "at the end of its run is not in this figure: --full-epoch measures it"
            ]
        if self.stalled_s is not None and self.probe_complete:
            return [
                f"probe: the foreground asked its DataLoader for no batch for {self.stalled_s:.0f} s after its "
                "evaluation pass, its memory flat, and was stopped: its peak was seen through evaluation"
            ]
        if fg["rule"] != PLATEAU or fg["evaluation"] != EVAL_NOT_REACHED:
            return []
        why = f" ({fg['hook']})" if "hook" in fg else ""
        return (
            [
                f"probe: plateau: the foreground could not be bounded{why} and was stopped once its memory had been "
                f"flat for {self.options.probe_plateau_s:g} s, before any evaluation pass; a peak that comes later "
                "(evaluation, the epoch's longest batch, memory that grows through the epoch) is not in this "
                "figure: --full-epoch measures it"
            ]
            if self.probe_stopped
            else []
        )


def _caught_error_warning(exit_code: int | None, log: str, last_error: str) -> list[str]:
    """A job that caught an error, printed its traceback and exited 0 anyway: its exit code says it succeeded, its
    log says it broke off. The verdict stands on the exit code and the memory; the user is told to look."""
    if exit_code != 0 or "Traceback (most recent call last)" not in log:
        return []
    return [
        "the foreground exited 0, but its log holds a Python traceback"
        + (f" ({last_error})" if last_error else "")
        + ": check that it trained as far as it should; its peak is what it held until then"
    ]


_UNRECOGNIZED = re.compile(r"unrecognized arguments: (.*)")


def boolean_value_refused(role: str, argv: Sequence[str], log: str) -> list[str]:
    """A boolean hyperparameter is written with its value (``--amp True``), as the seed's runner writes it; a
    script whose flag is ``action="store_true"`` takes no value, and its argparse refuses the ``True``. The log
    says only "unrecognized arguments: True": say which flag it was, and what to change."""
    found = _UNRECOGNIZED.findall(log)
    if not found:
        return []
    refused = set(found[-1].split())
    flags = [
        f"{flag} {value}"
        for flag, value in zip(argv, argv[1:])
        if flag.startswith("-") and value in ("True", "False") and value in refused
    ]
    if not flags:
        return []
    return [
        f"the {role}'s script refused {', '.join(flags)}: a boolean hyperparameter is passed with its value, as "
        "the seed's runner passes it, and a flag declared with action='store_true' takes none. Give the flag a "
        "value in the script (e.g. type=lambda s: s == 'True'), or leave the hyperparameter out"
    ]


def _about_the_same(value: float, reference: float) -> bool:
    """Within 1% (or 1 MiB): an allocator's and a sampler's noise, not a job's memory moving."""
    return abs(value - reference) <= max(1.0, 0.01 * reference)


def memory_plateaued(points: list[tuple[float, float]], window_s: float) -> bool:
    """Whether memory, as ``(t, MiB)`` points, has not grown over the last ``window_s`` beyond the peak before it,
    after at least as long before: growth within the noise (:func:`_about_the_same`) is no growth, or host RSS,
    which moves by a few MiB all the time, would never be flat."""
    if not points or points[-1][0] - points[0][0] < 2 * window_s:
        return False
    cut = points[-1][0] - window_s
    peak_before = max(mib for t, mib in points if t < cut)
    recent = max(mib for t, mib in points if t >= cut)
    return peak_before > 0 and (recent <= peak_before or _about_the_same(recent, peak_before))


class _Plateau:
    """True once a value is non-zero and has not risen above its highest so far (give or take the noise of
    :func:`_about_the_same`) for ``seconds``: memory that moves up and down by a few per cent with each step, as
    host memory does, has shown its peak as well as memory that stays flat."""

    def __init__(self, seconds: float) -> None:
        self.seconds, self.peak, self.since = seconds, 0.0, 0.0

    def settled(self, value: float) -> bool:
        if value <= 0:
            self.peak, self.since = 0.0, 0.0
            return False
        if value > self.peak and not _about_the_same(value, self.peak):
            self.peak, self.since = value, time.monotonic()
            return False
        return self.flat_s() >= self.seconds

    def flat_s(self) -> float:
        """How long the value has not risen (0 while it is zero)."""
        return time.monotonic() - self.since if self.peak > 0 else 0.0


def _gate_path(log: Path) -> Path:
    """The events file of a job that held starts take and the probe does not bound (its gate, its steps)."""
    return log.with_name(f"{log.stem}.gate")


def _last_float(pattern: re.Pattern, text: str) -> float | None:
    found = pattern.findall(text)
    return float(found[-1]) if found else None


def job_environment(device: Device) -> dict[str, str]:
    """The environment a pair's jobs run with on ``device``."""
    return {**os.environ, **device.job_env(), "PYTHONUNBUFFERED": "1"}


def starts_warm(options: RunOptions, device: Device) -> bool:
    """Whether built-in workloads are forked from the warm launcher: as ``options`` say, else on a GPU only (a
    fork shares the launcher's host pages, so on the CPU device its host memory (RSS) would not be the job's)."""
    return options.warm_start if options.warm_start is not None else device.study_kind == StudyKind.GPU


def starts_held(options: RunOptions, device: Device) -> bool:
    """Whether a serial study starts a user's jobs ahead of their trials, held (launcher/held_start): where jobs
    start warm, on a GPU (the hold is at the first GPU use), for a memory probe only (a held job's start-up would
    share the host's cores with the trial before it, which a slowdown window must not see)."""
    gpu = device.study_kind == StudyKind.GPU and not device.simulated
    memory_only = options.probe and options.min_window_s <= 0 and not options.start_together
    return gpu and memory_only and options.warm_start is not False


def run_pair(
    pair: PairSpec,
    registry: Registry,
    device: Device,
    options: RunOptions,
    work_dir: Path,
    observer: Callable[[str, Sample | None], None] | None = None,
    sampler: DeviceSampler | None = None,
    abort: threading.Event | None = None,
    held: HeldStarts | None = None,
    ahead: Sequence[PairSpec] = (),
) -> PairResult:
    """Run ``pair`` with logs under ``work_dir``; every process it started is gone when this returns, except
    the jobs ``held`` holds for the trials ``ahead`` (the next queued ones).
    ``observer(phase, latest_sample)`` is called about twice a second for progress output. ``sampler``: the
    device's shared sampler, when other pairs run on it at the same time (packed trials); ``abort``: set it to
    stop the pair (:class:`PairAborted`)."""
    # Absolute: the jobs run in their own repositories, and the paths they are given (the probe's events file)
    # must mean there what they mean here; --results defaults to a relative "results".
    work_dir = Path(work_dir).absolute()
    try:
        return PairRun(pair, registry, device, options, work_dir, observer, sampler, abort, held, ahead).run()
    except OSError as exc:  # the results directory went away or became unwritable mid-run
        if not _concerns(exc.filename, work_dir):
            raise
        raise ResultsDirError(
            f"{work_dir}: cannot write the pair's logs: {exc.strerror or exc}. Every process of "
            "the pair was stopped. Choose a writable place with --results DIR and run again."
        ) from None


def _our_descendants() -> set[int]:
    """Processes this runner started (other packed pairs' jobs, the warm launcher): not foreign."""
    import psutil

    try:
        return {p.pid for p in psutil.Process().children(recursive=True)}
    except psutil.Error:
        return set()


def _concerns(filename, work_dir: Path) -> bool:
    """Whether an OSError's path is ``work_dir``, inside it or one of its parents."""
    if filename is None:
        return False
    path, work_dir = Path(os.fsdecode(filename)).absolute(), Path(work_dir).absolute()
    return path == work_dir or work_dir in path.parents or path in work_dir.parents


def with_batch_sizes(pair: PairSpec, registry: Registry, fg: int | None, bg: int | None) -> PairSpec:
    """``pair`` with the given batch sizes (None: leave the job as it is)."""
    fg_job = pair.foreground.with_hyperparameter(BATCH_SIZE, fg) if fg is not None else pair.foreground
    bg_job = (
        pair.background.with_hyperparameter(BATCH_SIZE, bg) if (bg is not None and pair.background) else pair.background
    )
    return pair.with_jobs(fg_job, bg_job)
