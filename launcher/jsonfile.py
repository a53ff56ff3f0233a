"""Read a JSON file into Python data, or fail with a ConfigError that names the file and the line."""

from __future__ import annotations

import errno
import json
import os
import re
import reprlib
import stat
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpupair_search.launcher.errors import ConfigError, Problem
from gpupair_search.launcher.printable import escape_char, printable

_MAX_DIGITS = 4000  # below Python's int-from-string limit (4300), far above any real setting


class _Repeated(dict):
    """A JSON object in which some key appeared more than once (json would keep only the last)."""

    repeated: dict[str, tuple[Any, ...]] = {}  # key -> every value it was given, in file order


class _HugeNumber(Exception):
    def __init__(self, digits: str) -> None:
        super().__init__(digits)
        self.digits = digits


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    data = dict(pairs)
    if len(data) == len(pairs):
        return data
    obj = _Repeated(pairs)
    counts = Counter(key for key, _ in pairs)
    obj.repeated = {key: tuple(v for k, v in pairs if k == key) for key, count in counts.items() if count > 1}
    return obj


def _int(digits: str) -> int:
    if len(digits) > _MAX_DIGITS:
        raise _HugeNumber(digits)
    return int(digits)


_SURROGATE = re.compile("[\ud800-\udfff]")


def _surrogate(text: str) -> str:
    """The first unpaired surrogate in ``text`` (a ``\\ud800``-style escape that is no character), or ""."""
    found = _SURROGATE.search(text)
    return found.group() if found else ""


_PLAIN_KEY = re.compile(r"[^\s.\[\]\"'\\]+")


def json_path(parent: str, key: str | int) -> str:
    """``experiments`` + 0 -> ``experiments[0]``; ``experiments[0]`` + ``repo`` -> ``experiments[0].repo``.

    A key that would make the path ambiguous or invisible (empty, spaces, dots, brackets, quotes) is quoted:
    ``hyperparameters["learning rate"]``.
    """
    if isinstance(key, int):
        return f"{parent}[{key}]"
    if not _PLAIN_KEY.fullmatch(key) or _surrogate(key):
        quoted = _SURROGATE.sub(lambda found: f"\\u{ord(found.group()):04x}", json.dumps(key, ensure_ascii=False))
        return f"{parent}[{quoted}]"
    return f"{parent}.{key}" if parent else key


def _place_problems(file: str, data: Any) -> tuple[list[Problem], list[Duplicate]]:
    """Strings that are not text (problems), and keys given twice in one object (json keeps the last), with
    their paths; iterative, so any depth is fine."""
    problems: list[Problem] = []
    duplicates: list[Duplicate] = []
    stack: list[tuple[str, Any]] = [("", data)]
    while stack:
        at, value = stack.pop()
        if isinstance(value, dict):
            if isinstance(value, _Repeated):
                duplicates += [Duplicate(json_path(at, key), key, values) for key, values in value.repeated.items()]
            stack += [(json_path(at, k), v) for k, v in reversed(value.items())]
            problems += [
                Problem(
                    file,
                    json_path(at, k),
                    f"the key contains {_surrogate(k)!a}, an unpaired surrogate escape that is not a character",
                    fix="remove the \\u escape",
                )
                for k in value
                if _surrogate(k)
            ]
        elif isinstance(value, list):
            stack += [(json_path(at, i), v) for i, v in reversed(list(enumerate(value)))]
        elif isinstance(value, str) and _surrogate(value):
            problems.append(
                Problem(
                    file,
                    at,
                    f"contains {_surrogate(value)!a}, an unpaired surrogate escape that is not a character",
                    fix="remove the \\u escape",
                )
            )
    return problems, duplicates


def _line_column(text: str, index: int) -> str:
    line = text.count("\n", 0, index) + 1
    return f"line {line} column {index - (text.rfind(chr(10), 0, index) + 1) + 1}"


MAX_INPUT_BYTES = 16 * 2**20  # far above any real settings or models file; a cap so no input can exhaust memory


