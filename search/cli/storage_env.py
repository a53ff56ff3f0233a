"""The private environment file that holds a storage URL (``GPUPAIR_STORAGE=postgresql://...``) and how it is read.

Used by ``slurm`` (which checks the file before it submits) and by :mod:`.with_storage` (which runs a command with
it on a node). The file must be readable by its owner alone: it holds the database password.
"""

from __future__ import annotations

import stat
from pathlib import Path

from gpupair_search.launcher.errors import Problem, UserError

STORAGE_VARIABLE = "GPUPAIR_STORAGE"


class StorageEnvError(UserError):
    pass


def check_private(path: Path) -> None:
    """Refuse a file that users other than its owner may read or change: it holds a password."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise StorageEnvError(
            Problem(
                str(path),
                "",
                f"cannot read it ({exc.strerror})",
                fix=(
                    "give the path of an existing file with a line GPUPAIR_STORAGE=postgresql://..."
                    " (on a shared file system, so that every node can read it)"
                ),
            ).render()
        ) from None
    if not stat.S_ISREG(mode):
        raise StorageEnvError(
            Problem(str(path), "", "is not a regular file", fix="give the path of the environment file itself").render()
        )
    if mode & 0o077:
        raise StorageEnvError(
            Problem(
                str(path),
                "",
                f"has mode {stat.S_IMODE(mode):04o}: other users could read the database password in it",
                expected="mode 0600 (or 0400): readable by its owner only",
                fix=f"chmod 600 {path}",
            ).render()
        )


def read_storage_env(path: Path) -> dict[str, str]:
    """The variables of an environment file (``KEY=VALUE`` lines, ``#`` comments, optional ``export`` and
    quotes), after :func:`check_private`; it must set ``GPUPAIR_STORAGE``."""
    check_private(path)
    values: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        key, sep, value = text.removeprefix("export ").partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key.isidentifier():
            raise StorageEnvError(
                Problem(
                    str(path),
                    f"line {number}",
                    "is not a KEY=VALUE line",
                    expected="GPUPAIR_STORAGE=postgresql://user:password@host:5432/db",
                ).render()
            )
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key] = value
    if not values.get(STORAGE_VARIABLE):
        raise StorageEnvError(
            Problem(
                str(path),
                "",
                f"sets no {STORAGE_VARIABLE}",
                expected=f"a line {STORAGE_VARIABLE}=postgresql://user:password@host:5432/db",
            ).render()
        )
    return values


def command_args(args: list[str], url: str) -> list[str]:
    """``gpupair-search`` arguments with the storage added; a ``--storage`` of their own would be ignored
    silently, so it is refused."""
    if not args:
        raise StorageEnvError("usage: python -m gpupair_search.search.cli.with_storage FILE COMMAND [OPTIONS...]")
    if any(a == "--storage" or a.startswith("--storage=") for a in args):
        raise StorageEnvError("--storage: the storage comes from the environment file; leave --storage out")
    return [*args, "--storage", url]
