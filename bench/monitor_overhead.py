"""Monitor overhead: how much our monitor, sampling at its default rate, slows a training job, resolved to ±1%.

What is measured: a workload's training samples per second while a :class:`launcher.monitor.Monitor` tracks it,
against the same workload with no monitor, in ONE training process per workload (start-up is paid once and
run-to-run variance, about 7% on the H100, does not enter). While it trains, the monitor is switched off and on
in back-to-back windows of ``--window-s`` seconds.

- Rate: the built-ins' machine progress line (``[gpupair] progress steps=N samples=M ... t=T``, about every
  0.1 s, workloads/common.py), read by the launcher's own ``ProgressTail`` (launcher/steady_window.py) every
  10 ms and placed at the job's own stamp T (a line without a stamp: at the moment it was read). A
  window's rate sums the samples between consecutive lines over the time between them, leaving out any gap over
  ``GAP_FACTOR`` x the median gap (an evaluation pass between epochs is not training time).
- Pairs: OFF/ON in alternating order (OFF,ON then ON,OFF), so a linear drift hits both sides alike. Each pair
  gives 100 * (1 - on / off).
- Resolution: pairs are added (at least ``--pairs``, at most ``--max-pairs``) until the 95% confidence interval of
  the mean paired slowdown is within ``--resolve-pct`` (default ±1%), so the result says whether it resolved.
- The monitor's own CPU: the bench process's CPU seconds per second in ON windows minus OFF windows (the log
  polling is in both), i.e. what the sampling thread costs the host.

The job gets many epochs (``--epochs``) and is stopped when the windows are done. One JSON out.

Usage (GPU machine): python bench/monitor_overhead.py [--workloads a/b,c/d] [--pairs 10] [--window-s 2]
       CPU only:     python bench/monitor_overhead.py --device cpu --workloads examples/mnist --max-pairs 6
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from benchlib import bench_job, open_device, registry, stamp, write_json

from gpupair_search.launcher.devices.base import Device
from gpupair_search.launcher.monitor import DEFAULT_HZ, Monitor
from gpupair_search.launcher.process import RunningJob, start_job
from gpupair_search.launcher.registry import BATCH_SIZE, Registry
from gpupair_search.launcher.steady_window import ProgressPoint, ProgressTail

POLL_S = 0.010  # how often the log is read; the timestamp error of one progress line is at most this
MAX_WINDOW_S = 20.0
MIN_LINES = 3  # progress lines a window needs for a rate
GAP_FACTOR = 4.0  # a gap between lines this many times the median is not training (evaluation, a pause)
FIRST_LINE_TIMEOUT_S = 180.0  # imports, CUDA context, model and data
#: two-sided 95% quantiles of Student's t for 1..30 degrees of freedom (beyond: the normal's 1.96)
_T95 = [
    12.706,
    4.303,
    3.182,
    2.776,
    2.571,
    2.447,
    2.365,
    2.306,
    2.262,
    2.228,
    2.201,
    2.179,
    2.160,
    2.145,
    2.131,
    2.120,
    2.110,
    2.101,
    2.093,
    2.086,
    2.080,
    2.074,
    2.069,
    2.064,
    2.060,
    2.056,
    2.052,
    2.048,
    2.045,
    2.042,
]


@dataclass
class Window:
    monitored: bool
    seconds: float
    samples_per_s: float | None
    lines: int
    cpu_s_per_s: float  # the bench process's CPU time per wall second in this window
    monitor_samples: int | None = None  # how many samples the monitor took (ON windows only)


@dataclass
class Measurement:
    """The state of one workload's measurement: its window length may grow, notes explain why."""

    window_s: float
    windows: list[Window] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    ended_early: bool = False


# ---------------------------------------------------------------- the workload and its log


