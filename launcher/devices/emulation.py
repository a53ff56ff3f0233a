"""Emulate a smaller NVIDIA card on a bigger one by holding the difference (see memory_hog.py)."""

from __future__ import annotations

import os
import re
import sys
import tempfile
import time
from pathlib import Path

from gpupair_search.launcher.devices.base import NoDeviceError
from gpupair_search.launcher.devices.nvidia import NvidiaDevice
from gpupair_search.launcher.process import RunningJob, start_job
from gpupair_search.launcher.registry import Command

_HOG = str(Path(__file__).with_name("memory_hog.py"))


class EmulatedNvidiaDevice(NvidiaDevice):
    """An NVIDIA device with only ``card_mib`` free for the pair; released by :meth:`close`. Opened by
    :meth:`NvidiaDevice.open` for a card smaller than the GPU."""

    choice = None

    def __init__(self, index: int, card_mib: float, timeout: float = 120.0) -> None:
        super().__init__(index)
        self.card_mib = card_mib
        self.capacity_mib = card_mib
        self.name = f"{self.card} (cuda:{index}) emulating a {card_mib / 1024:g} GiB card"
        log = Path(tempfile.mkdtemp(prefix="gpupair-hog-")) / "hog.log"
        env = {**os.environ, **self.job_env()}
        self._hog: RunningJob | None = start_job(
            "hog", Command((sys.executable, _HOG, str(card_mib)), Path.cwd()), log, env
        )
        self.held_mib, self.free_mib = self._wait_ready(log, timeout)

    def _wait_ready(self, log: Path, timeout: float) -> tuple[float, float]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = log.read_text(errors="replace")
            match = re.search(r"READY free_mib=([\d.]+) held_mib=([\d.]+)", text)
            if match:
                return float(match.group(2)), float(match.group(1))
            if self._hog.poll() is not None:
                self.close()
                raise NoDeviceError(
                    f"cannot emulate a {self.card_mib:.0f} MiB card on {self.card}: "
                    + (text.strip().splitlines() or ["the holder exited"])[-1]
                )
            time.sleep(0.1)
        self.close()
        raise NoDeviceError(f"the memory holder for --gpu-memory did not get ready in {timeout:.0f} s")

    def hog_pids(self) -> set[int]:
        return ({self._hog.pid} | self._hog.process_ids()) if self._hog else set()

    def foreign_processes(self, ours: set[int]):
        return super().foreign_processes(ours | self.hog_pids())

    def describe(self) -> dict[str, object]:
        return {
            **super().describe(),
            "emulated_card_mib": self.card_mib,
            "held_mib": round(self.held_mib),
            "free_for_pair_mib": round(self.free_mib),
        }

    def close(self) -> None:
        if self._hog is not None:
            self._hog.stop(grace=1.0)
            self._hog = None
