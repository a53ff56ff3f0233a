"""The ``run``, ``status`` and ``plan`` commands: choose the executor, run the study, print verdicts."""
from __future__ import annotations

import tempfile
from pathlib import Path

import typer

from launcher.devices import open_device
from launcher.devices.base import NoDeviceError
from launcher.errors import UserError
from launcher.pair_runner import RunOptions
from launcher.devices.select import describe_choices
from search.console import Progress, verdict_table
from search.executors import DeviceExecutor, SimulatedExecutor
from search.extension import Policy
from search.planner import ExtensionOptions
from search.session import open_study, resolve_inputs, simulated_device
from search.study import FeasibilityStudy


def _policy(text: str) -> Policy:
    try:
        return Policy(text)
    except ValueError:
        raise UserError(f"--policy {text!r}: expected one of " + ", ".join(p.value for p in Policy)) from None


def _open_real_device(device: str | None, card_mib: float, cpu_memory: str | None, gpu_memory_flag: str | None):
    from launcher.devices.nvidia import nvml_available
    from launcher.sizes import parse_size_mib

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


def run_study(*, study, settings, storage, device, gpu_memory, safe_limit, cpu_memory, probe, extend, policy, floor,
              timeout, monitor_hz, results, allow_foreign, models, repos_root, lenient) -> int:
    inputs = resolve_inputs(study, settings, models, repos_root, lenient, gpu_memory, safe_limit)
    for warning in inputs.experiment.warnings:
        typer.echo(f"warning: {warning}", err=True)
    extension = ExtensionOptions(enabled=extend, policy=_policy(policy), floor=floor)
    simulated = device == "sim"
    progress = Progress(len(inputs.experiment.pairs), inputs.safe_limit_mib, simulated)
    if simulated:
        dev = None
        executor = SimulatedExecutor(simulated_device(inputs), results)
        where = executor.device.name
    else:
        dev = _open_real_device(device, inputs.card_mib, cpu_memory, gpu_memory)
        options = RunOptions(monitor_hz=monitor_hz, timeout_s=timeout, probe=probe, allow_foreign_processes=allow_foreign)
        executor = DeviceExecutor(inputs.registry, dev, options, results, observer=progress.update)
        where = dev.name
    try:
        fs = open_study(inputs, storage, results, extension, simulated)
        added = fs.enqueue_initial()
        typer.echo(f"study '{fs.settings.name}' on {where}: {len(inputs.experiment.pairs)} pairs, "
                   f"card {inputs.card_mib:,.0f} MiB, safe limit {inputs.safe_limit_mib:,.0f} MiB, "
                   f"{'probe' if probe else 'full epoch'} mode; {added} trial(s) queued", err=True)
        fs.run(_ReportingExecutor(executor, fs, progress), extend=extend)
    finally:
        if dev is not None:
            dev.close()
    plans = fs.plans()
    typer.echo(verdict_table(plans, inputs.safe_limit_mib, simulated))
    if executor.run_dir is not None and executor.run_dir.path is not None:
        typer.echo(f"results: {executor.run_dir.path}")
    return 0


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
    inputs = resolve_inputs(study, settings, models, repos_root, lenient, None, None)
    fs = open_study(inputs, storage, results, ExtensionOptions(), simulated)
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