def wait_for_first_line(running: RunningJob, tail: ProgressTail, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and running.poll() is None:
        tail.poll(time.monotonic())
        if tail.points:
            return True
        time.sleep(POLL_S)
    return False


def collect(running: RunningJob, tail: ProgressTail, seconds: float) -> list[ProgressPoint]:
    """Progress lines that appear in the next ``seconds``. Lines that were already waiting are dropped
    first: they were written earlier and their read time is not when they appeared."""
    tail.poll(time.monotonic())
    already = len(tail.points)
    end = time.monotonic() + seconds
    while time.monotonic() < end and running.poll() is None:
        time.sleep(POLL_S)
        tail.poll(time.monotonic())
    return tail.points[already:]


def samples_per_second(lines: list[ProgressPoint]) -> float | None:
    """Samples over training time between consecutive lines; a step between two epochs (their evaluation pass),
    gaps over GAP_FACTOR x the median (a pause) and a restart of the count are left out. None with fewer than
    MIN_LINES lines.

    The epoch rule matters: on the H200 (2026-12-01) resnet20's 2 s windows read alternately about 11.5k and 9.3k
    samples/s, the period of its 4.5 s epoch, so a window's rate hung on whether it held an evaluation pass, and
    the paired figure's interval was +-6.4%."""
    pairs = [
        (a, b)
        for a, b in zip(lines, lines[1:])
        if b.t > a.t
        and a.samples is not None
        and b.samples is not None
        and b.samples >= a.samples
        and a.epoch == b.epoch
    ]
    if len(pairs) < MIN_LINES - 1:
        return None
    limit = GAP_FACTOR * statistics.median(b.t - a.t for a, b in pairs)
    kept = [(a, b) for a, b in pairs if b.t - a.t <= limit]
    seconds = sum(b.t - a.t for a, b in kept)
    return sum(b.samples - a.samples for a, b in kept) / seconds if seconds > 0 else None


def confidence_95(values: list[float]) -> float | None:
    """Half-width of the 95% confidence interval of the mean of ``values`` (Student's t)."""
    if len(values) < 2:
        return None
    t = _T95[len(values) - 2] if len(values) - 1 <= len(_T95) else 1.96
    return t * statistics.stdev(values) / math.sqrt(len(values))


# ---------------------------------------------------------------- windows


def one_window(running: RunningJob, tail: ProgressTail, device: Device, monitored: bool, seconds: float) -> Window:
    """One window. For ON windows a fresh monitor is started and tracks the job, then it is stopped."""
    monitor = None
    cpu0, wall0 = time.process_time(), time.monotonic()
    if monitored:
        monitor = Monitor(device, hz=DEFAULT_HZ).start()
        monitor.track("foreground", running)
    lines = collect(running, tail, seconds)
    if monitor is not None:
        monitor.stop()
    cpu = (time.process_time() - cpu0) / max(time.monotonic() - wall0, 1e-9)
    return Window(
        monitored,
        seconds,
        samples_per_second(lines),
        len(lines),
        cpu,
        len(monitor.samples) if monitor is not None else None,
    )


def measured_window(
    running: RunningJob, tail: ProgressTail, device: Device, monitored: bool, state: Measurement
) -> Window:
    """One window with a rate. If it gets too few progress lines, the length doubles (at most
    MAX_WINDOW_S) and the window runs again."""
    while True:
        window = one_window(running, tail, device, monitored, state.window_s)
        if window.samples_per_s is not None or running.poll() is not None or state.window_s >= MAX_WINDOW_S:
            return window
        widened = min(2 * state.window_s, MAX_WINDOW_S)
        state.notes.append(
            f"window of {state.window_s:g} s had {window.lines} progress line(s): widened to {widened:g} s"
        )
        state.window_s = widened


def resolved(windows: list[Window], target_pct: float) -> bool:
    ci = confidence_95(paired_slowdowns(windows))
    return ci is not None and ci <= target_pct


def measure(
    running: RunningJob, tail: ProgressTail, device: Device, args: argparse.Namespace, state: Measurement
) -> None:
    """Warm-up window, then OFF/ON pairs in alternating order: at least ``--pairs``, then more until the 95%
    interval is within ``--resolve-pct`` or ``--max-pairs`` or ``--budget-s`` is reached."""
    measured_window(running, tail, device, False, state)  # warm-up: also settles the window length
    deadline = time.monotonic() + args.budget_s
    i = 0
    while i < args.max_pairs and (i < args.pairs or not resolved(state.windows, args.resolve_pct)):
        if time.monotonic() > deadline:
            state.notes.append(f"stopped at the time budget ({args.budget_s:g} s) after {i} pairs")
            return
        for monitored in (False, True) if i % 2 == 0 else (True, False):
            if running.poll() is not None:
                state.ended_early = True
                state.notes.append(f"workload exited (code {running.poll()}) after {len(state.windows)} windows")
                return
            state.windows.append(measured_window(running, tail, device, monitored, state))
        i += 1


# ---------------------------------------------------------------- results


def paired_slowdowns(windows: list[Window]) -> list[float]:
    """100 * (1 - on/off) for each complete pair (windows 2i and 2i+1, in either order)."""
    out = []
    for a, b in zip(windows[0::2], windows[1::2]):
        off, on = (b, a) if a.monitored else (a, b)
        if off.samples_per_s and on.samples_per_s is not None:
            out.append(100 * (1 - on.samples_per_s / off.samples_per_s))
    return out


def summarise(key: str, windows: list[Window], target_pct: float) -> dict:
    off = [w.samples_per_s for w in windows if not w.monitored and w.samples_per_s is not None]
    on = [w.samples_per_s for w in windows if w.monitored and w.samples_per_s is not None]
    paired = paired_slowdowns(windows)
    row: dict = {"workload": key, "pairs": len(paired), "target_resolution_pct": target_pct}
    if off and on:
        median_off, median_on = statistics.median(off), statistics.median(on)
        row.update(
            median_off_samples_per_s=round(median_off, 3),
            median_on_samples_per_s=round(median_on, 3),
            unpaired_slowdown_pct=round(100 * (1 - median_on / median_off), 3),
        )
    if paired:
        row["paired_pcts"] = [round(p, 3) for p in paired]
        row["mean_slowdown_pct"] = round(statistics.mean(paired), 3)  # the headline, with its interval
        row["median_slowdown_pct"] = round(statistics.median(paired), 3)
        ci = confidence_95(paired)
        row["ci95_pct"] = None if ci is None else round(ci, 3)
        row["resolved"] = ci is not None and ci <= target_pct
    cpu_on = [w.cpu_s_per_s for w in windows if w.monitored]
    cpu_off = [w.cpu_s_per_s for w in windows if not w.monitored]
    if cpu_on and cpu_off:  # what the sampling thread costs the host, in CPU seconds per second
        row["monitor_cpu_s_per_s"] = round(statistics.mean(cpu_on) - statistics.mean(cpu_off), 4)
    return row


def summary_line(row: dict, trains_on: str) -> str:
    if "mean_slowdown_pct" not in row:
        return f"{row['workload']} [{trains_on}]: no usable pairs ({'; '.join(row.get('notes', [])) or 'see JSON'})"
    ci = row.get("ci95_pct")
    text = (
        f"{row['workload']} [{trains_on}]: monitor slowdown {row['mean_slowdown_pct']:+.2f}%"
        + (f" ± {ci:.2f}% (95%)" if ci is not None else "")
        + f" over {row['pairs']} pairs, "
        + ("resolved" if row.get("resolved") else f"NOT resolved to ±{row['target_resolution_pct']:g}%")
    )
    if "monitor_cpu_s_per_s" in row:
        text += f"; monitor CPU {1000 * row['monitor_cpu_s_per_s']:.1f} ms/s"
    return text + f"; window {row['window_s']:g} s, {row['wall_s']:.0f} s wall"


# ---------------------------------------------------------------- one workload


def run_workload(reg: Registry, device: Device, key: str, args: argparse.Namespace) -> dict:
    job = bench_job(reg, key, args.epochs)  # long enough to outlast the windows, then stopped
    if args.batch_size:  # a bigger batch makes a launch-bound job GPU-bound, whose windows vary less
        job = job.with_hyperparameter(BATCH_SIZE, args.batch_size)
    env = {**os.environ, **device.job_env(), "PYTHONUNBUFFERED": "1"}
    log = Path(tempfile.mkdtemp(prefix="monitor_overhead_")) / "run.log"
    started = time.monotonic()
    running = start_job("foreground", reg.command(job), log, env)
    tail = ProgressTail(log, reg.batch_size(job), clock_origin=0.0)  # this bench's clock is time.monotonic()
    state = Measurement(args.window_s)
    try:
        if wait_for_first_line(running, tail, FIRST_LINE_TIMEOUT_S):
            first_line_s = time.monotonic() - started
            measure(running, tail, device, args, state)
        else:
            first_line_s = None
            log_tail = log.read_text(errors="replace")[-500:] if log.exists() else "(no log)"
            state.notes.append(f"no progress line (exit code {running.poll()}); log tail: {log_tail}")
    finally:
        running.stop(1.0)
    row = summarise(key, state.windows, args.resolve_pct)
    row.update(
        job=job.to_json(),
        batch_size=reg.batch_size(job),
        window_s=state.window_s,
        first_progress_line_s=None if first_line_s is None else round(first_line_s, 2),
        wall_s=round(time.monotonic() - started, 1),
        ended_early=state.ended_early,
        notes=state.notes,
        windows=[
            {
                **asdict(w),
                "samples_per_s": None if w.samples_per_s is None else round(w.samples_per_s, 3),
                "cpu_s_per_s": round(w.cpu_s_per_s, 4),
            }
            for w in state.windows
        ],
        log=str(log),
    )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", default="pytorch_resnet_cifar10/resnet20,examples/mnist")
    parser.add_argument("--pairs", type=int, default=10, help="OFF/ON window pairs per workload, at least")
    parser.add_argument("--max-pairs", type=int, default=60, help="at most this many pairs per workload")
    parser.add_argument(
        "--resolve-pct", type=float, default=1.0, help="add pairs until the 95%% interval is within this"
    )
    parser.add_argument("--budget-s", type=float, default=240.0, help="seconds of windows per workload, at most")
    parser.add_argument("--window-s", type=float, default=2.0, help="seconds per window (widened when too short)")
    parser.add_argument("--epochs", type=int, default=10_000, help="epochs asked of the workload; it is stopped early")
    parser.add_argument("--device", default="cuda:0", help="cuda:N, or cpu (workloads then train on the CPU)")
    parser.add_argument(
        "--batch-size", type=int, default=None, help="every workload at this batch size (default: its own)"
    )
    args = parser.parse_args()
    if args.pairs < 2 or args.max_pairs < args.pairs or not 0 < args.window_s <= MAX_WINDOW_S or args.epochs < 1:
        parser.error(f"need 2 <= --pairs <= --max-pairs, 0 < --window-s <= {MAX_WINDOW_S:g}, --epochs >= 1")
    reg, device = registry(), open_device(args.device)
    trains_on = "cpu" if args.device == "cpu" else "gpu"
    rows = []
    for key in args.workloads.split(","):
        rows.append(run_workload(reg, device, key, args))
        print(summary_line(rows[-1], trains_on), flush=True)
    path = write_json(
        f"monitor_overhead_{args.device.replace(':', '')}.json",
        {
            **stamp(),
            "device": device.describe(),
            "workloads_train_on": trains_on,
            "monitor_hz": DEFAULT_HZ,
            "method": "interleaved OFF/ON windows in one process per workload; "
            "mean paired slowdown with its 95% interval",
            "poll_s": POLL_S,
            "rows": rows,
        },
    )
    print(f"wrote {path}", flush=True)


if __name__ == "__main__":
    main()
