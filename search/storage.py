"""Where a study lives: an embedded SQLite file in the results directory by default, any Optuna URL else.

Heartbeats: a running trial records one every ``HEARTBEAT_S`` seconds; a trial without one for ``GRACE_S``
seconds belongs to a dead worker (any host) and is failed and re-queued. Both can be set through the
environment (``GPUPAIR_HEARTBEAT_S``, ``GPUPAIR_GRACE_S``), e.g. shorter in tests.
"""
from __future__ import annotations

import importlib.util
import os
import random
import time
from pathlib import Path

import warnings

import optuna
from optuna.storages import BaseStorage, RDBStorage

from gpupair_search.launcher.errors import UserError
from gpupair_search.launcher.results import ensure_results_dir


def _env_seconds(name: str, default: int) -> int:
    try:
        value = int(os.environ.get(name, default))
    except ValueError:
        return default
    return value if value > 0 else default


HEARTBEAT_S = _env_seconds("GPUPAIR_HEARTBEAT_S", 10)
GRACE_S = max(_env_seconds("GPUPAIR_GRACE_S", 40), 2 * HEARTBEAT_S)


class StorageError(UserError):
    pass


def default_storage_path(results: Path) -> Path:
    """The embedded study database a results directory keeps."""
    return results / "gpupair.db"


def existing_storage_url(results: Path) -> str:
    """URL of the embedded database in ``results``, creating nothing (for reading a study)."""
    return f"sqlite:///{default_storage_path(results).resolve()}"


def default_storage_url(results: Path) -> str:
    """URL of the embedded database in ``results``, the directory created if needed (for running)."""
    ensure_results_dir(results)
    return existing_storage_url(results)


def open_storage(url: str | BaseStorage) -> BaseStorage:
    """An RDB storage with heartbeats, so trials of a dead worker are found and run again."""
    if isinstance(url, BaseStorage):
        return url
    given, url = url, _with_postgres_driver(url)
    try:
        if url.startswith(("sqlite", "postgresql", "mysql")):
            warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
            return _rdb_storage(url)
        return optuna.storages.get_storage(url)
    except ImportError as exc:
        raise StorageError(f"storage {redact_url(given)} needs a database driver that is not installed"
                           f"{f' ({exc.name})' if exc.name else ''}; for PostgreSQL "
                           'install it with `pip install "gpupair-search[postgres]"`') from None
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy raises many kinds; all mean "cannot open"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StorageError(f"cannot open storage {redact_url(given)}: {first}\n"
                           "  fix: check the URL, that the server is running and reachable, and the credentials") from None


def _rdb_storage(url: str, attempts: int = 5) -> RDBStorage:
    """Workers started at once on an empty database race to create its tables (duplicate table/type):
    the loser tries again, and then finds them."""
    import sqlalchemy.exc

    for attempt in range(attempts):
        try:
            return RDBStorage(url, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S,
                              engine_kwargs={"pool_pre_ping": True} if not url.startswith("sqlite") else None)
        except sqlalchemy.exc.DatabaseError as exc:
            racing = isinstance(exc, sqlalchemy.exc.IntegrityError) or "already exists" in str(exc)
            if not racing or attempt == attempts - 1:
                raise
            time.sleep(0.2 + random.random() * 0.5)
    raise AssertionError("unreachable")


def _with_postgres_driver(url: str) -> str:
    """``postgresql://`` means psycopg (v3) to SQLAlchemy 2.1, psycopg2 to older ones: use the one installed."""
    if not url.startswith("postgresql://"):
        return url
    for module, driver in (("psycopg", "psycopg"), ("psycopg2", "psycopg2")):
        if importlib.util.find_spec(module) is not None:
            return f"postgresql+{driver}://" + url[len("postgresql://"):]
    return url


def redact_url(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url
