"""Held starts, with real processes: the probe hook holds a job at its first GPU use (or first batch) until its
hold file exists; the pool starts only programs seen to stop there, hands a held job to its trial with its files,
and ends the ones no trial took.

This host has no GPU: the CPU build of torch still calls ``torch.cuda._lazy_init`` when a tensor is asked for on
``cuda``, and fails after the gate, which is where the hold must already have happened. The pool's device is the
simulated one, whose jobs hold no device memory (the pool's check of a held job's GPU memory is the device's)."""

from __future__ import annotations

import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from gpupair_search.launcher.devices.cpu import CpuDevice
from gpupair_search.launcher.devices.simulated import SimulatedDevice
from gpupair_search.launcher.held_start import HELD, HeldStarts, JobToHold
from gpupair_search.launcher.pair_runner import RunOptions, starts_held
from gpupair_search.launcher.probe_events import ProbeEvents, hook_environment
from gpupair_search.launcher.process import RunningJob
from gpupair_search.launcher.registry import Command
from gpupair_search.launcher.spec import StudyKind
from tests.conftest import queued_study, run_cli

JOB = """
import sys, torch
print("imported", flush=True)
try:
    torch.zeros(1, device="cuda")
except (AssertionError, RuntimeError) as exc:  # the CPU build: after the gate
    print("no cuda:", type(exc).__name__, flush=True)
from torch.utils.data import DataLoader
print("batches", sum(1 for _ in DataLoader(list(range(8)), batch_size=2)), flush=True)
"""