def read_text(path: Path, what: str, limit: int = MAX_INPUT_BYTES) -> str:
    """The UTF-8 text of ``path``, read only if it is a regular file of at most ``limit`` bytes.

    Opened non-blocking and checked with ``fstat`` before reading, so a FIFO, a device such as /dev/zero or a
    directory is a clear error, never a block or an endless read.
    """
    file = str(path)

    def unreadable(message: str, fix: str, expected: str = "") -> ConfigError:
        return ConfigError([Problem(file, "", message, expected=expected, fix=fix)], unreadable=True)

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise unreadable(f"{what} not found", "check the path") from None
    except IsADirectoryError:
        raise unreadable(f"is a directory, not a {what}", "give the path of the JSON file") from None
    except OSError as exc:
        fix = (
            "the path is a loop of symbolic links: point it at the file itself"
            if exc.errno == errno.ELOOP
            else "check the file's permissions"
        )
        raise unreadable(f"cannot read {what}: {exc.strerror or exc}", fix) from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        if stat.S_ISDIR(mode):
            raise unreadable(f"is a directory, not a {what}", "give the path of the JSON file")
        raise unreadable(
            f"is not a regular file (a {_file_kind(mode)}), so it is not read",
            f"give the path of the {what} itself",
            expected=f"a {what} saved on disk",
        )
    with os.fdopen(fd, "rb") as fh:
        try:
            raw = fh.read(limit + 1)
        except OSError as exc:
            raise unreadable(f"cannot read {what}: {exc.strerror or exc}", "check the file's permissions") from None
    if len(raw) > limit:
        raise unreadable(
            f"{what} is larger than {limit // 2**20} MiB, far beyond any real {what}",
            f"give the right file (a {what} is a few KiB)",
        )
    encoding = _wide_encoding(raw)
    if encoding:
        raise unreadable(
            f"{what} is {encoding}, not UTF-8 (as some Windows editors and PowerShell's `>` save it)",
            f"re-save the file as UTF-8 (e.g. iconv -f {encoding.split()[0]} -t UTF-8)",
            expected="a JSON file saved as UTF-8",
        )
    try:
        return raw.decode("utf-8-sig")  # a BOM (Windows editors) is not a mistake
    except UnicodeDecodeError as exc:
        raise unreadable(
            f"{what} is not UTF-8 text (byte {exc.start}: {exc.reason})",
            "re-save the file as UTF-8",
            expected="a JSON file saved as UTF-8",
        ) from None


_WIDE_BOMS = (
    (b"\xff\xfe\x00\x00", "UTF-32LE"),
    (b"\x00\x00\xfe\xff", "UTF-32BE"),
    (b"\xff\xfe", "UTF-16LE"),
    (b"\xfe\xff", "UTF-16BE"),
)


def _wide_encoding(raw: bytes) -> str:
    """The UTF-16 or UTF-32 encoding ``raw`` is in ("" for none): by its byte order mark, or without one by its
    zero bytes (ASCII text in UTF-16 has a zero in every other byte, which UTF-8 JSON never has)."""
    for bom, name in _WIDE_BOMS:
        if raw.startswith(bom):
            return f"{name} text (with a byte order mark)"
    sample = raw[:4096]
    if len(sample) < 4 or sample.count(0) < len(sample) // 4:
        return ""
    even, odd = sample[0::2].count(0), sample[1::2].count(0)
    if min(even, odd) == 0 and max(even, odd) >= len(sample) // 4:
        return f"UTF-16{'LE' if odd else 'BE'} text (without a byte order mark: every other byte is zero)"
    return "UTF-32 text, or another encoding of wide characters (a quarter of its bytes are zero)"


