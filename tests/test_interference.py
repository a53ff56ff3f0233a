"""Slowdowns, paired against sequential, and the flags that keep misleading pairs out of the figures."""

from __future__ import annotations

import pytest
from optuna.trial import TrialState

from gpupair_search.search.engine.interference import (
    CPU_STARVED,
    ENERGY_UNRELIABLE,
    MOSTLY_STARTING,
    NO_BASELINE,
    PACKED,
    Solo,
    attrs_for_trial,
    cpu_starvation,
    pair_interference,
    sequential,
)
from gpupair_search.search.record.trial_record import TrialView

FG = {"repo": "r", "model": "fg", "hyperparameters": {"batch_size": 8, "max_steps": 30}}
BG = {"repo": "r", "model": "bg", "hyperparameters": {"batch_size": 4, "lr": 0.1}}


def window(
    sps, energy_j=None, samples=None, bg_sps=None, bg_samples=None, share=None, fg_cpu=100.0, host=50.0, window_s=10.0
):
    return {
        "reliable": True,
        "window_s": window_s,
        "foreground_samples_per_second": sps,
        "foreground_samples": samples if samples is not None else sps * window_s,
        "background_samples_per_second": bg_sps,
        "background_samples": bg_samples,
        "background_training_share": share,
        "gpu_energy_j": energy_j,
        "energy_reliable": energy_j is not None,
        "energy_note": "" if energy_j is not None else "unreliable: 0.40 s of energy counter in the window",
        "gpu_energy_per_foreground_sample_j": energy_j / (sps * window_s) if energy_j else None,
        "foreground_cpu_pct": fg_cpu,
        "host_cpu_pct": host,
    }


def trial(number, phase, fg, bg, win, fg_batch=8, bg_batch=4, **attrs) -> TrialView:
    return TrialView.of(
        number,
        TrialState.COMPLETE,
        "g01:r/fg+r/bg" if bg else "solo",
        fg_batch,
        bg_batch if bg else None,
        True,
        {
            "phase": phase,
            "outcome": "ok",
            "peak_mib": 100.0,
            "foreground": fg,
            "background": bg,
            "window": win,
            "background_runs": 1,
            **attrs,
        },
    )


def baselines(fg_energy=100.0, bg_energy=200.0):
    return [
        trial(0, "baseline", FG, None, window(100.0, fg_energy)),  # 0.1 J per sample alone
        trial(1, "baseline", BG, None, window(50.0, bg_energy), fg_batch=4),
    ]  # 0.4 J per sample alone


def test_sequential_is_the_solo_time_and_energy_of_the_same_work():
    fg, bg = Solo("fg", 8, 0, 100.0, 0.1, 100.0), Solo("bg", 4, 1, 50.0, 0.4, 100.0)
    s = sequential(10.0, 800, 300, fg, bg, 150.0)  # 800 fg + 300 bg samples in 10 s, 150 J
    assert s.sequential_time_s == pytest.approx(800 / 100 + 300 / 50)  # 14 s one after the other
    assert s.time_ratio == pytest.approx(10 / 14)
    assert s.sequential_energy_j == pytest.approx(800 * 0.1 + 300 * 0.4)  # 200 J
    assert s.energy_ratio == pytest.approx(150 / 200)
    assert sequential(10.0, 800, 300, Solo("fg", 8, 0, 100.0, None, None), bg, 150.0).energy_ratio is None


def test_a_pair_gets_slowdowns_against_the_baselines_at_its_batch_sizes():
    pair = trial(2, "initial", FG, BG, window(80.0, 150.0, bg_sps=30.0, bg_samples=300, share=0.95, fg_cpu=95.0))
    [p] = pair_interference(baselines() + [pair])
    assert p.flags == () and p.usable
    assert p.foreground_slowdown == pytest.approx(100 / 80)
    assert p.background_slowdown == pytest.approx(50 / 30)
    assert p.energy_per_fg_sample_j == pytest.approx(150 / 800)
    assert p.sequential.time_ratio == pytest.approx(10 / (8 + 6))
    attrs = attrs_for_trial(p)
    assert attrs["foreground_slowdown"] == 1.25 and attrs["energy_ratio_vs_sequential"] == 0.75
    assert "foreground 1.25x slower" in attrs["summary"]


def test_a_baseline_at_another_batch_size_is_not_this_pairs_baseline():
    pair = trial(2, "extension", FG, BG, window(80.0, 150.0, bg_sps=30.0, bg_samples=300, share=0.95), bg_batch=2)
    [p] = pair_interference(baselines() + [pair])
    assert NO_BASELINE in p.flags and p.foreground_slowdown is None and "r/bg" in p.summary()


def test_a_background_mostly_starting_up_is_flagged_and_left_out():
    pair = trial(2, "initial", FG, BG, window(99.0, 150.0, bg_sps=3.0, bg_samples=30, share=0.12), background_runs=35)
    [p] = pair_interference(baselines() + [pair])
    assert MOSTLY_STARTING in p.flags and not p.usable
    assert p.foreground_slowdown is None and attrs_for_trial(p)["time_ratio_vs_sequential"] is None
    assert "trained in 12%" in p.summary() and "35 runs" in p.summary()


def test_a_packed_trial_has_no_energy_figure_and_a_short_window_no_energy():
    packed = trial(
        2,
        "initial",
        FG,
        BG,
        window(80.0, 150.0, bg_sps=30.0, bg_samples=300, share=1.0),
        measurement={"mode": "packed"},
    )
    short = trial(3, "initial", FG, BG, window(80.0, None, bg_sps=30.0, bg_samples=300, share=1.0))
    p, s = pair_interference(baselines() + [packed, short])
    assert p.flags == (PACKED,) and p.summary() == "no energy figure: packed (measured alongside other trials)"
    assert ENERGY_UNRELIABLE in s.flags and s.energy_per_fg_sample_j is None
    assert s.sequential.energy_ratio is None and s.foreground_slowdown == pytest.approx(1.25)
    assert "unreliable: 0.40 s" in s.summary()


def test_cpu_starvation_needs_both_less_cpu_and_a_slowdown_and_says_the_numbers():
    assert cpu_starvation(48.0, 99.0, 2.05, 100.0) == (
        "CPU-starved foreground: 48% CPU paired against 99% alone, host CPU 100%, 2.05x slower"
    )
    assert cpu_starvation(48.0, 99.0, 1.05, 100.0) is None  # less CPU, not slower: a GPU-bound job
    assert cpu_starvation(97.0, 99.0, 2.0, 100.0) is None  # slower, with its CPU: the GPU is shared
    starved = trial(2, "initial", FG, BG, window(40.0, 150.0, bg_sps=30.0, bg_samples=300, share=1.0, fg_cpu=45.0))
    [p] = pair_interference(baselines() + [starved])
    assert CPU_STARVED in p.flags and p.usable and "45% CPU paired against 100% alone" in p.summary()
