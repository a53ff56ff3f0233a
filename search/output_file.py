"""Outputs never overwrite what the command reads, nor anything a study measured.

``report -o`` or ``export -o`` pointed at the study's database, its settings file or a models file would
replace the very thing the numbers come from; pointed at a trial's ``training.log``, an ``experiment.json``,
``summary.csv`` or a stored artifact, it would replace a measurement. So before anything is written, every
output path is compared with the inputs (by resolved path, and by inode where the file exists: a hard link
or another spelling of the same file counts), and an output that already exists inside a folder of results
is refused. A new file there (``-o results/report.html``) is fine: it replaces nothing. The write itself goes
through a temporary file and a rename.
"""
from __future__ import annotations

import os
from pathlib import Path

from gpupair_search.launcher.errors import UserError

#: SQLite keeps a study's latest writes beside its database until a checkpoint: they are the database too.
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


def refuse_overwriting(output: Path, inputs: dict[str, Path | None],
                       results_dirs: dict[str, Path | None] | None = None, example: str = "out.html") -> None:
    """Raise a :class:`UserError` when ``output`` is a directory, one of ``inputs`` (named by what it is), or
    an existing file inside one of ``results_dirs``. ``example``: a file name to suggest for a directory."""
    if output.is_dir():
        raise UserError(f"-o {output}: is a directory; name the file to write, e.g. -o {output / example}")
    for what, path in inputs.items():
        if path is not None and _same_file(output, path):
            raise UserError(f"-o {output}: that is {what} ({path}), which this command reads; nothing was written. "
                            "Choose another output path")
    for what, folder in (results_dirs or {}).items():
        if folder is not None and output.exists() and output.resolve().is_relative_to(folder.resolve()):
            raise UserError(f"-o {output}: that file is inside {what} ({folder}) and holds what a study recorded; "
                            "nothing was written. Choose a new file name or another folder")


def database_files(db: Path) -> dict[str, Path]:
    """A SQLite database and the files beside it that belong to it."""
    return {"the study's storage": db, **{f"the study's storage ({suffix[1:]} file)": db.with_name(db.name + suffix)
                                          for suffix in SQLITE_SIDE_FILES}}


def _same_file(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist: then they are not the same file
        return False
