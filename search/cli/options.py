"""Every command-line option of ``gpupair-search``, defined once, with its help, default and check.

Checks run as the options are parsed, before anything starts: a bad value is one message that names the
flag (click prints it as a usage error, exit 2), never a traceback or a busy loop. Defaults come from the
records they configure (``RunOptions`` for the launcher's), so each has one definition.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import fields
from enum import Enum
from pathlib import Path
from typing import Any

import typer

from gpupair_search.launcher.devices.factory import device_classes, shown
from gpupair_search.launcher.errors import UserError
from gpupair_search.launcher.pair_runner import RunOptions
from gpupair_search.launcher.sizes import parse_size_mib
from gpupair_search.launcher.spec import StudyKind
from gpupair_search.search.policy.batch_grid import BatchGrid
from gpupair_search.search.policy.confirmation import Confirm
from gpupair_search.search.policy.extension import POLICIES
from gpupair_search.search.policy.planner import ExtensionOptions
from gpupair_search.studies import STUDIES

_RUN = {f.name: f.default for f in fields(RunOptions)}
DEFAULT_TIMEOUT_S: float = _RUN["timeout_s"]
DEFAULT_MONITOR_HZ: float = _RUN["monitor_hz"]
MAX_MONITOR_HZ = 1000.0  # NVML's per-process memory query takes about 1 ms; faster asks only spin


def _finite_in(
    low: float, high: float, low_open: bool = True
) -> Callable[[typer.Context, typer.CallbackParam, Any], Any]:
    def check(ctx: typer.Context, param: typer.CallbackParam, value: Any) -> Any:
        if value is None:
            return value
        bad_low = value <= low if low_open else value < low
        if not math.isfinite(value) or bad_low or value > high:
            raise typer.BadParameter(
                f"{value!r} is out of range: expected a finite number "
                f"{'>' if low_open else '>='} {low:g} and <= {high:g}"
            )
        return value

    return check


def _size(ctx: typer.Context, param: typer.CallbackParam, value: str | None) -> str | None:
    if value is None:
        return value
    try:
        parse_size_mib(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    return value


def _directory(ctx: typer.Context, param: typer.CallbackParam, value: str | None) -> Path | None:
    if value is None:
        return None
    if not value.strip():
        raise typer.BadParameter("is empty; name a directory (it is created if needed), e.g. --results results")
    from gpupair_search.search.engine.output_file import OutputPathError, check_output_path

    try:
        check_output_path(value, "--results", example="results", directory=True)
    except OutputPathError as exc:
        raise typer.BadParameter(str(exc).removeprefix("--results ")) from None
    return Path(value)


def _not_empty(ctx: typer.Context, param: typer.CallbackParam, value: str | None) -> str | None:
    if value is not None and not value.strip():
        raise typer.BadParameter("is empty; give a value or leave the option out")
    return value


def _size_option(flag: str, help: str, panel: str = "Device and card") -> Any:
    """A memory size: a number with a unit (8GiB, 7500MiB), checked as it is parsed."""
    return typer.Option(None, flag, callback=_size, help=help, rich_help_panel=panel)


def _switch(default: bool, flags: str, help: str, panel: str | None = None) -> Any:
    """An on/off pair, ``--on/--off``."""
    return typer.Option(default, flags, help=help, rich_help_panel=panel)


# -- the sections of --help, in the order they are shown (options without one are listed last) ------------
PAIR_PANEL, STUDY_PANEL, DEVICE_PANEL, SEARCH_PANEL = "Pair", "Study", "Device and card", "Search"
PACKING_PANEL, MEASUREMENT_PANEL, STORAGE_PANEL, OUTPUT_PANEL = "Packing", "Measurement", "Storage", "Output"
WORKERS_PANEL, SLURM_PANEL, SERVER_PANEL = "Workers", "Slurm", "Server"
PANELS = (
    PAIR_PANEL,
    STUDY_PANEL,
    DEVICE_PANEL,
    MEASUREMENT_PANEL,
    SEARCH_PANEL,
    PACKING_PANEL,
    WORKERS_PANEL,
    SLURM_PANEL,
    STORAGE_PANEL,
    OUTPUT_PANEL,
    SERVER_PANEL,
)

# -- inputs --------------------------------------------------------------------------------------------
STUDY = typer.Option(
    None,
    "--study",
    rich_help_panel=STUDY_PANEL,
    help=f"Named study: {', '.join(STUDIES)} (default: feasibility). feasibility and matrix "
    "answer memory only; feasibility-cost, the same pairs, also measures slowdown and energy.",
)
SETTINGS = typer.Option(
    None,
    "--settings",
    rich_help_panel=STUDY_PANEL,
    help="Settings file in the seed's format to run as a study (instead of --study).",
)
#: ``--settings`` of the commands that read a stored study: the file names the study, storage holds its pairs.
READ_SETTINGS = typer.Option(
    None,
    "--settings",
    rich_help_panel=STUDY_PANEL,
    help="The settings file the study was made from (its experiment_name names the study; "
    "the pairs and limits are read from storage).",
)
MODELS = typer.Option(
    None,
    "--models",
    rich_help_panel=STUDY_PANEL,
    help="Models file in the seed's format (default: the built-in workloads).",
)
REPOS_ROOT = typer.Option(
    None,
    "--repos-root",
    rich_help_panel=STUDY_PANEL,
    help="Directory that relative repository paths of --models resolve against "
    "(default: the project root that holds them, as the seed's runner resolves "
    "them: the current directory, or the folder above the models file's folder).",
)
LENIENT = _switch(
    False,
    "--lenient/--strict",
    "--lenient: read the file as the seed's runner does, keeping going past what it would skip, ignore "
    "or drop (unknown hyperparameters, repositories, mode words, misplaced keys), each a recorded "
    "warning. Default --strict: stop there.",
    STUDY_PANEL,
)
#: The commands that read a stored study read its settings file as leniently as any run could have made it:
#: the study exists, so refusing the file would only hide it. Accepted, not shown, for scripts that pass it.
READ_LENIENT = typer.Option(True, "--lenient/--strict", hidden=True)


def _study_name(ctx: typer.Context, param: typer.CallbackParam, value: str | None) -> str | None:
    """A study's name is shown on terminals, in reports and in the dashboard: no control characters, which
    could clear a line or reorder what is shown (a right-to-left override)."""
    from gpupair_search.launcher.jsonfile import non_ascii_note
    from gpupair_search.launcher.printable import printable

    value = _not_empty(ctx, param, value)
    if value is not None and printable(value, keep_newlines=False) != value:
        odd = "".join(c for c in value if printable(c, keep_newlines=False) != c)
        raise typer.BadParameter(
            f"'{printable(value, keep_newlines=False)}' contains control characters"
            f"{non_ascii_note(odd) or ' ' + printable(odd, keep_newlines=False)}, which would "
            "move or reorder what a terminal shows; use letters, digits, '-' and '_'"
        )
    return value


NAME = typer.Option(
    None,
    "--name",
    callback=_study_name,
    rich_help_panel=STUDY_PANEL,
    help="Name of the study in its storage (default: the study's or the settings file's experiment_name).",
)

# -- where results live ----------------------------------------------------------------------------
STORAGE = typer.Option(
    None,
    "--storage",
    callback=_not_empty,
    rich_help_panel=STORAGE_PANEL,
    help="Optuna storage URL, e.g. sqlite:///results/gpupair.db or "
    "postgresql://user@host/db (default: a SQLite file in --results).",
)
RESULTS = typer.Option(
    "results", "--results", callback=_directory, rich_help_panel=STORAGE_PANEL, help="Results root directory."
)
KIND = typer.Option(
    None,
    "--kind",
    rich_help_panel=STORAGE_PANEL,
    help="Which study of these settings: gpu, cpu or simulated (default: the only one there is).",
)
SIMULATED = typer.Option(False, "--simulated", hidden=True, help="Same as --kind simulated.")

# -- the device and the card ---------------------------------------------------------------------------
DEVICE = typer.Option(
    None,
    "--device",
    rich_help_panel=DEVICE_PANEL,
    help="Where to measure (required without an NVIDIA GPU): "
    + "; ".join(f"{shown(c.choice)}: {c.choice_help}" for c in device_classes()),
)
GPU_MEMORY = _size_option(
    "--gpu-memory",
    "Card size to fit on, e.g. 8GiB (emulated with real OOMs on a bigger GPU). Default: the study's (8GiB).",
)
SAFE_LIMIT = _size_option(
    "--safe-limit", "A pair fits when its peak stays under this, e.g. 7500MiB. Default: the study's."
)
CPU_MEMORY = _size_option(
    "--cpu-memory",
    "Host-memory budget with --device cpu, e.g. 4GiB: the CPU device's card "
    "(the same as --gpu-memory there; default: the study's card).",
)
ALLOW_FOREIGN = _switch(
    False,
    "--allow-foreign-processes/--no-foreign-processes",
    "Run even if processes we did not start hold GPU memory (their memory is then not the "
    "pair's, but it is not free either).",
    DEVICE_PANEL,
)


def card_size(kind: StudyKind, gpu_memory: str | None, cpu_memory: str | None) -> str | None:
    """The size the study's card is, from the two flags that can name it.

    On the CPU device the card is a host-memory budget, which either flag may give (``--cpu-memory`` says so
    more plainly); a device that has a card of its own takes only ``--gpu-memory``. A flag that would be
    ignored, or two that disagree, are refused: a study measured against another budget than the one shown
    would be wrong without a word."""
    if kind == StudyKind.CPU:
        if gpu_memory and cpu_memory and parse_size_mib(gpu_memory) != parse_size_mib(cpu_memory):
            raise UserError(
                f"--gpu-memory {gpu_memory} and --cpu-memory {cpu_memory}: on --device cpu both name "
                "the host-memory budget; give one"
            )
        return cpu_memory or gpu_memory
    if cpu_memory:
        raise UserError(
            f"--cpu-memory {cpu_memory}: it is the budget of --device cpu, and this device is a "
            f"{'simulated card' if kind == StudyKind.SIMULATED else 'GPU'}; give the card with --gpu-memory"
        )
    return gpu_memory


# -- how each pair runs --------------------------------------------------------------------------------
PROBE = _switch(
    True, "--probe/--full-epoch", "Probe (short run to the memory plateau) or the seed's full epoch.", MEASUREMENT_PANEL
)
#: --start -> RunOptions.warm_start
STARTS = {"auto": None, "warm": True, "cold": False}


def _start(value: str) -> str:
    if value not in STARTS:
        raise typer.BadParameter(f"{value!r}: expected auto, warm or cold")
    return value


START = typer.Option(
    "auto",
    "--start",
    callback=_start,
    rich_help_panel=MEASUREMENT_PANEL,
    help="How jobs start. warm: built-in workloads are forked from a launcher that has imported torch, and a "
    "user's jobs (fresh processes) are started ahead of their trials in a memory probe, held before their "
    "first GPU use; cold: every job starts when its trial needs it, as a fresh process; auto: warm on a GPU, cold on "
    "the CPU device, where a fork's host memory is not its own.",
)
DEFAULT_PROBE_STEPS: int = _RUN["probe_steps"]
PROBE_STEPS = typer.Option(
    None,
    "--probe-steps",
    min=1,
    max=100_000,
    rich_help_panel=MEASUREMENT_PANEL,
    help="Probes: built-ins train at most this many steps per epoch and evaluate as many "
    f"batches (--max-steps). Default: the study's, else {DEFAULT_PROBE_STEPS}.",
)
TIMEOUT = typer.Option(
    DEFAULT_TIMEOUT_S,
    "--timeout",
    callback=_finite_in(0, 7 * 24 * 3600),
    rich_help_panel=MEASUREMENT_PANEL,
    help="Seconds before a foreground is killed.",
)
MONITOR_HZ = typer.Option(
    DEFAULT_MONITOR_HZ,
    "--monitor-hz",
    callback=_finite_in(0, MAX_MONITOR_HZ),
    rich_help_panel=MEASUREMENT_PANEL,
    help="Memory sampling rate in Hz (1 Hz, as `watch nvidia-smi`, misses short peaks). Packed "
    "trials share a sampler that aims 25% higher: NVML stalls while other jobs start.",
)

# -- the search ----------------------------------------------------------------------------------------
EXTEND = _switch(True, "--extend/--no-extend", "Reduce batch sizes of failing pairs.", SEARCH_PANEL)
MIN_WINDOW_S = typer.Option(
    None,
    "--min-window-s",
    callback=_finite_in(0, 600, low_open=False),
    rich_help_panel=MEASUREMENT_PANEL,
    help="Probes: built-ins train their first epoch at least this many seconds (backgrounds 5x "
    "as long), so that throughput and energy have a steady-state window (energy needs "
    ">= 1 s). Default: 0, memory verdicts only (--study feasibility-cost: 2).",
)
BASELINES = typer.Option(
    None,
    "--baselines/--no-baselines",
    rich_help_panel=MEASUREMENT_PANEL,
    help="Run each job alone once (at its original and recommended batch sizes), for slowdowns "
    "and energy against running one after the other. Default: off, memory verdicts only "
    "(--study feasibility-cost: on).",
)
#: the search's defaults are the planner's (ExtensionOptions): a flag left out searches as the planner does
_SEARCH = ExtensionOptions()
POLICY = typer.Option(
    str(_SEARCH.policy),
    "--policy",
    rich_help_panel=SEARCH_PANEL,
    help="How batch sizes are searched: " + ", ".join(POLICIES) + " (the first three model-guided, "
    "named by which batch size shrinks first; the others the bench's baselines).",
)
FLOOR = typer.Option(
    _SEARCH.floor, "--floor", min=1, help="Smallest batch size the extension may try.", rich_help_panel=SEARCH_PANEL
)


# -- packing ---------------------------------------------------------------------------------------------
def _parallel(ctx: typer.Context, param: typer.CallbackParam, value: str | None) -> str | None:
    if value is None or value == "auto":
        return value
    try:
        slots = int(value)
    except ValueError:
        slots = 0
    if not 1 <= slots <= 64:
        raise typer.BadParameter(f"{value!r}: expected auto or a whole number of trials from 1 to 64")
    return value


PARALLEL = typer.Option(
    "1",
    "--parallel",
    callback=_parallel,
    rich_help_panel=PACKING_PANEL,
    help="Trials at once on one GPU (packed: each job's peak without the card's limit; what is "
    "near a boundary, and every recommendation, is then confirmed alone on the card). Default "
    "1: one trial at a time, each on the (emulated) card, which is faster for heavy jobs "
    "(BENCHMARKS.md). auto: as many cards as the GPU has free memory for, with a host "
    "core for each job beyond 2 (1 on the CPU and sim devices); K: K at a time.",
)


def _fraction(ctx: typer.Context, param: typer.CallbackParam, value: Any) -> float | None:
    """A fraction from 0 to 1, written as one (0.10) or as a percentage (10%)."""
    if value is None or isinstance(value, float):
        return value
    text = str(value).strip()
    try:
        number = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or not 0 <= number <= 1:
        raise typer.BadParameter(
            f"{value!r}: expected a fraction from 0 to 1 (e.g. 0.10) or a percentage from "
            "0% to 100% (e.g. 10%) of the card or of the safe limit"
        )
    return number


CONFIRM_MARGIN = typer.Option(
    f"{_SEARCH.confirm_margin:.2f}",
    "--confirm-margin",
    callback=_fraction,
    rich_help_panel=PACKING_PANEL,
    help="Packed results within this fraction of the card or of the safe limit (0.10 "
    f"or 10%) are confirmed alone on the card (default {_SEARCH.confirm_margin:.2f}).",
)


def _one_of(choices: type[Enum]) -> Callable[[typer.Context, typer.CallbackParam, str | None], str | None]:
    """A check that the value is one of an enum's values."""

    def check(ctx: typer.Context, param: typer.CallbackParam, value: str | None) -> str | None:
        if value is not None and value not in {c.value for c in choices}:
            raise typer.BadParameter(f"{value!r}: expected one of {', '.join(c.value for c in choices)}")
        return value

    return check


