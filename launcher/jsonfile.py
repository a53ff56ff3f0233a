"""Read a JSON file into Python data, or fail with a ConfigError that names the file and the line."""
from __future__ import annotations

import json
import re
import reprlib
from collections import Counter
from pathlib import Path
from typing import Any

from gpupair_search.launcher.errors import ConfigError, Problem

_MAX_DIGITS = 4000  # below Python's int-from-string limit (4300), far above any real setting


class _Repeated(dict):
    """A JSON object in which some key appeared more than once (json would keep only the last)."""

    repeated: tuple[str, ...] = ()


class _HugeNumber(Exception):
    def __init__(self, digits: str) -> None:
        super().__init__(digits)
        self.digits = digits


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    data = dict(pairs)
    if len(data) == len(pairs):
        return data
    obj = _Repeated(pairs)
    obj.repeated = tuple(key for key, count in Counter(key for key, _ in pairs).items() if count > 1)
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


def _place_problems(file: str, data: Any) -> list[Problem]:
    """Keys given twice in one object (json keeps the last: data lost) and strings that are not text,
    with their paths; iterative, so any depth is fine."""
    problems: list[Problem] = []
    stack: list[tuple[str, Any]] = [("", data)]
    while stack:
        at, value = stack.pop()
        if isinstance(value, dict):
            problems += [Problem(file, json_path(at, key), "appears more than once in the same object; JSON keeps "
                                 "only the last one, so the others would be lost", fix="keep one of them")
                         for key in getattr(value, "repeated", ())]
            stack += [(json_path(at, k), v) for k, v in reversed(value.items())]
            problems += [Problem(file, json_path(at, k), f"the key contains {_surrogate(k)!a}, an unpaired surrogate "
                                 "escape that is not a character", fix="remove the \\u escape")
                         for k in value if _surrogate(k)]
        elif isinstance(value, list):
            stack += [(json_path(at, i), v) for i, v in reversed(list(enumerate(value)))]
        elif isinstance(value, str) and _surrogate(value):
            problems.append(Problem(file, at, f"contains {_surrogate(value)!a}, an unpaired surrogate escape "
                                    "that is not a character", fix="remove the \\u escape"))
    return problems


def _line_column(text: str, index: int) -> str:
    line = text.count("\n", 0, index) + 1
    return f"line {line} column {index - (text.rfind(chr(10), 0, index) + 1) + 1}"


def read_json(path: Path, what: str) -> Any:
    """Load ``path``; ``what`` says what kind of file it should be, for the error message."""
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8-sig")  # a BOM (Windows editors) is not a mistake
    except FileNotFoundError:
        raise ConfigError([Problem(file, "", f"{what} not found", fix="check the path")], unreadable=True) from None
    except IsADirectoryError:
        raise ConfigError([Problem(file, "", f"is a directory, not a {what}", fix="give the path of the JSON file")],
                          unreadable=True) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([Problem(file, "", f"{what} is not UTF-8 text (byte {exc.start}: {exc.reason})",
                                   expected="a JSON file saved as UTF-8",
                                   fix="re-save the file as UTF-8")], unreadable=True) from None
    except OSError as exc:
        raise ConfigError([Problem(file, "", f"cannot read {what}: {exc.strerror or exc}",
                                   fix="check the file's permissions")], unreadable=True) from None
    if not text.strip():
        raise ConfigError([Problem(file, "", f"{what} is empty", expected="a JSON object")], unreadable=True)
    try:
        data = json.loads(text, object_pairs_hook=_object, parse_int=_int)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            [Problem(file, f"line {exc.lineno} column {exc.colno}", f"not valid JSON: {exc.msg}",
                     fix="fix the JSON syntax (a JSON linter shows the spot)")],
            unreadable=True,
        ) from None
    except _HugeNumber as exc:
        raise ConfigError([Problem(file, _line_column(text, max(text.find(exc.digits), 0)),
                                   f"a number with {len(exc.digits)} digits", expected="a number of sensible size",
                                   fix="fix the number")], unreadable=True) from None
    except RecursionError:
        raise ConfigError([Problem(file, "", f"{what} is nested too deeply to read",
                                   expected="a JSON object a few levels deep")], unreadable=True) from None
    problems = _place_problems(file, data)
    if problems:
        raise ConfigError(problems)
    return data


def type_name(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer",
            float: "number", type(None): "null"}.get(type(value), type(value).__name__)


_SHOW = reprlib.Repr()
_SHOW.maxlevel, _SHOW.maxstring, _SHOW.maxother, _SHOW.maxlist, _SHOW.maxdict = 2, 40, 40, 4, 4
_SHOW.maxlong = 40
_SHOW_CHARS = 80


def show(value: Any) -> str:
    """A short ``repr`` for messages: long strings, huge numbers and deep arrays are cut, never a wall of text."""
    text = _SHOW.repr(value)
    return text if len(text) <= _SHOW_CHARS else text[:_SHOW_CHARS - 3] + "..."


def describe(value: Any) -> str:
    """Type and short value for messages: ``string '32'``, ``integer -1``, ``null``, ``boolean true``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {'true' if value else 'false'}"
    return f"{type_name(value)} {show(value)}"
