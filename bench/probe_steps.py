"""How many probe steps does a peak need? Each built-in alone at its defaults, probed with several step caps.

A probe stops a built-in after ``--max-steps`` training steps and as many evaluation batches. Its peak is the
job's GPU memory (NVML, per process, CUDA context included) sampled by the runner's own monitor at 20 Hz; its
wall time is what a trial pays for it. Each model runs once per step cap, the caps interleaved (all caps of
one model, then the next model), warm-started as in a study, on the whole GPU (no card emulation: a solo's
peak does not depend on it). Writes ``probe_steps.json`` under $OUT and prints one line per model.

    python3 bench/probe_steps.py --steps 3,5,10,30
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from benchlib import GPU_WORKLOADS, open_device, registry, stamp, write_json

from gpupair_search.launcher.devices import DeviceRequest
from gpupair_search.launcher.pair_runner import RunOptions, run_pair
from gpupair_search.launcher.spec import JobConfig, PairSpec
from gpupair_search.studies.matrix import default_hyperparameters


def probe(reg, key: str, steps: int, device, work: Path) -> dict:
    repo, model = key.rsplit("/", 1)
    job = JobConfig(repo, model, default_hyperparameters(reg, key))
    options = RunOptions(probe=True, probe_steps=steps, min_window_s=0.0, warm_start=True, timeout_s=300)
    started = time.perf_counter()
    result = run_pair(PairSpec(1, job, None), reg, device, options, work / f"{key.replace('/', '_')}_{steps}")
    return {
        "model": key,
        "steps": steps,
        "outcome": result.outcome.value,
        "peak_mib": result.memory.foreground_peak_mib,
        "wall_s": round(time.perf_counter() - started, 3),
        "foreground_s": result.phase_seconds.get("foreground"),
        "sample_hz": result.memory.sample_hz,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", default="3,5,10,30")
    parser.add_argument("--models", default=",".join(GPU_WORKLOADS))
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    caps = [int(s) for s in args.steps.split(",")]
    device = open_device(args.device, DeviceRequest())
    reg = registry()
    runs = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for key in args.models.split(","):
                for steps in caps:
                    runs.append(probe(reg, key, steps, device, Path(tmp)))
                    write_json("probe_steps.json", {**stamp(), "device": device.name, "runs": runs})
                mine = [r for r in runs if r["model"] == key]
                ref = mine[-1]["peak_mib"] if caps[-1] == max(caps) else None
                print(
                    f"{key:42s} "
                    + "  ".join(f"{r['steps']:>3} steps {r['peak_mib']:8,.0f} MiB {r['wall_s']:5.2f} s" for r in mine)
                    + (f"  (largest cap: {ref:,.0f} MiB)" if ref else ""),
                    flush=True,
                )
    finally:
        device.close()


if __name__ == "__main__":
    main()
