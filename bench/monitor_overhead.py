#!/usr/bin/env python3
"""Monitor overhead: how much our monitor, sampling at its default rate, slows a training job.

What is measured: a workload's training steps per second while a :class:`launcher.monitor.Monitor`
tracks it, against the same workload with no monitor. The headline is the paired slowdown.

Why this method: starting a fresh process per measurement costs about 6 s of ``import torch`` per run on
the H100, and throughput varies by about 7% from one run to the next, which buries a 1% effect. Here ONE
training process per workload runs for the whole measurement. While it trains, the monitor is switched
off and on in back-to-back windows of ``--window-s`` seconds. Start-up cost is paid once, and
run-to-run variance disappears because every window is in the same run.

- Warm-up: wait for the first progress line, then discard one window.
- Pairs: ``--pairs`` OFF/ON pairs in alternating order (OFF,ON then ON,OFF), so a linear drift
  in throughput hits both sides alike.
- Rate: the workloads print ``Epoch E step S/T`` every 50 steps. The log is polled every 10 ms and
  each line is timestamped on arrival. A window's rate is (last step - first step) / (t_last -
  t_first) over its lines. Each epoch is taken separately, because the evaluation pause between two
  epochs is not training time.
- Paired estimate (the headline): median over pairs of 100 * (1 - on_i / off_i). Each ON window is
  compared with its neighbouring OFF window, so slow drift cancels.
- Unpaired estimate: 100 * (1 - median ON / median OFF), also reported.
- Auto-widening: a window needs at least two progress lines from one epoch. If it gets fewer, the
  window length doubles (at most 20 s), the window is measured again, and the JSON records a note.

The job gets many epochs (``--epochs``). One epoch of mnist or resnet20 lasts only seconds on an H100.
It is stopped when the windows are done.

Usage (GPU machine): python bench/monitor_overhead.py [--workloads a/b,c/d] [--pairs 8] [--window-s 3]
       CPU only:     python bench/monitor_overhead.py --device cpu --workloads examples/mnist
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from benchlib import bench_job, open_device, registry, stamp, write_json

from gpupair_search.launcher.devices.base import Device
from gpupair_search.launcher.monitor import DEFAULT_HZ, Monitor
from gpupair_search.launcher.process import RunningJob, start_job
from gpupair_search.launcher.registry import Registry

POLL_S = 0.010  # how often the log is read; the timestamp error of one progress line is at most this
MAX_WINDOW_S = 20.0
MIN_LINES = 2  # progress lines of one epoch that a window needs for a rate
FIRST_LINE_TIMEOUT_S = 180.0  # imports, CUDA context, model and data
PROGRESS = re.compile(r"Epoch (\d+) step (\d+)/(\d+)")


@dataclass(frozen=True)
class Progress:
    t: float  # time.monotonic() when the line was read
    epoch: int
    step: int


@dataclass
class Window:
    monitored: bool
    seconds: float
    steps_per_s: float | None
    lines: int
    monitor_samples: int | None = None  # how many samples the monitor took (ON windows only)


@dataclass
class Measurement:
    """The state of one workload's measurement: its window length may grow, notes explain why."""

    window_s: float
    windows: list[Window] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    ended_early: bool = False


# ---------------------------------------------------------------- the workload and its log

