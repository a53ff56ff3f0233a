"""Held starts: a user's job started ahead of its trial, held before it first uses the GPU.

A user's job starts cold, as its own process: its interpreter, ``import torch`` and its libraries, its model
built. On a GPU that took about 11 s to the first step, twice per trial (the background, then the foreground),
while the built-ins are forked warm in under a second (BENCHMARKS.md, job start). This module takes that start-up
out of the trial's path, for the jobs the probe hook (:mod:`launcher.probe_hook.sitecustomize`) can hold:

- the hook holds a job at its gate, its first use of the GPU (``torch.cuda``'s lazy initialisation, before any
  CUDA context exists) or its first batch, for as long as the job's hold file does not exist;
- :meth:`HeldStarts.prepare` starts the jobs a trial will need (the foreground while the background gets ready,
  the next queued trial's jobs while this one runs), each with a hold file not yet created;
- :meth:`HeldStarts.start` gives a trial the held job whose command and environment are exactly the ones it
  would start: its log and events files are linked to the trial's paths, and creating its hold file releases it.
  The job's start is then the moment of release; its memory is measured from there, as it would be.

A held job also does, while it waits, the imports its program makes only after its gate (torch's own
``torch._dynamo`` at the first optimizer, a model library imported where the model is built): they are learned
from the program's jobs (the ``imported`` event) and written next to the held job's hold file
(``<hold>.imports``), which the hook reads while it waits.

Only programs seen to stop at the gate are started ahead (a job started at once passes an open gate and says
so in its events), so a job the hook cannot hold (not Python, not torch, its own CUDA library)
only ever starts when its trial starts it. A held job found holding GPU memory when taken is ended, and its
program is never held again. No job is held while the host would keep less than a quarter of its memory
available (a job may load its data before its first GPU use). Held jobs run under the job guard like every
job, so they end with the runner.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from gpupair_search.launcher.devices.base import Device
from gpupair_search.launcher.probe_events import EVENTS_VAR, HOLD_VAR, IMPORTS_SUFFIX, ProbeEvents
from gpupair_search.launcher.process import RunningJob, start_job
from gpupair_search.launcher.registry import Command

HELD = "held"  # RunningJob.start of a job started ahead and released for its trial
_WATCHED = 4  # a program's most recent jobs whose events are read to learn about it
#: how many queued trials' jobs are held: a user's job takes 7-10 s from its start to its gate on an H100 host
#: (interpreter, imports compiled from source), a probed trial 3-5 s (BENCHMARKS.md, User repositories)
TRIALS_AHEAD = 3


@dataclass(frozen=True)
class JobToHold:
    """A job a trial will start: its command and its whole environment (the events file's path aside)."""

    label: str
    command: Command
    env: dict[str, str]


@dataclass
class _Held:
    job: RunningJob
    go: Path
    events: Path
    program: tuple
    told: bool = False  # its list of imports is written (``<go>.imports``)


@dataclass
class HeldStarts:
    """The jobs held for the trials to come, in ``directory`` (on the results' file system: their files are
    linked into the trials' directories). One trial at a time uses it (serial trials)."""

    directory: Path
    device: Device
    grace_s: float = 3.0
    #: the share of the host's memory that held jobs leave available: a job may load its data before its first
    #: GPU use, and several held copies of it must not take the memory the trial's own jobs need
    host_reserve: float = 0.25
    _held: dict[tuple, _Held] = field(default_factory=dict)
    _gating: set[tuple] = field(default_factory=set)  # programs seen to stop at the gate
    #: the events of the jobs started at once, per program, until one of them is seen at the gate
    _watching: dict[tuple, list[Path]] = field(default_factory=dict)
    _never: set[tuple] = field(default_factory=set)  # programs that used the GPU while held
    #: per program, the libraries its jobs imported after their gate (a held job imports them while it waits)
    _imports: dict[tuple, dict[str, None]] = field(default_factory=dict)  # (in the order they were imported)
    _ending: list[RunningJob] = field(default_factory=list)
    _count: int = 0
    _said_full: bool = False  # the notes said that host memory stopped held starts
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.open_gate = self.directory / "open"
        self.open_gate.touch()

    def start(self, label: str, command: Command, env: dict[str, str], log: Path, events: Path) -> RunningJob:
        """The job, now: the held one if there is one (released), else a fresh process whose gate is open; its
        events say whether its program stops at the gate (read by :meth:`prepare`)."""
        job = self.take(label, command, env, log, events)
        if job is None:
            env = {**env, EVENTS_VAR: str(events), HOLD_VAR: str(self.open_gate)}
            job = start_job(label, command, log, env, self.grace_s)
            self._watch(_program(command), events)
        return job

    def _watch(self, program: tuple, events: Path) -> None:
        """Learn from this job's events, until its program is known to stop at the gate and what it imports."""
        if program not in self._gating or program not in self._imports:
            self._watching[program] = [*self._watching.get(program, [])[-(_WATCHED - 1) :], events]

    def prepare(self, jobs: list[JobToHold]) -> None:
        """Hold exactly ``jobs``: end the held jobs not among them, start those not held yet (if their programs
        are known to stop at the gate)."""
        self._learn()
        wanted = {_key(j.command, j.env): j for j in jobs}
        for key in [k for k in self._held if k not in wanted]:
            self._end(self._held.pop(key).job)
        for key, job in wanted.items():
            program = _program(job.command)
            if key in self._held or program not in self._gating or program in self._never:
                continue
            if not self._room_for_another():
                break  # the rest start when their trials start them
            self._count += 1
            name = self.directory / str(self._count)
            go, events, log = name.with_suffix(".go"), name.with_suffix(".events"), name.with_suffix(".log")
            env = {**job.env, EVENTS_VAR: str(events), HOLD_VAR: str(go)}
            events.touch()  # there to be linked even before the job's hook writes to it
            self._held[key] = _Held(start_job(job.label, job.command, log, env, self.grace_s), go, events, program)
        for held in self._held.values():
            self._tell_imports(held)

    def _room_for_another(self) -> bool:
        """Whether the host keeps ``host_reserve`` of its memory available with one more held job, taken to need as
        much as the largest held now; said once in the notes when it does not."""
        memory = psutil.virtual_memory()
        largest = max((_rss_mib(h.job) for h in self._held.values()), default=0.0) * 2**20
        if memory.available - largest >= self.host_reserve * memory.total:
            return True
        if not self._said_full:
            self._said_full = True
            self.notes.append(
                f"held starts: {len(self._held)} jobs held and {memory.available / 2**30:.1f} GiB of the host's "
                f"memory available (under {self.host_reserve:.0%}); more jobs start only when their trials start them"
            )
        return False

    def _tell_imports(self, held: _Held) -> None:
        """Write the held job's list of imports (once: the hook reads it the first time it sees it)."""
        names = list(self._imports.get(held.program, ()))
        if not names or held.told:
            return
        listing = held.go.with_name(held.go.name + IMPORTS_SUFFIX)
        partial = listing.with_name(listing.name + ".tmp")
        partial.write_text("\n".join(names) + "\n", encoding="utf-8")  # in their order: as the job imported them
        os.replace(partial, listing)  # the hook never reads half a list
        held.told = True

    def take(self, label: str, command: Command, env: dict[str, str], log: Path, events: Path) -> RunningJob | None:
        """The held job for this command and environment, released now with its files at ``log`` and ``events``;
        None when there is none (or it ended, or it could not be handed over): start it as usual."""
        held = self._held.pop(_key(command, env), None)
        if held is None:
            return None
        job = held.job
        self._watch(held.program, held.events)  # what it still imports after its gate
        if job.poll() is not None or not _link(job.log_path, log) or not _link(held.events, events):
            self._end(job)
            return None
        on_device = {pid: mib for pid, mib in self.device.memory_by_pid(job.process_ids()).items() if mib > 0}
        if on_device:
            self._never.add(_program(command))
            self.notes.append(
                f"{command.display()}: held before its first GPU use, it held "
                f"{sum(on_device.values()):,.0f} MiB already; its jobs now start when their trial starts them"
            )
            self._end(job)
            return None
        held.go.touch()
        job.label, job.log_path, job.started, job.start = label, log, time.monotonic(), HELD
        return job

    def _learn(self) -> None:
        """Programs whose jobs said they reached the gate, and what they imported after it."""
        for program, runs in list(self._watching.items()):
            for events in runs:
                seen = ProbeEvents(events).poll()
                if seen.gated:
                    self._gating.add(program)
                if seen.imported:
                    self._imports.setdefault(program, {}).update(dict.fromkeys(seen.imported))
            if program in self._gating and program in self._imports:
                del self._watching[program]

    def pop_notes(self) -> list[str]:
        """What happened to held jobs since the last call (a program found using the GPU while held)."""
        notes, self.notes = self.notes, []
        return notes

    def close(self) -> None:
        """End every held job and remove the directory."""
        for held in self._held.values():
            self._end(held.job)
        self._held.clear()
        for job in self._ending:
            job.stop(self.grace_s)
        self._ending.clear()
        shutil.rmtree(self.directory, ignore_errors=True)

    def _end(self, job: RunningJob) -> None:
        """Ask a held job to end without waiting for it (a trial is running); :meth:`close` waits."""
        self._ending = [j for j in self._ending if j.poll() is None]
        if job.poll() is None:
            try:
                os.kill(job.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            self._ending.append(job)


def _rss_mib(job: RunningJob) -> float:
    """The host memory a job's processes hold (0 for what has ended)."""
    total = 0
    for pid in job.process_ids():
        try:
            total += psutil.Process(pid).memory_info().rss
        except psutil.Error:
            continue
    return total / 2**20


def _key(command: Command, env: dict[str, str]) -> tuple:
    same_env = tuple(sorted((k, v) for k, v in env.items() if k not in (EVENTS_VAR, HOLD_VAR)))
    return tuple(command.argv), str(command.cwd), same_env


def _program(command: Command) -> tuple:
    """The program a job runs (its repository's script or module), whatever its hyperparameters."""
    return str(command.cwd), command.argv[0] if command.argv else "", command.module


def _link(source: Path, target: Path) -> bool:
    """``target`` as a second name of ``source`` (the job keeps writing to the same file)."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        os.link(source, target)
    except OSError:
        return False
    return True
