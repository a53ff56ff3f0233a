"""Performance metrics from a training log, by the models file's ``log_patterns``, bounded in time and input.

Patterns are the user's regular expressions: one that backtracks catastrophically must not hang ``pair`` after
the job has ended. Each runs in a child process (:mod:`launcher.metric_worker`) that is killed past its time
budget; the metric is then missing, with a warning that names the pattern. Only the log's last
``MAX_LOG_CHARS`` characters are searched (metrics are printed at the end; the last match wins).
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

MAX_LOG_CHARS = 1 << 20
SECONDS_PER_PATTERN = 2.0
_START_S = 3.0  # a Python start-up on a loaded machine
_WORKER = str(Path(__file__).with_name("metric_worker.py"))


def extract_metrics(
    patterns: Mapping[str, str], text: str, seconds_per_pattern: float = SECONDS_PER_PATTERN
) -> tuple[dict[str, float], list[str]]:
    """``({metric: last value}, warnings)``: every pattern gets ``seconds_per_pattern``; one that takes longer is
    stopped and named in a warning, and the patterns after it still run."""
    metrics: dict[str, float] = {}
    warnings: list[str] = []
    todo = dict(patterns)
    tail = text[-MAX_LOG_CHARS:]
    while todo:
        done = _run_worker(todo, tail, seconds_per_pattern)
        for name, value in done.items():
            if value is not None:
                metrics[name] = value
            del todo[name]
        if todo:  # the worker was stopped on the first pattern it had not answered
            name = next(iter(todo))
            warnings.append(
                f"metric {name!r}: its log pattern {todo[name]!r} took over {seconds_per_pattern:g} s on "
                "the training log and was stopped (a pattern that backtracks catastrophically?); the "
                "metric is not recorded. Simplify the pattern in the models file."
            )
            del todo[name]
    return metrics, warnings


def _run_worker(patterns: Mapping[str, str], text: str, seconds_per_pattern: float) -> dict[str, float | None]:
    """What the worker answered, pattern by pattern, until it finished or a pattern ran past its time."""
    cpu_limit = seconds_per_pattern * len(patterns) + _START_S  # its own bound, should we be killed first
    proc = subprocess.Popen(
        [sys.executable, "-I", _WORKER, str(cpu_limit)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    answered: dict[str, float | None] = {}
    try:
        try:
            proc.stdin.write(json.dumps({"patterns": dict(patterns), "text": text}).encode())  # type: ignore[union-attr]
            proc.stdin.close()  # type: ignore[union-attr]
        except BrokenPipeError:
            return answered
        pending = b""
        wait = seconds_per_pattern + _START_S
        while len(answered) < len(patterns):
            ready, _, _ = select.select([proc.stdout], [], [], wait)
            chunk = os.read(proc.stdout.fileno(), 65536) if ready else b""  # type: ignore[union-attr]
            if not chunk:
                break  # past its time, or it ended
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                item = json.loads(line)
                answered[item["name"]] = item["value"]
            wait = seconds_per_pattern
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()  # type: ignore[union-attr]
    return answered
