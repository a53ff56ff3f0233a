"""A pair runs as real processes on the CPU device, and its outcome comes from exit codes, logs and memory."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest

from gpupair_search.launcher.devices.cpu import CpuDevice
from gpupair_search.launcher.outcome import Outcome
from gpupair_search.launcher.pair_runner import RunOptions, run_pair
from gpupair_search.launcher.results import new_pair_dir, new_run_dir, write_pair_results
from gpupair_search.launcher.spec import JobConfig, PairSpec
from tests.conftest import pids_alive, read_pids

FAST = RunOptions(background_settle_s=0.3, background_min_run_s=1.0, grace_s=1.0)


def job(model: str, **hp) -> JobConfig:
    return JobConfig("fixture", model, hp)


def run(tmp_path, registry, fg, bg, device=None, options=FAST):
    pair = PairSpec(1, fg, bg, note="Group 1: test (100MB)")
    pair_dir = new_pair_dir(new_run_dir(tmp_path / "results"), pair)
    result = run_pair(pair, registry, device or CpuDevice(), options, pair_dir)
    write_pair_results(result, pair_dir)
    return result


def test_ok_pair_measures_both_jobs_and_writes_the_seed_layout(tmp_path, fixture_registry):
    result = run(tmp_path, fixture_registry, job("ok", seconds=1.5, alloc_mib=40), job("ok", seconds=30, alloc_mib=80))
    assert result.outcome is Outcome.OK
    assert result.memory.foreground_peak_mib >= 40
    assert result.memory.background_peak_mib >= 80
    assert result.memory.sum_of_peaks_mib >= result.memory.concurrent_peak_mib > 120
    assert result.memory.sample_hz >= 10
    gaps = [b.t - a.t for a, b in zip(result.samples, result.samples[1:])]
    assert result.memory.max_gap_ms == round(1000 * max(gaps), 1) >= 50 * 0.9  # no two samples closer than a tick
    assert result.performance_metrics == {"test_accuracy": 97.5}
    assert result.energy.cpu_energy_j is None or result.energy.cpu_energy_j > 0
    if result.energy.cpu_energy_j is None:
        assert result.energy.cpu_energy_note.startswith("unavailable")
    d = result.result_dir
    record = json.loads((d / "experiment.json").read_text())
    for key in ("experiment_id", "timestamp", "mode", "foreground", "background", "memory", "outcome", "device"):
        assert key in record
    assert record["foreground"]["training_success"] is True
    assert (d / "training.log").read_text().strip().endswith("[SUCCESS] Training completed")
    assert (d / "background_logs" / "run_1.log").exists()
    assert (d / "energy" / "timeline.csv").read_text().startswith("t_s,foreground_mib")
    summary = (d.parent / "summary.csv").read_text().splitlines()
    assert summary[0].startswith("experiment_id,group,foreground,background")
    assert summary[1].startswith("fixture_ok_parallel_001,1,fixture/ok,fixture/ok")
    assert d.name == "fixture_ok_parallel_001"


def test_the_pair_says_where_its_wall_time_went(tmp_path, fixture_registry):
    result = run(tmp_path, fixture_registry, job("ok", seconds=1.5), job("ok", seconds=30))
    phases = result.phase_seconds
    assert list(phases) == ["background_start", "background_ready", "foreground", "background_finish", "stop"]
    assert phases["background_ready"] >= FAST.background_settle_s
    assert phases["foreground"] == pytest.approx(result.foreground_duration_s, abs=0.5)
    assert json.loads((result.result_dir / "experiment.json").read_text())["phase_seconds"] == phases


def test_foreground_crash_is_a_crash_whatever_the_log_says(tmp_path, fixture_registry):
    result = run(tmp_path, fixture_registry, job("crash", seconds=0.3), job("ok", seconds=30))
    assert result.outcome is Outcome.CRASH_FOREGROUND
    assert result.foreground_exit_code == 3
    assert "ValueError" in result.error_message


def test_background_crash_stops_the_pair(tmp_path, fixture_registry):
    result = run(tmp_path, fixture_registry, job("ok", seconds=30), job("crash", seconds=2.0))
    assert result.outcome is Outcome.CRASH_BACKGROUND
    assert result.foreground_duration_s < 20


def test_restart_storm_is_background_unstable(tmp_path, fixture_registry):
    # Far above any start-up on a loaded host: a slow restart counted as a real run would reset the count.
    options = dataclasses.replace(FAST, background_min_run_s=30.0)
    result = run(tmp_path, fixture_registry, job("ok", seconds=60), job("quick"), options=options)
    assert result.outcome is Outcome.BACKGROUND_UNSTABLE
    assert result.background_runs == options.background_max_quick_exits


def test_background_restarts_after_a_normal_exit(tmp_path, fixture_registry):
    result = run(tmp_path, fixture_registry, job("ok", seconds=6), job("ok", seconds=1.2))
    assert result.outcome is Outcome.OK
    assert result.background_runs >= 3


def test_going_over_the_cpu_budget_kills_the_pair_as_out_of_memory(tmp_path, fixture_registry):
    result = run(
        tmp_path,
        fixture_registry,
        job("ok", seconds=30, alloc_mib=300),
        job("ok", seconds=30, alloc_mib=50),
        device=CpuDevice(budget_mib=250),
    )
    assert result.outcome is Outcome.OVER_BUDGET
    assert result.outcome.is_oom
    assert result.foreground_duration_s < 20


def test_timeout_kills_the_foreground(tmp_path, fixture_registry):
    options = RunOptions(background_settle_s=0.3, grace_s=1.0, timeout_s=1.0)
    result = run(tmp_path, fixture_registry, job("ok", seconds=60), job("ok", seconds=60), options=options)
    assert result.outcome is Outcome.TIMEOUT
    assert result.foreground_duration_s < 10


def test_success_marker_before_an_oom_is_an_oom(tmp_path, fixture_registry):
    result = run(tmp_path, fixture_registry, job("success_then_oom"), job("ok", seconds=30))
    assert result.outcome is Outcome.OOM_FOREGROUND
    assert result.memory.foreground_tried_to_allocate_mib == pytest.approx(1536.0)


def test_background_oom(tmp_path, fixture_registry):
    result = run(tmp_path, fixture_registry, job("ok", seconds=30), job("oom", seconds=1.0))
    assert result.outcome is Outcome.OOM_BACKGROUND
    assert result.memory.background_tried_to_allocate_mib == pytest.approx(512.0)


def test_no_process_outlives_the_pair_even_a_detached_grandchild(tmp_path, fixture_registry):
    pidfile = tmp_path / "pids"
    result = run(
        tmp_path,
        fixture_registry,
        job("ok", seconds=1.5, pidfile=str(pidfile)),
        job("spawner", seconds=60, pidfile=str(pidfile)),
    )
    assert result.outcome is Outcome.OK
    pids = read_pids(pidfile)
    assert len(pids) == 3  # foreground, background, and the background's setsid grandchild
    assert pids_alive(pids) == []


def test_hyperparameter_values_reach_the_script_literally(tmp_path, fixture_registry):
    nasty = "$(touch pwned); rm -rf / `id` | & ; 'quoted' \"dq\""
    result = run(tmp_path, fixture_registry, job("ok", seconds=0.2, value=nasty), None)
    assert result.outcome is Outcome.OK
    assert f"value={nasty!r}" in (result.result_dir / "training.log").read_text()
    assert not (result.result_dir / "pwned").exists()


def test_a_new_run_never_reuses_a_run_directory(tmp_path):
    first, second = new_run_dir(tmp_path), new_run_dir(tmp_path)
    assert first != second and first.exists() and second.exists()


def test_a_probe_trains_one_epoch_whatever_epochs_the_job_is_configured_with(tmp_path):
    """--max-steps caps the steps of each epoch, so a probe of a job at its models-file default (resnet20: 200
    epochs) would train every epoch; the probe stops after the first, which holds the peak, and records it."""
    from gpupair_search.launcher.pair_runner import probe_job
    from gpupair_search.studies.matrix import bundled_registry, default_hyperparameters

    registry = bundled_registry()
    many = JobConfig(
        "pytorch_resnet_cifar10", "resnet20", default_hyperparameters(registry, "pytorch_resnet_cifar10/resnet20")
    )
    assert many.hyperparameters["epochs"] == 200
    probed = probe_job(many, registry, steps=5)
    assert probed.hyperparameters["epochs"] == 1 and probed.hyperparameters["max_steps"] == 5
    unset = JobConfig("examples", "mnist", {})
    assert probe_job(unset, registry, steps=5).hyperparameters["epochs"] == 1  # the script's default is 10

    mnist = JobConfig("examples", "mnist", {"epochs": 3, "batch_size": 8})
    result = run_pair(
        PairSpec(1, mnist, None),
        registry,
        CpuDevice(),
        RunOptions(probe=True, probe_steps=2, timeout_s=300),
        tmp_path / "pair",
    )
    assert result.outcome.value == "ok", result.error_message
    log = (tmp_path / "pair" / "training.log").read_text()
    assert re.search(r"^Epoch 1 step 2/2 ", log, re.M) and not re.search(r"^Epoch 2 ", log, re.M)
    assert result.foreground.hyperparameters["epochs"] == 1  # the record says what ran


@pytest.mark.parametrize("min_window_s", [0.0, 1.0])
def test_a_memory_probe_starts_its_foreground_once_the_background_trains(tmp_path, fixture_registry, min_window_s):
    """A probe that measures memory only starts the foreground as soon as the background reports a training step
    (it then holds what a training job holds), not after the background's whole run; a probe with a steady-state
    window still waits for the background's memory to settle (background_settle_s)."""
    pair = PairSpec(
        1,
        JobConfig("fixture", "ok", {"seconds": 1.0, "alloc_mib": 20.0}),
        JobConfig("fixture", "steps", {"seconds": 30, "alloc_mib": 40.0}),
    )
    options = RunOptions(
        timeout_s=60,
        probe=True,
        probe_steps=100,
        min_window_s=min_window_s,  # a 10 s background run
        background_settle_s=4.0,
    )
    result = run_pair(pair, fixture_registry, CpuDevice(None), options, tmp_path / "pair")

    assert result.outcome is Outcome.OK
    ready = result.phase_seconds["background_ready"]
    if min_window_s:
        assert ready >= options.background_settle_s
    else:
        assert ready < 3.0  # one step: 0.1 s after its start, against 4 s of settling and 10 s for the whole run
    assert result.memory.background_peak_mib >= 40  # its memory is measured either way


