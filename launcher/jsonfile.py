"""Read a JSON file into Python data, or fail with a ConfigError that names the file and the line."""
from __future__ import annotations

import json
import reprlib
from pathlib import Path
from typing import Any

from launcher.errors import ConfigError, Problem

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
    seen: set[str] = set()
    repeated = [k for k, _ in pairs if k in seen or seen.add(k)]
    obj = _Repeated(pairs)
    obj.repeated = tuple(dict.fromkeys(repeated))
    return obj


def _int(digits: str) -> int:
    if len(digits) > _MAX_DIGITS:
        raise _HugeNumber(digits)
    return int(digits)


def json_path(parent: str, key: str | int) -> str:
    """``experiments`` + 0 -> ``experiments[0]``; ``experiments[0]`` + ``repo`` -> ``experiments[0].repo``."""
    if isinstance(key, int):
        return f"{parent}[{key}]"
    return f"{parent}.{key}" if parent else key


def _repeated_keys(data: Any) -> list[tuple[str, str]]:
    """(path of the object, key) for every key that appears twice in one object (iterative: any depth)."""
    found: list[tuple[str, str]] = []
    stack: list[tuple[str, Any]] = [("", data)]
    while stack:
        at, value = stack.pop()
        if isinstance(value, dict):
            found += [(at, key) for key in getattr(value, "repeated", ())]
            stack += [(json_path(at, k), v) for k, v in reversed(value.items())]
        elif isinstance(value, list):
            stack += [(json_path(at, i), v) for i, v in reversed(list(enumerate(value)))]
    return found


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
    repeated = _repeated_keys(data)
    if repeated:
        raise ConfigError([Problem(file, json_path(at, key), "appears more than once in the same object; "
                                   "JSON keeps only the last one, so the others would be lost",
                                   fix="keep one of them") for at, key in repeated])
    return data


def type_name(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer",
            float: "number", type(None): "null"}.get(type(value), type(value).__name__)


_SHOW = reprlib.Repr()
_SHOW.maxlevel, _SHOW.maxstring, _SHOW.maxother, _SHOW.maxlist, _SHOW.maxdict = 2, 40, 40, 4, 4
_SHOW.maxlong = 40


def show(value: Any) -> str:
    """A short ``repr`` for messages: long strings, huge numbers and deep arrays are cut, never a wall of text."""
    return _SHOW.repr(value)


def describe(value: Any) -> str:
    """Type and short value for messages: ``string '32'``, ``integer -1``, ``null``, ``boolean true``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {'true' if value else 'false'}"
    return f"{type_name(value)} {show(value)}"
