"""The ``run``, ``status`` and ``plan`` commands: choose the executor, run the study, print verdicts."""
from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import typer

from gpupair_search.launcher.cpu_share import parse_cpu_list, pin_this_process, worker_shares
from gpupair_search.launcher.devices import open_device
from gpupair_search.launcher.devices.base import NoDeviceError
from gpupair_search.launcher.devices.factory import describe_choices
from gpupair_search.launcher.errors import UserError
from gpupair_search.launcher.pair_runner import RunOptions
from gpupair_search.search.console import Progress, verdict_table
from gpupair_search.search.executors import DeviceExecutor, SimulatedExecutor
from gpupair_search.search.extension import Policy
from gpupair_search.search.planner import ExtensionOptions
from gpupair_search.search.placement import worker_placement
from gpupair_search.search.session import open_study, resolve_inputs, simulated_device
from gpupair_search.search.study import FeasibilityStudy


def _policy(text: str) -> Policy:
    try:
        return Policy(text)
    except ValueError:
        raise UserError(f"--policy {text!r}: expected one of " + ", ".join(p.value for p in Policy)) from None


def _open_real_device(device: str | None, card_mib: float, cpu_memory: str | None):
    from gpupair_search.launcher.devices.nvidia import nvml_available
    from gpupair_search.launcher.sizes import parse_size_mib

    if device is None and not nvml_available():
        raise NoDeviceError("no NVIDIA GPU found here, and no --device was given; nothing was started.\n"
                            "Choose what to measure on:\n" + describe_choices())
    choice = device or "auto"
    if choice == "cpu":
        budget = parse_size_mib(cpu_memory) if cpu_memory else card_mib
        return open_device("cpu", None, budget)
    probe = open_device(choice)  # find the real card size first
    total = probe.capacity_mib
    probe.close()
    if total is not None and total > card_mib + 1:
        return open_device(choice, card_mib)  # a bigger card: emulate the target card with real OOMs
    return open_device(choice)


@dataclass
class RunRequest:
    """The options of ``run`` / ``worker``, kept together so ``run --gpus`` can hand them to its workers."""

    study: str | None = None
    settings: Path | None = None
    storage: str | None = None
    device: str | None = None
    gpu_memory: str | None = None
    safe_limit: str | None = None
    cpu_memory: str | None = None
    probe: bool = True
    extend: bool = True
    policy: str = "background-first"
    floor: int = 1
    timeout: float = 3600.0
    monitor_hz: float = 20.0
    results: Path = Path("results")
    allow_foreign: bool = False
    models: Path | None = None
    repos_root: Path | None = None
    lenient: bool = False
    cpus: str | None = None  # a worker's own cores on a shared host, e.g. "0-15"

    def worker_argv(self, device: str, storage: str) -> list[str]:
        return [sys.executable, "-m", "gpupair_search.search.cli", "worker", "--storage", storage,
                *self.worker_options(device)]

    def worker_options(self, device: str) -> list[str]:
        """The study options of ``worker``, without the storage (``slurm`` keeps it out of its job script)."""
        argv = ["--device", device,
                "--results", str(self.results), "--policy", self.policy, "--floor", str(self.floor),
                "--timeout", str(self.timeout), "--monitor-hz", str(self.monitor_hz),
                "--probe" if self.probe else "--full-epoch", "--extend" if self.extend else "--no-extend"]
        for flag, value in (("--study", self.study), ("--settings", self.settings), ("--gpu-memory", self.gpu_memory),
                            ("--safe-limit", self.safe_limit), ("--cpu-memory", self.cpu_memory),
                            ("--models", self.models), ("--repos-root", self.repos_root), ("--cpus", self.cpus)):
            if value is not None:
                argv += [flag, str(value)]
        argv += ["--allow-foreign-processes"] * self.allow_foreign + ["--lenient"] * self.lenient
        return argv


