"""The ``gpupair-search`` command line. Each command is a thin shell over one module; every option is
defined once, with its check, in :mod:`gpupair_search.search.cli.options`."""

from __future__ import annotations

import functools
import inspect
import sys
import typing
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path

import click
import typer
from typer.core import TyperCommand

from gpupair_search.launcher.errors import UserError
from gpupair_search.launcher.spec import StudyKind
from gpupair_search.search.cli import options as opt
from gpupair_search.search.cli.run_study import RunRequest


class PanelCommand(TyperCommand):
    """A command whose ``--help`` lists its options in sections, by each option's ``rich_help_panel``
    (:data:`cli_options.PANELS` gives the order). Typer draws those sections only with rich markup; help here
    is plain text (no markup to escape in the help strings), so the sections are drawn here."""

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        arguments, panels = [], {}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            if param.param_type_name == "argument":
                arguments.append(record)
            else:
                panels.setdefault(getattr(param, "rich_help_panel", None) or "Options", []).append(record)
        if arguments:
            with formatter.section("Arguments"):
                formatter.write_dl(arguments)
        order = {title: i for i, title in enumerate(opt.PANELS)}
        for title in sorted(panels, key=lambda t: order.get(t, len(order))):
            with formatter.section(title):
                formatter.write_dl(panels[title])


class _App(typer.Typer):
    def command(self, *args, **kwargs):  # type: ignore[override]
        return super().command(*args, cls=kwargs.pop("cls", PanelCommand), **kwargs)


app = _App(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="Find which training jobs can share one GPU, and at what batch sizes.",
)


def version() -> str:
    """The installed distribution's version; a source checkout run without installing has the package's."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("gpupair-search")
    except PackageNotFoundError:
        from gpupair_search import __version__

        return __version__


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"gpupair-search {version()}")
        raise typer.Exit()


@app.callback()
def _options(
    show_version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    # no docstring: the app's help above is the one --help shows
    pass


_INTERRUPTED = {
    None: "interrupted: the current pair was stopped and its trial marked; run the same command again to resume",
    "pair": "interrupted: the pair's jobs were stopped. A pair is no study, so nothing resumes it: run it again",
}


def user_errors(fn: Callable) -> Callable:
    """Print user mistakes as one clear message and exit non-zero; no traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UserError as exc:
            from gpupair_search.launcher.masking import mask_secrets

            typer.echo(f"error: {mask_secrets(exc.render())}", err=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            typer.echo(_INTERRUPTED.get(fn.__name__, _INTERRUPTED[None]), err=True)
            raise typer.Exit(130) from None

    return wrapper


def with_run_request(exclude: tuple[str, ...] = (), check_idle: bool = True) -> Callable:
    """Give a command every :class:`RunRequest` field as an option (less ``exclude``); the command receives
    them as one ``request``. So ``run`` and ``worker`` share one definition of their options. A given flag that
    has no effect with the others (search/cli/idle_flags.py) is refused first; not by ``worker``, whose flags
    ``run --gpus`` and ``slurm`` write out in full."""

    def decorate(fn: Callable) -> Callable:
        own = inspect.signature(fn, eval_str=True)
        hints = typing.get_type_hints(RunRequest)
        shared = [f for f in fields(RunRequest) if f.name not in exclude]
        params = (
            [p for p in own.parameters.values() if p.name != "request"]
            + [inspect.Parameter("_ctx", inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context)]
            + [
                inspect.Parameter(
                    f.name,
                    inspect.Parameter.KEYWORD_ONLY,
                    default=f.metadata["option"],
                    annotation=f.metadata.get("type", hints[f.name]),
                )
                for f in shared
            ]
        )

        @functools.wraps(fn)
        def wrapper(**kwargs):
            from gpupair_search.search.cli.idle_flags import RUN_RULES, given_options, refuse_idle_flags

            given = given_options(kwargs.pop("_ctx"))
            if check_idle:
                refuse_idle_flags(kwargs, given, RUN_RULES)
            request = RunRequest(**{f.name: kwargs.pop(f.name) for f in shared})
            return fn(request=request, **kwargs)

        wrapper.__signature__ = own.replace(parameters=params)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in params}
        del wrapper.__wrapped__  # typer reads the signature above, not fn's
        return wrapper

    return decorate


