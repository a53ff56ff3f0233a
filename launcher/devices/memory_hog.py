"""Hold GPU memory so that exactly ``LEAVE_FREE_MIB`` stays free: a big card behaves like a small one.

Run by :class:`launcher.devices.nvidia.EmulatedNvidiaDevice` (under the job guard, so it dies with the
runner). Jobs then hit genuine CUDA OOMs at the small card's size; their own CUDA contexts count against
the free memory exactly as they would on the small card.
Prints ``READY free_mib=F held_mib=H via=cuda-driver|torch`` when done, then sleeps until killed.

It talks to the CUDA driver (libcuda) through ctypes: importing torch took 5.8 s on the GPU machine, paid
before every study's first pair. torch is the fallback where the driver library cannot be loaded that way.
"""

from __future__ import annotations

import ctypes
import os
import sys
import time

MIB = 2**20


class _Driver:
    """The few libcuda calls needed: a context on device 0 (CUDA_VISIBLE_DEVICES picks it), free memory,
    allocations. Every allocation is a plain cuMemAlloc: what we ask is what we hold."""

    def __init__(self) -> None:
        self.lib = ctypes.CDLL("libcuda.so.1")
        self._check(self.lib.cuInit(0), "cuInit")
        device, context = ctypes.c_int(), ctypes.c_void_p()
        self._check(self.lib.cuDeviceGet(ctypes.byref(device), 0), "cuDeviceGet")
        self._check(self.lib.cuDevicePrimaryCtxRetain(ctypes.byref(context), device), "cuDevicePrimaryCtxRetain")
        self._check(self.lib.cuCtxSetCurrent(context), "cuCtxSetCurrent")
        self.blocks: list[ctypes.c_uint64] = []

    @staticmethod
    def _check(code: int, call: str) -> None:
        if code != 0:
            raise RuntimeError(f"{call} failed with CUDA error {code}")

    def free_bytes(self) -> int:
        free, total = ctypes.c_size_t(), ctypes.c_size_t()
        self._check(self.lib.cuMemGetInfo_v2(ctypes.byref(free), ctypes.byref(total)), "cuMemGetInfo")
        return free.value

    def hold(self, nbytes: int) -> None:
        pointer = ctypes.c_uint64()
        self._check(self.lib.cuMemAlloc_v2(ctypes.byref(pointer), ctypes.c_size_t(nbytes)), "cuMemAlloc")
        self.blocks.append(pointer)

    def release(self) -> None:
        for pointer in self.blocks:
            self.lib.cuMemFree_v2(pointer)
        self.blocks.clear()


class _Torch:
    def __init__(self) -> None:
        os.environ["PYTORCH_NO_CUDA_MEMORY_CACHING"] = "1"  # plain cudaMalloc: what we ask is what we hold
        import torch

        self.torch = torch
        torch.zeros(1, device="cuda")
        self.blocks: list = []

    def free_bytes(self) -> int:
        return self.torch.cuda.mem_get_info()[0]

    def hold(self, nbytes: int) -> None:
        self.blocks.append(self.torch.empty(nbytes, dtype=self.torch.uint8, device="cuda"))


def _hold_all(gpu: _Driver | _Torch, leave_free: int) -> int:
    held = 0
    for _ in range(8):  # converge: the driver rounds allocations, so top up in a few steps
        excess = gpu.free_bytes() - leave_free
        if excess < 2 * MIB:
            break
        gpu.hold(excess)
        held += excess
    return held


def main() -> int:
    leave_free = int(float(sys.argv[1]) * MIB)
    driver: _Driver | None = None
    gpu: _Driver | _Torch
    try:
        gpu = driver = _Driver()
        held, via = _hold_all(gpu, leave_free), "cuda-driver"
    except (OSError, AttributeError, RuntimeError):
        if driver is not None:
            driver.release()
        gpu = _Torch()
        held, via = _hold_all(gpu, leave_free), "torch"
    free = gpu.free_bytes()
    if free < leave_free - 64 * MIB:
        print(f"ERROR only {free / MIB:.0f} MiB free, cannot leave {leave_free / MIB:.0f} MiB", flush=True)
        return 3
    print(f"READY free_mib={free / MIB:.1f} held_mib={held / MIB:.1f} via={via}", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    sys.exit(main())