def run_study(req: RunRequest, gpus: list[int] | None = None, worker: bool = False) -> int:
    """Run the study here (one device), or with ``gpus`` one worker process per GPU on shared storage."""
    if req.cpus:
        pin_this_process(parse_cpu_list(req.cpus))  # before anything is started: the jobs inherit it
    inputs = resolve_inputs(req.study, req.settings, req.models, req.repos_root, req.lenient, req.gpu_memory,
                            req.safe_limit)
    if not worker:
        for warning in inputs.experiment.warnings:
            typer.echo(f"warning: {warning}", err=True)
    extension = ExtensionOptions(enabled=req.extend, policy=_policy(req.policy), floor=req.floor)
    simulated = req.device == "sim"
    if gpus:
        return _run_workers(req, inputs, extension, gpus)
    progress = Progress(len(inputs.experiment.pairs), inputs.safe_limit_mib, simulated)
    if simulated:
        dev = None
        executor = SimulatedExecutor(simulated_device(inputs), req.results)
        where = executor.device.name
    else:
        dev = _open_real_device(req.device, inputs.card_mib, req.cpu_memory)
        options = RunOptions(monitor_hz=req.monitor_hz, timeout_s=req.timeout, probe=req.probe,
                             allow_foreign_processes=req.allow_foreign)
        executor = DeviceExecutor(inputs.registry, dev, options, req.results, observer=progress.update)
        where = dev.name
    try:
        fs = open_study(inputs, req.storage, req.results, extension, simulated)
        fs.placement = worker_placement(dev)
        fs.recover_stale()  # first: an interrupted trial is re-queued once, not queued again as new
        added = fs.enqueue_initial()
        typer.echo(f"study '{fs.settings.name}' on {where}: {len(inputs.experiment.pairs)} pairs, "
                   f"card {inputs.card_mib:,.0f} MiB, safe limit {inputs.safe_limit_mib:,.0f} MiB, "
                   f"{'probe' if req.probe else 'full epoch'} mode; {added} trial(s) queued", err=True)
        fs.run(_ReportingExecutor(executor, fs, progress), extend=req.extend, wait_for_others=worker)
    finally:
        if dev is not None:
            dev.close()
    if not worker:
        typer.echo(verdict_table(fs.plans(), inputs.safe_limit_mib, simulated))
    if executor.run_dir is not None and executor.run_dir.path is not None:
        typer.echo(f"results: {executor.run_dir.path}", err=worker)
    return 0


def _run_workers(req: RunRequest, inputs, extension: ExtensionOptions, gpus: list[int]) -> int:
    """One ``worker`` process per GPU against one storage; they end with us (job guard)."""
    from gpupair_search.launcher.process import start_job
    from gpupair_search.launcher.registry import Command
    from gpupair_search.search.storage import default_storage_url

    url = req.storage or default_storage_url(req.results)
    fs = open_study(inputs, url, req.results, extension, simulated=False)
    fs.recover_stale()
    added = fs.enqueue_initial()
    shares = worker_shares(len(gpus))
    typer.echo(f"study '{fs.settings.name}': {added} trial(s) queued; one worker on each of "
               + ", ".join(f"cuda:{g}" + (f" (cores {cpus})" if cpus else "") for g, cpus in zip(gpus, shares)),
               err=True)
    logs = req.results / "workers"
    workers = [start_job(f"worker-{g}", Command(tuple(replace(req, cpus=cpus).worker_argv(f"cuda:{g}", url)),
                                                Path.cwd()), logs / f"cuda{g}.log", dict(os.environ))
               for g, cpus in zip(gpus, shares)]
    try:
        codes = [w.popen.wait() for w in workers]
    finally:
        for w in workers:
            w.stop()
    for g, code in zip(gpus, codes):
        if code != 0:
            typer.echo(f"worker on cuda:{g} exited with {code}; see {logs / f'cuda{g}.log'}", err=True)
    typer.echo(verdict_table(fs.plans(), inputs.safe_limit_mib))
    return 0 if all(c == 0 for c in codes) else 1


class _ReportingExecutor:
    """Wraps an executor with the progress line."""

    def __init__(self, inner, fs: FeasibilityStudy, progress: Progress) -> None:
        self.inner, self.fs, self.progress = inner, fs, progress
        self.run_dir = getattr(inner, "run_dir", None)

    def run(self, pair, trial_number):
        from optuna.trial import TrialState

        waiting = len(self.fs.study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
        config = (self.fs.registry.batch_size(pair.foreground),
                  self.fs.registry.batch_size(pair.background) if pair.background else None)
        self.progress.begin(trial_number, pair.key, config, waiting)
        result = self.inner.run(pair, trial_number)
        m = result.memory
        self.progress.end(f"{result.outcome.value}: peak {m.sum_of_peaks_mib:,.0f} MiB "
                          f"(fg {m.foreground_peak_mib:,.0f} + bg {m.background_peak_mib:,.0f}), "
                          f"{result.foreground_duration_s:.0f} s")
        return result


def print_status(study, settings, storage, results, simulated, models, repos_root, lenient) -> None:
    """The verdict table of a stored study, judged with the card and limit it was run with."""
    from gpupair_search.search.report import open_results

    fs = open_results(study, settings, storage, results, simulated, models, repos_root, lenient)
    typer.echo(verdict_table(fs.plans(), fs.settings.safe_limit_mib, simulated))


def predict(study, settings, gpu_memory, safe_limit, models, repos_root, lenient) -> str:
    inputs = resolve_inputs(study, settings, models, repos_root, lenient, gpu_memory, safe_limit)
    device = simulated_device(inputs)
    with tempfile.TemporaryDirectory() as tmp:
        fs = open_study(inputs, f"sqlite:///{tmp}/plan.db", Path(tmp), ExtensionOptions(), simulated=True)
        fs.enqueue_initial()
        fs.run(SimulatedExecutor(device, None))
        table = verdict_table(fs.plans(), inputs.safe_limit_mib, simulated=True)
    return f"SIMULATED prediction for a {inputs.card_mib:,.0f} MiB card ({device.name})\n{table}"