def wait_for(condition, timeout_s: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


#: imports a library only after its first GPU use, and a module of its own, then trains one optimizer step
IMPORTS_LATE = """
import sys, torch
print("colorsys already imported:", "colorsys" in sys.modules, flush=True)
try:
    torch.zeros(1, device="cuda")
except (AssertionError, RuntimeError):  # the CPU build: after the gate
    pass
import colorsys, localhelper
weight = torch.zeros(1, requires_grad=True)
optimizer = torch.optim.SGD([weight], lr=0.1)
(weight * 2).sum().backward()
optimizer.step()
print("trained", flush=True)
"""


def command(tmp_path: Path, job: str = JOB) -> Command:
    script = tmp_path / "train.py"
    script.write_text(job)
    return Command((sys.executable, str(script)), tmp_path)


def hook_env(events: Path, gate: Path) -> dict[str, str]:
    return hook_environment({**os.environ, "PYTHONUNBUFFERED": "1"}, events, 4, 0.0, gate)


def seen_at_its_gate(pool: HeldStarts, cmd: Command, env: dict[str, str], tmp_path: Path) -> RunningJob:
    """A first job of the program, started at once through the pool, run to its end: its gate was open, and its
    events told the pool that the program stops there."""
    first = pool.start("bg", cmd, env, tmp_path / "t1" / "run_1.log", tmp_path / "t1" / "bg.events")
    assert first.start == "cold"
    assert wait_for(lambda: first.poll() is not None) and first.poll() == 0  # its gate was open: it went on
    return first


#: the pool's device: its jobs hold no device memory (the pool's check of a held job finds none)
SIM = SimulatedDevice(lambda job, b: 0.0, 8192.0, None)


@pytest.fixture
def pool(tmp_path):
    """A pool that holds jobs whatever the host's memory (the reserve has a test of its own)."""
    held = HeldStarts(tmp_path / "run" / ".held", SIM, grace_s=1.0, host_reserve=0.0)
    yield held
    held.close()


def test_a_job_waits_at_its_first_gpu_use_until_its_hold_file_exists(tmp_path):
    from gpupair_search.launcher.process import start_job

    events, go = tmp_path / "job.events", tmp_path / "go"
    job = start_job("fg", command(tmp_path), tmp_path / "job.log", hook_env(events, go), grace=1.0)
    try:
        assert wait_for(lambda: "gate cuda held" in events.read_text() if events.exists() else False)
        time.sleep(0.5)
        assert job.poll() is None, "a held job must not go on by itself"
        assert "no cuda" not in (tmp_path / "job.log").read_text()
        go.touch()
        assert wait_for(lambda: job.poll() is not None)
        assert job.poll() == 0
        log = (tmp_path / "job.log").read_text()
        assert "no cuda: " in log and "batches 4" in log  # released once: the DataLoader's gate is then open
        assert ProbeEvents(events).poll().gated
    finally:
        job.stop(1.0)


def test_a_job_whose_gate_is_open_passes_and_says_it_reached_the_gate(tmp_path):
    from gpupair_search.launcher.process import start_job

    events, gate = tmp_path / "job.events", tmp_path / "open"
    gate.touch()
    job = start_job("bg", command(tmp_path), tmp_path / "job.log", hook_env(events, gate), grace=1.0)
    assert wait_for(lambda: job.poll() is not None)
    assert job.poll() == 0
    assert "gate cuda open" in events.read_text()


def test_the_pool_holds_only_programs_seen_to_stop_at_the_gate(tmp_path, pool):
    cmd = command(tmp_path)
    env = hook_env(Path(), pool.open_gate)
    pool.prepare([JobToHold("fg", cmd, env)])
    assert not pool._held, "a program not yet seen at the gate is not started ahead"

    seen_at_its_gate(pool, cmd, env, tmp_path)
    pool.prepare([JobToHold("fg", cmd, env)])
    (held_log,) = pool.directory.glob("*.log")
    assert wait_for(lambda: "imported" in held_log.read_text())
    time.sleep(0.3)
    assert "no cuda" not in held_log.read_text(), "held at its first GPU use, not past it"

    before = time.monotonic()
    log, trial_events = tmp_path / "t2" / "training.log", tmp_path / "t2" / "fg.events"
    job = pool.start("fg", cmd, env, log, trial_events)
    assert job.start == HELD and job.started >= before and job.log_path == log
    assert wait_for(lambda: job.poll() is not None)
    assert job.poll() == 0
    assert "imported" in log.read_text() and "batches 4" in log.read_text()  # the whole log, at the trial's path
    seen = ProbeEvents(trial_events).poll()
    assert seen.hooked and seen.gated and seen.effective  # events from before and after the release


def test_a_held_job_imports_while_it_waits_the_libraries_its_program_imported_after_its_gate(tmp_path, pool):
    """torch imports torch._dynamo at a job's first optimizer, and training code imports model libraries where
    it builds its model: after the gate, seconds a trial would wait for. The pool learns them from the program's
    first job (not the job's own modules) and a held job imports them before its release."""
    (tmp_path / "localhelper.py").write_text("VALUE = 1\n")
    cmd = command(tmp_path, IMPORTS_LATE)
    env = hook_env(Path(), pool.open_gate)
    seen_at_its_gate(pool, cmd, env, tmp_path)
    learned = ProbeEvents(tmp_path / "t1" / "bg.events").poll()
    assert learned.reports_steps and learned.trained_step
    assert "colorsys" in learned.imported and "localhelper" not in learned.imported
    assert "torch._dynamo" in learned.imported  # torch's own, at the first optimizer
    assert "colorsys already imported: False" in (tmp_path / "t1" / "run_1.log").read_text()

    pool.prepare([JobToHold("bg", cmd, env)])
    (held,) = pool._held.values()
    assert wait_for(lambda: "preimported" in held.events.read_text())
    log = tmp_path / "t2" / "run_1.log"
    job = pool.start("bg", cmd, env, log, tmp_path / "t2" / "bg.events")
    assert job.start == HELD
    assert wait_for(lambda: job.poll() is not None) and job.poll() == 0
    text = log.read_text()
    assert "colorsys already imported: False" in text, "imported at its gate, not before it"
    assert "trained" in text
    assert "colorsys" not in ProbeEvents(tmp_path / "t2" / "bg.events").poll().imported, "it was there already"


def test_a_learned_import_that_uses_the_gpu_waits_for_the_release_like_the_job(tmp_path):
    """A library that creates a CUDA context when imported, listed for a held job: its import reaches the gate
    again and waits there with the job, so the held job still touches no GPU before its release; the import
    then fails on this CPU build, as it would have in the job, and the job runs on."""
    from gpupair_search.launcher.process import start_job

    library = tmp_path / "site"
    library.mkdir()
    (library / "gpuatimport.py").write_text("import torch\ntorch.zeros(1, device='cuda')\n")
    events, go = tmp_path / "job.events", tmp_path / "go"
    (tmp_path / "go.imports").write_text("gpuatimport\n")
    env = hook_env(events, go)
    env["PYTHONPATH"] += os.pathsep + str(library)
    job = start_job("fg", command(tmp_path), tmp_path / "job.log", env, grace=1.0)
    try:
        assert wait_for(lambda: "gate cuda held" in events.read_text() if events.exists() else False)
        time.sleep(1.0)
        assert job.poll() is None and "preimported" not in events.read_text(), "its import waits at the gate"
        go.touch()
        assert wait_for(lambda: job.poll() is not None)
        assert job.poll() == 0 and "batches 4" in (tmp_path / "job.log").read_text()
        assert "preimported 1 1" in events.read_text()  # tried after the release, and failed: no CUDA here
        assert events.read_text().count("gate ") == 1
    finally:
        job.stop(1.0)


def test_no_job_is_held_while_the_host_would_keep_too_little_memory_available(tmp_path):
    """A held job may hold its data already: with less of the host's memory available than the pool keeps
    (here, all of it), the next trials' jobs are not started ahead, and the trial is told once."""
    pool = HeldStarts(tmp_path / "run" / ".held", SIM, grace_s=1.0, host_reserve=1.0)
    try:
        cmd = command(tmp_path)
        env = hook_env(Path(), pool.open_gate)
        seen_at_its_gate(pool, cmd, env, tmp_path)
        pool.prepare([JobToHold("fg", cmd, env)])
        pool.prepare([JobToHold("fg", cmd, env)])
        assert not pool._held
        (note,) = pool.pop_notes()
        assert "of the host's memory available" in note
        job = pool.start("fg", cmd, env, tmp_path / "t2" / "training.log", tmp_path / "t2" / "fg.events")
        assert job.start == "cold"
        assert wait_for(lambda: job.poll() is not None) and job.poll() == 0
    finally:
        pool.close()


def test_a_held_job_no_trial_takes_is_ended(tmp_path, pool):
    cmd = command(tmp_path)
    env = hook_env(Path(), pool.open_gate)
    seen_at_its_gate(pool, cmd, env, tmp_path)
    pool.prepare([JobToHold("bg", cmd, env)])
    (held,) = pool._held.values()
    pid = held.job.pid
    other = {**env, "GPUPAIR_PROBE_BATCHES": "9"}  # another configuration: not the held one
    assert pool.take("bg", cmd, other, tmp_path / "t" / "run_1.log", tmp_path / "t" / "bg.events") is None
    pool.prepare([])
    pool.close()
    assert held.job.poll() is not None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not pool.directory.exists()


PROBE = RunOptions(probe=True)


@pytest.mark.parametrize(
    "device, options, expected",
    [
        ("gpu", PROBE, True),
        ("gpu", replace(PROBE, warm_start=False), False),  # --start cold
        ("gpu", replace(PROBE, min_window_s=10.0), False),  # a slowdown window: no start-up beside the trial
        ("gpu", replace(PROBE, probe=False), False),  # the full epoch
        ("gpu", replace(PROBE, start_together=True), False),  # packed trials start both jobs at once anyway
        ("cpu", PROBE, False),  # the hold is at the first GPU use: on the CPU nothing would hold it
    ],
)
def test_jobs_start_held_only_for_a_memory_probe_on_a_gpu(device, options, expected):
    class Gpu(SimulatedDevice):
        study_kind = StudyKind.GPU
        simulated = False

    dev = Gpu(lambda job, b: 0.0, 8192.0, None) if device == "gpu" else CpuDevice()
    assert starts_held(options, dev) is expected


def test_run_refuses_an_unknown_start_before_touching_anything(tmp_path):
    done = run_cli("run", "--device", "sim", "--start", "lukewarm", "--results", str(tmp_path / "r"))
    assert done.returncode == 2
    assert "expected auto, warm or cold" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "r").exists()


