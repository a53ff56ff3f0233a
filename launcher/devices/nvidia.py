"""NVIDIA GPU through NVML: per-process memory, power, energy counter, utilisation, temperature; and a smaller card
emulated on a bigger one by holding the difference (memory_hog.py), which gives a pair real out-of-memory errors."""

from __future__ import annotations

import os
import re
import sys
import tempfile
import time
from pathlib import Path

from gpupair_search.launcher.devices.base import Device, DeviceReading, DeviceRequest, ForeignProcess, NoDeviceError
from gpupair_search.launcher.devices.visible import VARIABLE, as_text, nvml_index
from gpupair_search.launcher.process import RunningJob, start_job
from gpupair_search.launcher.registry import Command

try:
    import pynvml
except ImportError:  # nvidia-ml-py is a dependency, but keep a clear message if it is missing
    pynvml = None


def nvml_available() -> bool:
    if pynvml is None:
        return False
    try:
        pynvml.nvmlInit()
        return pynvml.nvmlDeviceGetCount() > 0
    except pynvml.NVMLError:
        return False


SLOW_READ_S = 0.25  # whole-device figures other than the energy counter, and graphics processes: 4 Hz
ENERGY_READ_S = 0.1  # the energy counter: 10 Hz, so a 1 s window has about 10 reads and its edges 0.1 s apart


