"""Accumulation plans: by default a reduced batch divides the configured one, so micro-batch × accumulation steps is
exactly the batch the user configured; ``--batch-grid any`` keeps the unit search (and its overshooting ceil).
Pure functions for the paths and the arithmetic, the simulated device for the study, the real CLI for run/export."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import optuna
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from gpupair_search.launcher.errors import UserError
from gpupair_search.search.policy.batch_grid import BatchGrid, batch_grid
from gpupair_search.search.policy.extension import POLICIES, Policy, budget, reduction_path, search, state_from
from gpupair_search.search.policy.memory_model import Observation
from gpupair_search.search.policy.planner import DOES_NOT_FIT, FITS_REDUCED
from gpupair_search.search.views.export import accumulation, accumulation_words
from tests.conftest import run_cli
from tests.test_extension_search import memory_curve, run_extension

DIVISORS, ANY = BatchGrid.DIVISORS, BatchGrid.ANY


# -- the candidates ----------------------------------------------------------------------------------------
def test_divisor_candidates_are_the_divisors_below_the_configured_batch_down_to_the_floor():
    assert DIVISORS.candidates(128, floor=1) == [64, 32, 16, 8, 4, 2, 1]
    assert DIVISORS.candidates(128, floor=8) == [64, 32, 16, 8]
    assert DIVISORS.candidates(24, floor=1) == [12, 8, 6, 4, 3, 2, 1]
    assert DIVISORS.candidates(7, floor=1) == [1] and DIVISORS.candidates(7, floor=2) == []  # a prime: few
    assert DIVISORS.candidates(1, floor=1) == []
    assert ANY.candidates(5, floor=2) == [4, 3, 2]


def test_background_first_on_divisors_halves_the_background_then_the_foreground():
    assert reduction_path(2, 128, Policy.BACKGROUND_FIRST, grid=DIVISORS) == [
        (2, 64),
        (2, 32),
        (2, 16),
        (2, 8),
        (2, 4),
        (2, 2),
        (2, 1),
        (1, 1),
    ]
    assert reduction_path(12, 8, Policy.FOREGROUND_FIRST, grid=DIVISORS) == [
        (6, 8),
        (4, 8),
        (3, 8),
        (2, 8),
        (1, 8),
        (1, 4),
        (1, 2),
        (1, 1),
    ]
    assert reduction_path(None, 96, Policy.BACKGROUND_FIRST, floor=8, grid=DIVISORS) == [
        (None, 48),
        (None, 32),
        (None, 24),
        (None, 16),
        (None, 12),
        (None, 8),
    ]
    assert reduction_path(7, 1, Policy.BACKGROUND_FIRST, floor=2, grid=DIVISORS) == []  # nothing to reduce to


@given(fg=st.integers(1, 200), bg=st.integers(1, 200), floor=st.integers(1, 8), name=st.sampled_from(sorted(POLICIES)))
def test_every_policy_on_divisors_walks_a_shrinking_chain_of_divisors(fg, bg, floor, name):
    policy = POLICIES[name]
    path = DIVISORS.restrict(policy.path((fg, bg), floor), (fg, bg), floor)
    previous = (fg, bg)
    for config in path:
        for before, b in zip((fg, bg), config):
            assert before % b == 0 and (b >= floor or b == before)
        assert all(b <= p for b, p in zip(config, previous)) and config != previous  # each step shrinks
        previous = config
    assert len(path) == len(set(path))


@given(fg=st.integers(1, 150), bg=st.integers(1, 150), floor=st.integers(1, 4))
def test_batch_grid_any_reproduces_the_unit_path(fg, bg, floor):
    assume(fg >= floor and bg >= floor)
    every_size = [(fg, b) for b in range(bg - 1, floor - 1, -1)] + [(f, floor) for f in range(fg - 1, floor - 1, -1)]
    assert reduction_path(fg, bg, Policy.BACKGROUND_FIRST, floor, grid=ANY) == every_size
    for policy in POLICIES.values():  # any policy's own unit steps pass through untouched
        unit = policy.path((fg, bg), floor)
        assert ANY.restrict(unit, (fg, bg), floor) == unit


def test_an_unknown_grid_is_one_clear_error():
    with pytest.raises(UserError, match=r"--batch-grid 'odd': expected one of divisors, any"):
        batch_grid("odd")


# -- the arithmetic --------------------------------------------------------------------------------------
@given(configured=st.integers(1, 4096), floor=st.integers(1, 16))
def test_divisor_accumulation_is_exact_and_any_accumulation_is_the_ceiling(configured, floor):
    for micro in DIVISORS.candidates(configured, floor):
        assert micro * DIVISORS.accumulation_steps(configured, micro) == configured
    for micro in ANY.candidates(configured, floor)[:50]:
        steps = ANY.accumulation_steps(configured, micro)
        assert steps == math.ceil(configured / micro) and micro * steps >= configured


def test_accumulation_of_a_reduced_recommendation_per_job_and_in_words():
    assert accumulation((2, 128), (2, 64), DIVISORS) == {"foreground": 1, "background": 2}
    assert accumulation_words((2, 128), (2, 64), DIVISORS) == [
        "background batch 64 ×2 accumulation steps = 128 as configured"
    ]
    assert accumulation_words((12, 128), (3, 16), DIVISORS) == [
        "foreground batch 3 ×4 accumulation steps = 12 as configured",
        "background batch 16 ×8 accumulation steps = 128 as configured",
    ]
    assert accumulation((2, 128), (2, 123), ANY) == {"foreground": 1, "background": 2}  # as export always wrote
    assert accumulation_words((2, 128), (2, 123), ANY) == ["background ×2 (effective batch 246, was 128)"]
    assert accumulation((2, 128), (2, 128), DIVISORS) == {} and accumulation((None, 8), (None, 4), DIVISORS) == {
        "background": 2
    }


# -- the search --------------------------------------------------------------------------------------------
def g07_background(b: int) -> float:
    """g07's VulBERTa/cnn on the H100: memory jumps ~470 MiB between batch 123 and 124 (an allocator step)."""
    return 3028.0 - 19 * (123 - b) if b <= 123 else 3514.0 + 19 * (b - 124)


