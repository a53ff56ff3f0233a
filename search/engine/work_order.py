"""Which queued trial to run next, for studies that work likely failures first (the matrix study).

Solo runs go first: each measures one job alone on this card, and the memory models (memory_model.py) take
that measurement as the job's level, so every pair's prediction is then this card's, not only the shipped
profiles'. Then the pairs, largest predicted pair peak first: those are the likely failures, whose batch-size
searches take the most trials, so they start while the cheap verdicts wait. Ties keep the settings order.

A pure function of the stored trials and the shipped profiles (through the models it is given), so a resumed
run or a second worker picks the same next trial. It only orders: every queued trial is still taken.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TypeVar

from gpupair_search.launcher.spec import PairSpec
from gpupair_search.search.policy.extension import Config
from gpupair_search.search.policy.memory_model import LinearMemoryModel

T = TypeVar("T")
#: An item's pair and configuration, or None for an item that keeps its queue place after the ranked ones.
Locate = Callable[[T], "tuple[PairSpec, Config] | None"]


def predicted_peak_mib(pair: PairSpec, config: Config, models: Mapping[str, LinearMemoryModel]) -> float:
    """The pair's predicted peak: the sum of its jobs' models. A job without a model counts 0 MiB: after its solo
    run the only jobs left without one are those that used no GPU memory (a CPU-only job)."""
    total = 0.0
    for job, batch in ((pair.foreground, config[0]), (pair.background, config[1])):
        model = models.get(job.key) if job is not None else None
        if model is not None:
            total += model.predict(batch)
    return total


def rank(pair: PairSpec, config: Config, models: Mapping[str, LinearMemoryModel]) -> tuple[int, float, int]:
    """Sort key: solos before pairs, then the larger predicted peak first, then the settings order."""
    return (0 if pair.background is None else 1, -predicted_peak_mib(pair, config, models), pair.group)


def likely_failures_first(
    items: Iterable[T], pair_and_config: Locate, models: Mapping[str, LinearMemoryModel]
) -> list[T]:
    """``items`` in work order; ``pair_and_config(item)`` gives its (pair, config), or None for an item that
    keeps its place after the ranked ones (an extension trial: its pair's search goes on once every pair has a
    first verdict, as without this order)."""
    ranked, rest = [], []
    for position, item in enumerate(items):
        found = pair_and_config(item)
        if found is None:
            rest.append(item)
        else:
            ranked.append((rank(*found, models), position, item))
    return [item for *_, item in sorted(ranked, key=lambda r: r[:2])] + rest


def pair_order(
    pairs: Sequence[PairSpec], configs: Mapping[str, Config], models: Mapping[str, LinearMemoryModel]
) -> list[PairSpec]:
    """The pairs in work order (``configs``: each pair's configured batch sizes, by pair key)."""
    return likely_failures_first(pairs, lambda p: (p, configs[p.key]), models)
