"""The extension finds the largest feasible batch sizes within ceil(log2(N)) + 1 trials (simulated device)."""

from __future__ import annotations

import math
import statistics

import optuna
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gpupair_search.launcher.devices.simulated import SimulatedDevice
from gpupair_search.launcher.experiments import Experiment
from gpupair_search.launcher.spec import JobConfig, PairSpec
from gpupair_search.search.engine.executors import DeviceExecutor
from gpupair_search.search.engine.study import FeasibilityStudy, StudySettings
from gpupair_search.search.policy.batch_grid import BatchGrid
from gpupair_search.search.policy.extension import Policy, budget, reduction_path
from gpupair_search.search.policy.memory_model import Observation
from gpupair_search.search.policy.planner import DOES_NOT_FIT, FITS, FITS_REDUCED, ExtensionOptions

CARD, LIMIT = 8192.0, 7500.0


def memory_curve(fixed: float, slope: float, curvature: float, step: float):
    """A monotone memory function: fixed + slope*b + curvature*b^1.5, rounded up to allocator steps."""

    def peak(b: int) -> float:
        raw = fixed + slope * b + curvature * b**1.5
        return math.ceil(raw / step) * step if step else raw

    return peak


def run_extension(
    fg_curve, bg_curve, fg_bs, bg_bs, registry, policy=Policy.BACKGROUND_FIRST, profiles=None, grid=BatchGrid.ANY
):
    pair = PairSpec(
        1, JobConfig("fixture", "ok", {"batch_size": fg_bs}), JobConfig("fixture", "crash", {"batch_size": bg_bs})
    )
    curves = {"fixture/ok": fg_curve, "fixture/crash": bg_curve}
    device = SimulatedDevice(lambda job, b: curves[job.key](b), CARD, registry)
    fs = FeasibilityStudy.open(
        optuna.storages.InMemoryStorage(),
        StudySettings("t", CARD, LIMIT, ExtensionOptions(policy=policy, grid=grid)),
        Experiment(registry.file, "t", "", [pair]),
        registry,
        profiles,
    )
    fs.enqueue_initial()
    fs.run(DeviceExecutor(registry, device))
    [plan] = fs.plans()
    path = reduction_path(fg_bs, bg_bs, policy, grid=grid)
    # trials record peaks to 0.1 MiB, so the oracle judges the same rounded sum
    truth = next((c for c in [(fg_bs, bg_bs)] + path if round(fg_curve(c[0]) + bg_curve(c[1]), 1) <= LIMIT), None)
    return plan, path, truth


curves = st.builds(
    memory_curve,
    fixed=st.floats(300, 2500),
    slope=st.floats(0.5, 400),
    curvature=st.sampled_from([0.0, 0.0, 0.5, 3.0]),
    step=st.sampled_from([0.0, 2.0, 20.0]),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    fg=curves,
    bg=curves,
    fg_bs=st.integers(1, 96),
    bg_bs=st.integers(1, 96),
    policy=st.sampled_from(list(Policy)),
    grid=st.sampled_from(list(BatchGrid)),
)
def test_extension_finds_the_first_feasible_configuration_within_the_bound(
    fixture_registry, fg, bg, fg_bs, bg_bs, policy, grid
):
    plan, path, truth = run_extension(fg, bg, fg_bs, bg_bs, fixture_registry, policy, grid=grid)
    if truth == (fg_bs, bg_bs):
        assert plan.verdict == FITS and plan.extension_trials == 0
    elif truth is None:
        assert plan.verdict == DOES_NOT_FIT
    else:
        assert plan.verdict == FITS_REDUCED
        assert plan.recommended == truth
    assert plan.extension_trials <= budget(len(path)) == math.ceil(math.log2(len(path) + 1)) + 1 or not path


def test_linear_memory_needs_three_or_fewer_verification_trials_on_average(fixture_registry):
    """With shipped profiles (exact points on the line), the first guess is right: two trials to verify it."""
    import random

    rng = random.Random(7)
    spent_with, spent_without = [], []
    for _ in range(60):
        fg = memory_curve(rng.uniform(600, 1500), rng.uniform(20, 200), 0.0, 0.0)
        bg = memory_curve(rng.uniform(600, 1500), rng.uniform(20, 200), 0.0, 0.0)
        fg_bs, bg_bs = rng.randint(16, 64), rng.randint(16, 64)
        profiles = {
            "fixture/ok": [Observation(b, fg(b), source="profile") for b in (8, 16, 32)],
            "fixture/crash": [Observation(b, bg(b), source="profile") for b in (8, 16, 32)],
        }
        plan, path, truth = run_extension(fg, bg, fg_bs, bg_bs, fixture_registry, profiles=profiles)
        if plan.verdict == FITS_REDUCED:
            assert plan.recommended == truth
            spent_with.append(plan.extension_trials)
            plan2, _, _ = run_extension(fg, bg, fg_bs, bg_bs, fixture_registry)
            assert plan2.recommended == truth
            spent_without.append(plan2.extension_trials)
    assert len(spent_with) >= 20
    assert statistics.mean(spent_with) <= 3.0
    assert statistics.mean(spent_without) <= 4.0  # from the OOM's lower bounds alone


def test_an_allocator_step_the_model_cannot_see_costs_fewer_trials_than_single_steps(fixture_registry):
    """g07 on the H100: the background's memory jumps ~470 MiB between batch 123 and 124, so a line through
    the profiles keeps predicting the next batch size up fits. Once it has been wrong twice the same way, the
    search jumps past its guess instead of walking down one batch size at a time (which cost 5 trials)."""
    fg = memory_curve(4000.0, 0.0, 0.0, 0.0)
    bg = lambda b: 3028.0 - 19 * (123 - b) if b <= 123 else 3514.0 + 19 * (b - 124)  # noqa: E731
    profiles = {
        "fixture/ok": [Observation(b, fg(b), source="profile") for b in (1, 2, 4)],
        "fixture/crash": [Observation(b, bg(b), source="profile") for b in (8, 16, 32)],
    }
    plan, path, truth = run_extension(fg, bg, 2, 128, fixture_registry, profiles=profiles)
    assert plan.recommended == truth == (2, 123)
    tried = [v.bg_batch for v in plan.trials if v.phase == "extension"]
    assert tried == [123, 127, 126, 124]  # the model's 123, its two misses, then a jump over 125
    assert all(v.record.queued.predicted_peak_mib <= LIMIT for v in plan.trials if v.phase == "extension")
