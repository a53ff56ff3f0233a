"""Solo baselines: each distinct job of a study, run alone, so that every pair has something to be slower than.

A slowdown needs the job's throughput without a neighbour, measured the same way (same probe, same steady-state
window). The baselines are derived from the study's pairs alone, so every worker and every resume derives the
same ones; they are trials of their own phase and their own parameter (``baseline``), so that the pairs'
planning, verdicts and export never see them.

Which studies have them: a study's definition fixes it (``--baselines/--no-baselines``). By default none do:
the question a study answers first is which pairs fit in memory, and a baseline is an extra trial per job, plus a
steady-state window in every pair, spent on slowdown and energy figures. ``--study feasibility-cost`` (the same
pairs) measures them, and ``--baselines`` with ``--min-window-s`` asks for them on any study.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from gpupair_search.launcher.registry import BATCH_SIZE, MAX_STEPS, MIN_TRAIN_S
from gpupair_search.launcher.spec import JobConfig, PairSpec
from gpupair_search.launcher.steady_window import PROGRESS_PATTERN_NAME

BASELINE_PARAM = "baseline"  # the trial parameter naming the job a solo baseline measures
BASELINE_PHASE = "baseline"
BASELINE_SOURCE = "solo baseline"
#: Hyperparameters that do not make a job another job: the batch size is the trial's own parameter, and the
#: probe's step cap and minimum training time are the launcher's.
_NOT_IDENTITY = (BATCH_SIZE, MAX_STEPS, MIN_TRAIN_S)


#: ``--baselines`` and ``--min-window-s`` when neither the flags nor a named study say: memory verdicts only, so a
#: probe is as short as its peak allows.
DEFAULT_BASELINES = False
DEFAULT_MIN_WINDOW_S = 0.0


def job_identity(job: JobConfig) -> str:
    """``solo:repo/model`` plus the hyperparameters that make it this job, e.g. ``solo:vulberta/mlp{"lr": 0.1}``."""
    rest = {k: v for k, v in sorted(job.hyperparameters.items()) if k not in _NOT_IDENTITY}
    return f"solo:{job.key}" + (json.dumps(rest, sort_keys=True, default=str) if rest else "")


def baseline_specs(pairs: Iterable[PairSpec]) -> dict[str, PairSpec]:
    """One solo run per distinct job of ``pairs`` (foregrounds and backgrounds), keyed by :func:`job_identity`;
    in the order the jobs first appear, with the group of the first pair that has them."""
    out: dict[str, PairSpec] = {}
    for pair in pairs:
        for job in (pair.foreground, pair.background):
            if job is None:
                continue
            key = job_identity(job)
            if key not in out:
                out[key] = PairSpec(
                    pair.group, job.without((BATCH_SIZE,)), None, note=f"solo baseline of {key}", source=BASELINE_SOURCE
                )
    return out


def reports_progress(job: JobConfig, registry) -> bool:
    """Whether ``job`` can give a steady-state window: a built-in that trains for ``min_train_s``, or a script whose
    models-file entry names a ``progress_steps`` pattern. A solo run of any other job measures nothing a baseline is
    for (a CPU-only built-in's solo run takes minutes for no window), so it gets none."""
    return registry.supports(job, MIN_TRAIN_S) or PROGRESS_PATTERN_NAME in registry.repository(job.repo).log_patterns


def is_baseline(pair: PairSpec) -> bool:
    return pair.source == BASELINE_SOURCE and pair.background is None


def jobs_at(pair: PairSpec, config: tuple[int | None, int | None]) -> list[tuple[str, int | None]]:
    """The (baseline key, batch size) of each job of ``pair`` at ``config``."""
    jobs = [(pair.foreground, config[0]), (pair.background, config[1])]
    return [(job_identity(job), batch) for job, batch in jobs if job is not None]
