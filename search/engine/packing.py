"""Packing: up to K trials at once on one GPU with room for K cards, then, alone, what must be confirmed.

A packed trial measures each job's peak on the big GPU without the card's limit (see :mod:`.confirmation` for
when such a peak is enough for a verdict). The run has two phases, because a card can only be emulated with the
GPU to itself (the rest of it is held, :mod:`launcher.devices.nvidia`):

1. **packed**: every queued trial but confirmations, K at a time (Optuna's own concurrency: K trials RUNNING in
   one study, each claimed, heart-beaten and told as a serial one is), extensions queued as results arrive;
2. **serial**: once nothing packable is left, the device is reopened as the card and the remaining trials
   (confirmations, and whatever they queue) run one at a time, as ``--parallel 1`` runs everything.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import AbstractContextManager

from gpupair_search.launcher.devices.base import Device
from gpupair_search.launcher.spec import StudyKind
from gpupair_search.search.engine.study import FeasibilityStudy, PairExecutor

#: host cores kept for the runner and its sampler; the rest give each job of a packed pair a core of its own
RESERVED_CORES = 2
JOBS_PER_PAIR = 2
MAX_SLOTS = 16
#: how often the packed loop plans while none of its own trials ends (other workers' trials may queue work)
REPLAN_S = 5.0


def packing_slots(device: Device, card_mib: float, cores: int | None = None) -> int:
    """K for ``--parallel auto``: as many cards of ``card_mib`` as the device has free memory for, with a host
    core for each job beyond :data:`RESERVED_CORES`; 1 (serial) on a device that is not a GPU.

    A core per job, not per pair: 12 concurrent monitors sampled at 9 Hz when they competed for the cores. Even so,
    packing pays only for light jobs: packed heavy pairs train many times slower than alone
    (bench/packing_compare.py), which is why ``--parallel`` defaults to 1."""
    if device.study_kind != StudyKind.GPU or device.simulated:
        return 1
    free = _free_mib(device)
    cores = (
        cores
        if cores is not None
        else len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else (os.cpu_count() or 1)
    )
    if free is None or card_mib <= 0:
        return 1
    return max(1, min(int(free // card_mib), (cores - RESERVED_CORES) // JOBS_PER_PAIR, MAX_SLOTS))


def _free_mib(device: Device) -> float | None:
    total = getattr(device, "total_mib", None)
    used = device.reading().used_mib
    return None if total is None or used is None else total - used


def run_packed(
    fs: FeasibilityStudy,
    packed: PairExecutor,
    slots: int,
    serial: Callable[[], AbstractContextManager[PairExecutor]],
    extend: bool = True,
    abort: threading.Event | None = None,
    poll_s: float = 0.5,
) -> None:
    """Run the study's queue ``slots`` trials at a time on ``packed``, then the rest one at a time on the
    executor ``serial()`` opens (only if anything is left for it). ``abort`` is set when this stops early
    (Ctrl-C, an error), so every running pair stops its jobs and its trial is re-queued by the next run."""
    abort = abort or threading.Event()
    running: dict[Future, int] = {}
    pool = ThreadPoolExecutor(max_workers=slots, thread_name_prefix="gpupair-trial")
    planned_at = -math.inf
    try:
        while True:
            # Plan only when a trial of ours ended, or now and then for other workers' trials: planning reads
            # every trial and fits the memory model (50 ms a pass for the matrix's 121 pairs, profiled on the
            # project's 2-core host), in the thread that shares the interpreter with the sampler.
            if time.monotonic() - planned_at >= REPLAN_S:
                if not running:
                    fs.recover_stale()
                fs.enqueue_extensions(confirmations_only=not extend)
                while len(running) < slots:
                    trial = fs.pop_trial(packable_only=True)
                    if trial is None:
                        break
                    running[pool.submit(fs.run_trial, trial, packed)] = trial.number
                planned_at = time.monotonic()
            if running:
                done, _ = wait(running, timeout=poll_s, return_when=FIRST_COMPLETED)
                for future in done:
                    running.pop(future)
                    future.result()  # a runner error (not a pair's failure: that is a result) stops the run
                if done:
                    planned_at = -math.inf
                continue
            planned_at = -math.inf
            if fs.waiting():
                break  # only confirmations are left: they need the card to themselves
            if fs.others_running():  # another worker's trials: they may still extend, or die and be re-queued
                time.sleep(poll_s)
                continue
            return
    except BaseException:
        abort.set()
        raise
    finally:
        pool.shutdown(wait=True)
    with serial() as executor:
        fs.run(executor, extend=extend)
