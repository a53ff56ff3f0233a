"""The steady-state window measured on real processes that print progress, through the real run_pair."""

from __future__ import annotations

import time

import pytest

from gpupair_search.launcher.devices.base import DeviceReading
from gpupair_search.launcher.devices.cpu import CpuDevice
from gpupair_search.launcher.outcome import Outcome
from gpupair_search.launcher.pair_runner import RunOptions, run_pair
from gpupair_search.launcher.registry import Registry
from gpupair_search.launcher.spec import JobConfig, PairSpec
from tests.conftest import FIXTURES

FAST = RunOptions(background_settle_s=0.3, background_min_run_s=1.0, grace_s=1.0)


@pytest.fixture
def registry() -> Registry:
    return Registry.load(FIXTURES / "progress_models.json", base_dir=FIXTURES)


def job(model: str = "sleeper", **hp) -> JobConfig:
    return JobConfig("progress", model, hp)


def run(tmp_path, registry, fg, bg=None):
    return run_pair(PairSpec(1, fg, bg), registry, CpuDevice(), FAST, tmp_path / "pair")


def test_the_window_leaves_out_start_up_and_evaluation(tmp_path, registry):
    result = run(tmp_path, registry, job(startup_s=1.5, steps=30, step_s=0.05, eval_s=1.5, batch_size=4))
    w = result.window
    assert result.outcome is Outcome.OK and w.reliable
    fg_start = result.foreground_window[0]
    assert w.start_t - fg_start >= 1.5  # the start-up sleep is before the window
    assert w.window_s < result.foreground_duration_s - 2.5  # and the evaluation sleep after it
    assert 27 - 3 <= w.foreground_steps <= 27
    assert w.foreground_samples == 4 * w.foreground_steps
    assert 40 < w.foreground_samples_per_second <= 80  # 4 samples per >= 50 ms step
    assert w.background_training_share is None and w.background_samples_per_second is None
    assert w.gpu_energy_j is None and w.energy_note.startswith("unavailable")  # the CPU device has no counter
    assert w.foreground_cpu_pct is not None and w.host_cpu_pct is not None


def test_an_external_script_gets_a_window_through_its_progress_pattern(tmp_path, registry):
    result = run(tmp_path, registry, job("external", startup_s=0.5, steps=30, step_s=0.05, batch_size=2))
    assert result.window.reliable and result.window.foreground_samples == 2 * result.window.foreground_steps


def test_a_background_that_is_mostly_starting_up_trains_for_a_small_share_of_the_window(tmp_path, registry):
    result = run(tmp_path, registry, job(steps=80, step_s=0.05), job(startup_s=1.5, steps=3, step_s=0.05, batch_size=2))
    w = result.window
    assert result.outcome is Outcome.OK and result.background_runs >= 2
    assert result.background_coverage > 0.9  # alive nearly all the time: coverage alone calls it a pair
    assert w.background_training_share < 0.4  # but it trained in a small part of the window
    assert any("this is no co-location" in warning for warning in result.warnings)


def test_a_background_that_trains_throughout_has_a_high_share_and_a_throughput(tmp_path, registry):
    result = run(tmp_path, registry, job(steps=40, step_s=0.05), job(steps=1000, step_s=0.05, batch_size=2))
    w = result.window
    assert w.background_training_share > 0.9
    assert 20 < w.background_samples_per_second <= 40  # 2 samples per >= 50 ms step


def test_probes_train_long_enough_for_a_window_of_min_window_s(tmp_path, registry):
    options = RunOptions(
        background_settle_s=0.3, background_min_run_s=1.0, grace_s=1.0, probe=True, probe_steps=5, min_window_s=1.5
    )
    fg, bg = job(steps=1000, step_s=0.02), job(steps=1000, step_s=0.02)
    result = run_pair(PairSpec(1, fg, bg), registry, CpuDevice(), options, tmp_path / "pair")
    assert (
        result.foreground.hyperparameters["max_steps"] == 5 and result.foreground.hyperparameters["min_train_s"] == 1.5
    )
    assert result.background.hyperparameters["min_train_s"] == 7.5  # trains through the foreground's start and window
    assert result.window.window_s >= 1.0  # 5 probe steps alone would be 0.1 s
    assert result.window.background_training_share > 0.9


class MeteredCpu(CpuDevice):
    """The CPU device with an energy counter that a 100 W card would show (this machine has no NVML): the real
    jobs, the real monitor and the real window, with the one reading the machine lacks."""

    def reading(self) -> DeviceReading:
        return DeviceReading(power_w=100.0, energy_mj=100_000.0 * time.monotonic())


def test_a_window_under_one_second_of_energy_counter_is_unreliable_and_a_longer_one_has_its_energy(tmp_path, registry):
    short = run_pair(PairSpec(1, job(steps=12, step_s=0.02), None), registry, MeteredCpu(), FAST, tmp_path / "short")
    assert short.window.reliable and short.window.window_s < 1.0
    assert not short.window.energy_reliable and short.window.gpu_energy_j is None
    assert short.window.energy_note.startswith("unreliable:")
    long = run_pair(PairSpec(1, job(steps=40, step_s=0.05), None), registry, MeteredCpu(), FAST, tmp_path / "long")
    w = long.window
    assert w.energy_reliable and w.gpu_energy_j == pytest.approx(100.0 * w.energy_counter_s, rel=0.01)
    assert w.gpu_energy_per_foreground_sample_j == pytest.approx(w.gpu_energy_j / w.foreground_samples, rel=1e-4)
