"""Interference figures from real processes: a truly CPU-heavy background pinned to the foreground's core starves
it, and the flag says so with the numbers; recorded through the real trial record, read back as trial views."""

from __future__ import annotations

import optuna
import pytest

from gpupair_search.launcher.devices.cpu import CpuDevice
from gpupair_search.launcher.outcome import Outcome
from gpupair_search.launcher.pair_runner import RunOptions, run_pair
from gpupair_search.launcher.registry import Registry
from gpupair_search.launcher.spec import JobConfig, PairSpec
from gpupair_search.search.engine.baselines import BASELINE_PHASE
from gpupair_search.search.engine.interference import (
    CPU_STARVED,
    STARVED_CPU_RATIO,
    STARVED_SLOWDOWN,
    pair_interference,
)
from gpupair_search.search.record.trial_record import record_result, view
from tests.conftest import FIXTURES

FAST = RunOptions(background_settle_s=0.3, background_min_run_s=1.0, grace_s=1.0)
CORE = sorted(__import__("os").sched_getaffinity(0))[0]


@pytest.fixture
def registry() -> Registry:
    return Registry.load(FIXTURES / "progress_models.json", base_dir=FIXTURES)


def spinner(steps: int, batch: int, helpers: int = 0) -> JobConfig:
    return JobConfig(
        "progress", "spinner", {"spin": 200_000, "steps": steps, "cpu": CORE, "batch_size": batch, "helpers": helpers}
    )


def measure(study: optuna.Study, tmp_path, registry, pair: PairSpec, phase: str):
    result = run_pair(pair, registry, CpuDevice(), FAST, tmp_path / f"pair{len(study.trials)}")
    assert result.outcome is Outcome.OK, result.error_message
    batches = {"fg_batch_size": registry.batch_size(pair.foreground)}
    if pair.background:
        batches["bg_batch_size"] = registry.batch_size(pair.background)
    study.enqueue_trial(batches)
    trial = study.ask({k: optuna.distributions.IntDistribution(1, 64) for k in batches})
    trial.set_user_attr("phase", phase)
    state, value = record_result(trial, result, safe_limit_mib=1e9)
    study.tell(trial, value, state=state)
    return result


def test_a_cpu_heavy_background_on_the_foregrounds_core_is_flagged_as_starving_it(tmp_path, registry):
    study = optuna.create_study()
    # three spinning processes on the foreground's core. Each job is its own session: where the kernel shares a
    # core between sessions (autogroup), the foreground keeps about half of it, whatever the background's number
    # of processes: about 2x slower on an idle host, less where the host's other load slowed it alone too
    fg, bg = spinner(60, 4), spinner(120, 2, helpers=2)
    measure(study, tmp_path, registry, PairSpec(1, fg, None), BASELINE_PHASE)
    measure(study, tmp_path, registry, PairSpec(1, bg, None), BASELINE_PHASE)
    measure(study, tmp_path, registry, PairSpec(1, fg, bg), "initial")
    views = [view(t) for t in study.trials]
    [pair] = pair_interference(views)
    assert pair.fg_solo is not None and pair.bg_solo is not None
    if pair.fg_solo.cpu_pct < 50.0:  # a spinner alone on its core gets most of it, unless the host is saturated
        pytest.skip(
            f"the host was too loaded to measure: the spinning foreground got {pair.fg_solo.cpu_pct:.0f}% "
            "of its core alone"
        )
    assert pair.fg_cpu_pct < STARVED_CPU_RATIO * pair.fg_solo.cpu_pct
    assert pair.foreground_slowdown is not None and pair.foreground_slowdown >= STARVED_SLOWDOWN
    assert CPU_STARVED in pair.flags
    assert f"{pair.fg_cpu_pct:.0f}% CPU paired against {pair.fg_solo.cpu_pct:.0f}% alone" in pair.summary()
    assert pair.background_training_share > 0.9 and pair.sequential is not None
