"""Turn ``--device`` / ``--gpu-memory`` into a :class:`Device`."""
from __future__ import annotations

import re

from gpupair_search.launcher.devices.base import Device, NoDeviceError
from gpupair_search.launcher.devices.cpu import CpuDevice

DEVICE_CHOICES = {
    "auto": "the first NVIDIA GPU if NVML finds one, else stop and say so",
    "cuda:N": "NVIDIA GPU N as CUDA counts them (the N-th of CUDA_VISIBLE_DEVICES when it is set), measured "
              "through NVML: memory per process, power, energy, utilisation, temperature",
    "cpu": "the CPU: host memory (RSS) per job against --cpu-memory; no GPU numbers",
    "sim": "simulated: memory from fitted per-job models and shipped profiles, nothing is trained (labelled simulated)",
}


def describe_choices() -> str:
    return "\n".join(f"  --device {name:<7} {what}" for name, what in DEVICE_CHOICES.items())


def open_device(choice: str, gpu_memory_mib: float | None = None, cpu_memory_mib: float | None = None) -> Device:
    """Open the device named by ``choice`` ("auto", "cuda:N", "cpu")."""
    from gpupair_search.launcher.devices.nvidia import NvidiaDevice, nvml_available

    if choice == "cpu":
        if gpu_memory_mib is not None:
            raise NoDeviceError("--gpu-memory needs an NVIDIA device; with --device cpu use --cpu-memory")
        return CpuDevice(cpu_memory_mib)
    if choice == "auto":
        if not nvml_available():
            raise NoDeviceError("no NVIDIA GPU found (NVML unavailable). Choose a device explicitly:\n"
                                + describe_choices())
        index = 0
    else:
        match = re.fullmatch(r"cuda:(\d+)", choice)
        if not match:
            raise NoDeviceError(f"unknown device {choice!r}. Choices:\n" + describe_choices())
        index = int(match.group(1))
    if gpu_memory_mib is not None:
        from gpupair_search.launcher.devices.emulation import EmulatedNvidiaDevice

        return EmulatedNvidiaDevice(index, gpu_memory_mib)
    return NvidiaDevice(index)
