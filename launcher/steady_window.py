"""When a job was really training: its progress, timestamped as it happened, and the steady-state window.

Throughput and energy over a job's whole run mix in what is not training: imports, CUDA start-up, the
evaluation pass, the time to exit. A job's own progress lines say when its steps happened, but only if they are
read as they are written: :class:`ProgressTail` reads a job's log while it runs and stamps each line with the
monitor's clock. A machine line may carry the job's own ``time.monotonic()`` of the moment it was printed
(``t=``, the built-ins do): the tail then uses that, because a line read at the next tick is late by up to one
tick (50 ms at 20 Hz, 2.5% of a 2 s window at each end). :func:`steady_window` then keeps the steps after
warm-up up to the last training step seen (evaluation prints no progress), so start-up and evaluation are left
out by construction.

Progress comes from, in order of preference: the built-ins' machine line ``[gpupair] progress steps=N
samples=M`` (workloads/common.py), their ``Epoch E step S/N`` lines (samples = steps x batch size), or for an
external script the models file's metric pattern named ``progress_steps`` (one group, the cumulative step count).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

MACHINE_PROGRESS = re.compile(
    r"^\[gpupair\] progress steps=(\d+) samples=(\d+)(?: epoch=(\d+))?(?: t=(\d+(?:\.\d+)?))?"
)
#: A job's own stamp is trusted only when it lies this close before the moment its line was read (else the
#: job's clock is not ours, e.g. another time namespace, and the read time is used).
STAMP_MAX_LAG_S = 10.0
STAMP_MAX_LEAD_S = 0.05
EPOCH_PROGRESS = re.compile(r"^Epoch (\d+) step (\d+)/(\d+)")
#: The built-ins' config line names the device they train on (``device=cpu`` for bug-localization, a CPU job).
CONFIG_DEVICE = re.compile(r"^\[gpupair\] config .*?\bdevice=(\S+)")
#: The models file's ``performance_metrics.log_patterns`` entry that external scripts use to report progress.
PROGRESS_PATTERN_NAME = "progress_steps"
WARMUP_STEPS = 3  # steps left out at the start: the first steps pay for lazy initialisation and autotuning
MAX_LINE_CHARS = 1000  # a user pattern sees at most this much of a line (bounds a badly written expression)
_READ_CHUNK = 1 << 20


@dataclass(frozen=True)
class ProgressPoint:
    t: float  # the monitor's clock: when the job printed the line (its stamp), else when it was read
    steps: int  # cumulative training steps of this run
    samples: int | None  # cumulative samples, when known
    epoch: int | None = None  # when the job says (an evaluation pass lies between two epochs)


class ProgressTail:
    """Reads the complete lines a running job appended to its log since the last :meth:`poll`."""

    def __init__(
        self,
        path: Path,
        batch_size: int | None = None,
        steps_pattern: str | None = None,
        clock_origin: float | None = None,
    ) -> None:
        """``clock_origin``: the ``time.monotonic()`` that is 0 on the monitor's clock; without it, jobs' own
        stamps are ignored."""
        self.path, self.batch_size, self.clock_origin = Path(path), batch_size, clock_origin
        self.steps_pattern = re.compile(steps_pattern, re.MULTILINE) if steps_pattern else None
        self.points: list[ProgressPoint] = []
        self._offset = 0
        self._partial = b""
        self._machine = False  # once a machine line is seen, the other kinds are duplicates
        self.declared_device: str | None = None  # from a built-in's config line, once printed

    def poll(self, t: float) -> None:
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self._offset)
                data = fh.read(_READ_CHUNK)
        except OSError:  # not created yet, or gone with its directory: nothing new
            return
        self._offset += len(data)
        *lines, self._partial = (self._partial + data).split(b"\n")
        for raw in lines:
            point = self._parse(raw.decode("utf-8", "replace").rstrip("\r"), t)
            if point is not None:
                self.points.append(point)

    def _parse(self, line: str, t: float) -> ProgressPoint | None:
        if self.declared_device is None:
            config = CONFIG_DEVICE.match(line)
            if config:
                self.declared_device = config.group(1)
                return None
        machine = MACHINE_PROGRESS.match(line)
        if machine:
            self._machine = True
            epoch = int(machine.group(3)) if machine.group(3) else None
            return ProgressPoint(
                self._stamped(machine.group(4), t), int(machine.group(1)), int(machine.group(2)), epoch
            )
        if self._machine:
            return None
        epoch_line = EPOCH_PROGRESS.match(line)
        if epoch_line:
            steps = (int(epoch_line.group(1)) - 1) * int(epoch_line.group(3)) + int(epoch_line.group(2))
            return ProgressPoint(
                t, steps, steps * self.batch_size if self.batch_size else None, int(epoch_line.group(1))
            )
        if self.steps_pattern is not None:
            found = self.steps_pattern.search(line[:MAX_LINE_CHARS])
            if found:
                try:
                    steps = int(float(found.group(1)))
                except (ValueError, IndexError):
                    return None
                return ProgressPoint(t, steps, steps * self.batch_size if self.batch_size else None)
        return None

    def _stamped(self, stamp: str | None, read_t: float) -> float:
        if stamp is None or self.clock_origin is None:
            return read_t
        t = float(stamp) - self.clock_origin
        if not read_t - STAMP_MAX_LAG_S <= t <= read_t + STAMP_MAX_LEAD_S:
            t = read_t
        return max(t, self.points[-1].t) if self.points else t  # a job's progress never goes back in time


def user_steps_pattern(log_patterns: Mapping[str, str]) -> str | None:
    return log_patterns.get(PROGRESS_PATTERN_NAME)


@dataclass(frozen=True)
class SteadyWindow:
    """The foreground's steps after warm-up, up to its last training step (or ``max_steps`` of them)."""

    start_t: float
    end_t: float
    steps: int
    samples: int | None

    @property
    def seconds(self) -> float:
        return self.end_t - self.start_t

    @property
    def samples_per_second(self) -> float | None:
        return self.samples / self.seconds if self.samples is not None and self.seconds > 0 else None

    @property
    def steps_per_second(self) -> float | None:
        return self.steps / self.seconds if self.seconds > 0 else None


