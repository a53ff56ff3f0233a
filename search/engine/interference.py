"""What co-location costs: each pair's slowdowns against the solo baselines, GPU energy per sample, and doing
both jobs' work together against doing it one after the other; flags for pairs whose figures would mislead.

Pure functions of trial views. A figure comes only from a trial that measured it as it is: serial (not packed)
trials, whose foreground has a steady-state window, and whose background trained through most of that window.
Everything else is listed with a flag and the numbers behind it, never with a figure.

Paired against sequential: in its window of ``W`` seconds the pair did ``n_fg`` foreground and ``n_bg``
background samples. Alone, that work takes ``n_fg / fg_solo_sps + n_bg / bg_solo_sps`` seconds and
``n_fg * e_fg + n_bg * e_bg`` joules (``e``: a solo run's GPU energy per sample). A ratio below 1 means that
running them together saved time (or energy).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from optuna.trial import TrialState

from gpupair_search.launcher.outcome import Outcome
from gpupair_search.launcher.spec import JobConfig
from gpupair_search.launcher.window_stats import MIN_BACKGROUND_TRAINING_SHARE, WindowStats
from gpupair_search.search.engine.baselines import BASELINE_PHASE, job_identity
from gpupair_search.search.record.trial_record import PACKED as PACKED_MODE
from gpupair_search.search.record.trial_record import Measured, TrialView

#: The foreground is CPU-starved when it got this much less CPU than alone and was this much slower.
STARVED_CPU_RATIO = 0.8
STARVED_SLOWDOWN = 1.2

NO_WINDOW, NO_BASELINE, PACKED = "no_window", "no_baseline", "packed"
MOSTLY_STARTING, CPU_STARVED, ENERGY_UNRELIABLE = "background_mostly_starting", "cpu_starved", "energy_unreliable"


@dataclass(frozen=True)
class Solo:
    """A job's solo baseline at one batch size, over its steady-state window."""

    key: str
    batch: int | None
    trial: int
    samples_per_second: float
    energy_per_sample_j: float | None  # None: the window's energy was unreliable or not measured
    cpu_pct: float | None


@dataclass(frozen=True)
class Sequential:
    """The pair's window of work, done together and one after the other."""

    paired_time_s: float
    sequential_time_s: float
    paired_energy_j: float | None = None
    sequential_energy_j: float | None = None

    @property
    def time_ratio(self) -> float:
        return self.paired_time_s / self.sequential_time_s

    @property
    def energy_ratio(self) -> float | None:
        if self.paired_energy_j is None or not self.sequential_energy_j:
            return None
        return self.paired_energy_j / self.sequential_energy_j


@dataclass(frozen=True)
class PairInterference:
    pair_key: str
    trial: int
    fg_batch: int | None
    bg_batch: int | None
    foreground: str  # baseline keys (job identities)
    background: str
    fg_samples_per_second: float | None = None
    bg_samples_per_second: float | None = None
    fg_solo: Solo | None = None
    bg_solo: Solo | None = None
    energy_per_fg_sample_j: float | None = None  # the pair's GPU energy per foreground sample
    sequential: Sequential | None = None
    fg_cpu_pct: float | None = None
    bg_cpu_pct: float | None = None
    host_cpu_pct: float | None = None
    background_training_share: float | None = None
    flags: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()  # the numbers behind each flag

    @property
    def usable(self) -> bool:
        """Whether its slowdowns are interference figures (a flagged pair is shown, not counted)."""
        return not ({NO_WINDOW, NO_BASELINE, PACKED, MOSTLY_STARTING} & set(self.flags))

    @property
    def foreground_slowdown(self) -> float | None:
        return (
            _ratio(self.fg_solo.samples_per_second if self.fg_solo else None, self.fg_samples_per_second)
            if self.usable
            else None
        )

    @property
    def background_slowdown(self) -> float | None:
        return (
            _ratio(self.bg_solo.samples_per_second if self.bg_solo else None, self.bg_samples_per_second)
            if self.usable
            else None
        )

    def summary(self) -> str:
        """One line for notes (status, export, the dashboard)."""
        parts = []
        if self.foreground_slowdown is not None:
            parts.append(f"foreground {self.foreground_slowdown:.2f}x slower")
        if self.background_slowdown is not None:
            parts.append(f"background {self.background_slowdown:.2f}x slower")
        if self.energy_per_fg_sample_j is not None:
            parts.append(f"{self.energy_per_fg_sample_j * 1000:.3g} mJ GPU energy per foreground sample")
        if self.usable and self.sequential is not None:
            parts.append(f"together {self.sequential.time_ratio:.2f}x the time of one after the other")
            if self.sequential.energy_ratio is not None:
                parts.append(f"{self.sequential.energy_ratio:.2f}x the energy")
        return "; ".join(parts + list(self.notes)) or "no interference figures"


