"""The ``run``, ``status`` and ``plan`` commands: choose the executor, run the study, print verdicts."""

from __future__ import annotations

import functools
import gc
import os
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import typer

from gpupair_search.launcher.cpu_share import parse_cpu_list, pin_this_process, worker_shares
from gpupair_search.launcher.devices import DeviceRequest, open_device
from gpupair_search.launcher.devices.base import Device, NoDeviceError
from gpupair_search.launcher.devices.cpu import budget_warning
from gpupair_search.launcher.devices.factory import study_kind
from gpupair_search.launcher.errors import UserError
from gpupair_search.launcher.pair_runner import RunOptions, job_environment, starts_warm
from gpupair_search.launcher.process import start_job
from gpupair_search.launcher.registry import Command, Registry
from gpupair_search.launcher.spec import PairSpec, StudyKind
from gpupair_search.launcher.warm_start import prestart
from gpupair_search.search.cli import options as opt
from gpupair_search.search.cli.storage_env import STORAGE_VARIABLE
from gpupair_search.search.engine.executors import DeviceExecutor, RunDir
from gpupair_search.search.engine.packing import packing_slots, run_packed
from gpupair_search.search.engine.placement import worker_placement
from gpupair_search.search.engine.session import (
    StudyInputs,
    artifact_store,
    open_study,
    resolve_inputs,
    simulated_device,
)
from gpupair_search.search.engine.storage import default_storage_url
from gpupair_search.search.engine.study import FeasibilityStudy
from gpupair_search.search.policy.batch_grid import batch_grid
from gpupair_search.search.policy.confirmation import Confirm
from gpupair_search.search.policy.extension import search_policy
from gpupair_search.search.policy.planner import ExtensionOptions
from gpupair_search.search.views.artifacts import attach_trial_artifacts
from gpupair_search.search.views.console import (
    Progress,
    budget_words,
    measurement_warnings,
    trial_words,
    verdicts_text,
)
from gpupair_search.search.views.status import print_interference


def _policy(text: str) -> str:
    return search_policy(text).name  # a clear error for an unknown name, before anything starts


def _flag(option, convert: Callable = lambda value: value, **metadata) -> Any:
    """A :class:`RunRequest` field for ``option`` (cli_options.py), with the option's default: each option and its
    default are defined once, there."""
    return field(default=convert(option.default), metadata={"option": option, **metadata})


@dataclass(frozen=True)
class RunRequest:
    """The options of ``run`` / ``worker``: the CLI builds both commands from these fields (each carries its
    option in ``metadata``), and ``run --gpus`` hands them to its workers as the same flags."""

    study: str | None = _flag(opt.STUDY)
    settings: Path | None = _flag(opt.SETTINGS)
    name: str | None = _flag(opt.NAME)
    storage: str | None = _flag(opt.STORAGE)
    device: str | None = _flag(opt.DEVICE)
    gpu_memory: str | None = _flag(opt.GPU_MEMORY)
    safe_limit: str | None = _flag(opt.SAFE_LIMIT)
    cpu_memory: str | None = _flag(opt.CPU_MEMORY)
    probe: bool = _flag(opt.PROBE)
    extend: bool = _flag(opt.EXTEND)
    policy: str = _flag(opt.POLICY)
    floor: int = _flag(opt.FLOOR)
    parallel: str = _flag(opt.PARALLEL)
    confirm_margin: float = _flag(opt.CONFIRM_MARGIN, float, type=str)
    batch_grid: str = _flag(opt.BATCH_GRID)
    timeout: float = _flag(opt.TIMEOUT)
    monitor_hz: float = _flag(opt.MONITOR_HZ)
    results: Path = _flag(opt.RESULTS, Path, type=str)
    allow_foreign: bool = _flag(opt.ALLOW_FOREIGN)
    models: Path | None = _flag(opt.MODELS)
    repos_root: Path | None = _flag(opt.REPOS_ROOT)
    lenient: bool = _flag(opt.LENIENT)
    cpus: str | None = _flag(opt.CPUS)  # a worker's own cores, e.g. "0-15"
    baselines: bool | None = _flag(opt.BASELINES)  # None: the kind's default
    min_window_s: float | None = _flag(opt.MIN_WINDOW_S)  # None: the kind's
    probe_steps: int | None = _flag(opt.PROBE_STEPS)  # None: the study's
    confirm: str | None = _flag(opt.CONFIRM)  # None: the study's
    start: str = _flag(opt.START)

    def worker_argv(self, device: str, storage: str) -> list[str]:
        """The ``worker`` command that runs this request on ``device`` against ``storage``. A URL with a password
        is left off: a command line is readable by every user of the host (``ps``), so the worker reads it from
        its environment (``GPUPAIR_STORAGE``, :func:`worker_environment`)."""
        from gpupair_search.launcher.masking import has_secret

        shown = [] if has_secret(storage) else ["--storage", storage]
        return [sys.executable, "-m", "gpupair_search.search.cli.app", "worker", *shown, *self.worker_options(device)]

    def worker_options(self, device: str) -> list[str]:
        """The study options of ``worker``, without the storage (``slurm`` keeps it out of its job script)."""
        argv = ["--device", device]
        for f in fields(self):
            if f.name not in ("storage", "device"):
                argv += _as_flags(f.metadata["option"], getattr(self, f.name))
        return argv


