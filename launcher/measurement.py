"""What a pair run measured: memory peaks, energy, timelines. Pure functions over monitor samples."""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from statistics import mean
from typing import Any

from gpupair_search.launcher.monitor import Sample

FG, BG = "foreground", "background"


@dataclass(frozen=True)
class MemoryStats:
    """MiB. ``sum_of_peaks`` is the safe bound: a looping background's peak meets the foreground's sooner
    or later, even if it did not during this run (``concurrent_peak``)."""

    foreground_peak_mib: float
    background_peak_mib: float
    concurrent_peak_mib: float
    sum_of_peaks_mib: float
    device_peak_used_mib: float | None
    foreground_tried_to_allocate_mib: float | None = None
    background_tried_to_allocate_mib: float | None = None
    samples: int = 0
    sample_hz: float = 0.0
    #: the longest time between two samples: how long the monitor was blind at worst (a peak shorter than
    #: that can be missed); the mean rate hides a single stall
    max_gap_ms: float = 0.0


@dataclass(frozen=True)
class EnergyStats:
    """Over the foreground's window. CPU energy is None with a reason when RAPL cannot be read, never 0."""

    window_s: float
    gpu_energy_j: float | None = None
    power_avg_w: float | None = None
    power_max_w: float | None = None
    utilization_avg_pct: float | None = None
    utilization_max_pct: float | None = None
    temperature_max_c: float | None = None
    cpu_energy_j: float | None = None
    cpu_energy_note: str = ""
    foreground_cpu_avg_pct: float | None = None
    background_cpu_avg_pct: float | None = None
    #: why the GPU figures are missing, e.g. for a packed trial, whose device was shared with other trials
    gpu_energy_note: str = ""


def memory_stats(samples: list[Sample], fg_tried: float | None = None, bg_tried: float | None = None) -> MemoryStats:
    fg = [s.job_mib.get(FG, 0.0) for s in samples]
    bg = [s.job_mib.get(BG, 0.0) for s in samples]
    used = [s.device.used_mib for s in samples if s.device.used_mib is not None]
    span = samples[-1].t - samples[0].t if len(samples) > 1 else 0.0
    return MemoryStats(
        foreground_peak_mib=max(fg, default=0.0),
        background_peak_mib=max(bg, default=0.0),
        concurrent_peak_mib=max((a + b for a, b in zip(fg, bg)), default=0.0),
        sum_of_peaks_mib=max(fg, default=0.0) + max(bg, default=0.0),
        device_peak_used_mib=max(used) if used else None,
        foreground_tried_to_allocate_mib=fg_tried,
        background_tried_to_allocate_mib=bg_tried,
        samples=len(samples),
        sample_hz=round((len(samples) - 1) / span, 1) if span > 0 else 0.0,
        max_gap_ms=round(1000 * max((b.t - a.t for a, b in zip(samples, samples[1:])), default=0.0), 1),
    )


def _stat(values: list[float], fn) -> float | None:
    return round(fn(values), 2) if values else None


def counter_energy(samples: list[Sample], start_t: float, end_t: float) -> tuple[float | None, float]:
    """GPU joules from ``start_t`` to ``end_t`` by the device's cumulative energy counter, and the seconds of the
    window the counter's reads cover. The counter is read a few times a second, not on every sample (an NVML
    energy read is the sampler's most expensive call, bench/sampler_cost.py): see :func:`counter_between`."""
    delta, covered = counter_between(
        [(s.t, s.device.energy_mj) for s in samples if s.device.energy_mj is not None], start_t, end_t
    )
    return (None if delta is None else delta / 1000.0), covered


def counter_between(reads: list[tuple[float, float]], start_t: float, end_t: float) -> tuple[float | None, float]:
    """How much a counter that only grows (energy, CPU seconds), read at the times in ``reads``, grew from
    ``start_t`` to ``end_t``, and the seconds of that span the reads cover. Each edge is interpolated linearly
    between the reads around it. A span reaching past the first or last read is cut to the reads: the growth
    is then that of the covered seconds, which the caller compares with the span."""
    if len(reads) < 2:
        return None, 0.0
    start, end = max(start_t, reads[0][0]), min(end_t, reads[-1][0])
    if end <= start:
        return None, 0.0
    return _counter_at(reads, end) - _counter_at(reads, start), end - start


def _counter_at(reads: list[tuple[float, float]], t: float) -> float:
    """The counter at ``t``, between the two reads around it (``t`` within the reads)."""
    after = bisect_left(reads, t, key=lambda read: read[0])
    if after == 0:
        return reads[0][1]
    (t0, e0), (t1, e1) = reads[after - 1], reads[min(after, len(reads) - 1)]
    return e0 if t1 <= t0 else e0 + (e1 - e0) * (t - t0) / (t1 - t0)


