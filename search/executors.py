"""Run the pair of a trial on a device (or the simulated one) and keep its results directory."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from gpupair_search.launcher.devices.base import Device
from gpupair_search.launcher.monitor import Sample
from gpupair_search.launcher.pair_runner import PairResult, RunOptions, run_pair
from gpupair_search.launcher.registry import Registry
from gpupair_search.launcher.results import new_pair_dir, new_run_dir, write_pair_results
from gpupair_search.launcher.spec import PairSpec

Observer = Callable[[str, Sample | None], None]


class _RunDir:
    """One ``run_YYYYMMDD_HHMMSS`` per invocation, created on the first pair: resumes never overwrite."""

    def __init__(self, results_root: Path) -> None:
        self.root = results_root
        self._path: Path | None = None

    def pair_dir(self, pair: PairSpec) -> Path:
        if self._path is None:
            self._path = new_run_dir(self.root)
        return new_pair_dir(self._path, pair)

    @property
    def path(self) -> Path | None:
        return self._path


class DeviceExecutor:
    """Runs each trial's pair on the device (a simulated one predicts it) and writes its results directory
    (none when ``results_root`` is None, as for ``plan``'s throw-away predictions)."""

    def __init__(self, registry: Registry, device: Device, options: RunOptions = RunOptions(),
                 results_root: Path | None = None, observer: Observer | None = None) -> None:
        self.registry, self.device, self.options, self.observer = registry, device, options, observer
        self.run_dir = _RunDir(results_root) if results_root is not None else None

    def run(self, pair: PairSpec, trial_number: int) -> PairResult:
        pair_dir = self.run_dir.pair_dir(pair) if self.run_dir is not None else None
        if self.device.simulated:
            result = self.device.simulate(pair)
        else:
            assert pair_dir is not None, "a measured pair needs a results directory"
            result = run_pair(pair, self.registry, self.device, self.options, pair_dir, observer=self.observer)
        if pair_dir is not None:
            write_pair_results(result, pair_dir)
        return result