class ProgressTail:
    """Reads a growing log and timestamps each progress line as it appears."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._partial = b""

    def poll(self) -> list[Progress]:
        try:
            with open(self.path, "rb") as log:
                log.seek(self._offset)
                data = log.read()
        except FileNotFoundError:
            return []
        now = time.monotonic()
        self._offset += len(data)
        *lines, self._partial = (self._partial + data).split(b"\n")
        found = []
        for line in lines:
            match = PROGRESS.search(line.decode(errors="replace"))
            if match:
                found.append(Progress(now, int(match[1]), int(match[2])))
        return found


def wait_for_first_line(running: RunningJob, tail: ProgressTail, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and running.poll() is None:
        if tail.poll():
            return True
        time.sleep(POLL_S)
    return False


def collect(running: RunningJob, tail: ProgressTail, seconds: float) -> list[Progress]:
    """Progress lines that appear in the next ``seconds``. Lines that were already waiting are dropped
    first: they were written earlier and their read time is not when they appeared."""
    tail.poll()
    end = time.monotonic() + seconds
    lines: list[Progress] = []
    while time.monotonic() < end and running.poll() is None:
        time.sleep(POLL_S)
        lines += tail.poll()
    return lines


def steps_per_second(lines: list[Progress]) -> float | None:
    """Steps over time between the first and last line of each epoch, summed over epochs (the
    evaluation between epochs is left out). None with fewer than MIN_LINES lines of one epoch."""
    by_epoch: dict[int, list[Progress]] = {}
    for line in lines:
        by_epoch.setdefault(line.epoch, []).append(line)
    steps = seconds = 0.0
    for group in by_epoch.values():
        if len(group) >= MIN_LINES:
            steps += group[-1].step - group[0].step
            seconds += group[-1].t - group[0].t
    return steps / seconds if seconds > 0 else None


# ---------------------------------------------------------------- windows

def one_window(running: RunningJob, tail: ProgressTail, device: Device, monitored: bool, seconds: float) -> Window:
    """One window. For ON windows a fresh monitor is started and tracks the job, then it is stopped."""
    monitor = None
    if monitored:
        monitor = Monitor(device, hz=DEFAULT_HZ).start()
        monitor.track("foreground", running)
    lines = collect(running, tail, seconds)
    if monitor is not None:
        monitor.stop()
    return Window(monitored, seconds, steps_per_second(lines), len(lines),
                  len(monitor.samples) if monitor is not None else None)


def measured_window(running: RunningJob, tail: ProgressTail, device: Device, monitored: bool,
                    state: Measurement) -> Window:
    """One window with a rate. If it gets too few progress lines, the length doubles (at most
    MAX_WINDOW_S) and the window runs again."""
    while True:
        window = one_window(running, tail, device, monitored, state.window_s)
        if window.steps_per_s is not None or running.poll() is not None or state.window_s >= MAX_WINDOW_S:
            return window
        widened = min(2 * state.window_s, MAX_WINDOW_S)
        state.notes.append(f"window of {state.window_s:g} s had {window.lines} progress line(s): widened "
                           f"to {widened:g} s")
        state.window_s = widened


def measure(running: RunningJob, tail: ProgressTail, device: Device, pairs: int, state: Measurement) -> None:
    """Warm-up window, then ``pairs`` OFF/ON pairs, alternating their order."""
    measured_window(running, tail, device, False, state)  # warm-up: also settles the window length
    for i in range(pairs):
        for monitored in ((False, True) if i % 2 == 0 else (True, False)):
            if running.poll() is not None:
                state.ended_early = True
                state.notes.append(f"workload exited (code {running.poll()}) after {len(state.windows)} windows")
                return
            state.windows.append(measured_window(running, tail, device, monitored, state))


# ---------------------------------------------------------------- results

def paired_slowdowns(windows: list[Window]) -> list[float]:
    """100 * (1 - on/off) for each complete pair (windows 2i and 2i+1, in either order)."""
    out = []
    for a, b in zip(windows[0::2], windows[1::2]):
        off, on = (b, a) if a.monitored else (a, b)
        if off.steps_per_s and on.steps_per_s is not None:
            out.append(100 * (1 - on.steps_per_s / off.steps_per_s))
    return out


def summarise(key: str, windows: list[Window]) -> dict:
    off = [w.steps_per_s for w in windows if not w.monitored and w.steps_per_s is not None]
    on = [w.steps_per_s for w in windows if w.monitored and w.steps_per_s is not None]
    paired = paired_slowdowns(windows)
    row: dict = {"workload": key, "pairs": len(paired)}
    if off and on:
        median_off, median_on = statistics.median(off), statistics.median(on)
        row.update(median_off_steps_per_s=round(median_off, 3), median_on_steps_per_s=round(median_on, 3),
                   slowdown_pct=round(100 * (1 - median_on / median_off), 3))
    if paired:
        row["paired_slowdown_pct"] = round(statistics.median(paired), 3)  # the headline
        row["paired_pcts"] = [round(p, 3) for p in paired]
        if len(paired) > 1:  # spread of the pairs' mean, to judge what the run can resolve
            row["paired_mean_pct"] = round(statistics.mean(paired), 3)
            row["paired_sem_pct"] = round(statistics.stdev(paired) / len(paired) ** 0.5, 3)
    return row


def summary_line(row: dict, trains_on: str) -> str:
    if "paired_slowdown_pct" not in row:
        return f"{row['workload']} [{trains_on}]: no usable pairs ({'; '.join(row.get('notes', [])) or 'see JSON'})"
    text = (f"{row['workload']} [{trains_on}]: paired slowdown {row['paired_slowdown_pct']:+.2f}% "
            f"over {row['pairs']} pairs")
    if "paired_sem_pct" in row:
        text += f" (mean {row['paired_mean_pct']:+.2f}% ± {row['paired_sem_pct']:.2f} s.e.)"
    if "slowdown_pct" in row:
        text += (f"; medians OFF {row['median_off_steps_per_s']:.1f} ON {row['median_on_steps_per_s']:.1f} steps/s "
                 f"({row['slowdown_pct']:+.2f}%)")
    return text + f"; window {row['window_s']:g} s, {row['wall_s']:.0f} s wall"


# ---------------------------------------------------------------- one workload

def run_workload(reg: Registry, device: Device, key: str, args: argparse.Namespace) -> dict:
    job = bench_job(reg, key, args.epochs)  # long enough to outlast the windows, then stopped
    env = {**os.environ, **device.job_env(), "PYTHONUNBUFFERED": "1"}
    log = Path(tempfile.mkdtemp(prefix="monitor_overhead_")) / "run.log"
    started = time.monotonic()
    running = start_job("foreground", reg.command(job), log, env)
    tail = ProgressTail(log)
    state = Measurement(args.window_s)
    try:
        if wait_for_first_line(running, tail, FIRST_LINE_TIMEOUT_S):
            first_line_s = time.monotonic() - started
            measure(running, tail, device, args.pairs, state)
        else:
            first_line_s = None
            log_tail = log.read_text(errors="replace")[-500:] if log.exists() else "(no log)"
            state.notes.append(f"no progress line (exit code {running.poll()}); log tail: {log_tail}")
    finally:
        running.stop(1.0)
    row = summarise(key, state.windows)
    row.update(job=job.to_json(), batch_size=reg.batch_size(job), window_s=state.window_s,
               first_progress_line_s=None if first_line_s is None else round(first_line_s, 2),
               wall_s=round(time.monotonic() - started, 1), ended_early=state.ended_early, notes=state.notes,
               windows=[{**asdict(w), "steps_per_s": None if w.steps_per_s is None else round(w.steps_per_s, 3)}
                        for w in state.windows], log=str(log))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", default="pytorch_resnet_cifar10/resnet20,examples/mnist")
    parser.add_argument("--pairs", type=int, default=8, help="OFF/ON window pairs per workload")
    parser.add_argument("--window-s", type=float, default=3.0, help="seconds per window (widened when too short)")
    parser.add_argument("--epochs", type=int, default=10_000, help="epochs asked of the workload; it is stopped early")
    parser.add_argument("--device", default="cuda:0", help="cuda:N, or cpu (workloads then train on the CPU)")
    args = parser.parse_args()
    if args.pairs < 1 or not 0 < args.window_s <= MAX_WINDOW_S or args.epochs < 1:
        parser.error(f"need --pairs >= 1, 0 < --window-s <= {MAX_WINDOW_S:g}, --epochs >= 1")
    reg, device = registry(), open_device(args.device)
    trains_on = "cpu" if args.device == "cpu" else "gpu"
    rows = []
    for key in args.workloads.split(","):
        rows.append(run_workload(reg, device, key, args))
        print(summary_line(rows[-1], trains_on), flush=True)
    path = write_json(f"monitor_overhead_{args.device.replace(':', '')}.json",
                      {**stamp(), "device": device.describe(), "workloads_train_on": trains_on,
                       "monitor_hz": DEFAULT_HZ, "method": "interleaved OFF/ON windows in one process per workload",
                       "poll_s": POLL_S, "rows": rows})
    print(f"wrote {path}", flush=True)


if __name__ == "__main__":
    main()
