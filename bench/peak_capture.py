#!/usr/bin/env python3
"""Peak capture: NVML sampled at 1 Hz (watch -n 1 nvidia-smi), 10 Hz and our default 20 Hz, against
in-process truth (max_memory_reserved plus the measured CUDA context), on the same runs.

Each workload runs solo once (probe: --max-steps N) with three monitors attached to it at once; then a
few pairs, where each job's peak is compared. Usage (GPU machine): python bench/peak_capture.py
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from benchlib import GPU_WORKLOADS, ROOT, one_epoch_probe, open_device, registry, self_reported_peak, stamp, write_json

from gpupair_search.launcher.monitor import Monitor
from gpupair_search.launcher.process import start_job
from gpupair_search.launcher.registry import Registry
from gpupair_search.launcher.spec import JobConfig

RATES = (1.0, 10.0, 20.0)


PULSE = "alloc/default"  # tests/gpu/alloc_job.py: 3 GiB for 30 ms, freed with empty_cache(), ten times


def job_config(key: str, steps: int, reg) -> JobConfig:
    if key == PULSE:
        return JobConfig("alloc", "default", {"alloc_gib": 3.0, "pulses": 10, "seconds": 0.5})
    return one_epoch_probe(reg, key, steps)


def measure(keys: list[str], steps: int, device, reg) -> dict:
    """Start ``keys`` together (a pair when two), three monitors on them; per job: peak at each rate vs truth."""
    env = {**os.environ, **device.job_env(), "PYTHONUNBUFFERED": "1"}
    tmp = Path(tempfile.mkdtemp())
    monitors = [Monitor(device, hz=hz) for hz in RATES]
    jobs = {}
    for m in monitors:
        m.start()
    for i, key in enumerate(keys):
        label = "foreground" if i == 0 else "background"
        jobs[label] = start_job(label, reg.command(job_config(key, steps, reg)), tmp / f"{label}.log", env)
        for m in monitors:
            m.track(label, jobs[label])
    while any(j.poll() is None for j in jobs.values()):
        time.sleep(0.05)
    time.sleep(0.3)
    for m in monitors:
        m.stop()
    out = {}
    for label, job in jobs.items():
        text = job.log_path.read_text(errors="replace")
        truth = self_reported_peak(text)
        peaks = {
            f"{hz:g}Hz": max((s.job_mib.get(label, 0.0) for s in m.samples), default=0.0)
            for hz, m in zip(RATES, monitors)
        }
        out[label] = {
            "workload": keys[0] if label == "foreground" else keys[1],
            "exit_code": job.popen.returncode,
            "truth_mib": truth,
            "peaks_mib": peaks,
            "error_pct": {r: (round(100 * (p - truth) / truth, 2) if truth else None) for r, p in peaks.items()},
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--workloads", default=",".join(GPU_WORKLOADS))
    parser.add_argument(
        "--pairs",
        default="examples/mnist+VulBERTa/mlp,Person_reID_baseline_pytorch/pcb+VulBERTa/mlp,"
        "Person_reID_baseline_pytorch/densenet121+VulBERTa/mlp",
    )
    args = parser.parse_args()
    reg, device = registry(), open_device("cuda:0")
    gpu_tests = Registry.load(ROOT / "tests" / "gpu" / "models.json", base_dir=ROOT / "tests" / "gpu")
    rows = [{"kind": "solo (releases memory)", **measure([PULSE], 0, device, gpu_tests)["foreground"]}]
    print(rows[-1], flush=True)
    for key in args.workloads.split(","):
        rows.append({"kind": "solo", **measure([key], args.steps, device, reg)["foreground"]})
        print(rows[-1], flush=True)
    for pair in args.pairs.split(","):
        result = measure(pair.split("+"), args.steps, device, reg)
        for label, row in result.items():
            rows.append({"kind": f"pair {pair} ({label})", **row})
            print(rows[-1], flush=True)
    summary = {}
    for rate in (f"{r:g}Hz" for r in RATES):
        errs = [abs(r["error_pct"][rate]) for r in rows if r["error_pct"].get(rate) is not None]
        summary[rate] = {
            "median_abs_error_pct": round(statistics.median(errs), 2) if errs else None,
            "max_abs_error_pct": round(max(errs), 2) if errs else None,
            "n": len(errs),
        }
    write_json("peak_capture.json", {**stamp(), "device": device.describe(), "rows": rows, "summary": summary})
    print(summary)


if __name__ == "__main__":
    main()
