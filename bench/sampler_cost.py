#!/usr/bin/env python3
"""The sampler's own CPU cost on an NVIDIA GPU: every whole-device figure read each tick, against the slow ones
(used memory, power, utilisation, temperature, graphics processes) read at most every SLOW_READ_S.

    python3 bench/sampler_cost.py [--seconds 10] [--hz 20]

One CUDA process holds memory on the GPU, so the process query has something to list. The sampler runs with one
monitor attached for ``--seconds`` in each mode; the runner's CPU seconds per second (``time.process_time``, its
main thread asleep) is the sampler's cost. Then each part of a tick is timed alone (thread CPU time per call,
``--calls`` calls each), to show where that cost is. Writes sampler_cost.json (benchlib.out_dir()).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from benchlib import stamp, write_json

from gpupair_search.launcher.devices import nvidia, open_device
from gpupair_search.launcher.monitor import DeviceSampler, Monitor

HOLDER = "import time, torch; x = torch.empty(2**28, device='cuda'); print('ready', flush=True); time.sleep(120)"


def cost(device, hz: float, seconds: float) -> dict:
    sampler = DeviceSampler(device, hz)
    monitor = Monitor(device, hz, sampler=sampler).start()
    cpu0, t0 = time.process_time(), time.monotonic()
    time.sleep(seconds)
    cpu, wall = time.process_time() - cpu0, time.monotonic() - t0
    monitor.stop()
    return {"cpu_ms_per_s": round(1000 * cpu / wall, 1), "ticks_per_s": round(sampler.ticks / wall, 1)}


def per_call(read, calls: int) -> dict:
    """``read()`` ``calls`` times: its thread CPU time and wall time per call, in ms."""
    cpu0, t0 = time.thread_time(), time.perf_counter()
    for _ in range(calls):
        read()
    return {
        "cpu_ms": round(1000 * (time.thread_time() - cpu0) / calls, 3),
        "wall_ms": round(1000 * (time.perf_counter() - t0) / calls, 3),
    }


def counter_updates(device, seconds: float) -> dict:
    """How often NVML's energy counter changes: read it back to back for ``seconds``, count distinct values."""
    import pynvml

    values, end = [], time.monotonic() + seconds
    while time.monotonic() < end:
        values.append((time.monotonic(), pynvml.nvmlDeviceGetTotalEnergyConsumption(device.handle)))
    changes = [t for (t, v), (_, before) in zip(values[1:], values) if v != before]
    gaps = [b - a for a, b in zip(changes, changes[1:])]
    return {
        "reads": len(values),
        "changes": len(changes),
        "median_ms_between_changes": round(1000 * sorted(gaps)[len(gaps) // 2], 1) if gaps else None,
    }


def components(device, holder_pid: int, calls: int) -> dict:
    """Each part of a sampler tick alone: the NVML reads, the /proc pass, a tree refresh, a whole tick."""
    import pynvml

    from gpupair_search.launcher.monitor import _busy_and_total, children_by_parent

    class Held:  # what the monitor reads of a job: the holder, a real process on the GPU
        pid = holder_pid

        def process_ids(self) -> set[int]:
            return {holder_pid}

    h = device.handle
    monitor = Monitor(device, sampler=DeviceSampler(device))
    monitor.track("foreground", Held())
    parts = {
        "nvml_compute_processes": lambda: pynvml.nvmlDeviceGetComputeRunningProcesses(h),
        "nvml_energy_counter": lambda: pynvml.nvmlDeviceGetTotalEnergyConsumption(h),
        "nvml_memory_info": lambda: pynvml.nvmlDeviceGetMemoryInfo(h),
        "nvml_power": lambda: pynvml.nvmlDeviceGetPowerUsage(h),
        "proc_children_by_parent": children_by_parent,
        "proc_host_cpu_times": _busy_and_total,
        "tree_refresh_one_job": lambda: (
            setattr(monitor, "_last_tree", 0.0),
            monitor.refresh_trees(children_by_parent()),
        ),
        "record_one_snapshot": lambda: monitor.record(monitor.sampler.read(monitor.known_pids())),
    }
    return {name: per_call(read, calls) for name, read in parts.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--hz", type=float, default=20.0)
    parser.add_argument("--calls", type=int, default=200, help="calls per part in the per-part timings")
    args = parser.parse_args()
    holder = subprocess.Popen([sys.executable, "-c", HOLDER], stdout=subprocess.PIPE, text=True)
    try:
        holder.stdout.readline()
        device = open_device("cuda:0")
        slow, energy = nvidia.SLOW_READ_S, nvidia.ENERGY_READ_S
        nvidia.SLOW_READ_S = nvidia.ENERGY_READ_S = 0.0  # every figure each tick: what the monitor read before
        every_tick = cost(device, args.hz, args.seconds)
        nvidia.SLOW_READ_S, nvidia.ENERGY_READ_S = slow, energy
        device._cache.clear()
        slow_reads = cost(device, args.hz, args.seconds)
        updates = counter_updates(device, seconds=2.0)
        try:
            parts = components(device, holder.pid, args.calls)
        except Exception as exc:  # noqa: BLE001 - the two modes above are still worth writing
            parts = {"error": repr(exc)}
    finally:
        holder.kill()
    result = {
        **stamp(),
        "device": device.describe(),
        "hz": args.hz,
        "seconds": args.seconds,
        "every_figure_each_tick": every_tick,
        f"slow_figures_every_{slow}s_energy_every_{energy}s": slow_reads,
        "energy_counter": updates,
        "per_call": parts,
    }
    print(result, flush=True)
    print(f"wrote {write_json('sampler_cost.json', result)}")


if __name__ == "__main__":
    main()