def epochs(points: list[ProgressPoint]) -> list[list[ProgressPoint]]:
    """Consecutive points of the same epoch (a job that does not say its epoch: one group)."""
    groups: list[list[ProgressPoint]] = []
    for p in points:
        if groups and groups[-1][-1].epoch == p.epoch:
            groups[-1].append(p)
        else:
            groups.append([p])
    return groups


def steady_window(
    points: list[ProgressPoint], warmup_steps: int = WARMUP_STEPS, max_steps: int | None = None
) -> SteadyWindow | None:
    """Within one epoch (the longest, the first of equals: no evaluation pass inside), after warm-up. None when
    the job reported too little progress to have a window (no lines, or none after warm-up)."""
    candidates = [g for g in ([p for p in group if p.steps >= warmup_steps] for group in epochs(points)) if len(g) >= 2]
    if not candidates:
        return None
    after = max(candidates, key=lambda g: g[-1].t - g[0].t)
    start = after[0]
    end = after[-1]
    if max_steps is not None:
        end = next((p for p in after if p.steps - start.steps >= max_steps), end)
    if end.t <= start.t or end.steps <= start.steps:
        return None
    samples = None if end.samples is None or start.samples is None else end.samples - start.samples
    return SteadyWindow(start.t, end.t, end.steps - start.steps, samples)


def training_intervals(runs: list[list[ProgressPoint]]) -> list[tuple[float, float]]:
    """Per run and epoch, from its first to its last progress line: when it trained (before: start-up; between
    epochs: evaluation; after: evaluation and exit)."""
    return [(g[0].t, g[-1].t) for run in runs for g in epochs(run) if len(g) >= 2 and g[-1].t > g[0].t]


def overlap_share(intervals: list[tuple[float, float]], start_t: float, end_t: float) -> float | None:
    """The share of [start_t, end_t] covered by ``intervals`` (which do not overlap: one run at a time)."""
    if end_t <= start_t:
        return None
    covered = sum(max(0.0, min(b, end_t) - max(a, start_t)) for a, b in intervals)
    return min(1.0, covered / (end_t - start_t))


def samples_within(runs: list[list[ProgressPoint]], start_t: float, end_t: float) -> float | None:
    """Samples the runs did inside [start_t, end_t], each step between two lines spread evenly over the time
    between them. None when no run reported samples."""
    total, known = 0.0, False
    for run in runs:
        for a, b in zip(run, run[1:]):
            if a.samples is None or b.samples is None or b.t <= a.t or a.epoch != b.epoch:
                continue
            known = True
            inside = max(0.0, min(b.t, end_t) - max(a.t, start_t))
            total += (b.samples - a.samples) * inside / (b.t - a.t)
    return total if known else None