def _as_flags(option, value) -> list[str]:
    """``value`` as the flags of ``option`` (typer's ParameterInfo): ``--flag VALUE`` or one side of an on/off pair."""
    names = [d for d in option.param_decls if d.startswith("--")]
    if isinstance(value, bool):
        on, _, off = names[0].partition("/")
        return [on] if value else ([off] if off else [])
    return [] if value is None else [names[0], str(value)]


def run_study(req: RunRequest, gpus: list[int] | None = None, worker: bool = False) -> int:
    """Run the study here (one device), or with ``gpus`` one worker process per GPU on shared storage.

    The study is opened first: a stored study with another definition stops the run before any device,
    job or trial is touched."""
    if worker and not req.storage and os.environ.get(STORAGE_VARIABLE):
        # From run --gpus: kept off the command line, and out of the environment the training jobs inherit.
        req = replace(req, storage=os.environ.pop(STORAGE_VARIABLE))
    if worker and not req.storage:
        raise UserError("worker needs --storage: the URL of the study's shared storage (docs/guide/many-gpus.md)")
    gc.freeze()  # the imports: never garbage, and scanned by every full collection of the setup below
    if req.cpus:
        pin_this_process(parse_cpu_list(req.cpus))  # before anything is started: the jobs inherit it
    choice = req.device or "auto"
    if gpus and choice != "auto":
        raise UserError(
            f"--gpus with --device {choice}: --gpus starts one worker on each NVIDIA GPU it lists; "
            "drop --device, or drop --gpus to run here on one device"
        )
    kind = StudyKind.GPU if gpus else study_kind(choice)
    card = opt.card_size(kind, req.gpu_memory, req.cpu_memory)
    inputs = resolve_inputs(req.study, req.settings, req.models, req.repos_root, req.lenient, card, req.safe_limit)
    if not worker:
        for warning in inputs.experiment.warnings:
            typer.echo(f"warning: {warning}", err=True)
    extension = ExtensionOptions(
        enabled=req.extend,
        policy=_policy(req.policy),
        floor=req.floor,
        confirm_margin=req.confirm_margin,
        grid=batch_grid(req.batch_grid),
        confirm=Confirm(req.confirm or inputs.defaults.confirm or Confirm.RECOMMENDED.value),
    )
    if gpus:
        return _run_workers(req, inputs, extension, gpus)
    _device_must_open(choice, inputs, req)
    fs = _open_study(req, inputs, extension, kind, req.storage)
    progress = Progress(len(inputs.experiment.pairs), inputs.safe_limit_mib, kind == StudyKind.SIMULATED)
    options = RunOptions(
        monitor_hz=req.monitor_hz,
        timeout_s=req.timeout,
        probe=req.probe,
        allow_foreign_processes=req.allow_foreign,
        warm_start=opt.STARTS[req.start],
        min_window_s=(fs.definition.min_window_s if fs.definition else None) or 0.0,
        probe_steps=(fs.definition.probe_steps if fs.definition else None) or RunOptions.probe_steps,
    )
    run_dir = RunDir(req.results)
    unconstrained, slots = _packing_device(req, inputs, choice)
    if kind != StudyKind.SIMULATED:
        _warm_up(
            unconstrained,
            lambda: open_device(choice, _device_request(inputs, req, card=False)),
            options,
            inputs.experiment.pairs,
            inputs.registry,
        )
    serial = lambda: _serial_executor(fs, inputs, req, choice, options, run_dir, progress)  # noqa: E731
    with ExitStack() as stack:
        if slots > 1:
            stack.callback(unconstrained.close)
            where = f"{unconstrained.name}, packed: up to {slots} trials at once"
        else:
            executor = stack.enter_context(serial())
            where = executor.inner.device.name
        retried = fs.recover_stale()  # first: an interrupted trial is re-queued once, not queued again as new
        _say_when_queueing_takes_a_while(len(fs.pairs))
        added = fs.enqueue_baselines() + fs.enqueue_initial()  # baselines first: each pair is then judged as it ends
        if inputs.registry.root_note and not worker:
            typer.echo(inputs.registry.root_note, err=True)
        typer.echo(
            f"study '{fs.settings.name}' on {where}: {len(inputs.experiment.pairs)} pairs, "
            f"{budget_words(kind, inputs.card_mib, inputs.safe_limit_mib)}, "
            f"{'probe' if req.probe else 'full epoch'} mode; {queued_words(added, retried, fs.waiting())}",
            err=True,
        )
        # The setup's objects (imports, the study's queued trials) out of the collector's full passes before the
        # first pair is sampled, as after each pair (DeviceExecutor.run): otherwise the first seconds hold full
        # collections long enough to cost sampler ticks (bench/gc_log.py).
        gc.freeze()
        if slots > 1:
            abort = threading.Event()
            packed = DeviceExecutor(inputs.registry, unconstrained, options, run_dir, packed=True, abort=abort)
            fs.placement = worker_placement(unconstrained)
            run_packed(fs, _ReportingExecutor(packed, fs, progress), slots, serial, extend=req.extend, abort=abort)
        else:
            fs.run(executor, extend=req.extend)
    if not worker:
        publish_to_dashboard(fs, kind)
        typer.echo(verdicts_text(fs.plans(), inputs.safe_limit_mib, kind))
        print_interference(fs)
    if run_dir.path is not None:
        typer.echo(f"results: {run_dir.path}", err=worker)
    return 0


