"""Run a ``gpupair-search`` command with its storage URL read from a private environment file.

A PostgreSQL URL holds the database password. On a command line it is readable by every user of the node
(``ps``, ``/proc/PID/cmdline``), and in a job script by anyone who can read the script or ``scontrol show
job``. So ``slurm`` writes neither: each array task runs

    python -m gpupair_search.search.cli.with_storage FILE worker --settings ...

which reads ``GPUPAIR_STORAGE=postgresql://user:password@host/db`` from FILE (mode 0600: the owner alone
may read it) and runs the command in this process, the URL passed to it in memory. Any other
``KEY=VALUE`` line of FILE (``PGSSLMODE=require``, ...) goes into the command's environment.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from gpupair_search.launcher.errors import UserError
from gpupair_search.launcher.masking import mask_secrets, remember_secrets
from gpupair_search.search.cli.app import app, guard_output_streams
from gpupair_search.search.cli.storage_env import STORAGE_VARIABLE, StorageEnvError, command_args, read_storage_env


def _terminate_as_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt  # scancel's SIGTERM: the worker marks its trial interrupted, like Ctrl-C


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    try:
        if not argv:
            raise StorageEnvError("usage: python -m gpupair_search.search.cli.with_storage FILE COMMAND [OPTIONS...]")
        values = read_storage_env(Path(argv[0]))
        args = command_args(argv[1:], values.pop(STORAGE_VARIABLE))
    except UserError as exc:
        print(f"error: {mask_secrets(exc.render())}", file=sys.stderr)
        sys.exit(exc.exit_code)
    os.environ.update(values)
    remember_secrets(args[-1])
    for key, value in values.items():
        remember_secrets(f"{key}={value}")
    signal.signal(signal.SIGTERM, _terminate_as_interrupt)
    guard_output_streams()
    app(args=args, prog_name="gpupair-search")


if __name__ == "__main__":
    main()
