"""The user's feasibility study: the seed design's 12 pairs of 11 models on an 8 GB card.

Safe limit 7500 MiB: the seed design's section 11.2 ("< 7500MB, 94% of 8GB"), read as nvidia-smi reports
it, in MiB. Override with --gpu-memory / --safe-limit or a ``gpupair`` block in the settings file.

Two named studies of these pairs: ``feasibility`` answers the seed design's question, which pairs fit in memory
(memory verdicts only: no solo baselines, and probes as short as a peak allows), and ``feasibility-cost`` also
measures what sharing costs: each job's slowdown next to its neighbour and the energy per sample, against solo
baselines of each job and a steady-state window in every probe. Each is a study of its own in the storage.
"""

from dataclasses import replace

from gpupair_search.launcher.registry import BUILTIN_PROBE_STEPS
from gpupair_search.settings import bundled
from gpupair_search.studies.definition import StudyDefaults, StudyDefinition

#: The window a study that measures slowdown and energy gives its probes (``feasibility-cost``): long enough for
#: the GPU's energy counter, which needs >= 1 s.
COST_MIN_WINDOW_S = 2.0

STUDY = StudyDefinition(
    name="feasibility",
    settings=bundled("parallel_feasibility_test.json"),
    card_mib=8192.0,
    safe_limit_mib=7500.0,
    # the built-ins' peaks at 5 steps equal 30's within 2 MiB (BENCHMARKS.md)
    defaults=StudyDefaults(probe_steps=BUILTIN_PROBE_STEPS, baselines=False, min_window_s=0.0),
)

COST_STUDY = StudyDefinition(
    name="feasibility-cost",
    settings=STUDY.settings,
    card_mib=STUDY.card_mib,
    safe_limit_mib=STUDY.safe_limit_mib,
    defaults=replace(STUDY.defaults, baselines=True, min_window_s=COST_MIN_WINDOW_S),
)