def _device_must_open(choice: str, inputs, req: RunRequest) -> None:
    """Open the device once, without the card, before the study is stored: a run refused for want of a device
    (no NVIDIA GPU, no memory profile for a simulated job) leaves the storage and the results as they were. A
    budget the host cannot hold is said here too."""
    open_device(choice, _device_request(inputs, req, card=False)).close()
    if study_kind(choice) == StudyKind.CPU and (warning := budget_warning(inputs.card_mib)):
        typer.echo(f"warning: {warning}", err=True)


def _warm_up(
    device: Device | None,
    open_plain: Callable[[], Device],
    options: RunOptions,
    pairs: list[PairSpec],
    registry: Registry,
) -> None:
    """Start the warm launcher now, where built-in workloads will be forked from it: its imports then overlap
    the opening of the card (its memory holder) and the queueing of the study instead of delaying the first
    job (bench/startup_parts.py). ``device``: the packing device,
    else the GPU is opened plainly (NVML only) for the jobs' environment. Nothing for user scripts only."""
    jobs = [job for pair in pairs for job in (pair.foreground, pair.background) if job is not None]
    if not any(registry.repository(job.repo).train_module for job in jobs):
        return
    plain = device or open_plain()
    try:
        if starts_warm(options, plain):
            prestart(job_environment(plain), options.grace_s)
    finally:
        if device is None:
            plain.close()


