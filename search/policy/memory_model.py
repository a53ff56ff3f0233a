"""Per-job memory model: ``peak(b) = fixed + per_sample * b`` (MiB, batch size b).

Fitted from every measurement of the job: its own peak in pairs and solo runs (exact), shipped profiles
(exact, another card: used for the slope when the study has too few points of its own), and OOMs, which
give lower bounds (what it held plus what it "tried to allocate"). Memory grows close to linearly with
batch size once past small batches (BENCHMARKS.md, Prediction).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gpupair_search.search.record.trial_record import Measured

# A CUDA context alone costs ~610 MiB per process (docs/reference/measured.md); the fixed part is never below that
# on a GPU. Used only when nothing else is known.
DEFAULT_FIXED_MIB = 610.0


@dataclass(frozen=True)
class Observation:
    batch_size: int
    peak_mib: float
    exact: bool = True  # False: a lower bound (the job ran out of memory or was cut short)
    source: str = "trial"  # "trial", "profile", or CPU_ONLY


#: The source of a profile's word that a job holds no GPU memory at all, at any batch size (a CPU job): its
#: model is 0 MiB until the study's own trials measure it.
CPU_ONLY = "cpu_only"


@dataclass(frozen=True)
class LinearMemoryModel:
    fixed_mib: float
    per_sample_mib: float
    points: int = 0  # exact observations it was fitted on

    def predict(self, batch_size: int | None) -> float:
        return self.fixed_mib + self.per_sample_mib * (batch_size or 0)


def _least_squares(points: Sequence[tuple[float, float]]) -> tuple[float, float] | None:
    xs = {x for x, _ in points}
    if len(xs) < 2:
        return None
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    slope = sum((x - mx) * (y - my) for x, y in points) / sxx
    return my - slope * mx, slope


def fit_linear(observations: list[Observation]) -> LinearMemoryModel | None:
    """Fit fixed + per-sample. Trial points decide where they can; profiles fill in the slope."""
    exact_trials = [(o.batch_size, o.peak_mib) for o in observations if o.exact and o.source == "trial"]
    exact_profiles = [(o.batch_size, o.peak_mib) for o in observations if o.exact and o.source == "profile"]
    fit = _least_squares(exact_trials)
    if fit is None and not exact_trials and any(o.source == CPU_ONLY for o in observations):
        fit = (0.0, 0.0)
    if fit is None:
        profile_fit = _least_squares(exact_profiles)
        if profile_fit is not None and exact_trials:
            # slope from the profile, level from this study's own measurement (its card, its context size)
            slope = max(profile_fit[1], 0.0)
            fixed = sum(y - slope * x for x, y in exact_trials) / len(exact_trials)
            fit = (fixed, slope)
        elif profile_fit is not None:
            fit = profile_fit
        elif exact_trials:
            x, y = max(exact_trials)
            fixed = min(DEFAULT_FIXED_MIB, y)
            fit = (fixed, (y - fixed) / x if x else 0.0)
    lower = [(o.batch_size, o.peak_mib) for o in observations if not o.exact]
    if fit is None:
        if not lower:
            return None
        x, y = max(lower, key=lambda p: p[1] / max(p[0], 1))
        fixed = min(DEFAULT_FIXED_MIB, y)
        fit = (fixed, (y - fixed) / x if x else 0.0)
    fixed, slope = fit
    slope = max(slope, 0.0)
    for x, bound in lower:  # a lower bound the line does not reach steepens it
        if x > 0 and fixed + slope * x < bound:
            slope = (bound - fixed) / x
    return LinearMemoryModel(round(fixed, 3), round(slope, 5), len(exact_trials) + len(exact_profiles))


def observations_from_trial(
    measured: Measured, fg_batch: int | None, bg_batch: int | None
) -> dict[str, list[Observation]]:
    """What one measured trial says about each of its jobs (keys ``repo/model``)."""
    out: dict[str, list[Observation]] = {}
    memory, outcome = measured.memory, measured.outcome
    jobs = {
        "foreground": (
            measured.foreground,
            fg_batch,
            memory and memory.foreground_peak_mib,
            memory and memory.foreground_tried_to_allocate_mib,
        ),
        "background": (
            measured.background,
            bg_batch,
            memory and memory.background_peak_mib,
            memory and memory.background_tried_to_allocate_mib,
        ),
    }
    for role, (job, batch, peak, tried) in jobs.items():
        if job is None or batch is None or memory is None:
            continue
        peak = float(peak or 0.0)
        key = job.key
        if outcome.oom_role == role:
            out.setdefault(key, []).append(Observation(batch, peak + float(tried or 0.0), exact=False))
        elif peak > 0 and outcome.is_memory_verdict:
            # the other job of an OOM pair was cut short: its peak is only a lower bound
            out.setdefault(key, []).append(Observation(batch, peak, exact=outcome.peak_is_exact))
    return out