def test_serial_trials_take_their_held_jobs_and_measure_what_a_cold_start_measures(tmp_path, monkeypatch):
    """Three trials of the lab repository one after the other, as a study runs them, each told the next one's
    pair: from the second on, the foreground is the job held for it (its program was seen at its gate, here its
    first batch: the CPU build has no CUDA to stop at), it reaches its evaluation, and its peak is the peak of
    the same job started cold. Memory is the CPU device's (host memory); the pool's check for GPU memory of a
    held job is the simulated device's (none)."""
    from gpupair_search.launcher.pair_runner import run_pair
    from gpupair_search.launcher.registry import Registry
    from gpupair_search.launcher.results import new_pair_dir, new_run_dir
    from gpupair_search.launcher.spec import JobConfig, PairSpec
    from tests.conftest import FIXTURES

    monkeypatch.setenv("PYTHON", sys.executable)
    lab = Registry.load(FIXTURES / "user_repo" / "models.json", base_dir=FIXTURES / "user_repo")
    options = RunOptions(probe=True, timeout_s=300, grace_s=1.0)
    fg, bg = JobConfig("lab", "evalheavy", {"workers": 0}), JobConfig("lab", "mlp", {"workers": 0})
    pairs = [PairSpec(n, fg, bg.with_hyperparameter("batch_size", 8 * n)) for n in (1, 2, 3)]
    run_dir = new_run_dir(tmp_path / "results")
    held = HeldStarts(run_dir / ".held", SIM, grace_s=1.0, host_reserve=0.0)
    try:
        results = [
            run_pair(pair, lab, CpuDevice(), options, new_pair_dir(run_dir, pair), held=held, ahead=pairs[n + 1 :])
            for n, pair in enumerate(pairs)
        ]
    finally:
        held.close()
    assert [r.job_start["foreground"] for r in results] == ["cold", HELD, HELD]
    for r in results:
        assert r.outcome.value == "ok", r.error_message
        assert r.probe["foreground"] == {"rule": "bounded steps", "evaluation": "reached"}
    cold, *taken = (r.memory.foreground_peak_mib for r in results)
    assert all(abs(peak - cold) <= 0.05 * cold for peak in taken), (cold, taken)
    assert not (run_dir / ".held").exists()


