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


#: Kernel file systems: what is written there is no file kept, and may change the running system.
VIRTUAL_ROOTS = (Path("/proc"), Path("/sys"), Path("/dev"))
NAME_MAX = 255  # bytes in one path component (Linux, macOS)
PATH_MAX = 4095  # bytes in a whole path (Linux's 4096 with its NUL)


class OutputPathError(UserError):
    pass


def check_output_path(output: Path | str, flag: str, example: str = "out.html", directory: bool = False) -> None:
    """The one guard for every path the tool writes (``-o``, ``--results``, a SQLite ``--storage``): refuse,
    before anything is written, a path that cannot be a file of ours. A directory where a file is to be
    written (or a file where a directory is), a path below an existing file, a kernel file system (/proc,
    /sys, /dev), a name longer than the file system takes, a place the user cannot write. ``flag`` names the
    option in the message; ``example`` is a file name to suggest."""
    text = str(output)
    want = "a directory" if directory else "a file"
    if not text.strip():
        raise OutputPathError(f"{flag}: is empty; name {want} to write, e.g. {flag} {example}")
    if "\0" in text:
        raise OutputPathError(f"{flag}: contains a NUL character, which no path can hold")
    path = Path(os.path.abspath(text))
    if len(os.fsencode(str(path))) > PATH_MAX or any(len(os.fsencode(part)) > NAME_MAX for part in path.parts):
        raise OutputPathError(
            f"{flag} {_short(text)}: the path is longer than the file system allows (a name of at "
            f"most {NAME_MAX} bytes, a path of at most {PATH_MAX}); choose a shorter one"
        )
    real = path.resolve()
    for root in VIRTUAL_ROOTS:
        if real == root or real.is_relative_to(root):
            raise OutputPathError(
                f"{flag} {text}: {root} is the kernel's, not a disk: nothing written there is "
                f"kept; choose a path on a disk, e.g. {flag} {example}"
            )
    if not directory and (path.is_dir() or text.endswith(os.sep)):
        raise OutputPathError(f"{flag} {text}: is a directory; name the file to write, e.g. {flag} {path / example}")
    if directory and path.exists() and not path.is_dir():
        raise OutputPathError(
            f"{flag} {text}: exists and is not a directory; name a directory (it is created if needed)"
        )
    ancestor = path if directory and path.exists() else path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise OutputPathError(
            f"{flag} {text}: {ancestor} is a file, so nothing can be created below it; choose a "
            f"path in a directory, e.g. {flag} {ancestor.parent / example}"
        )
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise OutputPathError(f"{flag} {text}: {ancestor} is not writable by you; choose a path you can write to")


def _short(text: str, keep: int = 60) -> str:
    return text if len(text) <= keep else f"{text[:keep]}... ({len(text)} characters)"


def refuse_overwriting(
    output: Path,
    inputs: dict[str, Path | None],
    results_dirs: dict[str, Path | None] | None = None,
    example: str = "out.html",
) -> None:
    """Raise a :class:`UserError` when ``output`` cannot be written (:func:`check_output_path`), is one of
    ``inputs`` (named by what it is), or an existing file inside one of ``results_dirs``. ``example``: a file
    name to suggest for a directory."""
    check_output_path(output, "-o", example)
    for what, path in inputs.items():
        if path is not None and _same_file(output, path):
            raise UserError(
                f"-o {output}: that is {what} ({path}), which this command reads; nothing was written. "
                "Choose another output path"
            )
    for what, folder in (results_dirs or {}).items():
        if folder is not None and output.exists() and output.resolve().is_relative_to(folder.resolve()):
            raise UserError(
                f"-o {output}: that file is inside {what} ({folder}) and holds what a study recorded; "
                "nothing was written. Choose a new file name or another folder"
            )


def database_files(db: Path) -> dict[str, Path]:
    """A SQLite database and the files beside it that belong to it."""
    return {
        "the study's storage": db,
        **{f"the study's storage ({suffix[1:]} file)": db.with_name(db.name + suffix) for suffix in SQLITE_SIDE_FILES},
    }


def _same_file(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist: then they are not the same file
        return False
