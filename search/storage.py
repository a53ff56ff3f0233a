"""Where a study lives: an embedded SQLite file in the results directory by default, any Optuna URL else."""
from __future__ import annotations

from pathlib import Path

import warnings

import optuna
from optuna.storages import BaseStorage, RDBStorage

from launcher.errors import UserError

HEARTBEAT_S = 10
GRACE_S = 40


class StorageError(UserError):
    pass


def default_storage_url(results: Path) -> str:
    results.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(results / 'gpupair.db').resolve()}"


def open_storage(url: str | BaseStorage) -> BaseStorage:
    """An RDB storage with heartbeats, so trials of a dead worker are found and run again."""
    if isinstance(url, BaseStorage):
        return url
    try:
        if url.startswith(("sqlite", "postgresql", "mysql")):
            warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
            return RDBStorage(url, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S,
                              engine_kwargs={"pool_pre_ping": True} if not url.startswith("sqlite") else None)
        return optuna.storages.get_storage(url)
    except ImportError as exc:
        raise StorageError(f"storage {url!r} needs a driver that is not installed ({exc.name}); for PostgreSQL "
                           'install it with `pip install "gpupair-search[postgres]"`') from None
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy raises many kinds; all mean "cannot open"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StorageError(f"cannot open storage {_redact(url)}: {first}\n"
                           "  fix: check the URL, that the server is running and reachable, and the credentials") from None


def _redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url
