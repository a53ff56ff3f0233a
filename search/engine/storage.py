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
from contextlib import closing
from pathlib import Path

import optuna
from optuna.storages import BaseStorage, RDBStorage

from gpupair_search.launcher.errors import UserError
from gpupair_search.launcher.masking import mask_secrets, remember_secrets
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


_SCHEMES = (
    "sqlite:///",
    "postgresql://",
    "postgresql+psycopg://",
    "postgresql+psycopg2://",
    "mysql://",
    "mysql+pymysql://",
)


def check_storage_url(url: str, must_exist: bool = False) -> None:
    """Refuse a storage URL that would write nowhere, or somewhere the user did not mean, before it is opened:
    a plain path, an empty SQLite path, a SQLite file in a missing or read-only directory; with
    ``must_exist`` (reading a study), a SQLite file that is not there (SQLite would create an empty one)."""
    if not url.strip():
        raise StorageError(
            "cannot open storage: --storage is empty; give an Optuna storage URL, e.g. sqlite:///results/gpupair.db "
            "or postgresql://user@host/db (or leave it out: a SQLite file in --results)"
        )
    shown = redact_url(url)
    if url.startswith("sqlite:") and not url.startswith("sqlite:///"):
        rest = url[len("sqlite:") :].lstrip("/")
        raise StorageError(
            f"cannot open storage {shown!r}: a SQLite URL has three slashes before a relative path "
            f"and four before an absolute one; did you mean sqlite:///{rest} (that is, "
            f"{Path(rest).resolve()})?"
        )
    if not url.startswith(_SCHEMES):
        if "://" in url:
            hint = ""
        elif "=" in url:
            hint = " (a libpq keyword/value string: write it as a URL, postgresql://user@host:5432/db)"
        else:
            hint = f" (a SQLite file: --storage sqlite:///{Path(url).resolve()})"
        raise StorageError(
            f"cannot open storage {shown!r}: not a storage URL{hint}; it must start with one of "
            + ", ".join(s for s in _SCHEMES[:2])
        )
    if not url.startswith("sqlite:///"):
        return
    path = sqlite_path(url)
    if path is None:
        raise StorageError(
            f"cannot open storage {shown!r}: it names no file, so the study would be kept nowhere; give a file, e.g. "
            "sqlite:///results/gpupair.db (an absolute path: sqlite:////abs/path.db)"
        )
    if path.is_dir():
        raise StorageError(
            f"cannot open storage {shown!r}: {path} is a directory; name a database file in it, e.g. "
            f"sqlite:///{path / 'gpupair.db'}"
        )
    if must_exist:
        if not path.is_file():
            raise StorageError(
                f"cannot open storage {shown!r}: no database file at {path.resolve()}; point it at the file "
                "the study ran with"
            )
        return
    from gpupair_search.search.engine.output_file import check_output_path

    check_output_path(path, f"--storage {shown}", example="gpupair.db")
    parent = path.resolve().parent
    if not parent.is_dir():
        raise StorageError(
            f"cannot open storage {shown!r}: the directory {parent} does not exist; create it, or give a path "
            "in an existing directory"
        )
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise StorageError(
            f"cannot open storage {shown!r}: {path.resolve() if path.exists() else parent} is not writable; "
            "give a path you can write to"
        )


#: The first 16 bytes of every SQLite 3 database file.
SQLITE_HEADER = b"SQLite format 3\x00"


def optuna_tables() -> frozenset[str]:
    """The tables Optuna's RDB storage keeps (its models, and Alembic's version table)."""
    from optuna.storages._rdb import models

    return frozenset(models.BaseModel.metadata.tables) | {"alembic_version"}