def _device_request(inputs, req: RunRequest, card: bool = True) -> DeviceRequest:
    """What to open: the study's card (emulated on a bigger GPU, a host-memory budget on the CPU), or with
    ``card=False`` the device without a limit, for packed trials."""
    return DeviceRequest(card_mib=inputs.card_mib if card else None, simulation=lambda: simulated_device(inputs))


def _packing_device(req: RunRequest, inputs, choice: str) -> tuple[Device | None, int]:
    """The device without the card's limit and how many trials to pack on it; (None, 1) for a serial run, which
    opens only the card (``--parallel 1``, or ``auto`` where no more than one card fits)."""
    if req.parallel == "1":
        return None, 1
    device = open_device(choice, _device_request(inputs, req, card=False))
    slots = packing_slots(device, inputs.card_mib) if req.parallel == "auto" else int(req.parallel)
    if slots == 1:
        device.close()
        return None, 1
    return device, slots


@contextmanager
def _serial_executor(
    fs: FeasibilityStudy, inputs, req: RunRequest, choice: str, options: RunOptions, run_dir: RunDir, progress: Progress
) -> Iterator[_ReportingExecutor]:
    """The device as the study's card, one trial at a time, for as long as the serial phase lasts."""
    dev = open_device(choice, _device_request(inputs, req))
    executor: DeviceExecutor | None = None
    try:
        fs.placement = worker_placement(dev)
        executor = DeviceExecutor(inputs.registry, dev, options, run_dir, observer=progress.update)
        yield _ReportingExecutor(executor, fs, progress)
    finally:
        if executor is not None:
            executor.close()
        dev.close()


def publish_to_dashboard(fs: FeasibilityStudy, kind: StudyKind) -> None:
    """Store the frontiers, the pair matrix and the verdict note in the study for optuna-dashboard: the
    runner writes them, so that ``dashboard`` itself only reads."""
    try:
        from gpupair_search.search.views.dashboard import prepare

        prepare(fs, kind == StudyKind.SIMULATED)
    except ImportError:  # optuna-dashboard is an optional extra; without it there is nothing to show them
        pass


def _run_workers(req: RunRequest, inputs, extension: ExtensionOptions, gpus: list[int]) -> int:
    """One ``worker`` process per GPU against one storage; they end with us (job guard)."""

    for g in gpus:  # every GPU is there before the study is stored: else it would wait, queued, for workers that fail
        try:
            open_device(f"cuda:{g}").close()
        except NoDeviceError as exc:
            raise NoDeviceError(
                f"--gpus {','.join(map(str, gpus))}: cuda:{g} can't be opened ({exc}). Nothing was "
                "stored. --gpus needs NVIDIA GPUs; without them drop it and pass --device cpu or "
                "--device sim"
            ) from None
    url = req.storage or default_storage_url(req.results)
    fs = _open_study(req, inputs, extension, StudyKind.GPU, url)
    retried = fs.recover_stale()
    _say_when_queueing_takes_a_while(len(fs.pairs))
    added = fs.enqueue_baselines() + fs.enqueue_initial()
    shares = worker_shares(len(gpus))
    typer.echo(
        f"study '{fs.settings.name}': {queued_words(added, retried)}; one worker on each of "
        + ", ".join(f"cuda:{g}" + (f" (cores {cpus})" if cpus else "") for g, cpus in zip(gpus, shares)),
        err=True,
    )
    logs = req.results / "workers"
    environment = {**os.environ, STORAGE_VARIABLE: url}
    workers = [
        start_job(
            f"worker-{g}",
            Command(tuple(replace(req, cpus=cpus).worker_argv(f"cuda:{g}", url)), Path.cwd()),
            logs / f"cuda{g}.log",
            environment,
        )
        for g, cpus in zip(gpus, shares)
    ]
    try:
        codes = [w.popen.wait() for w in workers]
    finally:
        for w in workers:
            w.stop()
    for g, code in zip(gpus, codes):
        if code != 0:
            typer.echo(
                f"worker on cuda:{g} exited with {code}: {_last_error(logs / f'cuda{g}.log')}\n"
                f"  its log: {logs / f'cuda{g}.log'}",
                err=True,
            )
    publish_to_dashboard(fs, StudyKind.GPU)
    typer.echo(verdicts_text(fs.plans(), inputs.safe_limit_mib))
    return 0 if all(c == 0 for c in codes) else 1