class NvidiaDevice(Device):
    kind = "nvidia"
    choice = r"auto|cuda:(\d+)"
    choice_help = (
        "NVIDIA GPU N as CUDA counts them (the N-th of CUDA_VISIBLE_DEVICES when it is set), measured "
        "through NVML: memory per process, power, energy, utilisation, temperature; auto: the first one"
    )

    @classmethod
    def open(cls, match: re.Match[str], request: DeviceRequest) -> NvidiaDevice:
        """The GPU; one bigger than ``request.card_mib`` emulates that card (the difference held, real OOMs)."""
        if match.group(1) is None and not nvml_available():
            from gpupair_search.launcher.devices.factory import describe_choices

            raise NoDeviceError(
                "no NVIDIA GPU found here (NVML unavailable); choose a device explicitly:\n" + describe_choices()
            )
        index = int(match.group(1) or 0)
        device = cls(index)
        if request.card_mib is None or device.total_mib <= request.card_mib + 1:
            return device
        device.close()
        return EmulatedNvidiaDevice(index, request.card_mib)

    def __init__(self, cuda_index: int) -> None:
        """``cuda_index`` counts the GPUs visible to this process, as CUDA does (see :mod:`visible`)."""
        if pynvml is None:
            raise NoDeviceError("nvidia-ml-py is not installed; install it with `pip install nvidia-ml-py`")
        try:
            pynvml.nvmlInit()
            count = pynvml.nvmlDeviceGetCount()
        except pynvml.NVMLError as exc:
            raise NoDeviceError(f"NVML is not usable here ({exc}); use --device cpu or --device sim") from None
        visible = os.environ.get(VARIABLE)
        if visible is None and not 0 <= cuda_index < count:
            raise NoDeviceError(
                f"cuda:{cuda_index} does not exist; this machine has {count} NVIDIA GPU(s): "
                + ", ".join(f"cuda:{i}" for i in range(count))
            )
        index = nvml_index(cuda_index, visible)
        self.cuda_index = cuda_index
        self.index = index  # NVML's, which differs from cuda_index when CUDA_VISIBLE_DEVICES narrows the GPUs
        self.handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        self.total_mib = pynvml.nvmlDeviceGetMemoryInfo(self.handle).total / 2**20
        self.capacity_mib = self.total_mib
        self.uuid = as_text(pynvml.nvmlDeviceGetUUID(self.handle))
        self.card = as_text(pynvml.nvmlDeviceGetName(self.handle))
        self._cache: dict[str, tuple[float, object]] = {}
        self._energy_read_at = float("-inf")
        self.name = (
            f"{self.card} (cuda:{cuda_index})"
            if index == cuda_index
            else f"{self.card} (cuda:{cuda_index}, {VARIABLE}={visible})"
        )

    def job_env(self) -> dict[str, str]:
        # The UUID pins the same physical GPU NVML reads, whatever CUDA's device ordering is.
        return {"CUDA_VISIBLE_DEVICES": self.uuid}

    def _processes(self) -> dict[int, float]:
        """Memory per process: compute processes (CUDA jobs) read each call; graphics ones at most every
        :data:`SLOW_READ_S` (a training job is a compute process; the query costs about 1 ms of the runner's CPU)."""
        used: dict[int, float] = {}
        graphics = self._slow("graphics", lambda: _memory_of(pynvml.nvmlDeviceGetGraphicsRunningProcesses(self.handle)))
        for listing in (_memory_of(pynvml.nvmlDeviceGetComputeRunningProcesses(self.handle)), graphics):
            for pid, mib in listing.items():
                used[pid] = used.get(pid, 0.0) + mib
        return used

    def _slow(self, name: str, read):
        """``read()``, at most every SLOW_READ_S: whole-device figures that change slowly or are only context."""
        now = time.monotonic()
        cached = self._cache.get(name)
        if cached is None or now - cached[0] >= SLOW_READ_S:
            cached = self._cache[name] = (now, read())
        return cached[1]

    def memory_by_pid(self, pids: set[int]) -> dict[int, float]:
        return {pid: mib for pid, mib in self._processes().items() if pid in pids}

    def all_process_memory(self) -> dict[int, float]:
        return self._processes()

    def reading(self) -> DeviceReading:
        """Used memory, power, utilisation and temperature at most every SLOW_READ_S (timelines and context, the
        last value in between); the energy counter at most every ENERGY_READ_S and None in between, because its
        read is most of the sampler's CPU cost at 20 Hz (bench/sampler_cost.py).
        A window's energy interpolates between the counter's reads (launcher/measurement.py:counter_energy)."""
        h = self.handle
        used, power, util, temp = self._slow(
            "device",
            lambda: (
                pynvml.nvmlDeviceGetMemoryInfo(h).used / 2**20,
                _try(lambda: pynvml.nvmlDeviceGetPowerUsage(h) / 1000.0),
                _try(lambda: float(pynvml.nvmlDeviceGetUtilizationRates(h).gpu)),
                _try(lambda: float(pynvml.nvmlDeviceGetTemperature(h, pynvml.NVML_TEMPERATURE_GPU))),
            ),
        )
        return DeviceReading(
            used_mib=used, power_w=power, utilization_pct=util, temperature_c=temp, energy_mj=self._energy_counter()
        )

    def _energy_counter(self) -> float | None:
        """The cumulative energy counter (mJ) when ENERGY_READ_S has passed since its last read, else None."""
        now = time.monotonic()
        if now - self._energy_read_at < ENERGY_READ_S:
            return None
        self._energy_read_at = now
        return _try(lambda: float(pynvml.nvmlDeviceGetTotalEnergyConsumption(self.handle)))

    def foreign_processes(self, ours: set[int]) -> list[ForeignProcess]:
        import psutil

        found = []
        for pid, mib in self._processes().items():
            if pid in ours:
                continue
            try:
                cmd = " ".join(psutil.Process(pid).cmdline()) or "?"
            except psutil.Error:
                cmd = "?"
            found.append(ForeignProcess(pid, cmd, mib))
        return found

    def describe(self) -> dict[str, object]:
        return {
            **super().describe(),
            "card": self.card,
            "index": self.index,
            "cuda_index": self.cuda_index,
            "uuid": self.uuid,
            "total_mib": round(self.total_mib),
            "driver": _try(pynvml.nvmlSystemGetDriverVersion),
        }


def _memory_of(processes) -> dict[int, float]:
    return {proc.pid: proc.usedGpuMemory / 2**20 for proc in processes if proc.usedGpuMemory is not None}


def _try(read):
    try:
        return read()
    except pynvml.NVMLError:
        return None


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