def test_a_held_job_found_holding_device_memory_is_ended_and_its_program_never_held_again(tmp_path):
    """The pool's device is the CPU device here, whose memory is host memory: every held process holds some,
    as a job that created a CUDA context before its gate would hold GPU memory. Taking it ends it, starts the
    trial's job at once instead, says so once, and holds that program no more."""
    pool = HeldStarts(tmp_path / "run" / ".held", CpuDevice(), grace_s=1.0, host_reserve=0.0)
    try:
        cmd = command(tmp_path)
        env = hook_env(Path(), pool.open_gate)
        seen_at_its_gate(pool, cmd, env, tmp_path)
        pool.prepare([JobToHold("fg", cmd, env)])
        (held,) = pool._held.values()
        assert wait_for(lambda: "gate cuda held" in held.events.read_text())
        job = pool.start("fg", cmd, env, tmp_path / "t2" / "training.log", tmp_path / "t2" / "fg.events")
        assert job.start == "cold" and job is not held.job
        (note,) = pool.pop_notes()
        assert "held before its first GPU use, it held" in note and pool.pop_notes() == []
        assert wait_for(lambda: job.poll() is not None)
        pool.prepare([JobToHold("fg", cmd, env)])
        assert not pool._held, "a program found holding memory while held is not held again"
    finally:
        pool.close()
    assert held.job.poll() is not None


def test_the_study_tells_its_executor_the_next_queued_trials_pairs(fixture_registry):
    """Before each trial the study hands the executor a way to ask for the pairs queued after it; asked during
    a trial, it names the pairs the next trials then measure, in order (three pairs that fit: no extension in
    between)."""
    from gpupair_search.launcher.spec import JobConfig, PairSpec
    from gpupair_search.search.engine.executors import DeviceExecutor

    class Asking:
        def __init__(self, inner: DeviceExecutor) -> None:
            self.inner, self.seen = inner, []

        def start_ahead(self, upcoming) -> None:
            self.upcoming = upcoming

        def run(self, pair, trial_number):
            self.seen.append((pair.key, [p.key for p in self.upcoming(1)], [p.key for p in self.upcoming(3)]))
            return self.inner.run(pair, trial_number)

    pairs = [
        PairSpec(n, JobConfig("fixture", "ok", {"batch_size": 4}), JobConfig("fixture", "ok", {"batch_size": 4 * n}))
        for n in (1, 2, 3)
    ]
    fs = queued_study(fixture_registry, pairs)
    executor = Asking(
        DeviceExecutor(fixture_registry, SimulatedDevice(lambda job, b: 10.0 * (b or 0), 8192.0, fixture_registry))
    )
    fs.run(executor)
    measured = [key for key, _, _ in executor.seen]
    assert sorted(measured) == sorted(p.key for p in pairs)
    assert [ahead for _, ahead, _ in executor.seen] == [[key] for key in measured[1:]] + [[]]
    assert [further for _, _, further in executor.seen] == [measured[n + 1 :] for n in range(len(measured))]