def test_on_the_cpu_device_a_background_that_trains_on_the_cpu_is_still_waited_for(tmp_path, fixture_registry):
    """A background that says it trains on the CPU holds no GPU memory, so on a GPU a memory-only probe starts its
    foreground at once (proven on the GPU: BENCHMARKS.md, g11). On the CPU device its host memory is what is
    measured, so the foreground waits for that to settle, as for any job."""
    pair = PairSpec(
        1,
        JobConfig("fixture", "ok", {"seconds": 1.0, "alloc_mib": 20.0}),
        JobConfig("fixture", "cpu_job", {"seconds": 30, "alloc_mib": 40.0}),
    )
    options = RunOptions(timeout_s=60, probe=True, probe_steps=100, min_window_s=0.0, background_settle_s=2.0)
    result = run_pair(pair, fixture_registry, CpuDevice(None), options, tmp_path / "pair")

    assert result.outcome is Outcome.OK
    assert result.phase_seconds["background_ready"] >= options.background_settle_s
    assert result.memory.background_peak_mib >= 40


def test_a_foreground_that_ended_before_it_was_seen_measured_nothing(tmp_path, fixture_registry):
    """0 MiB from a job the monitor never saw is no fit: a warm-started job can run to its end
    before the runner holds it, and would then be recorded as "ok, 0 MiB". Here the monitor looks every 2 s and the job
    exits at once."""
    options = RunOptions(monitor_hz=0.5, grace_s=1.0)
    result = run(tmp_path, fixture_registry, job("quick"), None, options=options)
    assert result.outcome is Outcome.UNMEASURED and not result.outcome.is_memory_verdict
    assert "before any of its processes was seen" in result.error_message
    crashed = run(tmp_path, fixture_registry, job("crash", seconds=0.0), None, options=options)
    assert crashed.outcome is Outcome.CRASH_FOREGROUND  # its exit code is a finding, seen or not


