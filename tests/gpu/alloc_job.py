"""A GPU job with known memory: holds ALLOC_GIB for a while doing matmuls, then reports what it used.

It reports its own peak as torch's max_memory_reserved plus its CUDA context (NVML's reading of this
process minus torch's reserved memory, taken after cuBLAS warm-up), the reference the monitor is
checked against.
"""

import argparse
import os
import time

import torch

parser = argparse.ArgumentParser()
parser.add_argument("--alloc-gib", type=float, default=1.0)
parser.add_argument("--seconds", type=float, default=3.0)
parser.add_argument("--batch-size", type=int, default=1)  # unused; lets the registry treat it as a workload
parser.add_argument(
    "--pulses",
    type=int,
    default=0,
    help="instead of holding: allocate for 30 ms, free and empty_cache(), this many times",
)
args = parser.parse_args()

dev = torch.device("cuda")
a = torch.randn(2048, 2048, device=dev)
(a @ a).sum().item()  # load cuBLAS and its workspace
torch.cuda.synchronize()
import pynvml  # noqa: E402

pynvml.nvmlInit()
uuid = os.environ.get("CUDA_VISIBLE_DEVICES", "")
handle = pynvml.nvmlDeviceGetHandleByUUID(uuid) if uuid.startswith("GPU-") else pynvml.nvmlDeviceGetHandleByIndex(0)
mine = [p.usedGpuMemory for p in pynvml.nvmlDeviceGetComputeRunningProcesses(handle) if p.pid == os.getpid()]
context_mib = mine[0] / 2**20 - torch.cuda.memory_reserved() / 2**20
print(f"[gpupair] context_mib={context_mib:.1f}", flush=True)
if args.pulses:  # a workload that releases memory: short peaks only a fast sampler sees
    for _ in range(args.pulses):
        pulse = torch.empty(int(args.alloc_gib * 2**30), dtype=torch.uint8, device=dev)
        pulse.fill_(1)
        torch.cuda.synchronize()
        time.sleep(0.03)
        del pulse
        torch.cuda.empty_cache()
        time.sleep(0.5)
held = torch.empty(0 if args.pulses else int(args.alloc_gib * 2**30), dtype=torch.uint8, device=dev)
held.fill_(1)
deadline = time.monotonic() + args.seconds
while time.monotonic() < deadline:
    a = (a @ a) / 2048.0
torch.cuda.synchronize()
reserved = torch.cuda.max_memory_reserved() / 2**20
print(f"[gpupair] max_memory_reserved_mib={reserved:.1f} self_peak_mib={reserved + context_mib:.1f}", flush=True)
print("[SUCCESS] Training completed", flush=True)
