#!/usr/bin/env python3
"""Where a job's first seconds on the GPU go, in a fresh process and in a child forked after ``import torch``.

    python3 bench/cuda_init.py [--repeats 3]

Each run times, in order: ``import torch``; ``torch.cuda.init()`` (the driver and the device list); the first
tensor on the device (the CUDA context); a small model made on the device with an AdamW optimizer and one
training step (the first kernels, cuBLAS, ``torch._dynamo``'s import at the first optimizer). *fresh* runs in a
new interpreter (a cold job, or a held one once released: its imports are done, the rest is not); *forked* in
a child of a process that has imported torch and ``torch._dynamo`` (as the warm launcher's children are);
*fresh_driver_first* initialises the CUDA driver alone first (``cuInit``, no context), timed apart, and says
whether the process then holds device memory (NVML).
Writes ``cuda_init.json`` under $OUT.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import stamp, write_json  # noqa: E402

STEPS = """
import json, sys, time
marks = {}
t = time.perf_counter()
def mark(name):
    global t
    now = time.perf_counter(); marks[name] = round(now - t, 3); t = now
if "torch" not in sys.modules:
    import torch
    mark("import_torch")
import torch
if DRIVER_FIRST:  # the driver alone, as a held job could while it waits: does it hold device memory?
    import ctypes, os, pynvml
    assert ctypes.CDLL("libcuda.so.1").cuInit(0) == 0
    mark("cuInit")
    pynvml.nvmlInit()
    handle = pynvml.nvmlDeviceGetHandleByIndex(0)
    mine = [p for p in pynvml.nvmlDeviceGetComputeRunningProcesses(handle) if p.pid == os.getpid()]
    marks["held_mib_after_cuInit"] = sum((p.usedGpuMemory or 0) for p in mine) / 2**20
    marks["listed_after_cuInit"] = len(mine)
    t = time.perf_counter()
torch.cuda.init(); mark("cuda_init")
torch.zeros(1, device="cuda"); torch.cuda.synchronize(); mark("first_tensor")
model = torch.nn.Sequential(torch.nn.Linear(1024, 1024), torch.nn.ReLU(), torch.nn.Linear(1024, 10)).cuda()
mark("model_on_device")
optimizer = torch.optim.AdamW(model.parameters()); mark("optimizer")
loss = model(torch.randn(64, 1024, device="cuda")).sum(); loss.backward(); optimizer.step()
torch.cuda.synchronize(); mark("first_step")
print(json.dumps(marks))
"""


def fresh(driver_first: bool = False) -> dict[str, float]:
    code = f"DRIVER_FIRST = {driver_first}\n" + STEPS
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def forked() -> dict[str, float]:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: what the warm launcher's jobs do
        os.close(read)
        os.dup2(write, 1)
        try:
            exec(compile(STEPS, "<steps>", "exec"), {"DRIVER_FIRST": False})
            sys.stdout.flush()
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as fh:
        text = fh.read()
    os.waitpid(pid, 0)
    return json.loads(text.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    import torch
    import torch._dynamo  # noqa: F401 - as the warm launcher's imports bring it

    assert not torch.cuda.is_initialized(), "a forked child could not use CUDA"
    runs: dict[str, list[dict[str, float]]] = {"fresh": [], "forked": [], "fresh_driver_first": []}
    for _ in range(args.repeats):
        runs["fresh"].append(fresh())
        runs["forked"].append(forked())
        runs["fresh_driver_first"].append(fresh(driver_first=True))
    medians = {how: {step: statistics.median(r[step] for r in rs) for step in rs[0]} for how, rs in runs.items() if rs}
    for how, steps in medians.items():
        after = sum(v for k, v in steps.items() if k not in ("import_torch", "cuInit") and "after_cuInit" not in k)
        print(how, steps, "after import (cuInit apart):", round(after, 3))
    print(write_json("cuda_init.json", {**stamp(), "runs": runs, "medians": medians}))


if __name__ == "__main__":
    main()