def _file_kind(mode: int) -> str:
    kinds = (
        (stat.S_ISFIFO, "named pipe"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
        (stat.S_ISSOCK, "socket"),
    )
    return next((name for test, name in kinds if test(mode)), "special file")


@dataclass(frozen=True)
class Duplicate:
    """A key given more than once in one JSON object: where, and every value it was given, in file order."""

    where: str
    key: str
    values: tuple[Any, ...]

    @property
    def equal(self) -> bool:
        first = json.dumps(self.values[0], sort_keys=True)
        return all(json.dumps(v, sort_keys=True) == first for v in self.values[1:])

    def occurrences(self) -> str:
        """``"epochs" twice: 1, then 2 (JSON keeps the last)``: both values named, for messages."""
        count = {2: "twice", 3: "three times"}.get(len(self.values), f"{len(self.values)} times")
        values = ", then ".join(show(v) for v in self.values)
        return f"given {count} in the same object: {values}"


def read_json_with_duplicates(path: Path, what: str) -> tuple[Any, list[Duplicate]]:
    """Load ``path`` like :func:`read_json`, but return repeated keys instead of failing on them: the caller
    decides which are mistakes. The data holds the last value of each (what ``json`` and the seed's runner use)."""
    file = str(path)
    text = read_text(path, what)
    if not text.strip():
        raise ConfigError([Problem(file, "", f"{what} is empty", expected="a JSON object")], unreadable=True)
    try:
        data = json.loads(text, object_pairs_hook=_object, parse_int=_int)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            [
                Problem(
                    file,
                    f"line {exc.lineno} column {exc.colno}",
                    f"not valid JSON: {exc.msg}",
                    fix="fix the JSON syntax (a JSON linter shows the spot)",
                )
            ],
            unreadable=True,
        ) from None
    except _HugeNumber as exc:
        raise ConfigError(
            [
                Problem(
                    file,
                    _line_column(text, max(text.find(exc.digits), 0)),
                    f"a number with {len(exc.digits)} digits",
                    expected="a number of sensible size",
                    fix="fix the number",
                )
            ],
            unreadable=True,
        ) from None
    except RecursionError:
        raise ConfigError(
            [Problem(file, "", f"{what} is nested too deeply to read", expected="a JSON object a few levels deep")],
            unreadable=True,
        ) from None
    problems, duplicates = _place_problems(file, data)
    if problems:
        raise ConfigError(problems)
    return data, duplicates


def duplicate_problem(file: str, duplicate: Duplicate) -> Problem:
    return Problem(
        file,
        duplicate.where,
        f"{duplicate.occurrences()}; JSON keeps only the last one, so the others would be lost",
        fix="keep one of them",
    )


def read_json(path: Path, what: str) -> Any:
    """Load ``path``; ``what`` says what kind of file it should be, for the error message. A key given twice in
    one object is an error (json would keep only the last)."""
    data, duplicates = read_json_with_duplicates(path, what)
    if duplicates:
        raise ConfigError([duplicate_problem(str(path), d) for d in duplicates])
    return data


def type_name(value: Any) -> str:
    return {
        dict: "object",
        list: "array",
        str: "string",
        bool: "boolean",
        int: "integer",
        float: "number",
        type(None): "null",
    }.get(type(value), type(value).__name__)


_SHOW = reprlib.Repr()
_SHOW.maxlevel, _SHOW.maxstring, _SHOW.maxother, _SHOW.maxlist, _SHOW.maxdict = 2, 40, 40, 4, 4
_SHOW.maxlong = 40
_SHOW_CHARS = 80


def show(value: Any) -> str:
    """A short ``repr`` for messages: long strings, huge numbers and deep arrays are cut, never a wall of text."""
    text = printable(_SHOW.repr(value), keep_newlines=False)
    return text if len(text) <= _SHOW_CHARS else text[: _SHOW_CHARS - 3] + "..."


def describe(value: Any) -> str:
    """Type and short value for messages: ``string '32'``, ``integer -1``, ``null``, ``boolean true``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {'true' if value else 'false'}"
    return f"{type_name(value)} {show(value)}"


def name_shown(name: str) -> str:
    """A name for messages, quoted; non-ASCII characters escaped (``'ex\\u0430mples'``), so that a look-alike
    (a Cyrillic ``а`` for a Latin ``a``) is visible next to the names it is compared with."""
    return ascii(name) if not name.isascii() else show(name)


def non_ascii_note(name: str) -> str:
    """`` (it contains \\u0430 CYRILLIC SMALL LETTER A)`` for a name with non-ASCII characters, else ""."""
    import unicodedata

    odd = [c for c in dict.fromkeys(name) if not c.isascii()]
    if not odd:
        return ""
    return (
        " (it contains "
        + ", ".join(f"{escape_char(c)} {unicodedata.name(c, 'an unnamed character')}" for c in odd[:3])
        + ")"
    )


def nearest(word: str, known: list[str] | set[str] | tuple[str, ...]) -> str | None:
    """The known word closest to ``word`` (a typo's intended word), or None when none is close."""
    import difflib

    by_case = {k.lower(): k for k in known}
    if word.lower() in by_case:
        return by_case[word.lower()]
    found = difflib.get_close_matches(word.lower(), list(by_case), n=1, cutoff=0.7)
    return by_case[found[0]] if found else None
