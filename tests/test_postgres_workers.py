"""Several workers on one study in a real PostgreSQL server: every queued trial runs exactly once, and the
trial of a worker killed mid-trial is recovered (heartbeat) and run again by another worker.

Needs ``GPUPAIR_TEST_POSTGRES=postgresql://user:pass@127.0.0.1:PORT/db`` (CI: ``eval "$(bash .ci/postgres.sh)"``).
Each test uses its own study name, so the database can be reused.
"""

from __future__ import annotations

import collections
import functools
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import optuna
import psutil
import pytest
from optuna.trial import TrialState

from tests.conftest import CPU_CARD_ARGS, FIXTURES, cli_env, pids_alive, read_pids, wait_until

URL = os.environ.get("GPUPAIR_TEST_POSTGRES", "")
pytestmark = pytest.mark.skipif(
    not URL, reason='GPUPAIR_TEST_POSTGRES is not set (CI starts a server with `eval "$(bash .ci/postgres.sh)"`)'
)

WORKERS = 3
HEARTBEAT = {"GPUPAIR_HEARTBEAT_S": "1", "GPUPAIR_GRACE_S": "5"}  # a dead worker's trial is stale after 5 s


def study_settings(tmp_path: Path, seconds: float | None = None, extension: bool = True) -> tuple[str, Path]:
    """tests/fixtures/worker_settings.json under a study name of its own; every job writes its PID to a file.
    ``seconds``: foreground duration; ``extension=False``: without the pairs that need extension trials."""
    body = json.loads((FIXTURES / "worker_settings.json").read_text())
    name = f"workers_{uuid.uuid4().hex[:10]}"
    body["experiment_name"] = name
    if not extension:
        body["experiments"] = [e for e in body["experiments"] if "smaller batch" not in e["note"]]
    (tmp_path / "pids").mkdir()
    for n, experiment in enumerate(body["experiments"]):
        for role in ("foreground", "background"):
            experiment[role]["hyperparameters"]["pidfile"] = str(tmp_path / "pids" / f"{n}_{role}")
        if seconds is not None and experiment["foreground"]["model"] == "ok":
            experiment["foreground"]["hyperparameters"]["seconds"] = seconds
    path = tmp_path / "settings.json"
    path.write_text(json.dumps(body, indent=1))
    return name, path


def worker_argv(settings: Path, results: Path, storage: str = URL) -> list[str]:
    return [
        sys.executable,
        "-m",
        "gpupair_search.search.cli.app",
        "worker",
        "--storage",
        storage,
        "--settings",
        str(settings),
        *CPU_CARD_ARGS,
        "--full-epoch",
        "--results",
        str(results),
    ]


def enqueue(settings: Path, results: Path) -> int:
    """Queue the study's initial trials, as the first of several hosts would."""
    from gpupair_search.search.engine.session import open_study, resolve_inputs
    from gpupair_search.search.policy.planner import ExtensionOptions

    inputs = resolve_inputs(None, settings, FIXTURES / "models.json", FIXTURES, False, "400MiB", "250MiB")
    return open_study(inputs, URL, results, ExtensionOptions(), "cpu", probe=False).enqueue_initial()


@functools.cache
def storage():
    """One storage (one connection pool) for the test process."""
    from gpupair_search.search.engine.storage import open_storage

    return open_storage(URL)


def load(name: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=name + "-cpu", storage=storage()).get_trials()  # a CPU study has its own name


def config(t) -> tuple:
    params = t.params or t.system_attrs.get("fixed_params", {})
    return params.get("pair"), params.get("fg_batch_size"), params.get("bg_batch_size")


def measured(trials) -> collections.Counter:
    from gpupair_search.search.record.trial_record import is_measured

    return collections.Counter(config(t) for t in trials if is_measured(t.state, t.user_attrs))


