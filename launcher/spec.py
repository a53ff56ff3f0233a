"""Records that describe what to run: one job, and one foreground/background pair."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any


class StudyKind(str, Enum):
    """What a study's numbers are. Each kind is stored as its own study (its name carries :attr:`name_suffix`), so
    a CPU or a simulated run can never mix its numbers into a GPU study of the same settings. The values are the
    ones stored in a study's definition and typed after ``--kind``."""

    GPU = "gpu"
    CPU = "cpu"  # host memory (RSS) against a host-memory budget
    SIMULATED = "simulated"  # predicted from memory profiles: nothing ran

    def __str__(self) -> str:  # f-strings, messages and storage: the value
        return self.value

    @property
    def name_suffix(self) -> str:
        return "" if self == StudyKind.GPU else f"-{self.value}"


@dataclass(frozen=True)
class JobConfig:
    """A training job as the settings file names it."""

    repo: str
    model: str
    hyperparameters: Mapping[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """Identity of the workload, independent of hyperparameters: ``repo/model``."""
        return f"{self.repo}/{self.model}"

    def with_hyperparameter(self, name: str, value: Any) -> JobConfig:
        return replace(self, hyperparameters={**self.hyperparameters, name: value})

    def without(self, names: tuple[str, ...]) -> JobConfig:
        return replace(self, hyperparameters={k: v for k, v in self.hyperparameters.items() if k not in names})

    def with_values(self, values: Mapping[str, Any]) -> JobConfig:
        """The job with these hyperparameters set to these values (others kept, in their order)."""
        return replace(self, hyperparameters={**self.hyperparameters, **values})

    def to_json(self) -> dict[str, Any]:
        return {"repo": self.repo, "model": self.model, "hyperparameters": dict(self.hyperparameters)}


@dataclass(frozen=True)
class PairSpec:
    """A foreground job monitored while a background job loops on the same device.

    ``background`` is None for a solo run (the seed's non-parallel entries).
    """

    group: int  # 1-based position in the settings file, the seed design's "Group N"
    foreground: JobConfig
    background: JobConfig | None
    note: str = ""
    source: str = ""  # "file: experiments[i]" for messages
    warnings: tuple[str, ...] = ()
    #: How many times the user's runner runs this configuration (identical entries and ``runs_per_config``):
    #: one trial measures it, and ``export`` writes the count back as ``runs_per_config``.
    repeats: int = 1
    #: The entries that were merged into this one (identical configurations), beyond ``source``.
    repeated_at: tuple[str, ...] = ()
    #: For ``mutation`` jobs, by role: the values checked (the memory worst case of the models file's ranges)
    #: and which of them are at the top of their range, e.g.
    #: ``{"foreground": {"values": {"batch_size": 128, "seed": 1}, "at_maximum": ["batch_size"]}}``.
    worst_case: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @property
    def key(self) -> str:
        bg = self.background.key if self.background else "solo"
        return f"g{self.group:02d}:{self.foreground.key}+{bg}"

    @property
    def expected_mib(self) -> float | None:
        """The pair memory the settings' note expects, e.g. ``Group 1: ... (1300MB)``."""
        match = re.search(r"\((\d+(?:\.\d+)?)\s*MB\)", self.note)
        return float(match.group(1)) if match else None

    def with_jobs(self, foreground: JobConfig, background: JobConfig | None) -> PairSpec:
        return replace(self, foreground=foreground, background=background)