def sequential(
    window_s: float, fg_samples: float, bg_samples: float, fg_solo: Solo, bg_solo: Solo, paired_energy_j: float | None
) -> Sequential | None:
    """The window's work done together against one after the other (see the module docstring)."""
    if fg_solo.samples_per_second <= 0 or bg_solo.samples_per_second <= 0 or window_s <= 0:
        return None
    seq_time = fg_samples / fg_solo.samples_per_second + bg_samples / bg_solo.samples_per_second
    seq_energy = None
    if fg_solo.energy_per_sample_j is not None and bg_solo.energy_per_sample_j is not None:
        seq_energy = fg_samples * fg_solo.energy_per_sample_j + bg_samples * bg_solo.energy_per_sample_j
    return Sequential(window_s, seq_time, paired_energy_j, seq_energy)


def cpu_starvation(
    fg_cpu: float | None, solo_cpu: float | None, slowdown: float | None, host_cpu: float | None
) -> str | None:
    """The note that flags a CPU-starved foreground, with its numbers; None when it is not starved."""
    if fg_cpu is None or not solo_cpu or slowdown is None:
        return None
    if fg_cpu < STARVED_CPU_RATIO * solo_cpu and slowdown >= STARVED_SLOWDOWN:
        host = f", host CPU {host_cpu:.0f}%" if host_cpu is not None else ""
        return (
            f"CPU-starved foreground: {fg_cpu:.0f}% CPU paired against {solo_cpu:.0f}% alone{host}, "
            f"{slowdown:.2f}x slower"
        )
    return None


def solo_baselines(views: list[TrialView]) -> dict[tuple[str, int | None], Solo]:
    """The latest usable baseline of each (job, batch size): serial, with a steady-state window."""
    out: dict[tuple[str, int | None], Solo] = {}
    for v in sorted(views, key=lambda v: v.number):
        measured = _ok(v)
        if v.phase != BASELINE_PHASE or measured is None or v.mode == PACKED_MODE:
            continue
        window = measured.window
        if window is None or not window.reliable or not window.foreground_samples_per_second:
            continue
        key = _identity(measured.foreground)
        out[(key, v.fg_batch)] = Solo(
            key,
            v.fg_batch,
            v.number,
            window.foreground_samples_per_second,
            window.gpu_energy_per_foreground_sample_j,
            window.foreground_cpu_pct,
        )
    return out


def pair_interference(views: list[TrialView]) -> list[PairInterference]:
    """Every measured, ok pair trial (not a baseline, not a solo entry), in trial order."""
    solos = solo_baselines(views)
    return [
        _one(v, measured, solos)
        for v in sorted(views, key=lambda v: v.number)
        if v.phase != BASELINE_PHASE and (measured := _ok(v)) is not None and measured.background is not None
    ]


def figures_by_trial(views: list[TrialView]) -> dict[int, PairInterference]:
    return {p.trial: p for p in pair_interference(views)}


def worth_a_note(p: PairInterference) -> bool:
    """Whether a pair has a figure to show (a pair without progress lines or baselines only has reasons)."""
    return (
        p.foreground_slowdown is not None
        or p.energy_per_fg_sample_j is not None
        or bool({MOSTLY_STARTING, CPU_STARVED, PACKED} & set(p.flags))
    )