def queued_words(added: int, retried: int, waiting: int | None = None) -> str:
    """What a run finds to do: the trials it queued, the interrupted ones it runs again, and those an earlier run
    queued and did not reach (``waiting``: every queued trial now, new and re-queued ones included)."""
    earlier = (waiting or 0) - added - retried
    return (
        f"{added} trial(s) queued"
        + (f", {retried} interrupted trial(s) to run again" if retried else "")
        + (f", {earlier} queued by an earlier run and not yet run" if earlier > 0 else "")
    )


def _last_error(log: Path) -> str:
    """The reason a worker gave for stopping: its last ``error:`` line, else its last line."""
    try:
        lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "(no log)"
    errors = [line for line in lines if line.startswith("error:")]
    return (errors or lines or ["(empty log)"])[-1][:300]


class _ReportingExecutor:
    """Wraps an executor with the progress line."""

    def __init__(self, inner, fs: FeasibilityStudy, progress: Progress) -> None:
        self.inner, self.fs, self.progress = inner, fs, progress
        self.run_dir = getattr(inner, "run_dir", None)

    def start_ahead(self, upcoming) -> None:
        self.inner.start_ahead(upcoming)

    def run(self, pair, trial_number):
        from optuna.trial import TrialState

        waiting = len(self.fs.study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
        label = self.progress.begin(trial_number, pair.key, self.fs.registry.batch_sizes(pair), waiting)
        result = self.inner.run(pair, trial_number)
        m = result.memory
        how = result.measurement.get("mode", "serial")
        verdict = trial_words(result.outcome, m.sum_of_peaks_mib, self.fs.settings.safe_limit_mib)
        self.progress.end(
            f"{how}, {verdict}: peak {m.sum_of_peaks_mib:,.0f} MiB "
            f"(fg {m.foreground_peak_mib:,.0f} + bg {m.background_peak_mib:,.0f}), "
            f"{result.foreground_duration_s:.0f} s" + (f", {result.probe_label}" if result.probe_label else ""),
            label,
        )
        for warning in measurement_warnings(result.warnings, pair):
            print(f"  warning: {warning}", file=self.progress.stream, flush=True)
        return result


def _open_study(
    req: RunRequest, inputs: StudyInputs, extension: ExtensionOptions, kind: StudyKind, storage: str | None
) -> FeasibilityStudy:
    """The study this request runs; each trial's logs, record and memory timeline go to optuna-dashboard's artifact
    store, kept in the results directory next to the default storage."""
    fs = open_study(
        inputs,
        storage,
        req.results,
        extension,
        kind,
        req.probe,
        req.name,
        req.baselines,
        req.min_window_s,
        req.probe_steps,
    )
    fs.attach_files = functools.partial(
        attach_trial_artifacts, store=artifact_store(req.results), safe_limit_mib=fs.settings.safe_limit_mib
    )
    return fs


def _say_when_queueing_takes_a_while(pairs: int) -> None:
    """Each queued trial is one write to the storage (tens of ms on SQLite): a long settings file is queued for
    a minute before the first trial line, so say so rather than look stuck."""
    if pairs >= 200:
        typer.echo(f"queueing the study's {pairs:,} pairs (one storage write each) ...", err=True)
