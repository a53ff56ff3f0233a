"""What a named study is: a settings file plus the card it targets and the safe limit."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class StudyDefaults:
    """What a named study sets where the user gave no flag (None: the tool's own default). One record, carried
    whole from the named study to the run's inputs: a new study default is one field here."""

    #: Work the queue solos first, then pairs by predicted peak, largest first (search/engine/work_order.py). The order
    #: of the queue only: not part of the study's fixed definition, and every pair is still measured.
    likely_failures_first: bool = False
    #: ``--baselines`` and ``--min-window-s`` (None: the tool's, memory only, see search/engine/baselines.py). A study
    #: that answers memory only needs neither: its probes are as short as a peak allows.
    baselines: bool | None = None
    min_window_s: float | None = None
    #: ``--probe-steps`` and ``--confirm`` (None: the tool's, ``RunOptions.probe_steps`` and ``recommended``,
    #: search/policy/confirmation.py).
    probe_steps: int | None = None
    confirm: str | None = None


@dataclass(frozen=True)
class StudyDefinition:
    name: str
    settings: Path
    card_mib: float  # the card to fit on (emulated with --gpu-memory on a bigger GPU)
    safe_limit_mib: float  # a pair is feasible when its peak stays under this
    defaults: StudyDefaults = StudyDefaults()
