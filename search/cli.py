"""The ``gpupair-search`` command line. Each command is a thin shell over one module."""
from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Callable, List, Optional

import typer

from gpupair_search.launcher.errors import UserError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Find which training jobs can share one GPU, and at what batch sizes.")

ModelsOpt = typer.Option(None, "--models", help="Models file in the seed's format (default: the built-in workloads).")
ReposRootOpt = typer.Option(None, "--repos-root", help="Directory that relative repository paths of --models resolve against (default: current directory).")
LenientOpt = typer.Option(False, "--lenient", help="Drop unknown hyperparameters with a recorded warning instead of stopping.")


def user_errors(fn: Callable) -> Callable:
    """Print user mistakes as one clear message and exit non-zero; no traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UserError as exc:
            typer.echo(f"error: {exc.render()}", err=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            typer.echo("interrupted: the current pair was stopped and its trial marked; run the same command "
                       "again to resume", err=True)
            raise typer.Exit(130) from None

    return wrapper


@app.command()
@user_errors
def validate(settings: Path = typer.Argument(..., help="Experiment settings file (seed format)."),
             models: Optional[Path] = ModelsOpt, repos_root: Optional[Path] = ReposRootOpt,
             lenient: bool = LenientOpt) -> None:
    """Check a settings file and print the pairs it would run. Exit 0 valid, 1 invalid, 2 unreadable."""
    from gpupair_search.search.inputs import load_registry, load_settings

    registry = load_registry(models, repos_root)
    experiment = load_settings(settings, registry, lenient)
    for warning in experiment.warnings:
        typer.echo(f"warning: {warning}", err=True)
    typer.echo(f"{settings}: {len(experiment.pairs)} pair(s) in '{experiment.name}'")
    for pair in experiment.pairs:
        typer.echo(f"  {pair.key}  {pair.note}")
        typer.echo(f"      foreground: {registry.command(pair.foreground).display()}")
        if pair.background:
            typer.echo(f"      background: {registry.command(pair.background).display()}")


def _parse_params(values: List[str], flag: str) -> dict:
    import json

    out = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise UserError(f"{flag} {item!r}: expected KEY=VALUE, e.g. {flag} batch_size=16")
        try:
            out[key] = json.loads(raw)  # numbers and booleans as such
        except ValueError:
            out[key] = raw  # anything else is a literal string, passed to the script unchanged
    return out


def _parse_job(text: str, params: List[str], flag: str, registry, lenient: bool):
    from gpupair_search.launcher.errors import ConfigError
    from gpupair_search.launcher.spec import JobConfig

    repo, sep, model = text.rpartition("/")
    if not sep:
        repo, model = text, "default"
    job = JobConfig(repo, model, _parse_params(params, flag))
    check = registry.check_job(job, flag.lstrip("-"), "command line", lenient)
    if check.problems:
        raise ConfigError(check.problems)
    return job.without(check.dropped), check.warnings


@app.command()
@user_errors
def pair(fg: str = typer.Option(..., "--fg", help="Foreground job as REPO/MODEL (REPO alone for 'default')."),
         bg: Optional[str] = typer.Option(None, "--bg", help="Background job as REPO/MODEL; omit for a solo run."),
         fg_param: List[str] = typer.Option([], "--fg-param", help="Foreground hyperparameter KEY=VALUE (repeatable)."),
         bg_param: List[str] = typer.Option([], "--bg-param", help="Background hyperparameter KEY=VALUE (repeatable)."),
         device: str = typer.Option("auto", "--device", help="auto, cuda:N or cpu."),
         gpu_memory: Optional[str] = typer.Option(None, "--gpu-memory", help="Emulate a card with this much memory, e.g. 8GiB."),
         cpu_memory: Optional[str] = typer.Option(None, "--cpu-memory", help="Host-memory budget for --device cpu, e.g. 4GiB."),
         timeout: float = typer.Option(3600.0, "--timeout", help="Seconds before the foreground is killed."),
         probe: bool = typer.Option(False, "--probe", help="Stop jobs after a short probe (built-ins: --max-steps)."),
         monitor_hz: float = typer.Option(20.0, "--monitor-hz", help="Memory sampling rate."),
         results: Path = typer.Option(Path("results"), "--results", help="Results root directory."),
         allow_foreign: bool = typer.Option(False, "--allow-foreign-processes", help="Run even if other processes hold GPU memory."),
         cold_start: bool = typer.Option(False, "--cold-start", help="Start built-in workloads as fresh processes, not forked from the warm launcher."),
         models: Optional[Path] = ModelsOpt, repos_root: Optional[Path] = ReposRootOpt,
         lenient: bool = LenientOpt) -> None:
    """Run one foreground/background pair and print its outcome and peaks."""
    from gpupair_search.launcher.devices import open_device
    from gpupair_search.launcher.pair_runner import RunOptions, run_pair
    from gpupair_search.launcher.results import new_pair_dir, new_run_dir, write_pair_results
    from gpupair_search.launcher.sizes import format_mib
    from gpupair_search.launcher.spec import PairSpec
    from gpupair_search.search.inputs import load_registry

    registry = load_registry(models, repos_root)
    fg_job, fg_warn = _parse_job(fg, fg_param, "--fg-param", registry, lenient)
    bg_job, bg_warn = _parse_job(bg, bg_param, "--bg-param", registry, lenient) if bg else (None, [])
    spec = PairSpec(1, fg_job, bg_job, source="command line", warnings=tuple(fg_warn + bg_warn))
    dev = open_device(device, _size(gpu_memory, "--gpu-memory"), _size(cpu_memory, "--cpu-memory"))
    try:
        pair_dir = new_pair_dir(new_run_dir(results), spec)
        options = RunOptions(monitor_hz=monitor_hz, timeout_s=timeout, probe=probe,
                             allow_foreign_processes=allow_foreign, warm_start=not cold_start)
        result = run_pair(spec, registry, dev, options, pair_dir)
        write_pair_results(result, pair_dir)
    finally:
        dev.close()
    m = result.memory
    typer.echo(f"outcome: {result.outcome.value}" + (f"  ({result.error_message})" if result.error_message else ""))
    typer.echo(f"device: {dev.name}")
    typer.echo(f"peak foreground {format_mib(m.foreground_peak_mib)}, background {format_mib(m.background_peak_mib)}, "
               f"concurrent {format_mib(m.concurrent_peak_mib)}, sum of peaks {format_mib(m.sum_of_peaks_mib)} "
               f"({m.samples} samples at {m.sample_hz} Hz)")
    for warning in result.warnings:
        typer.echo(f"warning: {warning}", err=True)
    typer.echo(f"results: {pair_dir}")
    if result.outcome.value != "ok":
        raise typer.Exit(3)


StudyOpt = typer.Option(None, "--study", help="Named study (default: feasibility).")
SettingsOpt = typer.Option(None, "--settings", help="Run any seed-format settings file as a study.")
StorageOpt = typer.Option(None, "--storage", help="Optuna storage URL (default: sqlite file in --results).")
ResultsOpt = typer.Option(Path("results"), "--results", help="Results root directory.")


@app.command()
@user_errors
def run(study: Optional[str] = StudyOpt, settings: Optional[Path] = SettingsOpt, storage: Optional[str] = StorageOpt,
        device: Optional[str] = typer.Option(None, "--device", help="auto, cuda:N, cpu or sim (required without an NVIDIA GPU)."),
        gpus: Optional[str] = typer.Option(None, "--gpus", help="Comma-separated GPU indices: one worker per GPU on shared storage, e.g. 0,1."),
        gpu_memory: Optional[str] = typer.Option(None, "--gpu-memory", help="Card size to fit on (emulated on a bigger GPU). Default: the study's (8GiB)."),
        safe_limit: Optional[str] = typer.Option(None, "--safe-limit", help="Pair peak must stay under this. Default: the study's (7500MiB)."),
        cpu_memory: Optional[str] = typer.Option(None, "--cpu-memory", help="Host-memory budget with --device cpu (default: the card size)."),
        probe: bool = typer.Option(True, "--probe/--full-epoch", help="Probe (short run to the memory plateau) or the seed's full epoch."),
        extend: bool = typer.Option(True, "--extend/--no-extend", help="Reduce batch sizes of failing pairs."),
        policy: str = typer.Option("background-first", "--policy", help="background-first, foreground-first or proportional."),
        floor: int = typer.Option(1, "--floor", min=1, help="Smallest batch size the extension may try."),
        timeout: float = typer.Option(3600.0, "--timeout", help="Seconds before a foreground is killed."),
        monitor_hz: float = typer.Option(20.0, "--monitor-hz", help="Memory sampling rate."),
        results: Path = ResultsOpt, allow_foreign: bool = typer.Option(False, "--allow-foreign-processes"),
        models: Optional[Path] = ModelsOpt, repos_root: Optional[Path] = ReposRootOpt, lenient: bool = LenientOpt) -> None:
    """Run a study: every pair as a trial, failing pairs extended by batch-size reduction."""
    from gpupair_search.search.run_study import RunRequest, run_study

    request = RunRequest(study, settings, storage, device, gpu_memory, safe_limit, cpu_memory, probe, extend, policy,
                         floor, timeout, monitor_hz, results, allow_foreign, models, repos_root, lenient)
    raise typer.Exit(run_study(request, gpus=_gpu_list(gpus)))


@app.command()
@user_errors
def worker(study: Optional[str] = StudyOpt, settings: Optional[Path] = SettingsOpt,
           storage: str = typer.Option(..., "--storage", help="The shared Optuna storage URL, e.g. postgresql://..."),
           device: Optional[str] = typer.Option(None, "--device", help="auto, cuda:N, cpu or sim."),
           gpu_memory: Optional[str] = typer.Option(None, "--gpu-memory"), safe_limit: Optional[str] = typer.Option(None, "--safe-limit"),
           cpu_memory: Optional[str] = typer.Option(None, "--cpu-memory"),
           probe: bool = typer.Option(True, "--probe/--full-epoch"), extend: bool = typer.Option(True, "--extend/--no-extend"),
           policy: str = typer.Option("background-first", "--policy"), floor: int = typer.Option(1, "--floor", min=1),
           timeout: float = typer.Option(3600.0, "--timeout"), monitor_hz: float = typer.Option(20.0, "--monitor-hz"),
           results: Path = ResultsOpt, allow_foreign: bool = typer.Option(False, "--allow-foreign-processes"),
           models: Optional[Path] = ModelsOpt, repos_root: Optional[Path] = ReposRootOpt, lenient: bool = LenientOpt,
           cpus: Optional[str] = typer.Option(None, "--cpus", help="Run this worker and its jobs on these cores only, e.g. 0-15 (run --gpus gives each worker its share).")) -> None:
    """Take trials of a shared study until none is left (run one per GPU or host against the same storage)."""
    from gpupair_search.search.run_study import RunRequest, run_study

    request = RunRequest(study, settings, storage, device, gpu_memory, safe_limit, cpu_memory, probe, extend, policy,
                         floor, timeout, monitor_hz, results, allow_foreign, models, repos_root, lenient, cpus)
    raise typer.Exit(run_study(request, worker=True))


def _gpu_list(text: Optional[str]) -> Optional[list]:
    if not text:
        return None
    try:
        gpus = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"--gpus {text!r}: expected comma-separated GPU indices, e.g. --gpus 0,1") from None
    if len(set(gpus)) != len(gpus) or not gpus:
        raise UserError(f"--gpus {text!r}: each GPU once, at least one")
    return gpus


@app.command()
@user_errors
def status(study: Optional[str] = StudyOpt, settings: Optional[Path] = SettingsOpt, storage: Optional[str] = StorageOpt,
           results: Path = ResultsOpt, simulated: bool = typer.Option(False, "--simulated", help="The simulated study of that name."),
           models: Optional[Path] = ModelsOpt, repos_root: Optional[Path] = ReposRootOpt, lenient: bool = LenientOpt) -> None:
    """Print the table of pair verdicts from storage, at any time."""
    from gpupair_search.search.run_study import print_status

    print_status(study, settings, storage, results, simulated, models, repos_root, lenient)


@app.command()
@user_errors
def plan(gpu_memory: str = typer.Option(..., "--gpu-memory", help="The card to predict for, e.g. 8GiB."),
         safe_limit: Optional[str] = typer.Option(None, "--safe-limit"),
         study: Optional[str] = StudyOpt, settings: Optional[Path] = SettingsOpt,
         models: Optional[Path] = ModelsOpt, repos_root: Optional[Path] = ReposRootOpt, lenient: bool = LenientOpt) -> None:
    """Predict (simulated, from shipped profiles) which pairs fit on a card you do not have."""
    from gpupair_search.search.run_study import predict

    typer.echo(predict(study, settings, gpu_memory, safe_limit, models, repos_root, lenient))


SimulatedOpt = typer.Option(False, "--simulated", help="The simulated study of that name.")


@app.command()
@user_errors
def report(study: Optional[str] = StudyOpt, settings: Optional[Path] = SettingsOpt, storage: Optional[str] = StorageOpt,
           results: Path = ResultsOpt, simulated: bool = SimulatedOpt,
           models: Optional[Path] = ModelsOpt, repos_root: Optional[Path] = ReposRootOpt, lenient: bool = LenientOpt,
           output: Path = typer.Option(Path("report.html"), "-o", "--output", help="HTML file to write.")) -> None:
    """Write one self-contained HTML report of a study (opens with no network)."""
    from gpupair_search.search.report import open_results, write_report

    fs = open_results(study, settings, storage, results, simulated, models, repos_root, lenient)
    figures = write_report(fs, output, results)
    typer.echo(f"{output}: {figures} figures of study '{fs.settings.name}'")


@app.command()
@user_errors
def export(study: Optional[str] = StudyOpt, settings: Optional[Path] = SettingsOpt, storage: Optional[str] = StorageOpt,
           results: Path = ResultsOpt, simulated: bool = SimulatedOpt,
           output: Path = typer.Option(Path("safe_pairs.json"), "-o", "--output", help="Settings file to write."),
           margin: str = typer.Option("0MiB", "--margin", help="Keep pairs whose verified peak is this far under the safe limit, e.g. 200MiB."),
           models: Optional[Path] = typer.Option(None, "--models", help="Models file the exported settings will run with "
                                                 "(e.g. the seed's models_config.json). Default: the study's (--study-models)."),
           study_models: Optional[Path] = typer.Option(None, "--study-models", help="Models file the study ran with (default: the built-in workloads)."),
           repos_root: Optional[Path] = ReposRootOpt, lenient: bool = LenientOpt) -> None:
    """Write the verified-safe pairs as a settings file in the seed's format, by risk class."""
    from gpupair_search.search.export import additions_path, build_export, parse_margin, write_export
    from gpupair_search.search.report import open_results

    fs = open_results(study, settings, storage, results, simulated, study_models, repos_root, lenient)
    result = build_export(fs, models or fs.registry.file, parse_margin(margin))
    for warning in result.warnings:
        typer.echo(f"warning: {warning}", err=True)
    write_export(result, output)
    classes = ", ".join(f"{n} {c}" for c, n in result.classes.items())
    typer.echo(f"{output}: {sum(result.classes.values())} safe pair(s) ({classes}); "
               f"{result.unsafe} without a safe configuration listed under _unsafe_pairs")
    if result.additions:
        typer.echo(f"{additions_path(output)}: models-file entries to add before running it (see the warnings)", err=True)


