"""Start a job in its own session under :mod:`launcher.job_guard`, and end it with its whole tree.

A ``python -m`` workload may instead be forked warm by :mod:`launcher.warm_start`, under the same guarantees;
the :class:`RunningJob` looks the same either way."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from gpupair_search.launcher.registry import Command
from gpupair_search.launcher.warm_start import WarmProcess, WarmStartUnavailable, launch_warm

_GUARD = str(Path(__file__).with_name("job_guard.py"))


@dataclass
class RunningJob:
    """A started job. ``pid`` is the guard's; the job's processes are its descendants."""

    label: str
    command: Command
    log_path: Path
    popen: subprocess.Popen | WarmProcess
    started: float  # time.monotonic()
    ended: float | None = None
    start: str = "cold"  # "warm": forked by the warm launcher; "held": started ahead (launcher.held_start)
    notes: list[str] = field(default_factory=list)  # to record with the job's results (e.g. why it started cold)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def poll(self) -> int | None:
        code = self.popen.poll()
        if code is not None and self.ended is None:
            self.ended = time.monotonic()
        return code

    def duration(self) -> float:
        return (self.ended or time.monotonic()) - self.started

    def process_ids(self) -> set[int]:
        """PIDs of the job's processes (the guard itself excluded: it holds no device memory)."""
        try:
            return {p.pid for p in psutil.Process(self.pid).children(recursive=True)}
        except psutil.Error:
            return set()

    def stop(self, grace: float = 3.0) -> int:
        """End the job and its tree; returns its exit code. Safe to call twice."""
        if self.poll() is None:
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(timeout=grace + 5.0)
            except subprocess.TimeoutExpired:  # the guard itself is stuck: take the session down
                _kill_session(self.pid)
                self.popen.wait()
        self.poll()
        return self.popen.returncode


def start_job(
    label: str, command: Command, log_path: Path, env: dict[str, str], grace: float = 3.0, warm: bool = False
) -> RunningJob:
    """Start ``command`` with stdout and stderr going to ``log_path``; never through a shell.

    ``warm``: fork a ``python -m`` workload (``command.module``) from the warm launcher; other commands, and
    any job the warm launcher cannot take, start cold (the reason is in ``notes``)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    if warm and command.module is not None:
        try:
            process, notes = launch_warm(command, log_path, env, grace)
            return RunningJob(label, command, log_path, process, time.monotonic(), start="warm", notes=notes)
        except WarmStartUnavailable as exc:
            notes = [f"{label} started cold: {exc}"]
    argv = [sys.executable, "-I", _GUARD, str(os.getpid()), str(grace), "--", *command.argv]
    with open(log_path, "ab") as log:
        popen = subprocess.Popen(
            argv,
            cwd=command.cwd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    return RunningJob(label, command, log_path, popen, time.monotonic(), notes=notes)


def _kill_session(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