def _one(v: TrialView, measured: Measured, solos: dict[tuple[str, int | None], Solo]) -> PairInterference:
    fg_key, bg_key = _identity(measured.foreground), _identity(measured.background)
    base = PairInterference(v.pair_key, v.number, v.fg_batch, v.bg_batch, fg_key, bg_key)
    if v.mode == PACKED_MODE:
        return _with(base, PACKED, "no energy figure: packed (measured alongside other trials)")
    window = measured.window or WindowStats(reliable=False)
    if not window.reliable:
        return _with(base, NO_WINDOW, window.note or "no steady-state window")
    fg_solo, bg_solo = solos.get((fg_key, v.fg_batch)), solos.get((bg_key, v.bg_batch))
    bg_samples = window.background_samples
    found = PairInterference(
        v.pair_key,
        v.number,
        v.fg_batch,
        v.bg_batch,
        fg_key,
        bg_key,
        fg_samples_per_second=window.foreground_samples_per_second,
        bg_samples_per_second=window.background_samples_per_second,
        fg_solo=fg_solo,
        bg_solo=bg_solo,
        energy_per_fg_sample_j=window.gpu_energy_per_foreground_sample_j,
        sequential=sequential(
            window.window_s, window.foreground_samples or 0, bg_samples or 0, fg_solo, bg_solo, window.gpu_energy_j
        )
        if fg_solo and bg_solo and bg_samples is not None
        else None,
        fg_cpu_pct=window.foreground_cpu_pct,
        bg_cpu_pct=window.background_cpu_pct,
        host_cpu_pct=window.host_cpu_pct,
        background_training_share=window.background_training_share,
    )
    flags: list[str] = []
    notes: list[str] = []
    share = found.background_training_share
    if share is not None and share < MIN_BACKGROUND_TRAINING_SHARE:
        flags.append(MOSTLY_STARTING)
        notes.append(
            f"not a pair: the background trained in {share:.0%} of the foreground's window (the rest was "
            f"start-up between its {measured.background_runs if measured.background_runs is not None else '?'} runs); left out of the figures"
        )
    if fg_solo is None or bg_solo is None:
        missing = [k for k, s in ((fg_key, fg_solo), (bg_key, bg_solo)) if s is None]
        flags.append(NO_BASELINE)
        notes.append("no solo baseline of " + ", ".join(missing) + " at this batch size")
    if not window.energy_reliable:
        flags.append(ENERGY_UNRELIABLE)
        notes.append(f"energy {window.energy_note or 'not measured'}")
    starved = cpu_starvation(
        found.fg_cpu_pct,
        fg_solo.cpu_pct if fg_solo else None,
        _ratio(fg_solo.samples_per_second if fg_solo else None, found.fg_samples_per_second),
        found.host_cpu_pct,
    )
    if starved:
        flags.append(CPU_STARVED)
        notes.append(starved)
    return _replace(found, tuple(flags), tuple(notes))


def _with(base: PairInterference, flag: str, note: str) -> PairInterference:
    return _replace(base, (flag,), (note,))


def _replace(p: PairInterference, flags: tuple[str, ...], notes: tuple[str, ...]) -> PairInterference:
    return replace(p, flags=flags, notes=notes)


def _ok(v: TrialView) -> Measured | None:
    """What a COMPLETE trial whose jobs both ran to the end measured; None for any other trial."""
    measured = v.record.measured
    ok = v.state is TrialState.COMPLETE and measured is not None and measured.outcome is Outcome.OK
    return measured if ok else None


def _identity(job: JobConfig | None) -> str:
    return job_identity(job) if job is not None else ""


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def attrs_for_trial(p: PairInterference) -> dict[str, Any]:
    """The figures as one JSON-able user attribute (``interference``), for the dashboard and export."""
    seq = p.sequential if p.usable else None
    return {
        "foreground_slowdown": _r(p.foreground_slowdown),
        "background_slowdown": _r(p.background_slowdown),
        "energy_per_foreground_sample_j": _r(p.energy_per_fg_sample_j, 6),
        "time_ratio_vs_sequential": _r(seq.time_ratio if seq else None),
        "energy_ratio_vs_sequential": _r(seq.energy_ratio if seq else None),
        "flags": list(p.flags),
        "notes": list(p.notes),
        "summary": p.summary(),
    }


def _r(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)