def cpu_share_pct(samples: list[Sample], label: str, start_t: float, end_t: float) -> float | None:
    """``label``'s CPU share from ``start_t`` to ``end_t`` (100 = one core), from its CPU-seconds counter at the
    tree walks around the edges. Not the mean of the samples' ``cpu_pct``: each is the share over the walk
    interval before it, up to 0.5 s late, and in a 1 s window a solo spinner read 48% of its core that way (it
    had 100%). Where no walk with a counter covers half of the span (older records, hand-made samples): that
    mean, for want of better."""
    delta, covered = counter_between([(s.t, s.cpu_s[label]) for s in samples if label in s.cpu_s], start_t, end_t)
    if delta is not None and covered >= 0.5 * (end_t - start_t):
        return 100.0 * delta / covered
    return _mean_within(samples, start_t, end_t, lambda s: s.cpu_pct.get(label))


def host_cpu_share_pct(samples: list[Sample], start_t: float, end_t: float) -> float | None:
    """The host's CPU share from ``start_t`` to ``end_t`` (0-100 over all cores), as :func:`cpu_share_pct`."""
    walks = [(s.t, s.host_cpu_s) for s in samples if s.host_cpu_s is not None]
    busy, covered = counter_between([(t, c[0]) for t, c in walks], start_t, end_t)
    total, _ = counter_between([(t, c[1]) for t, c in walks], start_t, end_t)
    if busy is not None and total and covered >= 0.5 * (end_t - start_t):
        return 100.0 * busy / total
    return _mean_within(samples, start_t, end_t, lambda s: s.host_cpu_pct)


def _mean_within(samples: list[Sample], start_t: float, end_t: float, value) -> float | None:
    values = [v for s in samples if start_t <= s.t <= end_t and (v := value(s)) is not None]
    return mean(values) if values else None


def energy_stats(
    samples: list[Sample], start_t: float, end_t: float, cpu_energy_j: float | None, cpu_note: str
) -> EnergyStats:
    window = [s for s in samples if start_t <= s.t <= end_t]
    power = [s.device.power_w for s in window if s.device.power_w is not None]
    util = [s.device.utilization_pct for s in window if s.device.utilization_pct is not None]
    temp = [s.device.temperature_c for s in window if s.device.temperature_c is not None]
    gpu_energy_j, _ = counter_energy(samples, start_t, end_t)
    fg_cpu = cpu_share_pct(samples, FG, start_t, end_t)
    bg_cpu = cpu_share_pct(samples, BG, start_t, end_t)
    return EnergyStats(
        window_s=round(end_t - start_t, 3),
        gpu_energy_j=None if gpu_energy_j is None else round(gpu_energy_j, 3),
        power_avg_w=_stat(power, mean),
        power_max_w=_stat(power, max),
        utilization_avg_pct=_stat(util, mean),
        utilization_max_pct=_stat(util, max),
        temperature_max_c=_stat(temp, max),
        cpu_energy_j=cpu_energy_j,
        cpu_energy_note=cpu_note,
        foreground_cpu_avg_pct=_rounded(fg_cpu),
        background_cpu_avg_pct=_rounded(bg_cpu),
    )


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def without_device_figures(stats: EnergyStats, reason: str) -> EnergyStats:
    """``stats`` with every whole-device figure (energy, power, utilisation, temperature) removed, saying why:
    on a device shared with other trials they are not this pair's."""
    return replace(
        stats,
        gpu_energy_j=None,
        power_avg_w=None,
        power_max_w=None,
        utilization_avg_pct=None,
        utilization_max_pct=None,
        temperature_max_c=None,
        cpu_energy_j=None,
        cpu_energy_note=reason,
        gpu_energy_note=reason,
    )


class RaplCounter:
    """Host CPU package energy from /sys/class/powercap (Intel RAPL), when the kernel exposes it."""

    ROOT = Path("/sys/class/powercap")

    def __init__(self) -> None:
        self.files = sorted(self.ROOT.glob("intel-rapl:[0-9]*/energy_uj")) if self.ROOT.exists() else []
        self.note = ""
        if not self.files:
            self.note = "unavailable: no RAPL domains under /sys/class/powercap on this machine"
        self._start = self._read()

    def _read(self) -> float | None:
        if not self.files:
            return None
        try:
            return sum(int(f.read_text()) for f in self.files) / 1e6
        except (OSError, ValueError) as exc:
            self.note = f"unavailable: cannot read RAPL ({exc})"
            return None

    def joules_since_start(self) -> float | None:
        end = self._read()
        if end is None or self._start is None:
            return None
        return round(end - self._start, 3) if end >= self._start else None  # counter wrapped: no number


def timeline_rows(samples: list[Sample]) -> list[dict[str, Any]]:
    rows = []
    for s in samples:
        fg, bg = s.job_mib.get(FG, 0.0), s.job_mib.get(BG, 0.0)
        rows.append(
            {
                "t_s": round(s.t, 3),
                "foreground_mib": round(fg, 1),
                "background_mib": round(bg, 1),
                "total_mib": round(fg + bg, 1),
                **{k: v for k, v in asdict(s.device).items()},
                "foreground_cpu_pct": s.cpu_pct.get(FG),
                "background_cpu_pct": s.cpu_pct.get(BG),
                "foreground_rss_mib": s.rss_mib.get(FG),
                "background_rss_mib": s.rss_mib.get(BG),
                "host_cpu_pct": s.host_cpu_pct,
            }
        )
    return rows