@app.command()
@user_errors
def validate(
    settings: Path | None = typer.Argument(None, help="Experiment settings file (seed format)."),
    settings_option: Path | None = typer.Option(
        None,
        "--settings",
        help="The same file, as run and the other commands take it.",
        rich_help_panel=opt.STUDY_PANEL,
    ),
    models: Path | None = opt.MODELS,
    repos_root: Path | None = opt.REPOS_ROOT,
    lenient: bool = opt.LENIENT,
) -> None:
    """Check a settings file and print the pairs it would run. Exit 0 valid, 1 invalid, 2 unreadable."""
    from gpupair_search.search.engine.inputs import load_registry, load_settings, validation_lines

    if (settings is None) == (settings_option is None):
        raise UserError(
            "validate: give one settings file, as an argument or as --settings FILE"
            + (f" (both were given: {settings} and {settings_option})" if settings else "")
        )
    settings = settings or settings_option
    assert settings is not None
    registry = load_registry(models, repos_root, need_clones=False)
    experiment = load_settings(settings, registry, lenient)
    out, warnings = validation_lines(settings, experiment, registry)
    for line in warnings:
        typer.echo(line, err=True)
    for line in out:
        typer.echo(line)


def _parse_params(values: list[str], flag: str) -> dict:
    import json

    out = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise UserError(f"{flag} {item!r}: expected KEY=VALUE, e.g. {flag} batch_size=16")
        if key in out:
            raise UserError(f"{flag} {key}= is given twice ({out[key]!r} and {raw!r}); give each hyperparameter once")
        try:
            out[key] = json.loads(raw)  # numbers and booleans as such
        except ValueError:
            out[key] = raw  # anything else is a literal string, passed to the script unchanged
    return out


def _parse_job(text: str, params: list[str], flag: str, registry, lenient: bool):
    from gpupair_search.launcher.errors import ConfigError
    from gpupair_search.launcher.spec import JobConfig

    repo, sep, model = text.rpartition("/")
    if not sep:
        repo, model = text, "default"
    job = JobConfig(repo, model, _parse_params(params, flag))
    check = registry.check_job(job, flag.lstrip("-"), "command line", lenient)
    if check.problems:
        raise ConfigError([_on_the_command_line(p, flag) for p in check.problems])
    return check.applied(job), check.warnings


def _on_the_command_line(problem, param_flag: str):
    """A job's problem said as the flag that gave the value: ``--fg`` for its repository and model, ``--fg-param
    KEY`` for a hyperparameter (the registry says where in a settings file it would be)."""
    from dataclasses import replace

    job_flag = param_flag.removesuffix("-param")
    _, _, rest = problem.where.partition(".")
    if rest in ("repo", "model"):
        where = f"{job_flag} ({rest})"
    elif rest.startswith("hyperparameters"):
        where = f"{param_flag} {rest.removeprefix('hyperparameters').lstrip('.')}".rstrip()
    else:
        where = problem.where
    return replace(problem, where=where, fix=problem.fix.replace(" in the settings file", ""))