def refuse_foreign_database(url: str) -> None:
    """Stop before Optuna creates its tables in a database that holds another tool's: Optuna's storage adds a
    dozen tables to whatever database it is given. Refused: a file that is not a SQLite database, and any
    database with a table that is not Optuna's. An empty or missing database is ours to create."""
    shown = redact_url(url)
    path = sqlite_path(url)
    if path is not None:
        tables = _sqlite_tables(path, shown)
    elif url.startswith(("postgresql", "mysql")):
        tables = _server_tables(url)
    else:
        return
    foreign = sorted(set(tables) - optuna_tables())
    if foreign:
        listed = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise StorageError(
            f"cannot open storage {shown}: the database holds tables that are not a study's ({listed}), "
            "so it belongs to another program; nothing was written to it.\n"
            "  fix: give a database of its own for the study, e.g. --storage sqlite:///results/gpupair.db "
            "(or leave --storage out)"
        )


def _sqlite_tables(path: Path, shown: str) -> list[str]:
    import sqlite3

    try:
        with path.open("rb") as fh:
            header = fh.read(len(SQLITE_HEADER))
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise StorageError(f"cannot open storage {shown}: cannot read {path} ({exc.strerror})") from None
    if not header:
        return []  # an empty file: SQLite makes it a new database
    if header != SQLITE_HEADER:
        raise StorageError(
            f"cannot open storage {shown}: {path} is not a SQLite database (it is some other file), "
            "so the study cannot be kept in it; nothing was written to it.\n"
            "  fix: name a new file, e.g. --storage sqlite:///results/gpupair.db"
        )
    try:
        with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as db:
            return [
                row[0]
                for row in db.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
                )
            ]
    except sqlite3.DatabaseError as exc:
        raise StorageError(
            f"cannot open storage {shown}: {path} cannot be read as a SQLite database ({exc}); "
            "nothing was written to it"
        ) from None


def _server_tables(url: str) -> list[str]:
    """The tables of a database server's default schema, read through a short-lived connection."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(_with_postgres_driver(url))
    try:
        return sqlalchemy.inspect(engine).get_table_names()
    finally:
        engine.dispose()


def sqlite_path(url: str) -> Path | None:
    """The database file of a ``sqlite:///`` URL (None for any other storage)."""
    if not url.startswith("sqlite:///"):
        return None
    raw = url[len("sqlite:///") :].split("?", 1)[0]
    return Path(raw) if raw and raw != ":memory:" else None


def open_storage(url: str | BaseStorage, must_exist: bool = False) -> BaseStorage:
    """An RDB storage with heartbeats, so trials of a dead worker are found and run again."""
    if isinstance(url, BaseStorage):
        return url
    check_storage_url(url, must_exist)
    remember_secrets(url)
    given, url = url, _with_postgres_driver(url)
    try:
        if url.startswith(("sqlite", "postgresql", "mysql")):
            refuse_foreign_database(given)
            with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna; said once, here
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return _rdb_storage(url)
        return optuna.storages.get_storage(url)
    except StorageError:
        raise
    except ImportError as exc:
        install = (
            "install PyMySQL (`pip install pymysql`) and write the URL as mysql+pymysql://..."
            if given.startswith("mysql")
            else 'install it with `pip install "gpupair-search[postgres]"`'
        )
        raise StorageError(
            f"cannot open storage {redact_url(given)}: it needs a database driver that is not installed"
            f"{f' ({exc.name})' if exc.name else ''}; {install}"
        ) from None
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy raises many kinds; all mean "cannot open"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StorageError(
            f"cannot open storage {redact_url(given)}: {redact_url(first)}\n"
            "  fix: check the URL, that the server is running and reachable, and the credentials"
        ) from None


def _rdb_storage(url: str, attempts: int = 5) -> RDBStorage:
    """Workers started at once on an empty database race to create its tables (duplicate table/type):
    the loser tries again, and then finds them."""
    import sqlalchemy.exc

    for attempt in range(attempts):
        try:
            return RDBStorage(
                url, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S, engine_kwargs=_engine_kwargs(url)
            )
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
            return f"postgresql+{driver}://" + url[len("postgresql://") :]
    return url


def redact_url(url: str) -> str:
    """A storage URL (or any text holding one) as it may be shown: every password masked (launcher/masking.py)."""
    return mask_secrets(url)
