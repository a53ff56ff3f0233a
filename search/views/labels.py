"""How pairs, batch sizes and sizes are written, the same in every view: the table, the progress line, the
report, the dashboard note and the export."""

from __future__ import annotations

from gpupair_search.launcher.sizes import format_mib
from gpupair_search.launcher.spec import PairSpec
from gpupair_search.search.policy.extension import Config

__all__ = ["batches", "format_mib", "jobs", "measured", "pair_label", "short_key"]


def batches(config: Config | None) -> str:
    """``24/2``: foreground/background batch sizes; ``·`` for a job without a batch-size knob."""
    if config is None:
        return "-"
    return "/".join("·" if b is None else str(b) for b in config)


def jobs(pair: PairSpec) -> str:
    """Both jobs in full: ``Person_reID_baseline_pytorch/pcb + VulBERTa/mlp``."""
    return pair.foreground.key + " + " + (pair.background.key if pair.background else "(solo)")


def pair_label(pair: PairSpec) -> str:
    """Short, unique label: the settings group and both models, e.g. ``G2 mnist + siamese``."""
    bg = pair.background.model if pair.background else "solo"
    return f"G{pair.group} {pair.foreground.model} + {bg}"


def short_key(key: str) -> str:
    """A pair key for the progress line: ``g02 mnist+siamese``."""
    group, _, both = key.partition(":")
    return f"{group} " + "+".join(j.split("/")[-1] if "/" in j else j for j in both.split("+"))


def measured(simulated: bool) -> str:
    """The word for a study's numbers: "measured", or "predicted" where nothing ran (a simulated study). Every
    label and legend takes it from here, so no simulated view says "measured"."""
    return "predicted" if simulated else "measured"