@app.command()
@user_errors
def pair(
    ctx: typer.Context,
    fg: str = typer.Option(
        ..., "--fg", rich_help_panel=opt.PAIR_PANEL, help="Foreground job as REPO/MODEL (REPO alone for 'default')."
    ),
    bg: str | None = typer.Option(
        None, "--bg", rich_help_panel=opt.PAIR_PANEL, help="Background job as REPO/MODEL; omit for a solo run."
    ),
    fg_param: list[str] = typer.Option(
        [], "--fg-param", rich_help_panel=opt.PAIR_PANEL, help="Foreground hyperparameter KEY=VALUE (repeatable)."
    ),
    bg_param: list[str] = typer.Option(
        [], "--bg-param", rich_help_panel=opt.PAIR_PANEL, help="Background hyperparameter KEY=VALUE (repeatable)."
    ),
    device: str = typer.Option(
        "auto",
        "--device",
        rich_help_panel=opt.DEVICE_PANEL,
        help="auto, cuda:N or cpu (a pair runs real jobs: no sim).",
    ),
    gpu_memory: str | None = typer.Option(
        None,
        "--gpu-memory",
        callback=opt.GPU_MEMORY.callback,
        rich_help_panel=opt.DEVICE_PANEL,
        help="Emulate a card with this much memory, e.g. 8GiB (on an NVIDIA "
        "GPU; on the CPU, the same as --cpu-memory).",
    ),
    cpu_memory: str | None = opt.CPU_MEMORY,
    timeout: float = opt.TIMEOUT,
    probe: bool = opt.PROBE,
    monitor_hz: float = opt.MONITOR_HZ,
    results: str = opt.RESULTS,
    allow_foreign: bool = opt.ALLOW_FOREIGN,
    start: str = opt.START,
    models: Path | None = opt.MODELS,
    repos_root: Path | None = opt.REPOS_ROOT,
    lenient: bool = opt.LENIENT,
    min_window_s: float | None = opt.MIN_WINDOW_S,
    probe_steps: int | None = opt.PROBE_STEPS,
) -> None:
    """Run one foreground/background pair and print its outcome, peaks and steady-state window."""
    from gpupair_search.launcher.devices import DeviceRequest, open_device
    from gpupair_search.launcher.devices.factory import study_kind
    from gpupair_search.launcher.outcome import Outcome
    from gpupair_search.launcher.pair_runner import RunOptions, run_pair
    from gpupair_search.launcher.results import new_pair_dir, new_run_dir, write_pair_results
    from gpupair_search.launcher.sizes import format_mib, parse_size_mib
    from gpupair_search.launcher.spec import PairSpec
    from gpupair_search.launcher.window_stats import describe
    from gpupair_search.search.cli.idle_flags import PAIR_RULES, given_options, refuse_idle_flags
    from gpupair_search.search.engine.baselines import DEFAULT_MIN_WINDOW_S
    from gpupair_search.search.engine.inputs import load_registry

    refuse_idle_flags(locals(), given_options(ctx), PAIR_RULES)
    if bg_param and not bg:
        raise UserError("--bg-param needs --bg: name the background job (REPO/MODEL), or drop --bg-param")
    registry = load_registry(models, repos_root)
    fg_job, fg_warn = _parse_job(fg, fg_param, "--fg-param", registry, lenient)
    bg_job, bg_warn = _parse_job(bg, bg_param, "--bg-param", registry, lenient) if bg else (None, [])
    if registry.root_note:
        typer.echo(registry.root_note, err=True)
    spec = PairSpec(1, fg_job, bg_job, source="command line", warnings=tuple(fg_warn + bg_warn))
    card = opt.card_size(study_kind(device), gpu_memory, cpu_memory)
    dev = open_device(device, DeviceRequest(card_mib=parse_size_mib(card) if card else None))
    try:
        pair_dir = new_pair_dir(new_run_dir(results), spec)
        window_s = DEFAULT_MIN_WINDOW_S if min_window_s is None else min_window_s
        options = RunOptions(
            monitor_hz=monitor_hz,
            timeout_s=timeout,
            probe=probe,
            allow_foreign_processes=allow_foreign,
            warm_start=opt.STARTS[start],
            min_window_s=window_s,
            probe_steps=probe_steps or opt.DEFAULT_PROBE_STEPS,
        )
        result = run_pair(spec, registry, dev, options, pair_dir)
        write_pair_results(result, pair_dir)
    finally:
        dev.close()
    m = result.memory
    typer.echo(f"outcome: {result.outcome.value}" + (f"  ({result.error_message})" if result.error_message else ""))
    typer.echo(f"device: {dev.name}")
    typer.echo(f"measured: {result.probe_label}; time outside the jobs {result.outside_jobs_s:.2f} s")
    typer.echo(
        f"peak foreground {format_mib(m.foreground_peak_mib)}, background {format_mib(m.background_peak_mib)}, "
        f"concurrent {format_mib(m.concurrent_peak_mib)}, sum of peaks {format_mib(m.sum_of_peaks_mib)} "
        f"({m.samples} samples at {m.sample_hz} Hz)"
    )
    if result.window is not None:
        typer.echo(f"steady-state window: {describe(result.window)}")
    for warning in result.warnings:
        typer.echo(f"warning: {warning}", err=True)
    typer.echo(f"results: {pair_dir}")
    if result.outcome is not Outcome.OK:
        raise typer.Exit(3)


