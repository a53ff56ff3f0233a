"""Several processes writing one study on one host never see "database is locked" (issue 15 item 6).

SQLite answers a writer that waits longer than its busy timeout for another's lock with "database is locked";
search/engine/storage.py sets that timeout to ``SQLITE_BUSY_TIMEOUT_S``. These tests hold a real write lock past
Python's default 5 s, and run K writer processes that each do what a trial does (bench/storage_concurrency.py).
"""

from __future__ import annotations

import sqlite3
import threading
import time

import optuna
import pytest

from bench.storage_concurrency import describe_failure, measure
from gpupair_search.search.engine.storage import SQLITE_BUSY_TIMEOUT_S, default_storage_url, open_storage, sqlite_path

HELD_S = 6.0  # longer than Python's default busy timeout (5 s), far shorter than ours


def _hold_write_lock(db: str, seconds: float, held: threading.Event) -> None:
    connection = sqlite3.connect(db, isolation_level=None)
    connection.execute("BEGIN IMMEDIATE")  # the write lock a committing writer takes
    held.set()
    time.sleep(seconds)
    connection.execute("ROLLBACK")
    connection.close()


def _write_while_locked(url: str, seconds: float) -> tuple[float, BaseException | None]:
    study = optuna.create_study(storage=open_storage(url), study_name="locked")
    held = threading.Event()
    holder = threading.Thread(target=_hold_write_lock, args=(str(sqlite_path(url)), seconds, held))
    holder.start()
    held.wait(10)
    started, failure = time.monotonic(), None
    try:
        study.set_user_attr("written", True)
    except Exception as exc:  # noqa: BLE001 - what the caller checks
        failure = exc
    waited = time.monotonic() - started
    holder.join()
    return waited, failure


def test_a_writer_waits_out_a_lock_held_longer_than_pythons_default_timeout(tmp_path):
    assert SQLITE_BUSY_TIMEOUT_S > 2 * HELD_S
    url = default_storage_url(tmp_path / "results")
    waited, failure = _write_while_locked(url, HELD_S)
    assert failure is None, describe_failure(failure)
    assert waited >= HELD_S - 0.5  # it waited for the lock, and then wrote
    assert optuna.load_study(study_name="locked", storage=open_storage(url)).user_attrs == {"written": True}


def test_a_short_timeout_is_what_makes_database_is_locked(tmp_path):
    url = default_storage_url(tmp_path / "results") + "?timeout=0.5"  # a user's own choice in the URL wins
    _, failure = _write_while_locked(url, 3.0)
    assert failure is not None and "database is locked" in describe_failure(failure)


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")  # fail_stale_trials
@pytest.mark.parametrize("mode", [pytest.param("processes", marks=pytest.mark.e2e), "threads"])
def test_eight_concurrent_writers_see_no_lock_error(tmp_path, mode):
    url = default_storage_url(tmp_path / "results")
    row = measure(url, k=8, mode=mode, seconds=3.0, trial_s=0.6, heartbeat_s=0.5)
    assert row["locked"] == 0 and row["errors"] == 0, row["error_kinds"]
    assert row["trials"] > 0 and row["ops"]["tell"]["n"] == row["trials"] and row["ops"]["record_heartbeat"]["n"] > 0
