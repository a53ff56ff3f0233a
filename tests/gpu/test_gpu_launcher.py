"""GPU truth for the launcher (run on the GPU machine: ``pytest -m gpu tests/gpu``).

* NVML per-job peaks within 2% (or 30 MiB) of what each process reports itself;
* ``--gpu-memory 8GiB`` on a big card: a job needing more than 8 GiB ends oom_* through a real CUDA OOM,
  one needing less ends ok;
* the foreground's GPU energy is positive and within 10% of mean power times duration;
* in probe mode a CPU-only background (no device memory) is not waited for after the foreground.
Each test appends its numbers to $GPUPAIR_OUT/gpu_checks.json when that variable is set.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from gpupair_search.launcher.pair_runner import RunOptions, run_pair
from gpupair_search.launcher.registry import Registry
from gpupair_search.launcher.spec import JobConfig, PairSpec

pytestmark = pytest.mark.gpu
HERE = Path(__file__).parent


def _record(name: str, data: dict) -> None:
    out = os.environ.get("GPUPAIR_OUT")
    if not out:
        return
    path = Path(out) / "gpu_checks.json"
    existing = json.loads(path.read_text()) if path.exists() else {}
    existing[name] = data
    path.write_text(json.dumps(existing, indent=2))


@pytest.fixture(scope="module")
def registry():
    return Registry.load(HERE / "models.json", base_dir=HERE.parent)


def _self_peak(log: Path) -> float:
    return float(re.findall(r"self_peak_mib=([\d.]+)", log.read_text())[-1])


def _job(gib: float, seconds: float) -> JobConfig:
    return JobConfig("alloc", "default", {"alloc_gib": gib, "seconds": seconds})


def test_nvml_peaks_match_what_each_process_reports(tmp_path, registry):
    from gpupair_search.launcher.devices import open_device

    device = open_device("cuda:0")
    pair = PairSpec(1, _job(3.0, 10.0), _job(1.5, 2.0))  # the background completes runs within the window
    result = run_pair(pair, registry, device, RunOptions(), tmp_path)
    assert result.outcome.value == "ok", result.error_message
    fg_self = _self_peak(tmp_path / "training.log")
    bg_self = (
        max(_self_peak(p) for p in result.background_logs if "self_peak" in p.read_text())
        if any("self_peak" in p.read_text() for p in result.background_logs)
        else None
    )
    data = {
        "device": result.device,
        "foreground_nvml_peak_mib": result.memory.foreground_peak_mib,
        "foreground_self_mib": fg_self,
        "background_nvml_peak_mib": result.memory.background_peak_mib,
        "background_self_mib": bg_self,
        "sample_hz": result.memory.sample_hz,
    }
    _record("nvml_truth", data)
    assert abs(result.memory.foreground_peak_mib - fg_self) <= max(30.0, 0.02 * fg_self), data
    if bg_self is not None:
        assert abs(result.memory.background_peak_mib - bg_self) <= max(30.0, 0.02 * bg_self), data


@pytest.mark.parametrize("gib, expected", [(9.0, "oom_foreground"), (5.0, "ok")], ids=["needs-9GiB", "needs-5GiB"])
def test_emulated_8gib_card_gives_real_ooms(tmp_path, registry, gib, expected):
    from gpupair_search.launcher.devices import DeviceRequest, open_device

    device = open_device("cuda:0", DeviceRequest(card_mib=8192.0))
    try:
        result = run_pair(PairSpec(1, _job(gib, 2.0), _job(0.25, 30.0)), registry, device, RunOptions(), tmp_path)
    finally:
        device.close()
    log = (tmp_path / "training.log").read_text()
    _record(
        f"emulation_{gib:g}GiB",
        {
            "device": result.device,
            "outcome": result.outcome.value,
            "foreground_peak_mib": result.memory.foreground_peak_mib,
            "tried_to_allocate_mib": result.memory.foreground_tried_to_allocate_mib,
            "log_tail": log.strip().splitlines()[-1][:300],
        },
    )
    assert result.outcome.value == expected
    if expected.startswith("oom"):
        assert "OutOfMemoryError" in log or "CUDA out of memory" in log


def test_foreground_energy_matches_mean_power_times_duration(tmp_path, registry):
    from gpupair_search.launcher.devices import open_device

    device = open_device("cuda:0")
    result = run_pair(PairSpec(1, _job(1.0, 8.0), _job(0.5, 60.0)), registry, device, RunOptions(), tmp_path)
    e = result.energy
    estimate = e.power_avg_w * e.window_s
    _record(
        "energy",
        {
            "gpu_energy_j": e.gpu_energy_j,
            "power_avg_w": e.power_avg_w,
            "window_s": e.window_s,
            "power_x_duration_j": estimate,
            "cpu_energy": e.cpu_energy_note or e.cpu_energy_j,
        },
    )
    assert e.gpu_energy_j and e.gpu_energy_j > 0
    assert abs(e.gpu_energy_j - estimate) / e.gpu_energy_j <= 0.10


def test_probe_does_not_wait_for_a_cpu_only_background(tmp_path, registry):
    from gpupair_search.launcher.devices import open_device

    device = open_device("cuda:0")
    cpu_job = JobConfig("cpujob", "ok", {"seconds": 120.0})  # ignores --max-steps: it would run 120 s
    options = RunOptions(probe=True, background_cpu_only_after_s=3.0)
    result = run_pair(PairSpec(1, _job(1.0, 3.0), cpu_job), registry, device, options, tmp_path)
    _record(
        "cpu_only_background_probe",
        {
            "outcome": result.outcome.value,
            "phase_seconds": result.phase_seconds,
            "background_peak_mib": result.memory.background_peak_mib,
        },
    )
    assert result.outcome.value == "ok", result.error_message
    assert result.memory.background_peak_mib == 0
    assert result.phase_seconds["background_finish"] < 1.0


def test_packed_pairs_on_one_gpu_each_get_their_own_peaks_from_one_sampler(tmp_path, registry):
    """Four pairs at once on the GPU (packed, no card limit): one sampler thread serves them all at >= 20 Hz,
    and each pair's NVML peaks are its own jobs' (within 2% or 30 MiB of what each process reports)."""
    import threading

    from gpupair_search.launcher.devices import open_device
    from gpupair_search.search.engine.executors import DeviceExecutor

    executor = DeviceExecutor(registry, open_device("cuda:0"), RunOptions(), tmp_path, packed=True)
    sizes = [1.0, 2.0, 3.0, 4.0]
    pairs = [PairSpec(i + 1, _job(gib, 8.0), _job(gib / 2, 30.0)) for i, gib in enumerate(sizes)]
    results, samplers = {}, []
    threads = [
        threading.Thread(target=lambda p=p: results.setdefault(p.group, executor.run(p, p.group))) for p in pairs
    ]
    for t in threads:
        t.start()
    import time

    time.sleep(6.0)
    samplers.append(sum(1 for t in threading.enumerate() if t.name == "gpupair-sampler"))
    for t in threads:
        t.join(timeout=120)
    rows = []
    for pair, gib in zip(pairs, sizes):
        r = results[pair.group]
        fg_self = _self_peak(r.result_dir / "training.log")
        rows.append(
            {
                "fg_gib": gib,
                "fg_nvml_mib": r.memory.foreground_peak_mib,
                "fg_self_mib": fg_self,
                "bg_nvml_mib": r.memory.background_peak_mib,
                "sample_hz": r.memory.sample_hz,
            }
        )
    _record("packed_pairs_one_sampler", {"samplers": samplers, "pairs": rows})
    assert samplers == [1]
    for row in rows:
        assert abs(row["fg_nvml_mib"] - row["fg_self_mib"]) <= max(30.0, 0.02 * row["fg_self_mib"]), row
        assert row["sample_hz"] >= 20.0 * 0.95, row


HELD_JOB = """
import time, torch
x = torch.zeros(64 * 2**20, device="cuda")  # 256 MiB, after the gate
torch.cuda.synchronize()
print("allocated", flush=True)
time.sleep(30)
"""


def test_a_held_job_holds_no_gpu_memory_until_released(tmp_path):
    """A job held at its gate has imported torch but has no CUDA context: NVML lists none of its processes.
    Released, it creates its context and allocates."""
    import sys
    import time

    from gpupair_search.launcher.devices import open_device
    from gpupair_search.launcher.probe_events import ProbeEvents, hook_environment
    from gpupair_search.launcher.process import start_job
    from gpupair_search.launcher.registry import Command

    device = open_device("cuda:0")
    script = tmp_path / "job.py"
    script.write_text(HELD_JOB)
    events, go, log = tmp_path / "job.events", tmp_path / "go", tmp_path / "job.log"
    env = hook_environment({**os.environ, "PYTHONUNBUFFERED": "1"}, events, 5, 0.0, go)
    job = start_job("fg", Command((sys.executable, str(script)), tmp_path), log, env, grace=1.0)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (events.exists() and "gate cuda held" in events.read_text()):
            time.sleep(0.05)
        assert "gate cuda held" in events.read_text()
        time.sleep(1.0)
        held_mib = device.memory_by_pid(job.process_ids())
        released_at = time.monotonic()
        go.touch()
        while time.monotonic() < deadline and "allocated" not in log.read_text():
            time.sleep(0.02)
        to_allocated_s = time.monotonic() - released_at
        time.sleep(0.5)
        running_mib = device.memory_by_pid(job.process_ids())
        _record(
            "held_job",
            {"held_mib": held_mib, "running_mib": running_mib, "release_to_allocated_s": round(to_allocated_s, 2)},
        )
        assert not any(mib > 0 for mib in held_mib.values()), held_mib
        assert sum(running_mib.values()) >= 256, running_mib
        assert ProbeEvents(events).poll().gated
    finally:
        job.stop(1.0)
        device.close()