@app.command()
@user_errors
def dashboard(study: Optional[str] = StudyOpt, settings: Optional[Path] = SettingsOpt, storage: Optional[str] = StorageOpt,
              results: Path = ResultsOpt, simulated: bool = SimulatedOpt,
              host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (the dashboard has no login: keep it local)."),
              port: int = typer.Option(8080, "--port", help="Port to listen on."),
              models: Optional[Path] = ModelsOpt, repos_root: Optional[Path] = ReposRootOpt,
              lenient: bool = LenientOpt) -> None:
    """Serve optuna-dashboard on the study, with each trial's files and the feasible frontiers."""
    from gpupair_search.search.dashboard import prepare, serve
    from gpupair_search.search.report import is_simulated, open_results

    fs = open_results(study, settings, storage, results, simulated, models, repos_root, lenient)
    prepare(fs, is_simulated(fs))
    from gpupair_search.search.storage import existing_storage_url

    serve(storage or existing_storage_url(results), results, host, port)


def _size(text: Optional[str], flag: str) -> Optional[float]:
    from gpupair_search.launcher.sizes import parse_size_mib

    if text is None:
        return None
    try:
        return parse_size_mib(text)
    except ValueError as exc:
        raise UserError(f"{flag}: {exc}") from None


def _terminate_as_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt  # SIGTERM (e.g. from our job guard) cleans up like Ctrl-C


def main() -> None:
    import signal

    signal.signal(signal.SIGTERM, _terminate_as_interrupt)
    app()


if __name__ == "__main__":
    sys.exit(main())
