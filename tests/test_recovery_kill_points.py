"""No trial is lost: the runner is SIGKILLed at every step of a trial's start, and the next run of the same
command measures every pair exactly once, on SQLite and on PostgreSQL (real processes, CPU device).

The steps are the named points of ``gpupair_search.launcher.kill_points``: the trial queued, before and after
it is claimed, after each attribute the runner writes, before the pair, after each job starts, after the
measurement. Recovery must not depend on anything written after the claim: a trial killed right after it is
claimed has only its heartbeat (recorded before the claim) to be found by.

``GPUPAIR_KILL_POINT_REPEATS=N`` (CI sets 5) runs the whole set N times: each repetition is a test of its own
(``run1`` ... ``runN``), so ``pytest -n`` spreads them over its workers, and every kill point is hit N times
on each storage. A case costs 5.6 s
on average on the shared 2-core machine (36 cases in 202 s, load average 2.7; about 10 s before): the
background is the fixture's ``trains`` job, whose every run trains and ends at once, so the pair starts after
the background's first run instead of after a 2 s memory plateau, and a dead runner's trial is found after a
2 s grace. What is checked is the same. What is left of a case is the two runs' start-up, the grace wait
(steps before the pid is recorded), two trials, and the runner's final dashboard figures.
"""

from __future__ import annotations

import collections
import hashlib
import os
import subprocess
import uuid
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from tests.conftest import cli_env, pids_alive, read_pids, wait_until
from tests.test_faults import job, sqlite_url, study_cli, write_settings

KILL_POINTS = [
    "enqueued",
    "before_claim",
    "claimed",
    "host_recorded",
    "pid_recorded",
    "pair_ready",
    "background_started",
    "foreground_started",
    "measured",
]
POSTGRES = os.environ.get("GPUPAIR_TEST_POSTGRES", "")
STORAGES = [
    "sqlite",
    pytest.param(
        "postgres",
        marks=pytest.mark.skipif(
            not POSTGRES, reason="GPUPAIR_TEST_POSTGRES is not set (CI starts a server with .ci/postgres.sh)"
        ),
    ),
]
# short heartbeats, so that a trial whose runner died before recording its pid is found within seconds
FAST_HEARTBEAT = {"GPUPAIR_HEARTBEAT_S": "1", "GPUPAIR_GRACE_S": "2"}
REPEATS = int(os.environ.get("GPUPAIR_KILL_POINT_REPEATS", "1") or 1)


def two_pairs(work: Path, name: str) -> tuple[Path, Path]:
    pids = work / "pids"
    pids.mkdir(parents=True, exist_ok=True)
    small = {"batch_size": 8, "mib_per_sample": 2}
    return write_settings(
        work / "two_pairs.json",
        [
            (job("ok", pids / "g1", seconds=0.3, **small), job("trains", pids / "g1", **small), "first"),
            (job("ok", pids / "g2", seconds=0.3, **small), job("trains", pids / "g2", batch_size=4), "second"),
        ],
        name=name,
    ), pids


def recorded(pids: Path) -> list[int]:
    """Every job's process id, as the jobs recorded them."""
    return [pid for f in pids.iterdir() for pid in read_pids(f)]


def checksums(root: Path, skip: str) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != skip
    }


def measured_once_each(storage: str, name: str) -> collections.Counter:
    trials = optuna.load_study(study_name=name + "-cpu", storage=storage).get_trials()
    assert not [t.number for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    return collections.Counter(t.params["pair"] for t in trials if "outcome" in t.user_attrs)


@pytest.mark.parametrize("storage_kind", STORAGES)
@pytest.mark.parametrize("point", KILL_POINTS)
@pytest.mark.parametrize("repeat", [pytest.param(n, id=f"run{n + 1}") for n in range(REPEATS)])
def test_a_runner_killed_at_any_step_of_a_trials_start_loses_nothing(tmp_path, storage_kind, point, repeat):
    name = f"kill_{point}_{uuid.uuid4().hex[:8]}"
    settings, pids = two_pairs(tmp_path, name)
    storage = sqlite_url(tmp_path / "study.db") if storage_kind == "sqlite" else POSTGRES
    argv = study_cli("run", settings, tmp_path / "results", "--full-epoch", storage=storage)
    env = {**cli_env(), **FAST_HEARTBEAT}

    killed = subprocess.run(argv, env={**env, "GPUPAIR_KILL_AT": point}, capture_output=True, text=True, timeout=120)
    assert killed.returncode == -9, f"the runner did not reach {point!r}: {killed.stderr[-1500:]}"
    # The killed runner's jobs end within their guard's grace (GPUPAIR_GRACE_S), and may still write their logs
    # until then: what they wrote is theirs. What the next run must leave as it was is what is there after them.
    assert wait_until(lambda: not pids_alive(recorded(pids)), timeout=20), "the killed runner's jobs outlived it"
    written_before = checksums(tmp_path / "results", skip="gpupair.db")

    again = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=180)
    assert again.returncode == 0, again.stderr[-2000:]
    after = checksums(tmp_path / "results", skip="gpupair.db")
    assert {path: after.get(path) for path in written_before} == written_before  # what was written stays as it was
    from gpupair_search.search.engine.storage import open_storage

    assert measured_once_each(open_storage(storage), name) == {
        "g01:fixture/ok+fixture/trains": 1,
        "g02:fixture/ok+fixture/trains": 1,
    }
    assert pids_alive(recorded(pids)) == []
