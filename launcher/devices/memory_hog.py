"""Hold GPU memory so that exactly ``LEAVE_FREE_MIB`` stays free: a big card behaves like a small one.

Run by :class:`launcher.devices.emulation.EmulatedNvidiaDevice` (under the job guard, so it dies with the
runner). Jobs then hit genuine CUDA OOMs at the small card's size; their own CUDA contexts count against
the free memory exactly as they would on the small card.
Prints ``READY free_mib=F held_mib=H`` when done, then sleeps until killed.
"""
from __future__ import annotations

import os
import sys
import time

os.environ["PYTORCH_NO_CUDA_MEMORY_CACHING"] = "1"  # plain cudaMalloc: what we ask is what we hold

import torch  # noqa: E402

MIB = 2**20


def main() -> int:
    leave_free = float(sys.argv[1]) * MIB
    torch.zeros(1, device="cuda")
    blocks = []
    for _ in range(8):  # converge: the driver rounds allocations, so top up in a few steps
        free, _total = torch.cuda.mem_get_info()
        excess = free - leave_free
        if excess < 2 * MIB:
            break
        blocks.append(torch.empty(int(excess), dtype=torch.uint8, device="cuda"))
    free, _total = torch.cuda.mem_get_info()
    if free < leave_free - 64 * MIB:
        print(f"ERROR only {free / MIB:.0f} MiB free, cannot leave {leave_free / MIB:.0f} MiB", flush=True)
        return 3
    held = sum(b.numel() for b in blocks) / MIB
    print(f"READY free_mib={free / MIB:.1f} held_mib={held:.1f}", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    sys.exit(main())