def test_the_g07_case_needs_one_trial_on_divisors_where_the_unit_search_needed_four(fixture_registry):
    """With the shipped profiles' line, which misses the step: the unit search walked 123, 127, 126, 124."""
    fg = memory_curve(4000.0, 0.0, 0.0, 0.0)
    profiles = {
        "fixture/ok": [Observation(b, fg(b), source="profile") for b in (1, 2, 4)],
        "fixture/crash": [Observation(b, g07_background(b), source="profile") for b in (8, 16, 32)],
    }
    unit, _, _ = run_extension(fg, g07_background, 2, 128, fixture_registry, profiles=profiles, grid=ANY)
    exact, path, truth = run_extension(fg, g07_background, 2, 128, fixture_registry, profiles=profiles, grid=DIVISORS)
    assert unit.recommended == (2, 123) and unit.extension_trials == 4
    assert exact.recommended == truth == (2, 64) and exact.extension_trials == 1
    assert exact.path == path and exact.extension_budget == budget(len(path)) == math.ceil(math.log2(9)) + 1


@pytest.mark.parametrize("grid", list(BatchGrid))
@pytest.mark.parametrize("name", sorted(POLICIES))
def test_no_trial_is_spent_on_a_candidate_that_cannot_change_the_recommendation(fixture_registry, grid, name):
    """Every extension trial tests a position strictly between the last known infeasible one and the first known
    feasible one (anything else is already decided by monotone memory), and the search stops as soon as none is
    left untested there."""
    import random

    rng = random.Random(3)
    for _ in range(12):
        fg = memory_curve(rng.uniform(600, 3000), rng.uniform(5, 150), rng.choice([0.0, 2.0]), rng.choice([0.0, 20.0]))
        bg = memory_curve(rng.uniform(600, 3000), rng.uniform(5, 150), rng.choice([0.0, 2.0]), rng.choice([0.0, 20.0]))
        plan, _, _ = run_extension(fg, bg, rng.randint(8, 96), rng.randint(8, 96), fixture_registry, name, grid=grid)
        path = plan.path
        index = {config: i + 1 for i, config in enumerate(path)}
        known: dict[int, bool] = {}
        for trial in sorted((v for v in plan.trials if v.phase == "extension"), key=lambda v: v.number):
            state = state_from(len(path), known, len(known))
            assert state.low <= index[trial.config] < state.high
            known[index[trial.config]] = bool(trial.feasible)
        if plan.verdict in (FITS_REDUCED, DOES_NOT_FIT):
            final = state_from(len(path), known, len(known))
            assert final.low >= final.high  # nothing undecided is left


def test_the_baselines_walk_the_same_divisor_path():
    fits = lambda c: c[1] <= 40  # noqa: E731
    for name in ("doubling-bisection", "backoff-0.9"):
        trials, found = search(POLICIES[name], (2, 128), 1, fits, DIVISORS)
        assert found == (2, 32) and trials <= 8


# -- the CLI: run, export, and a study's grid fixed at creation -------------------------------------------------
G07_OVER_THE_LIMIT = ["--study", "feasibility", "--device", "sim", "--safe-limit", "7400MiB"]  # g07 peaks at 7,457


def _g07_row(stdout: str) -> list[str]:
    """g07's verdict-table cells, up to its trial count (the "measured" column after it left off)."""
    row = next(line for line in stdout.splitlines() if line.startswith("7 "))
    return row.split()[:-1]