def test_a_trial_that_measured_nothing_is_run_once_more_and_keeps_both_runs_files(tmp_path, fixture_registry):
    import gc

    from gpupair_search.search.engine.executors import DeviceExecutor

    executor = DeviceExecutor(fixture_registry, CpuDevice(), RunOptions(monitor_hz=0.5, grace_s=1.0), tmp_path / "r")
    frozen = gc.get_freeze_count()
    result = executor.run(PairSpec(1, job("quick"), None), trial_number=0)
    assert gc.get_freeze_count() > frozen  # what outlives a pair leaves the collector's full passes (a tick each)
    assert result.outcome is Outcome.UNMEASURED  # unseen again: a failure with its reason, never a figure
    assert any(w.startswith("run again: the first run measured nothing") for w in result.warnings)
    assert len([d for d in executor.run_dir.path.iterdir() if d.is_dir()]) == 2


def test_a_job_that_exits_0_after_printing_a_traceback_is_judged_by_its_exit_code_and_flagged(
    tmp_path, fixture_registry
):
    result = run(tmp_path, fixture_registry, job("caught"), None)
    assert result.outcome is Outcome.OK  # the exit code and the memory decide, never the log's words alone
    [warning] = [w for w in result.warnings if "traceback" in w]
    assert "exited 0" in warning and "ValueError: the data loader broke at step 10" in warning
