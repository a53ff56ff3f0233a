"""What happened during the foreground's steady-state window: throughput of both jobs, GPU energy, CPU use,
and how much of the window the background spent training rather than starting.

These are the numbers interference is judged by (search/engine/interference.py compares them with solo runs), so each
one is None with a reason rather than a guess: a window without enough energy-counter time has no energy figure.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import mean

from gpupair_search.launcher.measurement import BG, FG, counter_energy, cpu_share_pct, host_cpu_share_pct
from gpupair_search.launcher.monitor import Sample
from gpupair_search.launcher.steady_window import (
    ProgressPoint,
    overlap_share,
    samples_within,
    steady_window,
    training_intervals,
)

MIN_ENERGY_WINDOW_S = 1.0  # NVML's energy counter is not trustworthy over less (it updates every ~100 ms or less)
#: Below this share of the foreground's window spent training (not starting up), the background was mostly a
#: process starting: not a co-located job (the seed's "103 restarts" in a milder form).
MIN_BACKGROUND_TRAINING_SHARE = 0.5


def background_warning(stats: WindowStats, runs: int) -> str | None:
    """The pair's warning when its background mostly started up during the foreground's window."""
    share = stats.background_training_share
    if share is None or share >= MIN_BACKGROUND_TRAINING_SHARE:
        return None
    return (
        f"the background trained in {share:.0%} of the foreground's steady-state window; the rest was start-up "
        f"between its {runs} runs: its memory was measured, but this is no co-location (no interference figures)"
    )


@dataclass(frozen=True)
class WindowStats:
    """Over the foreground's steady-state window (``window_s`` seconds, ``foreground_steps`` steps)."""

    reliable: bool  # a window exists (the foreground reported progress after warm-up)
    note: str = ""  # why a figure is missing
    start_t: float | None = None
    window_s: float | None = None
    foreground_steps: int | None = None
    foreground_samples: int | None = None
    foreground_samples_per_second: float | None = None
    background_samples: float | None = None
    background_samples_per_second: float | None = None
    #: the share of the window in which a background run was training (not starting up, evaluating or exiting)
    background_training_share: float | None = None
    gpu_energy_j: float | None = None
    energy_counter_s: float | None = None
    energy_reliable: bool = False
    energy_note: str = ""
    gpu_energy_per_foreground_sample_j: float | None = None
    power_avg_w: float | None = None
    foreground_cpu_pct: float | None = None
    background_cpu_pct: float | None = None
    host_cpu_pct: float | None = None


def describe(stats: WindowStats) -> str:
    """One line for people: what the window measured, or why there is none."""
    if not stats.reliable:
        return stats.note
    parts = [f"{stats.window_s:.2f} s, {stats.foreground_steps} foreground steps"]
    if stats.foreground_samples_per_second is not None:
        parts.append(f"foreground {stats.foreground_samples_per_second:,.1f} samples/s")
    if stats.background_samples_per_second is not None:
        parts.append(f"background {stats.background_samples_per_second:,.1f} samples/s")
    if stats.background_training_share is not None:
        parts.append(f"background training {stats.background_training_share:.0%} of it")
    if stats.energy_reliable and stats.gpu_energy_per_foreground_sample_j is not None:
        parts.append(
            f"GPU {stats.gpu_energy_j:,.1f} J, {1000 * stats.gpu_energy_per_foreground_sample_j:.3g} mJ per "
            "foreground sample"
        )
    else:
        parts.append(f"energy {stats.energy_note}")
    return ", ".join(parts)


def window_stats(
    fg_points: list[ProgressPoint], bg_runs: list[list[ProgressPoint]], samples: list[Sample], solo: bool
) -> WindowStats:
    window = steady_window(fg_points)
    if window is None:
        return WindowStats(
            False,
            note=f"no steady-state window: the foreground reported {len(fg_points)} progress point(s), too few "
            "after its warm-up steps (a longer run, --min-window-s, gives one)"
            if fg_points
            else "no steady-state window: the foreground reported no progress after warm-up "
            "(built-ins print it; an external script needs a 'progress_steps' log pattern)",
        )
    start, end = window.start_t, window.end_t
    inside = [s for s in samples if start <= s.t <= end]
    energy, counter_s, energy_note = _energy(samples, start, end)
    bg_samples = None if solo else samples_within(bg_runs, start, end)
    per_sample = None
    if energy is not None and window.samples:
        per_sample = energy / window.samples
    power = [s.device.power_w for s in inside if s.device.power_w is not None]
    return WindowStats(
        reliable=True,
        start_t=round(start, 3),
        window_s=round(window.seconds, 3),
        foreground_steps=window.steps,
        foreground_samples=window.samples,
        foreground_samples_per_second=_round(window.samples_per_second),
        background_samples=_round(bg_samples),
        background_samples_per_second=_round(bg_samples / window.seconds if bg_samples is not None else None),
        background_training_share=_round(overlap_share(training_intervals(bg_runs), start, end))
        if any(bg_runs)  # a background that reported no progress (no pattern to read it by) trained unseen
        else None,
        gpu_energy_j=_round(energy),
        energy_counter_s=_round(counter_s),
        energy_reliable=energy is not None,
        energy_note=energy_note,
        gpu_energy_per_foreground_sample_j=_round(per_sample, 6),
        power_avg_w=_round(mean(power) if power else None),
        foreground_cpu_pct=_round(cpu_share_pct(samples, FG, start, end)),
        background_cpu_pct=None if solo else _round(cpu_share_pct(samples, BG, start, end)),
        host_cpu_pct=_round(host_cpu_share_pct(samples, start, end)),
    )


def _energy(samples: list[Sample], start: float, end: float) -> tuple[float | None, float | None, str]:
    """The window's energy, or None and why. A window the counter's reads cover only in part gets the energy of
    the covered seconds at their mean power (an edge of at most one read interval)."""
    if sum(s.device.energy_mj is not None for s in samples) < 2:
        return None, None, "unavailable: the device has no energy counter"
    energy, span = counter_energy(samples, start, end)
    if energy is None or span < MIN_ENERGY_WINDOW_S:
        return (
            None,
            span,
            (
                f"unreliable: {span:.2f} s of energy counter in the window, under {MIN_ENERGY_WINDOW_S:g} s "
                "(train longer: more probe steps)"
            ),
        )
    return energy * (end - start) / span, span, ""


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)