CONFIRM = typer.Option(
    None,
    "--confirm",
    callback=_one_of(Confirm),
    rich_help_panel=PACKING_PANEL,
    help="What a packed run measures again alone on the card: recommended (every configuration "
    "it recommends, and every packed result near a boundary) or near-limits (only those "
    "near a boundary; a recommendation measured packed, clearly under the limit, is exported "
    "as measured packed). Default: the study's (matrix: near-limits), else recommended.",
)


BATCH_GRID = typer.Option(
    _SEARCH.grid.value,
    "--batch-grid",
    callback=_one_of(BatchGrid),
    rich_help_panel=SEARCH_PANEL,
    help="Which reduced batch sizes the extension may try: divisors (default: those that divide "
    "the configured batch, so micro-batch × accumulation steps is exactly the configured "
    "batch) or any (every size down to --floor; the accumulation then overshoots).",
)

# -- workers -------------------------------------------------------------------------------------------
GPUS = typer.Option(
    None,
    "--gpus",
    rich_help_panel=WORKERS_PANEL,
    help="Comma-separated GPU indices: one worker per GPU on shared storage, e.g. 0,1.",
)
CPUS = typer.Option(
    None,
    "--cpus",
    rich_help_panel=WORKERS_PANEL,
    help="Run this worker and its jobs on these cores only, e.g. 0-15 (run --gpus gives each worker its share).",
)

# -- the dashboard ---------------------------------------------------------------------------------------
HOST = typer.Option(
    "127.0.0.1",
    "--host",
    rich_help_panel=SERVER_PANEL,
    help="Address to bind (the dashboard has no login: keep it local).",
)
PORT = typer.Option(8080, "--port", min=1, max=65535, rich_help_panel=SERVER_PANEL, help="Port to listen on.")
