"""What a named study is: a settings file plus the card it targets and the safe limit."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gpupair_search.launcher.errors import UserError


@dataclass(frozen=True)
class StudyDefinition:
    name: str
    settings: Path
    card_mib: float  # the card to fit on (emulated with --gpu-memory on a bigger GPU)
    safe_limit_mib: float  # a pair is feasible when its peak stays under this
    #: Work the queue solos first, then pairs by predicted peak, largest first (search/work_order.py). The order
    #: of the queue only: not part of the study's fixed definition, and every pair is still measured.
    likely_failures_first: bool = False
    #: The study's defaults for ``--baselines`` and ``--min-window-s`` (None: the tool's, memory only, see
    #: search/baselines.py). A study that answers memory only needs neither: its probes are as short as a peak allows.
    baselines: bool | None = None
    min_window_s: float | None = None
    #: The study's defaults for ``--probe-steps`` and ``--confirm`` (None: the tool's, ``RunOptions.probe_steps``
    #: and ``recommended``, search/confirmation.py).
    probe_steps: int | None = None
    confirm: str | None = None


def get_study(name: str) -> StudyDefinition:
    if name not in STUDIES:
        raise UserError(
            f"unknown study {name!r}; named studies: {', '.join(sorted(STUDIES))}. "
            "Use --settings FILE to run any seed-format settings file as a study."
        )
    return STUDIES[name]


def _load() -> dict[str, StudyDefinition]:
    from gpupair_search.studies import feasibility, matrix

    return {study.name: study for study in (feasibility.STUDY, feasibility.COST_STUDY, matrix.STUDY)}


STUDIES: dict[str, StudyDefinition] = {}
STUDIES.update(_load())
