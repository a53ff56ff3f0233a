"""Outputs never overwrite what the command reads.

``report -o`` or ``export -o`` pointed at the study's database, its settings file or its models file
would replace the very thing the numbers come from. So every output path is compared with the inputs
(by resolved path, and by inode where the file exists: a hard link or another spelling of the same file
counts) before anything is written; the write itself goes through a temporary file and a rename.
"""
from __future__ import annotations

import os
from pathlib import Path

from gpupair_search.launcher.errors import UserError


def refuse_overwriting(output: Path, inputs: dict[str, Path | None]) -> None:
    """Raise a :class:`UserError` when ``output`` is a directory or one of ``inputs`` (named by what it is)."""
    if output.is_dir():
        raise UserError(f"-o {output}: is a directory; name the file to write, e.g. -o {output / 'out.html'}")
    for what, path in inputs.items():
        if path is not None and _same_file(output, path):
            raise UserError(f"-o {output}: that is {what} ({path}), which this command reads; nothing was written. "
                            "Choose another output path")


def _same_file(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist: then they are not the same file
        return False