def start_workers(settings: Path, tmp_path: Path, n: int = WORKERS, storage: str = URL) -> list[subprocess.Popen]:
    env = {**cli_env(), **HEARTBEAT}
    return [
        subprocess.Popen(
            worker_argv(settings, tmp_path / f"host{i}", storage),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(n)
    ]


def finish(workers: list[subprocess.Popen], timeout: float = 180) -> list[tuple[int, str]]:
    out = []
    for w in workers:
        try:
            text = w.communicate(timeout=timeout)[0]
        except subprocess.TimeoutExpired:
            w.kill()
            text = w.communicate()[0]
        out.append((w.returncode, text))
    return out


def assert_each_configuration_ran_once(trials) -> None:
    counts = measured(trials)
    assert counts and max(counts.values()) == 1, f"a configuration was measured twice: {counts}"
    queued = {config(t) for t in trials}
    assert queued == set(counts), f"queued but never measured: {queued - set(counts)}"
    assert not [t.number for t in trials if t.state in (TrialState.WAITING, TrialState.RUNNING)]


def all_pids(tmp_path: Path) -> list[int]:
    return [pid for f in (tmp_path / "pids").iterdir() for pid in read_pids(f)]


def test_three_concurrent_workers_run_every_queued_trial_exactly_once(tmp_path):
    name, settings = study_settings(tmp_path)
    assert enqueue(settings, tmp_path / "enqueuer") == 9
    started = time.monotonic()
    workers = start_workers(settings, tmp_path)
    ends = finish(workers)
    elapsed = time.monotonic() - started
    for code, text in ends:
        assert code == 0, text[-3000:]
    trials = load(name)
    assert_each_configuration_ran_once(trials)
    unmeasured = [t for t in trials if t.state is TrialState.FAIL and "outcome" not in t.user_attrs]
    assert all("skipped_duplicate_of" in t.user_attrs for t in unmeasured)  # nothing failed for lack of a runner
    by_worker = collections.Counter(t.system_attrs.get("gpupair:pid") for t in trials if "outcome" in t.user_attrs)
    assert set(by_worker) <= {w.pid for w in workers} and len(by_worker) >= 2, by_worker  # they did share the work
    assert any(t.user_attrs.get("phase") == "extension" for t in trials if "outcome" in t.user_attrs)
    assert len({config(t)[0] for t in trials}) == 9
    assert wait_until(lambda: not pids_alive(all_pids(tmp_path)), timeout=15)
    status = subprocess.run(
        [sys.executable, "-m", "gpupair_search.search.cli.app", "status", *worker_argv(settings, tmp_path)[4:12]],
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert status.returncode == 0 and "fits_reduced" in status.stdout, status.stderr  # any host can read it
    print(f"{WORKERS} workers, {sum(measured(trials).values())} trials measured in {elapsed:.0f} s")


def kill_mid_trial(name: str, victim: subprocess.Popen, tmp_path: Path):
    """SIGKILL ``victim`` while the foreground of one of its trials runs (a pair of 3 s foreground: the crash and
    quick pairs are too short to aim at), after making that trial look like another host's, so that only its
    stopped heartbeat can tell the other workers it is dead. Returns the trial and the pair's processes."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        running = [
            t
            for t in load(name)
            if t.state is TrialState.RUNNING
            and t.system_attrs.get("gpupair:pid") == victim.pid
            and "ok+fixture/ok" in config(t)[0]
        ]
        if not running:
            time.sleep(0.1)
            continue
        trial = running[0]
        group = int(config(trial)[0][1:3])
        foreground = tmp_path / "pids" / f"{group - 1}_foreground"
        if not wait_until(lambda foreground=foreground: read_pids(foreground), timeout=15, step=0.05):
            continue
        storage().set_trial_system_attr(trial._trial_id, "gpupair:host", "another-host.example")
        pair_processes = [p.pid for p in psutil.Process(victim.pid).children(recursive=True)]
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=30)
        return trial, pair_processes
    raise AssertionError("the victim never ran a trial of a long pair")


def test_a_worker_killed_mid_trial_has_its_trial_recovered_by_heartbeat_and_run_again(tmp_path):
    """The killed worker's trial is made to look like another host's (so no same-host PID check can help):
    only its stopped heartbeat tells the other workers it is dead."""
    name, settings = study_settings(tmp_path, seconds=3.0, extension=False)
    enqueue(settings, tmp_path / "enqueuer")
    workers = start_workers(settings, tmp_path)
    trial, pair_processes = kill_mid_trial(name, workers[0], tmp_path)
    killed_at = time.time()
    assert pair_processes and wait_until(lambda: not pids_alive(pair_processes), timeout=15), (
        f"the killed worker's pair outlived it: {pids_alive(pair_processes)}"
    )

    ends = finish(workers[1:], timeout=90)
    for code, text in ends:
        assert code == 0, text[-3000:]
    trials = load(name)
    dead = trials[trial.number]
    assert dead.state is TrialState.FAIL and "outcome" not in dead.user_attrs
    again = [t for t in trials if config(t) == config(dead) and "outcome" in t.user_attrs]
    assert len(again) == 1 and again[0].number > dead.number
    assert again[0].system_attrs.get("gpupair:pid") in {w.pid for w in workers[1:]}  # run by a surviving worker
    assert again[0].user_attrs.get("retry_of") == dead.number
    assert_each_configuration_ran_once(trials)
    assert wait_until(lambda: not pids_alive(all_pids(tmp_path)), timeout=15)
    print(
        f"the killed worker's trial {dead.number} ran again as trial {again[0].number}, "
        f"{again[0].datetime_start.timestamp() - killed_at:.1f} s after the kill"
    )


def test_workers_started_at_once_on_an_empty_database_all_start(tmp_path):
    """Several hosts starting on a fresh database race to create its tables, the study and its queue; none may
    fail for it, and the one queued pair runs once. (A schema of our own stands for the empty database: the
    test user may not create databases.)"""
    import sqlalchemy

    schema = f"fresh_{uuid.uuid4().hex[:10]}"
    engine = storage().engine
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text(f"CREATE SCHEMA {schema}"))
    try:
        url = f"{URL}{'&' if '?' in URL else '?'}options=-csearch_path%3D{schema}"
        body = json.loads((FIXTURES / "worker_settings.json").read_text())
        body["experiment_name"] = name = f"fresh_{uuid.uuid4().hex[:10]}"
        body["experiments"] = body["experiments"][:1]
        settings = tmp_path / "settings.json"
        settings.write_text(json.dumps(body))
        ends = finish(start_workers(settings, tmp_path, n=4, storage=url), timeout=120)
        for code, text in ends:
            assert code == 0, text[-3000:]
        with engine.begin() as conn:
            tables = conn.execute(
                sqlalchemy.text("SELECT count(*) FROM information_schema.tables WHERE table_schema = :s"), {"s": schema}
            ).scalar()
        assert tables > 5
        from gpupair_search.search.engine.storage import open_storage

        trials = optuna.load_study(study_name=name + "-cpu", storage=open_storage(url)).get_trials()
        assert list(measured(trials).values()) == [1]
        assert all("skipped_duplicate_of" in t.user_attrs for t in trials if "outcome" not in t.user_attrs)
    finally:
        with engine.begin() as conn:
            conn.execute(sqlalchemy.text(f"DROP SCHEMA {schema} CASCADE"))
