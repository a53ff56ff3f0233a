"""CPU cores for workers that share a host.

``run --gpus 0,1`` starts one worker per GPU on one host. Without a share of its own, every training
process sizes its thread pools (OpenMP, joblib) to all of the host's cores, so two pairs oversubscribe
the CPU and a CPU-heavy pair slows the pair on the other GPU, whose times then say nothing about it.
Each worker pins itself to its own slice before it starts anything; the jobs it starts inherit it.
"""

from __future__ import annotations

import os

from gpupair_search.launcher.errors import UserError


def available_cores() -> list[int]:
    """The cores this process may run on (its affinity, which may be less than the host's)."""
    if not hasattr(os, "sched_getaffinity"):  # not Linux: no affinity to read, every core
        return list(range(os.cpu_count() or 1))
    return sorted(os.sched_getaffinity(0))


def split_cores(cores: list[int], parts: int) -> list[list[int]]:
    """``cores`` in ``parts`` contiguous slices, sizes differing by at most one.

    With fewer cores than parts, slices share cores round-robin: each worker still gets one.
    """
    if parts < 1:
        raise ValueError("parts must be at least 1")
    if len(cores) < parts:
        return [[cores[i % len(cores)]] for i in range(parts)]
    base, extra = divmod(len(cores), parts)
    slices, start = [], 0
    for i in range(parts):
        size = base + (1 if i < extra else 0)
        slices.append(cores[start : start + size])
        start += size
    return slices


def worker_shares(workers: int) -> list[str | None]:
    """Each of ``workers`` workers' cores as a ``--cpus`` value; ``None`` where cores cannot be pinned."""
    if not hasattr(os, "sched_setaffinity"):
        return [None] * workers
    return [format_cpu_list(cores) for cores in split_cores(available_cores(), workers)]


def format_cpu_list(cores: list[int]) -> str:
    """``[0, 1, 2, 5]`` as ``0-2,5`` (the kernel's cpulist notation, as in taskset -c)."""
    runs: list[list[int]] = []  # [first, last] of each run of consecutive cores
    for core in sorted(set(cores)):
        if runs and core == runs[-1][1] + 1:
            runs[-1][1] = core
        else:
            runs.append([core, core])
    return ",".join(str(first) if first == last else f"{first}-{last}" for first, last in runs)


#: Linux's largest core number (NR_CPUS is at most 8192): a list beyond it is a typo, not a host.
MAX_CORE = 8191


def parse_cpu_list(text: str) -> list[int]:
    """``0-2,5`` as ``[0, 1, 2, 5]``; a :class:`UserError` naming ``--cpus`` for anything else."""
    cores: set[int] = set()
    try:
        for part in text.split(","):
            low, dash, high = part.strip().partition("-")
            first, last = int(low), int(high if dash else low)
            if first < 0 or last < first:
                raise ValueError
            if last > MAX_CORE:  # before the range is expanded: "0-4000000000" is no list to build
                raise UserError(
                    f"--cpus {text[:40]!r}: core {last} is not available here, nor on any host: beyond any core Linux numbers (at most "
                    f"{MAX_CORE}); give cores of this host, which are {format_cpu_list(available_cores())}"
                )
            cores.update(range(first, last + 1))
    except ValueError:
        raise UserError(f"--cpus {text[:40]!r}: expected a CPU list such as 0-15 or 0,2,4-7") from None
    return sorted(cores)


def pin_this_process(cores: list[int]) -> None:
    """Run this process, and every process it starts from now on, on ``cores`` only."""
    allowed = set(available_cores())
    outside = sorted(set(cores) - allowed)
    if outside:
        raise UserError(
            f"--cpus {format_cpu_list(cores)}: cores {format_cpu_list(outside)} are not available "
            f"here (this process may use {format_cpu_list(sorted(allowed))})"
        )
    if not hasattr(os, "sched_setaffinity"):
        raise UserError("--cpus: this system cannot pin a process to cores (Linux only); leave --cpus out")
    os.sched_setaffinity(0, cores)
