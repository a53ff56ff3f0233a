"""Classify how a pair ended, from exit codes, logs and the monitor; never from a success marker alone."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from pathlib import Path


class Outcome(str, Enum):
    """How a pair ended. Each member says what its numbers mean, so that no caller decides from its name."""

    OK = "ok"
    OOM_FOREGROUND = "oom_foreground"
    OOM_BACKGROUND = "oom_background"
    OVER_BUDGET = "over_budget"
    CRASH_FOREGROUND = "crash_foreground"
    CRASH_BACKGROUND = "crash_background"
    NOT_STARTED_FOREGROUND = "not_started_foreground"
    NOT_STARTED_BACKGROUND = "not_started_background"
    TIMEOUT = "timeout"
    BACKGROUND_UNSTABLE = "background_unstable"
    #: the foreground exited 0 before the monitor saw any of its processes: no figure is the pair's (the runner
    #: was late, not the pair: run it again)
    UNMEASURED = "unmeasured"

    @property
    def is_oom(self) -> bool:
        """Out of the card's (or the budget's) memory: a memory verdict, the pair does not fit."""
        return self in (Outcome.OOM_FOREGROUND, Outcome.OOM_BACKGROUND, Outcome.OVER_BUDGET)

    @property
    def is_memory_verdict(self) -> bool:
        """The pair's memory was measured to the end (it fit) or to the point where it did not: a result the
        study judges against the limit. Anything else is a failure with a reason."""
        return self is Outcome.OK or self.is_oom

    @property
    def peak_is_exact(self) -> bool:
        """The peaks are what the jobs needed; after an OOM they are a lower bound (what they held)."""
        return self is Outcome.OK

    @property
    def oom_role(self) -> str | None:
        """ "foreground" or "background": the job that ran out of memory (None: neither, or the pair's budget)."""
        return {Outcome.OOM_FOREGROUND: "foreground", Outcome.OOM_BACKGROUND: "background"}.get(self)

    @property
    def started(self) -> bool:
        """False when a job never ran (script missing, not executable): nothing about the pair was measured."""
        return self not in (Outcome.NOT_STARTED_FOREGROUND, Outcome.NOT_STARTED_BACKGROUND)


# An out-of-memory error in its usual spellings: torch's error class and message, allocation failures that surface
# from cuBLAS / cuDNN / the CUDA runtime instead, and the host allocator's (the CPU device). Only as an error: on a
# line that names an exception (``torch.OutOfMemoryError: ...``, ``RuntimeError: CUDA error: out of memory``,
# after a logger's prefix too) or that starts with the message (a job that prints the error it caught). A line
# that merely mentions the words, such as a start-up tip ("if you hit 'CUDA out of memory', lower the batch
# size"), is no OOM: it would make every trial of that job a false one.
_OOM_WORDS = (
    r"(?:OutOfMemoryError|CUDA out of memory|CUDA error: out of memory|cudaErrorMemoryAllocation"
    r"|CUBLAS_STATUS_ALLOC_FAILED|CUDNN_STATUS_ALLOC_FAILED|CUDNN_STATUS_NOT_ENOUGH_WORKSPACE"
    r"|HIP out of memory|CUDA_ERROR_OUT_OF_MEMORY|DefaultCPUAllocator: can't allocate memory)"
)
_OOM = re.compile(rf"(?:\b[\w.]*(?:Error|Exception)\b:?.*|^\s*[\w.]*){_OOM_WORDS}", re.MULTILINE)
_TRIED = re.compile(r"Tried to allocate ([\d.]+) ?(B|bytes|KiB|MiB|GiB|TiB)", re.IGNORECASE)
#: A training step done, in the built-in workloads' output contract (workloads/common.py ``log_progress``).
TRAINING_PROGRESS = re.compile(r"^(?:Epoch \d+ step \d+/\d+|\[gpupair\] progress steps=)", re.MULTILINE)
_UNIT_MIB = {"b": 1 / 2**20, "bytes": 1 / 2**20, "kib": 1 / 1024, "mib": 1.0, "gib": 1024.0, "tib": 1024.0**2}


# A job that never ran: our job guard could not exec it, or Python could not find its script or module.
_NOT_STARTED = re.compile(
    r"^(gpupair-search: cannot start |\S*python[\d.]*: (can't open file|No module named|"
    r"Error while finding module specification))",
    re.MULTILINE,
)


@dataclass(frozen=True)
class LogFindings:
    oom: bool
    tried_to_allocate_mib: float | None
    last_error: str  # last line that looks like an error, for the results' error_message
    not_started: bool = False
    first_lines: str = ""  # the log's first lines, which say why a job that never started did not


def scan_log(text: str) -> LogFindings:
    """Find an OOM anywhere in the log. A success marker printed earlier does not cancel it."""
    oom = bool(_OOM.search(text))
    tried = None
    for match in _TRIED.finditer(text):
        tried = float(match.group(1)) * _UNIT_MIB[match.group(2).lower()]
    errors = [
        line.strip()
        for line in text.splitlines()
        if re.search(r"Error|error:|Exception|Traceback|Killed", line) and "Traceback" not in line
    ]
    first = " | ".join(line.strip() for line in text.splitlines()[:3] if line.strip())[:500]
    return LogFindings(oom, tried, errors[-1][:500] if errors else "", bool(_NOT_STARTED.search(text[:4096])), first)


def read_log(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


@dataclass(frozen=True)
class JobEnd:
    """How one run of a job ended."""

    exit_code: int | None  # None: still running when the pair ended (background)
    stopped_by_us: bool  # we ended it (pair finished, timeout, probe complete)
    log: LogFindings
    duration_s: float


def classify(
    foreground: JobEnd,
    background_runs: list[JobEnd],
    *,
    timed_out: bool,
    over_budget: bool,
    background_unstable: bool,
    foreground_seen: bool = True,
) -> Outcome:
    """The pair's outcome. A job that never started comes first (nothing was measured); then memory
    verdicts: an OOM is what the study needs to know. A foreground that ran to its end unseen
    (``foreground_seen`` False) measured nothing: its 0 MiB would pass for a fit."""
    if foreground.log.not_started and not foreground.stopped_by_us:
        return Outcome.NOT_STARTED_FOREGROUND
    if any(run.log.not_started for run in background_runs):
        return Outcome.NOT_STARTED_BACKGROUND
    if over_budget:
        return Outcome.OVER_BUDGET
    if foreground.log.oom:
        return Outcome.OOM_FOREGROUND
    if any(run.log.oom for run in background_runs):
        return Outcome.OOM_BACKGROUND
    if timed_out:
        return Outcome.TIMEOUT
    if background_unstable:
        return Outcome.BACKGROUND_UNSTABLE
    if not foreground.stopped_by_us and foreground.exit_code != 0:
        return Outcome.CRASH_FOREGROUND
    if any(run.exit_code not in (0, None) and not run.stopped_by_us for run in background_runs):
        return Outcome.CRASH_BACKGROUND
    return Outcome.OK if foreground_seen else Outcome.UNMEASURED


@dataclass(frozen=True)
class PairLimits:
    """What a pair was held to, for the words of :func:`explain`."""

    budget_mib: float | None
    timeout_s: float
    background_max_quick_exits: int
    background_min_run_s: float
    background_runs: int


def explain(outcome: Outcome, foreground: JobEnd, background_runs: list[JobEnd], limits: PairLimits) -> str:
    """The pair's ``error_message``: why it ended as it did, in one line ("" when it ran to the end)."""
    if outcome is Outcome.OK:
        return ""
    if outcome is Outcome.OVER_BUDGET:
        return f"pair memory exceeded the budget of {limits.budget_mib or 0:.0f} MiB; the pair was killed"
    if outcome is Outcome.TIMEOUT:
        return f"foreground ran longer than {limits.timeout_s:.0f} s; the pair was killed"
    if outcome is Outcome.BACKGROUND_UNSTABLE:
        return (
            f"background exited {limits.background_max_quick_exits} times in a row within "
            f"{limits.background_min_run_s:.0f} s of starting ({limits.background_runs} runs): not a pair"
        )
    if outcome is Outcome.UNMEASURED:
        return (
            f"foreground ended {foreground.duration_s:.2f} s after it was handed to the monitor, before any of "
            "its processes was seen: nothing was measured (if it does that each time, it trains nothing: check "
            "its command and log)"
        )
    if outcome is Outcome.NOT_STARTED_FOREGROUND:
        return f"foreground never started: {foreground.log.first_lines or 'no output'}"
    if outcome is Outcome.NOT_STARTED_BACKGROUND:
        bad = next(e for e in background_runs if e.log.not_started)
        return f"background never started: {bad.log.first_lines or 'no output'}"
    if outcome in (Outcome.OOM_BACKGROUND, Outcome.CRASH_BACKGROUND):
        failed = next((e for e in reversed(background_runs) if e.log.oom or e.exit_code not in (0, None)), None)
        detail = failed.log.last_error if failed else ""
        return f"background: {detail or f'exit code {failed.exit_code if failed else None}'}"
    return f"foreground: {foreground.log.last_error or f'exit code {foreground.exit_code}'}"
