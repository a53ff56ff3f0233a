"""The user's feasibility study: the seed design's 12 pairs of 11 models on an 8 GB card.

Safe limit 7500 MiB: the seed design's section 11.2 ("< 7500MB, 94% of 8GB"), read as nvidia-smi reports
it, in MiB. Override with --gpu-memory / --safe-limit or a ``gpupair`` block in the settings file.
"""
from gpupair_search.launcher.registry import BUILTIN_PROBE_STEPS
from gpupair_search.settings import bundled
from gpupair_search.studies.definition import StudyDefinition

STUDY = StudyDefinition(
    name="feasibility",
    settings=bundled("parallel_feasibility_test.json"),
    card_mib=8192.0,
    safe_limit_mib=7500.0,
    probe_steps=BUILTIN_PROBE_STEPS,  # the built-ins' peaks at 5 steps equal 30's within 2 MiB (BENCHMARKS.md)
)