@app.command()
@user_errors
@with_run_request(exclude=("cpus",))
def run(gpus: str | None = opt.GPUS, *, request: RunRequest) -> None:
    """Run a study: every pair as a trial, failing pairs extended by batch-size reduction."""
    from gpupair_search.search.cli.run_study import run_study

    raise typer.Exit(run_study(request, gpus=_gpu_list(gpus)))


@app.command()
@user_errors
@with_run_request(check_idle=False)
def worker(*, request: RunRequest) -> None:
    """Take trials of a shared study until none is left (run one per GPU or host against the same --storage)."""
    from gpupair_search.search.cli.run_study import run_study

    raise typer.Exit(run_study(request, worker=True))


@app.command()
@user_errors
@with_run_request(exclude=("storage", "cpus"))
def slurm(
    storage: str | None = typer.Option(
        None,
        "--storage",
        callback=opt.STORAGE.callback,
        rich_help_panel=opt.STORAGE_PANEL,
        help="PostgreSQL URL without a password (the nodes read it from ~/.pgpass).",
    ),
    storage_env: Path | None = typer.Option(
        None,
        "--storage-env",
        rich_help_panel=opt.SLURM_PANEL,
        help="Or: a file of mode 0600 with GPUPAIR_STORAGE=postgresql://user:password@host/db, read by each task.",
    ),
    tasks: int = typer.Option(
        1, "--tasks", min=1, rich_help_panel=opt.SLURM_PANEL, help="Array tasks: one worker, and one GPU, each."
    ),
    cpus_per_task: int = typer.Option(
        4,
        "--cpus-per-task",
        min=1,
        rich_help_panel=opt.SLURM_PANEL,
        help="Cores of each task (sbatch --cpus-per-task).",
    ),
    time_limit: str | None = typer.Option(
        None, "--time", rich_help_panel=opt.SLURM_PANEL, help="Each task's time limit (sbatch --time), e.g. 12:00:00."
    ),
    partition: str | None = typer.Option(
        None, "--partition", rich_help_panel=opt.SLURM_PANEL, help="Slurm partition (sbatch --partition)."
    ),
    account: str | None = typer.Option(
        None, "--account", rich_help_panel=opt.SLURM_PANEL, help="Slurm account (sbatch --account)."
    ),
    job_name: str | None = typer.Option(
        None, "--job-name", rich_help_panel=opt.SLURM_PANEL, help="Default: gpupair-STUDY."
    ),
    sbatch_option: list[str] = typer.Option(
        [],
        "--sbatch-option",
        rich_help_panel=opt.SLURM_PANEL,
        help="One more #SBATCH line, e.g. --sbatch-option=--mem=32G (repeatable).",
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", rich_help_panel=opt.SLURM_PANEL, help="Print the job script; submit nothing."
    ),
    *,
    request: RunRequest,
) -> None:
    """Submit the study's workers as a Slurm job array (one worker per task and GPU) on PostgreSQL storage."""
    from gpupair_search.search.cli.slurm import SlurmJob, submit

    job = SlurmJob(
        tasks, cpus_per_task, time_limit, partition, account, job_name, tuple(sbatch_option), storage, storage_env
    )
    typer.echo(submit(request, job, dry_run), nl=not dry_run)


def _gpu_list(text: str | None) -> list | None:
    if not text:
        return None
    try:
        gpus = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"--gpus {text!r}: expected comma-separated GPU indices, e.g. --gpus 0,1") from None
    if len(set(gpus)) != len(gpus) or not gpus or min(gpus) < 0:
        raise UserError(f"--gpus {text!r}: each GPU once, at least one, none negative")
    return gpus


def _stored(study, settings, storage, results, kind, simulated, models, repos_root, lenient, name):
    """Open a stored study for reading (status, report, export, dashboard): nothing is written to it."""
    from gpupair_search.search.engine.stored_study import open_results

    if kind is not None and kind not in {k.value for k in StudyKind}:
        raise UserError(f"--kind {kind!r}: expected " + ", ".join(k.value for k in StudyKind))
    chosen = StudyKind.SIMULATED if simulated else (StudyKind(kind) if kind else None)
    return open_results(study, settings, storage, results, chosen, models, repos_root, lenient, name)


