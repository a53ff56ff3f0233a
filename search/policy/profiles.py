"""Shipped memory profiles (``settings/profiles/*.json``): measured peaks per job and batch size.

Each file is labelled with the card and date it was measured on. They seed the memory models, so that
predictions (``plan``, the simulated device, the first extension step) start from real measurements.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from gpupair_search.launcher.errors import ConfigError, Problem
from gpupair_search.search.policy.memory_model import CPU_ONLY, Observation
from gpupair_search.settings import profiles_dir


@dataclass(frozen=True)
class Profile:
    file: Path
    card: str
    date: str
    jobs: dict[str, list[Observation]]  # "repo/model" -> observations
    cpu_only: frozenset[str] = frozenset()  # jobs measured to use no GPU memory at all


def load_profile(path: Path) -> Profile:
    try:
        data = json.loads(path.read_text())
        jobs = {
            key: [
                Observation(int(p["batch_size"]), float(p["nvml_peak_mib"]), exact=True, source="profile")
                for p in entry["points"]
                if p.get("nvml_peak_mib") and not p.get("oom")
            ]
            for key, entry in data["jobs"].items()
        }
        return Profile(path, str(data["card"]), str(data["date"]), jobs, frozenset(data.get("cpu_only", {})))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            [
                Problem(
                    str(path),
                    "",
                    f"not a memory profile: {exc}",
                    expected='{"card", "date", "jobs": {"repo/model": {"points": [...]}}}',
                )
            ]
        ) from None


def load_profiles(directory: Path | None = None) -> list[Profile]:
    directory = directory or profiles_dir()
    return [load_profile(p) for p in sorted(directory.glob("*.json"))] if directory.exists() else []


def profile_observations(profiles: list[Profile]) -> dict[str, list[Observation]]:
    """Every profile's points by job; a job a profile found to use no GPU memory gets a :data:`CPU_ONLY` word,
    so that its pairs are predicted (a CPU background adds 0 MiB) instead of unknown."""
    out: dict[str, list[Observation]] = {}
    for profile in profiles:
        for key, obs in profile.jobs.items():
            out.setdefault(key, []).extend(obs)
        for key in profile.cpu_only:
            out.setdefault(key, []).append(Observation(0, 0.0, exact=True, source=CPU_ONLY))
    return out
