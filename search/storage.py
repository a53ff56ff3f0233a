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
import warnings
from pathlib import Path

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
#: How long a SQLite writer waits for another's write lock before failing with "database is locked". Python's
#: default is 5 s; bench/storage_concurrency.py measured single waits of up to 3 s with 8-16 concurrent writers
#: on a loaded 2-core machine (BENCHMARKS.md), too close. Waiting is safe: every write is one short transaction.
SQLITE_BUSY_TIMEOUT_S = 60.0


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


_SCHEMES = ("sqlite:///", "postgresql://", "postgresql+psycopg://", "postgresql+psycopg2://", "mysql://",
            "mysql+pymysql://")


def check_storage_url(url: str, must_exist: bool = False) -> None:
    """Refuse a storage URL that would write nowhere, or somewhere the user did not mean, before it is opened:
    a plain path, an empty SQLite path, a SQLite file in a missing or read-only directory; with
    ``must_exist`` (reading a study), a SQLite file that is not there (SQLite would create an empty one)."""
    if not url.strip():
        raise StorageError("cannot open storage: --storage is empty; give an Optuna storage URL, e.g. sqlite:///results/gpupair.db "
                           "or postgresql://user@host/db (or leave it out: a SQLite file in --results)")
    if not url.startswith(_SCHEMES):
        hint = f" (a SQLite file: --storage sqlite:///{Path(url).resolve()})" if "://" not in url else ""
        raise StorageError(f"cannot open storage {redact_url(url)!r}: not a storage URL{hint}; it must start with one of "
                           + ", ".join(s.rstrip("/") for s in _SCHEMES[:2]))
    if not url.startswith("sqlite:///"):
        return
    path = sqlite_path(url)
    if path is None:
        raise StorageError(f"cannot open storage {url!r}: it names no file, so the study would be kept nowhere; give a file, e.g. "
                           "sqlite:///results/gpupair.db (an absolute path: sqlite:////abs/path.db)")
    if path.is_dir():
        raise StorageError(f"cannot open storage {url!r}: {path} is a directory; name a database file in it, e.g. "
                           f"sqlite:///{path / 'gpupair.db'}")
    if must_exist:
        if not path.is_file():
            raise StorageError(f"cannot open storage {url!r}: no database file at {path.resolve()}; point it at the file "
                               "the study ran with")
        return
    parent = path.resolve().parent
    if not parent.is_dir():
        raise StorageError(f"cannot open storage {url!r}: the directory {parent} does not exist; create it, or give a path "
                           "in an existing directory")
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise StorageError(f"cannot open storage {url!r}: {path.resolve() if path.exists() else parent} is not writable; "
                           "give a path you can write to")


def sqlite_path(url: str) -> Path | None:
    """The database file of a ``sqlite:///`` URL (None for any other storage)."""
    if not url.startswith("sqlite:///"):
        return None
    raw = url[len("sqlite:///"):].split("?", 1)[0]
    return Path(raw) if raw and raw != ":memory:" else None


def open_storage(url: str | BaseStorage, must_exist: bool = False) -> BaseStorage:
    """An RDB storage with heartbeats, so trials of a dead worker are found and run again."""
    if isinstance(url, BaseStorage):
        return url
    check_storage_url(url, must_exist)
    given, url = url, _with_postgres_driver(url)
    try:
        if url.startswith(("sqlite", "postgresql", "mysql")):
            with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna; said once, here
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return _rdb_storage(url)
        return optuna.storages.get_storage(url)
    except ImportError as exc:
        install = ("install PyMySQL (`pip install pymysql`) and write the URL as mysql+pymysql://..."
                   if given.startswith("mysql") else 'install it with `pip install "gpupair-search[postgres]"`')
        raise StorageError(f"cannot open storage {redact_url(given)}: it needs a database driver that is not installed"
                           f"{f' ({exc.name})' if exc.name else ''}; {install}") from None
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
            return RDBStorage(url, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S, engine_kwargs=_engine_kwargs(url))
        except sqlalchemy.exc.DatabaseError as exc:
            racing = isinstance(exc, sqlalchemy.exc.IntegrityError) or "already exists" in str(exc)
            if not racing or attempt == attempts - 1:
                raise
            time.sleep(0.2 + random.random() * 0.5)
    raise AssertionError("unreachable")


def _engine_kwargs(url: str) -> dict:
    """SQLite: a long busy timeout (a ``?timeout=`` in the URL is the user's own choice and wins); a server: check a
    pooled connection before use, so a worker survives the server closing idle ones."""
    if not url.startswith("sqlite"):
        return {"pool_pre_ping": True}
    return {} if "timeout=" in url.partition("?")[2] else {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S}}


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