def _outputs_must_not_overwrite_inputs(
    output: Path, fs, storage: str | None, results: Path, more_inputs: dict | None = None, example: str = "out.html"
) -> None:
    from gpupair_search.search.engine.output_file import database_files, refuse_overwriting
    from gpupair_search.search.engine.storage import sqlite_path

    db = sqlite_path(storage) if storage else results / "gpupair.db"
    inputs = {
        **(database_files(db) if db is not None else {}),
        "the settings file": Path(fs.experiment.file),
        "the models file": Path(fs.registry.file),
        **(more_inputs or {}),
    }
    refuse_overwriting(output, inputs, {"the study's results folder": results}, example)


@app.command()
@user_errors
def status(
    study: str | None = opt.STUDY,
    settings: Path | None = opt.READ_SETTINGS,
    name: str | None = opt.NAME,
    storage: str | None = opt.STORAGE,
    results: str = opt.RESULTS,
    kind: str | None = opt.KIND,
    simulated: bool = opt.SIMULATED,
    models: Path | None = opt.MODELS,
    repos_root: Path | None = opt.REPOS_ROOT,
    lenient: bool = opt.READ_LENIENT,
) -> None:
    """Print the table of pair verdicts from storage, at any time (reads only)."""
    from gpupair_search.search.views.status import print_status

    print_status(_stored(study, settings, storage, results, kind, simulated, models, repos_root, lenient, name))


@app.command()
@user_errors
def plan(
    gpu_memory: str = typer.Option(
        ...,
        "--gpu-memory",
        callback=opt.GPU_MEMORY.callback,
        rich_help_panel=opt.DEVICE_PANEL,
        help="The card to predict for, e.g. 8GiB.",
    ),
    safe_limit: str | None = opt.SAFE_LIMIT,
    study: str | None = opt.STUDY,
    settings: Path | None = opt.SETTINGS,
    models: Path | None = opt.MODELS,
    repos_root: Path | None = opt.REPOS_ROOT,
    lenient: bool = opt.LENIENT,
) -> None:
    """Predict (simulated, from shipped profiles) which pairs fit on a card you do not have."""
    from gpupair_search.search.views.prediction import predict

    typer.echo(predict(study, settings, gpu_memory, safe_limit, models, repos_root, lenient))


@app.command()
@user_errors
def report(
    study: str | None = opt.STUDY,
    settings: Path | None = opt.READ_SETTINGS,
    name: str | None = opt.NAME,
    storage: str | None = opt.STORAGE,
    results: str = opt.RESULTS,
    kind: str | None = opt.KIND,
    simulated: bool = opt.SIMULATED,
    models: Path | None = opt.MODELS,
    repos_root: Path | None = opt.REPOS_ROOT,
    lenient: bool = opt.READ_LENIENT,
    output: Path = typer.Option(
        Path("report.html"), "-o", "--output", rich_help_panel=opt.OUTPUT_PANEL, help="HTML file to write."
    ),
) -> None:
    """Write one self-contained HTML report of a study (opens with no network)."""
    from gpupair_search.search.views.report import write_report

    fs = _stored(study, settings, storage, results, kind, simulated, models, repos_root, lenient, name)
    _outputs_must_not_overwrite_inputs(output, fs, storage, results)
    figures = write_report(fs, output, results)
    typer.echo(f"{output}: {figures} figures of study '{fs.settings.name}'")


