"""A lab's own repository (tests/fixtures/user_repo: train.sh execs an argparse trainer with a DataLoader and
worker processes, epochs of 100,000 batches, an evaluation pass after each) gets the same memory probe as a
built-in, on the CPU device: bounded steps, through its evaluation, ended by itself, labelled as such."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from gpupair_search.launcher.devices.cpu import CpuDevice
from gpupair_search.launcher.outcome import Outcome
from gpupair_search.launcher.pair_runner import RunOptions, run_pair
from gpupair_search.launcher.probe_events import (
    BOUNDED,
    EVAL_NOT_REACHED,
    EVAL_REACHED,
    FULL_EPOCH,
    PLATEAU,
    ProbeEvents,
)
from gpupair_search.launcher.registry import Registry
from gpupair_search.launcher.results import new_pair_dir, new_run_dir, write_pair_results
from gpupair_search.launcher.spec import JobConfig, PairSpec
from tests.conftest import FIXTURES, run_cli

USER_REPO = FIXTURES / "user_repo"
PROBE = RunOptions(probe=True, timeout_s=600, grace_s=1.0)
#: the evaluation-heavy job's full epoch, short enough for CI (its default epoch is 100,000 batches)
SHORT_EPOCH = {"train_batches": 600, "epochs": 1}
pytestmark = pytest.mark.slow


@pytest.fixture
def lab(monkeypatch) -> Registry:
    monkeypatch.setenv("PYTHON", sys.executable)  # train.sh runs "${PYTHON:-python3}" trainer.py
    return Registry.load(USER_REPO / "models.json", base_dir=USER_REPO)


def job(model: str, **hp) -> JobConfig:
    return JobConfig("lab", model, hp)


def run(
    tmp_path: Path, registry: Registry, fg: JobConfig, bg: JobConfig | None, options: RunOptions = PROBE, device=None
):
    pair = PairSpec(1, fg, bg)
    pair_dir = new_pair_dir(new_run_dir(tmp_path / "results"), pair)
    started = time.monotonic()
    result = run_pair(pair, registry, device or CpuDevice(), options, pair_dir)
    write_pair_results(result, pair_dir)
    return result, time.monotonic() - started


def events(result, name: str = "foreground") -> ProbeEvents:
    return ProbeEvents(result.result_dir / "probe_events" / f"{name}.events").poll()


def test_a_user_job_with_a_long_epoch_is_probed_in_bounded_steps_through_its_evaluation(tmp_path, lab):
    result, wall = run(tmp_path, lab, job("evalheavy"), None)
    assert result.outcome is Outcome.OK
    assert result.foreground.hyperparameters["epochs"] == 1  # the models file declares epochs: one is enough
    assert result.probe["foreground"] == {"rule": BOUNDED, "evaluation": EVAL_REACHED}
    assert result.probe_label == "probe: bounded steps"
    seen = events(result)
    assert seen.bounded and seen.eval_started and seen.eval_ended
    assert result.foreground_exit_code == 0  # it ended by itself: 30 of its epoch's 100,000 batches, evaluated
    log = (result.result_dir / "training.log").read_text()
    assert "1 epochs of 100000 batches" in log and "[SUCCESS] Training completed" in log
    assert wall < 180  # the epoch itself: minutes (bench/probe_vs_full.py measures the full one)
    record = json.loads((result.result_dir / "experiment.json").read_text())
    assert record["probe"]["foreground"]["evaluation"] == EVAL_REACHED
    assert record["foreground"]["probe"] == "probe: bounded steps"
    assert record["time"]["outside_jobs_s"] == result.outside_jobs_s < 10


@pytest.mark.parametrize("workers", [0, 2])
def test_the_evaluation_heavy_jobs_probe_peak_is_not_below_its_full_epoch_peak(tmp_path, lab, workers):
    """Its evaluation holds 256 MiB more than training, after every training step: a plateau of the first
    minute misses it, the bounded probe does not. Without DataLoader workers the peaks agree within 2%, the
    probe's target (host RSS also grows by about 1% over a longer run: the allocator's heap). With them, on the CPU device, each worker also holds its own copies of the trainer's pages
    that the trainer wrote to since the fork (copy on write): host memory that grows with how long the workers
    live, so the full epoch's peak is a few per cent higher, and only the evaluation's cache is compared there.
    On a GPU the workers hold no device memory (bench/probe_vs_full.py)."""
    hp = {**SHORT_EPOCH, "workers": workers}
    probed, _ = run(tmp_path, lab, job("evalheavy", **hp), None)
    full, _ = run(tmp_path, lab, job("evalheavy", **hp), None, RunOptions(timeout_s=600, grace_s=1.0))
    assert probed.outcome is Outcome.OK and full.outcome is Outcome.OK
    assert probed.probe["foreground"] == {"rule": BOUNDED, "evaluation": EVAL_REACHED}
    assert full.probe["foreground"] == {"rule": FULL_EPOCH, "evaluation": "ran to its end"}
    if workers == 0:
        assert probed.memory.foreground_peak_mib >= 0.98 * full.memory.foreground_peak_mib
    training_only = max(
        s.job_mib.get("foreground", 0.0)
        for s in full.samples
        if s.t < full.samples[-1].t - 0.6 * (full.samples[-1].t - full.samples[0].t)
    )
    assert probed.memory.foreground_peak_mib > training_only + 200  # the evaluation's cache is in the probe's peak


def test_a_job_the_probe_cannot_bound_gets_the_plateau_rule_and_says_evaluation_was_not_reached(tmp_path, lab):
    result, _ = run(
        tmp_path,
        lab,
        job("evalheavy", loader="own", workers=0),
        None,
        RunOptions(probe=True, timeout_s=600, grace_s=1.0, probe_plateau_s=3.0),
    )
    assert result.outcome is Outcome.OK
    assert result.probe["foreground"]["rule"] == PLATEAU
    assert result.probe["foreground"]["evaluation"] == EVAL_NOT_REACHED
    assert result.probe_label == "probe: plateau, evaluation not reached"
    assert any(w.startswith("probe: plateau:") and "--full-epoch" in w for w in result.warnings)
    record = json.loads((result.result_dir / "experiment.json").read_text())
    assert record["probe"]["foreground"]["evaluation"] == EVAL_NOT_REACHED
    crashed, _ = run(tmp_path, lab, job("crash", loader="own", workers=0), None, RunOptions(probe=True, grace_s=1.0))
    assert crashed.outcome is Outcome.CRASH_FOREGROUND  # it ended by itself: no plateau stopped it
    assert crashed.probe_label == "probe: unbounded run, evaluation not reached"


def test_user_pairs_get_verdicts_a_crash_is_a_crash_and_a_job_without_progress_lines_is_still_bounded(tmp_path, lab):
    crashed, _ = run(tmp_path, lab, job("crash"), job("mlp"))
    assert crashed.outcome is Outcome.CRASH_FOREGROUND and crashed.foreground_exit_code == 1
    assert "loss went NaN" in crashed.error_message
    assert crashed.phase_seconds["background_finish"] < 1.0  # the verdict is known: no wait for the background
    silent, _ = run(tmp_path, lab, job("silent"), job("mlp"))
    assert silent.outcome is Outcome.OK
    assert (silent.result_dir / "training.log").read_text().strip() == ""  # nothing printed at all
    assert silent.probe["foreground"] == {"rule": BOUNDED, "evaluation": EVAL_REACHED}
    assert silent.probe["background"]["rule"] == BOUNDED
    assert silent.phase_seconds["background_ready"] < 60  # ready at its first training step, no timeout
    assert silent.background_ready_by == "a training step"


def test_a_background_whose_memory_is_flat_before_its_first_step_is_ready_at_that_step(tmp_path, lab):
    """Its model is on the device, then it sets up for 4 s (loading data, importing a library) with its memory
    flat, well past the 1 s settling rule: that is not its training memory. Its probe hook reports its steps, so
    the foreground starts at its first one."""
    options = RunOptions(probe=True, timeout_s=600, grace_s=1.0, background_settle_s=1.0)
    bg = job("mlp", setup_s=4.0, workers=0)
    result, _ = run(tmp_path, lab, job("mlp", workers=0), bg, options)
    assert result.outcome is Outcome.OK
    assert result.background_ready_by == "a training step"
    assert result.phase_seconds["background_ready"] >= 4.0
    assert events(result, "background_run_1").reports_steps


def test_a_pair_over_the_budget_is_out_of_memory(tmp_path, lab):
    """Together about 1,800 MiB of host memory against 1,500. The background runs whole epochs, so it is
    training while the foreground evaluates (a probed background's short runs restart, and a restart can fall
    in the foreground's peak)."""
    full_epochs = RunOptions(probe=False, timeout_s=600, grace_s=1.0)
    fg = job("evalheavy", **SHORT_EPOCH)
    result, _ = run(tmp_path, lab, fg, job("mlp"), full_epochs, CpuDevice(budget_mib=1500))
    assert result.outcome is Outcome.OVER_BUDGET and result.outcome.is_oom


def test_a_short_background_that_loops_is_ready_after_its_first_run(tmp_path, lab):
    """No progress lines, no probe (full epochs), memory not yet settled by the rule's 60 s: a run that ended
    normally shows its whole memory, so the foreground starts then, not at the 120 s timeout."""
    short = job("silent", train_batches=5, eval_batches=2, epochs=1, workers=0)
    options = RunOptions(timeout_s=600, grace_s=1.0, background_settle_s=60.0, background_ready_timeout_s=120.0)
    result, _ = run(tmp_path, lab, job("mlp", train_batches=5, eval_batches=2, epochs=1, workers=0), short, options)
    assert result.outcome is Outcome.OK
    first_run = json.loads((result.result_dir / "experiment.json").read_text())["background"]["runs"] >= 1
    assert first_run and result.phase_seconds["background_ready"] < 60
    assert result.background_ready_by == "a run ended normally"
    assert result.probe["background"]["rule"] == FULL_EPOCH
    assert result.outside_jobs_s < 10


def test_the_cli_says_how_a_user_pair_was_probed(tmp_path, lab):
    """With --results relative, as its default is: the jobs run in their own repository, and still report."""
    done = run_cli(
        "pair",
        "--fg",
        "lab/mlp",
        "--bg",
        "lab/silent",
        "--device",
        "cpu",
        "--probe",
        "--models",
        str(USER_REPO / "models.json"),
        "--repos-root",
        str(USER_REPO),
        "--results",
        "results",
        timeout=600,
        env={"PYTHON": sys.executable},
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "outcome: ok" in done.stdout
    assert "measured: probe: bounded steps; time outside the jobs" in done.stdout


def test_a_job_that_stops_asking_for_batches_is_stopped_as_hung_not_at_the_timeout(tmp_path, lab):
    """After 20 steps it waits for something that never comes, memory flat: the stall rule stops it after
    probe_stall_s (3 s here) with that reason, where it waited for --timeout before."""
    options = RunOptions(probe=True, timeout_s=600, grace_s=1.0, probe_stall_s=3.0)
    result, wall = run(tmp_path, lab, job("hang", workers=0), None, options)
    assert result.outcome is Outcome.TIMEOUT and wall < 120
    assert "asked its DataLoader for no batch for" in result.error_message and "stopped as hung" in result.error_message
    assert result.probe["foreground"]["evaluation"] == EVAL_NOT_REACHED


def test_a_user_job_run_as_a_module_is_bounded_by_the_hook_as_a_script_is(tmp_path, lab):
    """``train_module``: the same trainer as ``python -m trainer``. It starts as a fresh process, so the hook is
    there: bounded steps through its evaluation, not the plateau rule."""
    result, wall = run(tmp_path, lab, JobConfig("labmod", "evalheavy", {}), None)
    assert result.outcome is Outcome.OK and result.job_start["foreground"] == "cold"
    assert result.probe["foreground"] == {"rule": BOUNDED, "evaluation": EVAL_REACHED}
    assert wall < 180  # 30 of its epoch's 100,000 batches
