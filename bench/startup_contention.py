"""Why do pairs run slower side by side on a multi-GPU host? Start-up under contention, measured.

Each trial is dominated by its training processes' start-up (imports, CUDA context, model build). This
starts K copies of one built-in probe job at once, spread over the host's GPUs, and reads each copy's
own ``startup_s`` (printed by ``workloads/common.py``). It does so under three CPU policies:

- ``shared``: every process may use every core (what ``run --gpus`` did);
- ``threads``: OMP/MKL threads limited to cores // K;
- ``split``: each process gets its own slice of cores (affinity), and threads to match.

and also times a bare ``import torch`` K at once. Writes ``startup_contention.json`` under $OUT.

    python3 bench/startup_contention.py --workload Person_reID_baseline_pytorch/pcb --copies 1,4
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

from benchlib import last_float, one_epoch_probe, registry, stamp, write_json

from gpupair_search.launcher.cpu_share import available_cores, split_cores

POLICIES = ("shared", "threads", "split")


def gpu_count() -> int:
    """GPUs on this host (0 without nvidia-smi: then the copies run on the CPU, for trying the script)."""
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"], capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return 0
    return len(out.split())


def run_copies(argv: list[str], cwd, k: int, policy: str, gpus: int) -> dict:
    """Start ``k`` copies at once; each one's own start-up and wall time."""
    all_cores = available_cores()
    parts = split_cores(all_cores, k)  # the slices run --gpus gives its workers
    procs = []
    start = time.perf_counter()
    for i in range(k):
        env = dict(os.environ, CUDA_VISIBLE_DEVICES=str(i % gpus) if gpus else "", PYTHONUNBUFFERED="1")
        if policy in ("threads", "split"):
            env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(max(1, len(all_cores) // k))
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if policy == "split":
            os.sched_setaffinity(proc.pid, parts[i])
        procs.append(proc)
    results = []
    for proc in procs:
        text, _ = proc.communicate(timeout=300)
        results.append(
            {
                "rc": proc.returncode,
                "wall_s": round(time.perf_counter() - start, 2),
                "startup_s": last_float(r"startup_s=([\d.]+)", text),
                "total_s": last_float(r"\] total_s=([\d.]+)", text),
            }
        )
    startups = [r["startup_s"] for r in results if r["startup_s"] is not None]
    return {
        "copies": k,
        "policy": policy,
        "runs": results,
        "mean_startup_s": round(statistics.mean(startups), 2) if startups else None,
    }


def import_torch(k: int) -> dict:
    code = "import time; t = time.perf_counter(); import torch; print(f'{time.perf_counter() - t:.3f}')"
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) for _ in range(k)]
    seconds = [float(p.communicate(timeout=120)[0]) for p in procs]
    return {"copies": k, "import_torch_s": seconds, "mean_s": round(statistics.mean(seconds), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", default="Person_reID_baseline_pytorch/pcb")
    parser.add_argument("--copies", default="1,4", help="comma-separated numbers of concurrent copies")
    parser.add_argument("--steps", type=int, default=30, help="probe steps, as run --probe uses")
    args = parser.parse_args()
    counts = [int(c) for c in args.copies.split(",")]
    reg = registry()
    command = reg.command(one_epoch_probe(reg, args.workload, args.steps))
    gpus = gpu_count()
    report = {
        **stamp(),
        "cores": len(available_cores()),
        "gpus": gpus,
        "workload": args.workload,
        "imports": [],
        "jobs": [],
    }
    for k in counts:
        report["imports"].append(import_torch(k))
        print(report["imports"][-1], flush=True)
    for k in counts:
        for policy in POLICIES if k > 1 else ("shared",):
            report["jobs"].append(run_copies(list(command.argv), command.cwd, k, policy, gpus))
            row = report["jobs"][-1]
            print(k, policy, row["mean_startup_s"], [r["startup_s"] for r in row["runs"]], flush=True)
    print(write_json("startup_contention.json", report))


if __name__ == "__main__":
    main()