@app.command()
@user_errors
def export(
    study: str | None = opt.STUDY,
    settings: Path | None = opt.READ_SETTINGS,
    name: str | None = opt.NAME,
    storage: str | None = opt.STORAGE,
    results: str = opt.RESULTS,
    kind: str | None = opt.KIND,
    simulated: bool = opt.SIMULATED,
    output: Path = typer.Option(
        Path("safe_pairs.json"), "-o", "--output", rich_help_panel=opt.OUTPUT_PANEL, help="Settings file to write."
    ),
    margin: str = typer.Option(
        "0MiB",
        "--margin",
        rich_help_panel=opt.OUTPUT_PANEL,
        help="Keep pairs whose verified peak is this far under the safe limit, e.g. 200MiB.",
    ),
    models: Path | None = typer.Option(
        None,
        "--models",
        rich_help_panel=opt.OUTPUT_PANEL,
        help="Models file the exported settings will run with "
        "(e.g. the seed's models_config.json). Default: the study's (--study-models).",
    ),
    study_models: Path | None = typer.Option(
        None,
        "--study-models",
        rich_help_panel=opt.STUDY_PANEL,
        help="Models file the study ran with (default: the built-in workloads).",
    ),
    repos_root: Path | None = opt.REPOS_ROOT,
    lenient: bool = opt.READ_LENIENT,
) -> None:
    """Write the verified-safe pairs as a settings file in the seed's format, by risk class."""
    from gpupair_search.search.views.export import additions_path, build_export, parse_margin, risk_words, write_export

    fs = _stored(study, settings, storage, results, kind, simulated, study_models, repos_root, lenient, name)
    target = {"the models file the export is for (--models)": models}
    _outputs_must_not_overwrite_inputs(output, fs, storage, results, target, "safe_pairs.json")
    _outputs_must_not_overwrite_inputs(additions_path(output), fs, storage, results, target, "safe_pairs.json")
    result = build_export(fs, models or fs.registry.file, parse_margin(margin))
    for warning in result.warnings:
        typer.echo(f"warning: {warning}", err=True)
    write_export(result, output)
    classes = ", ".join(f"{n} {c}" for c, n in result.classes.items())
    typer.echo(
        f"{output}: {sum(result.classes.values())} safe pair(s) ({classes}); "
        f"{result.unsafe} without a safe configuration listed under _unsafe_pairs"
    )
    typer.echo(f"  {risk_words(fs.settings.card_mib)}")
    if result.additions:
        typer.echo(
            f"{additions_path(output)}: models-file entries to add before running it (see the warnings)", err=True
        )


@app.command()
@user_errors
def dashboard(
    study: str | None = opt.STUDY,
    settings: Path | None = opt.READ_SETTINGS,
    name: str | None = opt.NAME,
    storage: str | None = opt.STORAGE,
    results: str = opt.RESULTS,
    kind: str | None = opt.KIND,
    simulated: bool = opt.SIMULATED,
    host: str = opt.HOST,
    port: int = opt.PORT,
    models: Path | None = opt.MODELS,
    repos_root: Path | None = opt.REPOS_ROOT,
    lenient: bool = opt.READ_LENIENT,
) -> None:
    """Serve optuna-dashboard on the study, with each trial's files and the feasible frontiers (reads only)."""
    from gpupair_search.search.engine.storage import existing_storage_url
    from gpupair_search.search.views.dashboard import serve

    _stored(study, settings, storage, results, kind, simulated, models, repos_root, lenient, name)
    serve(storage or existing_storage_url(results), results, host, port)


def _terminate_as_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt  # SIGTERM (e.g. from our job guard) cleans up like Ctrl-C


def main() -> None:
    import logging
    import signal

    import optuna

    # Optuna logs every trial at INFO; a CLI run prints its own progress line instead. Set here, for the
    # command line only: importing the package changes no global state.
    optuna.logging.set_verbosity(logging.WARNING)
    signal.signal(signal.SIGTERM, _terminate_as_interrupt)
    guard_output_streams()
    app()


def guard_output_streams() -> None:
    """Everything the command line prints (messages, tables, warnings, a traceback of ours, the logs of the
    libraries it uses) goes through one filter: passwords masked in every form a storage URL or libpq accepts,
    terminal control characters (a right-to-left override in a --name) escaped. A password from the
    environment (PGPASSWORD) is masked wherever it appears."""
    import logging
    import os

    from gpupair_search.launcher.masking import MaskingStream, remember_secrets

    for variable in ("PGPASSWORD", "GPUPAIR_STORAGE"):
        if os.environ.get(variable):
            remember_secrets(f"{variable}={os.environ[variable]}" if variable == "PGPASSWORD" else os.environ[variable])
    if not isinstance(sys.stdout, MaskingStream):
        sys.stdout = MaskingStream(sys.stdout)
    if not isinstance(sys.stderr, MaskingStream):
        sys.stderr = MaskingStream(sys.stderr)
    for handler in logging.getLogger().handlers + logging.getLogger("optuna").handlers:
        if isinstance(handler, logging.StreamHandler) and handler.stream in (sys.__stderr__, sys.__stdout__):
            handler.setStream(sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