@pytest.fixture(scope="session")  # one build per run: its tests share one xdist worker (conftest.py)
def sim_runs(tmp_path_factory) -> dict[str, Path]:
    """The 12-group study on the simulated device with a limit g07 misses by 57 MiB, once per grid."""
    root = tmp_path_factory.mktemp("grids")
    out = {}
    for grid in ("divisors", "any"):
        results = root / grid
        done = run_cli("run", *G07_OVER_THE_LIMIT, "--batch-grid", grid, "--results", str(results))
        assert done.returncode == 0, done.stderr
        (results / "stdout.txt").write_text(done.stdout)
        out[grid] = results
    return out


def test_a_g07_like_pair_costs_fewer_trials_on_divisors_and_keeps_the_configured_batch(sim_runs):
    exact = _g07_row((sim_runs["divisors"] / "stdout.txt").read_text())
    unit = _g07_row((sim_runs["any"] / "stdout.txt").read_text())
    assert exact[-4:-1] == ["2/128", "->", "2/64"] and unit[-4:-1] == ["2/128", "->", "2/123"]
    assert int(exact[-1]) < int(unit[-1])  # trials, the initial one included


def test_export_writes_the_exact_accumulation_steps(sim_runs, tmp_path):
    out = tmp_path / "safe.json"
    done = run_cli("export", "--study", "feasibility", "--results", str(sim_runs["divisors"]), "-o", str(out))
    assert done.returncode == 0, done.stderr
    g07 = next(e for e in json.loads(out.read_text())["experiments"] if "(g07 " in e["note"])
    assert g07["background"]["hyperparameters"]["batch_size"] == 64
    assert g07["gradient_accumulation"] == {"foreground": 1, "background": 2}
    assert "background batch 64 ×2 accumulation steps = 128 as configured" in g07["note"]

    unit = tmp_path / "unit.json"
    done = run_cli("export", "--study", "feasibility", "--results", str(sim_runs["any"]), "-o", str(unit))
    assert done.returncode == 0, done.stderr
    g07 = next(e for e in json.loads(unit.read_text())["experiments"] if "(g07 " in e["note"])
    assert g07["gradient_accumulation"] == {"foreground": 1, "background": 2}
    assert "background ×2 (effective batch 246, was 128)" in g07["note"]  # any: the ceiling overshoots, and says so


def test_a_study_stored_without_a_grid_reads_as_the_unit_search_it_ran(sim_runs, tmp_path):
    """A study from before --batch-grid: rerunning it with the new default is refused with the difference named;
    with --batch-grid any it resumes (nothing left to run)."""
    import shutil

    from gpupair_search.search.engine.fixed_definition import DEFINITION_KEY

    results = tmp_path / "results"
    shutil.copytree(sim_runs["any"], results)
    url = f"sqlite:///{results / 'gpupair.db'}"
    [summary] = optuna.get_all_study_summaries(url)
    study = optuna.load_study(study_name=summary.study_name, storage=url)
    old = {k: v for k, v in study.user_attrs[DEFINITION_KEY].items() if k != "batch_grid"}
    study.set_user_attr(DEFINITION_KEY, old)

    refused = run_cli("run", *G07_OVER_THE_LIMIT, "--results", str(results))
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert "batch_grid: stored 'any', now 'divisors'" in refused.stderr
    resumed = run_cli("run", *G07_OVER_THE_LIMIT, "--batch-grid", "any", "--results", str(results))
    assert resumed.returncode == 0, resumed.stderr
    assert _g07_row(resumed.stdout)[-4:-1] == ["2/128", "->", "2/123"]
    status = run_cli("export", "--study", "feasibility", "--results", str(results), "-o", str(tmp_path / "e.json"))
    assert status.returncode == 0 and "effective batch 246" in (tmp_path / "e.json").read_text()


def test_workers_and_slurm_tasks_are_given_the_grid():
    from gpupair_search.search.cli.run_study import RunRequest

    argv = RunRequest(batch_grid="any").worker_options("cuda:0")
    assert argv[argv.index("--batch-grid") + 1] == "any"
    assert re.search(r"--batch-grid divisors", " ".join(RunRequest().worker_options("cuda:1")))
    script = run_cli(
        "slurm",
        "--study",
        "feasibility",
        "--storage",
        "postgresql://gpupair@db.example/gpupair",
        "--device",
        "cpu",
        "--batch-grid",
        "any",
        "--dry-run",
        timeout=120,
    )
    assert script.returncode == 0, script.stderr
    assert " worker " in script.stdout.splitlines()[-1] and "--batch-grid any" in script.stdout.splitlines()[-1]


def test_the_report_says_the_same_steps(sim_runs, tmp_path):
    out = tmp_path / "report.html"
    done = run_cli("report", "--study", "feasibility", "--results", str(sim_runs["divisors"]), "-o", str(out))
    assert done.returncode == 0, done.stderr
    words = "background batch 64 \u00d72 accumulation steps = 128 as configured"  # escaped or not, by plotly's writer
    assert any(w in out.read_text() for w in (words, words.replace("\u00d7", "\\u00d7")))
