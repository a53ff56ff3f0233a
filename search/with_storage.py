"""Run a ``gpupair-search`` command with its storage URL read from a private environment file.

A PostgreSQL URL holds the database password. On a command line it is readable by every user of the node
(``ps``, ``/proc/PID/cmdline``), and in a job script by anyone who can read the script or ``scontrol show
job``. So ``slurm`` writes neither: each array task runs

    python -m gpupair_search.search.with_storage FILE worker --settings ...

which reads ``GPUPAIR_STORAGE=postgresql://user:password@host/db`` from FILE (mode 0600: the owner alone
may read it) and runs the command in this process, the URL passed to it in memory. Any other
``KEY=VALUE`` line of FILE (``PGSSLMODE=require``, ...) goes into the command's environment.
"""

from __future__ import annotations

import os
import signal
import stat
import sys
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
        raise StorageEnvError("usage: python -m gpupair_search.search.with_storage FILE COMMAND [OPTIONS...]")
    if any(a == "--storage" or a.startswith("--storage=") for a in args):
        raise StorageEnvError("--storage: the storage comes from the environment file; leave --storage out")
    return [*args, "--storage", url]


def _terminate_as_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt  # scancel's SIGTERM: the worker marks its trial interrupted, like Ctrl-C


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    try:
        if not argv:
            raise StorageEnvError("usage: python -m gpupair_search.search.with_storage FILE COMMAND [OPTIONS...]")
        values = read_storage_env(Path(argv[0]))
        args = command_args(argv[1:], values.pop(STORAGE_VARIABLE))
    except UserError as exc:
        from gpupair_search.launcher.masking import mask_secrets

        print(f"error: {mask_secrets(exc.render())}", file=sys.stderr)
        sys.exit(exc.exit_code)
    os.environ.update(values)
    from gpupair_search.launcher.masking import remember_secrets
    from gpupair_search.search.cli import app, guard_output_streams

    remember_secrets(args[-1])
    for key, value in values.items():
        remember_secrets(f"{key}={value}")
    signal.signal(signal.SIGTERM, _terminate_as_interrupt)
    guard_output_streams()
    app(args=args, prog_name="gpupair-search")


if __name__ == "__main__":
    main()
