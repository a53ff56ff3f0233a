"""Read a JSON file into Python data, or fail with a ConfigError that names the file and the line."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from launcher.errors import ConfigError, Problem


def read_json(path: Path, what: str) -> Any:
    """Load ``path``; ``what`` says what kind of file it should be, for the error message."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([Problem(str(path), "", f"{what} not found", fix="check the path")], unreadable=True) from None
    except IsADirectoryError:
        raise ConfigError([Problem(str(path), "", f"is a directory, not a {what}")], unreadable=True) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([Problem(str(path), "", f"cannot read {what}: {exc}")], unreadable=True) from None
    if not text.strip():
        raise ConfigError([Problem(str(path), "", f"{what} is empty", expected="a JSON object")], unreadable=True)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            [Problem(str(path), f"line {exc.lineno} column {exc.colno}", f"not valid JSON: {exc.msg}",
                     fix="fix the JSON syntax (a JSON linter shows the spot)")],
            unreadable=True,
        ) from None


def type_name(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer",
            float: "number", type(None): "null"}.get(type(value), type(value).__name__)
