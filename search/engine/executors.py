"""Run the pair of a trial on a device (or the simulated one) and keep its results directory."""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from gpupair_search.launcher.devices.base import Device
from gpupair_search.launcher.held_start import TRIALS_AHEAD, HeldStarts
from gpupair_search.launcher.measurement import without_device_figures
from gpupair_search.launcher.monitor import DeviceSampler, Sample
from gpupair_search.launcher.outcome import Outcome
from gpupair_search.launcher.pair_runner import PairResult, RunOptions, run_pair, starts_held
from gpupair_search.launcher.registry import Registry
from gpupair_search.launcher.results import new_pair_dir, new_run_dir, write_pair_results
from gpupair_search.launcher.spec import PairSpec
from gpupair_search.search.record.trial_record import PACKED, SERIAL

Observer = Callable[[str, Sample | None], None]
PACKED_POLL_S = 0.25
PACKED_NOTE = "packed: no energy figure (other trials shared the device)"
#: The packed sampler aims this far above --monitor-hz, so that the rate asked for is the rate reached. Packed pairs
#: start jobs all the time, and NVML's process query stalls while a job creates its CUDA context
#: (bench/nvml_stall.py); a witness process that makes nothing but that query misses ticks then too
#: (bench/nvml_witness.py). No sampler gets those stalls back; it can only have ticks to spare.
PACKED_HZ_HEADROOM = 1.25


class RunDir:
    """One ``run_YYYYMMDD_HHMMSS`` per invocation, created on the first pair: resumes never overwrite. Shared
    by the packed and the serial phase of a run, and by the threads of packed trials (hence the lock: the
    run's summary.csv is rewritten with each pair)."""

    def __init__(self, results_root: Path) -> None:
        self.root = results_root
        self._path: Path | None = None
        self.lock = threading.Lock()

    def pair_dir(self, pair: PairSpec) -> Path:
        with self.lock:
            if self._path is None:
                self._path = new_run_dir(self.root)
            return new_pair_dir(self._path, pair)

    @property
    def path(self) -> Path | None:
        return self._path


class DeviceExecutor:
    """Runs each trial's pair on the device (a simulated one predicts it) and writes its results directory
    (none when ``results`` is None, as for ``plan``'s throw-away predictions; a :class:`RunDir` to share one).

    ``packed``: the device is shared with other trials running at the same time, without the card's limit;
    their monitors share one ``sampler``, and whole-device figures (energy, power) are left out, not
    misattributed. Every result says how it was measured (``PairResult.measurement``)."""

    def __init__(
        self,
        registry: Registry,
        device: Device,
        options: RunOptions = RunOptions(),
        results: Path | RunDir | None = None,
        observer: Observer | None = None,
        packed: bool = False,
        abort: threading.Event | None = None,
    ) -> None:
        self.registry, self.device, self.options, self.observer = registry, device, options, observer
        self.run_dir = RunDir(results) if isinstance(results, Path) else results
        self.packed, self.abort = packed, abort
        if packed:  # many pairs' loops wake the runner: each checks its jobs less often (memory is sampled anyway);
            # both jobs start at once, as their order changes no peak measured without the card's limit
            self.options = replace(options, poll_s=max(options.poll_s, PACKED_POLL_S), start_together=True)
        self.sampler = (
            DeviceSampler(device, options.monitor_hz * PACKED_HZ_HEADROOM, whole_device=False) if packed else None
        )
        self._running = 0
        self._count_lock = threading.Lock()
        self._upcoming: Callable[[int], list[PairSpec]] = lambda limit: []
        #: a user's jobs started ahead of their trials (serial trials on a GPU); created with the run directory
        self.held: HeldStarts | None = None
        self._holds = not packed and results is not None and starts_held(self.options, device)

    def start_ahead(self, upcoming: Callable[[int], list[PairSpec]]) -> None:
        """Where to ask for the pairs of the next ``limit`` trials queued after the next one, in order: where jobs
        start held, theirs start while it runs."""
        self._upcoming = upcoming

    def close(self) -> None:
        """End the jobs held for trials that did not come."""
        if self.held is not None:
            self.held.close()
            self.held = None

    def run(self, pair: PairSpec, trial_number: int) -> PairResult:
        """The pair's result. One that measured nothing because the runner was late (its foreground ended
        before it was seen) is run once more, in a directory of its own; the first run's files stay."""
        result, pair_dir = self._run_once(pair)
        if result.outcome is Outcome.UNMEASURED:
            result, _ = self._run_once(
                pair, (f"run again: the first run measured nothing ({result.error_message}; its files: {pair_dir})",)
            )
        # What the runner keeps from here on (trials, caches) leaves the garbage collector's full passes: each
        # stops every thread, the sampler's too, and in the simulated matrix 66 of 67 took 20 ms or more (up to
        # 288 ms) on the project's 2-core host (BENCHMARKS.md, bench/gc_log.py). A cycle frozen here is never
        # collected: 2 MiB more peak memory at the end of the simulated matrix.
        gc.freeze()
        return result

    def _run_once(self, pair: PairSpec, notes: tuple[str, ...] = ()) -> tuple[PairResult, Path | None]:
        pair_dir = self.run_dir.pair_dir(pair) if self.run_dir is not None else None
        with self._count_lock:
            self._running += 1
            concurrent = self._running
        try:
            if self.device.simulated:
                result = self.device.simulate(pair)
            else:
                assert pair_dir is not None, "a measured pair needs a results directory"
                if self._holds and self.held is None and self.run_dir is not None and self.run_dir.path is not None:
                    self.held = HeldStarts(self.run_dir.path / ".held", self.device, self.options.grace_s)
                result = run_pair(
                    pair,
                    self.registry,
                    self.device,
                    self.options,
                    pair_dir,
                    observer=self.observer,
                    sampler=self.sampler,
                    abort=self.abort,
                    held=self.held,
                    ahead=self._upcoming(TRIALS_AHEAD) if self.held is not None else (),
                )
        finally:
            with self._count_lock:
                self._running -= 1
        result.measurement = self._measurement(concurrent)
        result.warnings.extend(notes)
        if self.packed and not self.device.simulated:
            result.energy = without_device_figures(result.energy, PACKED_NOTE)
        if pair_dir is not None:
            with self.run_dir.lock:
                write_pair_results(result, pair_dir)
        return result, pair_dir

    def _measurement(self, concurrent: int) -> dict[str, object]:
        described = self.device.describe()
        record: dict[str, object] = {
            "mode": PACKED if self.packed else SERIAL,
            "device": self.device.name,
            "card_mib": described.get("emulated_card_mib", self.device.capacity_mib),
        }
        if self.packed:
            record["trials_at_start"] = concurrent  # this one included
            record["jobs_started"] = "together"  # packed trials always do (__init__)
        return record
