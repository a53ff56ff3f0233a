"""What a probed job's DataLoaders did, read from the events file of :mod:`launcher.probe_hook.sitecustomize`.

The hook needs nothing from the job's code, so these facts hold for any Python job that trains from a
``torch.utils.data.DataLoader``, started directly or through a wrapper script: a training step was done (the
job holds its training memory: a background is ready), an evaluation pass ran, the probe bounded the epoch, a
second training epoch started after an evaluation (everything later repeats what was seen).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

HOOK_DIR = Path(__file__).with_name("probe_hook")
EVENTS_VAR = "GPUPAIR_PROBE_EVENTS"
BATCHES_VAR = "GPUPAIR_PROBE_BATCHES"
DWELL_VAR = "GPUPAIR_PROBE_DWELL_S"
HOLD_VAR = "GPUPAIR_HOLD_FILE"
IMPORTS_SUFFIX = ".imports"  # next to a held job's hold file: the libraries it imports while it waits

#: How a job's memory was probed (the trial's label, ``probe: <rule>``): its training was bounded to a number of
#: steps and it passed through evaluation (its own --max-steps, or the hook bounding its DataLoaders); it was
#: stopped once its memory had been flat (a job the probe cannot bound: not Python, not torch, its own loop);
#: or it ran the seed's full epoch. A job the probe cannot bound that neither ended well nor was stopped at a
#: plateau (it crashed, ran out of memory or time, or was a background stopped with its foreground) ran unbounded.
BOUNDED, PLATEAU, FULL_EPOCH, UNBOUNDED = "bounded steps", "plateau", "full epoch", "unbounded run"
#: Whether the job's evaluation pass was part of what was measured: a DataLoader ran with gradients off;
#: the job ended by itself, exit code 0 (so whatever evaluation it does, it did); or neither.
EVAL_REACHED, RAN_TO_END, EVAL_NOT_REACHED = "reached", "ran to its end", "not reached"


def hook_environment(
    env: dict[str, str], events: Path, batches: int, dwell_s: float = 0.0, hold: Path | None = None
) -> dict[str, str]:
    """``env`` for a probed job: the hook first on ``PYTHONPATH``, told where to write, how many batches an
    iterator may yield and how long a finished evaluation iterator holds on (so that it is sampled); ``hold``:
    the file whose existence releases the job from its gate (launcher/held_start)."""
    path = os.pathsep.join(p for p in (str(HOOK_DIR), env.get("PYTHONPATH", "")) if p)
    out = {**env, "PYTHONPATH": path, EVENTS_VAR: str(events), BATCHES_VAR: str(batches), DWELL_VAR: f"{dwell_s:g}"}
    if hold is not None:
        out[HOLD_VAR] = str(hold)
    return out


def evaluation_dwell_s(monitor_hz: float, tree_interval_s: float, host_memory: bool) -> float:
    """How long a probed evaluation pass holds on after its last batch: where memory is host memory (RSS),
    two walks of the process trees, which find its DataLoader workers; else four samples (GPU memory is read per
    process at each sample, and torch's caching allocator keeps what the pass reserved anyway)."""
    return 2 * tree_interval_s if host_memory else 4 / monitor_hz


@dataclass
class ProbeEvents:
    """Incremental reader of one job run's events file."""

    path: Path
    hooked: bool = False
    failed: bool = False
    train_started: bool = False
    #: a training iterator was asked for its second batch, or an optimizer finished a step: one step done
    trained_step: bool = False
    bounded: bool = False  # the probe ended a training iterator early
    eval_started: bool = False
    eval_ended: bool = False
    eval_ends: int = 0  # evaluation iterators that ended (each held on for the dwell)
    #: a training epoch started after an evaluation pass that followed training (an evaluation before any
    #: training, a sanity check, does not count): the job repeats what was seen
    train_after_eval: bool = False
    train_starts: int = 0  # training iterators started (epochs, or an iteration-based loop's restarts)
    #: time.monotonic() when the runner last read a new event, and the longest wait between two (a job that
    #: trains has a step's time between events; one that stopped asking for batches has none coming)
    last_event_t: float | None = None
    longest_gap_s: float = 0.0
    gated: bool = False  # the job stopped at the hook's gate before it used the GPU: it can be started ahead
    #: the libraries the job imported between its gate and its first optimizer step (a held job of its program
    #: imports them while it waits: launcher/held_start)
    imported: tuple[str, ...] = ()
    reports_steps: bool = False  # the hook watches the job's optimizers: it will say when one stepped
    preimported: bool = False  # a held job imported what it was told to while it waited
    _evaluated_after_training: bool = False
    _eval_open: bool = False  # an evaluation iterator started and has not ended yet
    _offset: int = 0

    def poll(self) -> ProbeEvents:
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self._offset)
                data = fh.read()
        except OSError:
            return self
        end = data.rfind(b"\n") + 1  # complete lines only
        self._offset += end
        if end:
            now = time.monotonic()
            if self.last_event_t is not None:
                self.longest_gap_s = max(self.longest_gap_s, now - self.last_event_t)
            self.last_event_t = now
        for line in data[:end].decode("utf-8", "replace").splitlines():
            self._read(line.split())
        return self

    def _read(self, words: list[str]) -> None:
        if not words:
            return
        kind, role = words[0], words[1] if len(words) > 1 else ""
        if kind == "hooked":
            self.hooked = True
        elif kind == "hook-failed":
            self.failed = True
        elif kind == "gate":
            self.gated = True
        elif kind == "optimizer-step":
            self.trained_step = True
        elif kind == "optimizer-hooked":
            self.reports_steps = True
        elif kind == "imported":
            self.imported = tuple(n for n in role.split(",") if n)
        elif kind == "preimported":
            self.preimported = True
        elif kind == "start" and role == "train":
            if self._eval_open:  # the job left its evaluation loop early (a ``break``) and went back to training
                self._eval_done()
            self.train_after_eval = self.train_after_eval or self._evaluated_after_training
            self.train_started = True
            self.train_starts += 1
        elif kind == "start" and role == "eval":
            self.eval_started = True
            self._eval_open = True
        elif kind == "step" and role == "train":
            self.trained_step = True
        elif kind in ("bounded", "end") and role == "eval":
            self._eval_done()
        if kind == "bounded" and role == "train":
            self.bounded = True

    def _eval_done(self) -> None:
        """An evaluation pass is over: its iterator ran out or was bounded, or, for a loop that stops reading it
        (``if i == eval_batches: break``), the job started training again."""
        self._eval_open = False
        self.eval_ended = True
        self.eval_ends += 1
        self._evaluated_after_training = self._evaluated_after_training or self.train_started

    @property
    def repeating(self) -> bool:
        """Everything later repeats what was seen: a training epoch after an evaluation that followed training;
        or, with no evaluation through a DataLoader, a third training iterator (a loop that re-creates its
        iterator until a step count, which the probe's bound alone would never end)."""
        return self.train_after_eval or (self.train_starts >= 3 and not self.eval_started)

    @property
    def effective(self) -> bool:
        """The hook saw the job's training loop: the job is bounded by it, not by a plateau."""
        return self.hooked and not self.failed and self.train_started
