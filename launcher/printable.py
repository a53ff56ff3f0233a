"""Text from a file or a job, made safe to print: control characters escaped, so that it can neither clear the
terminal, move the cursor nor reorder what is shown (a bidirectional override in a settings-file key)."""

from __future__ import annotations

import re

_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def printable(text: str, keep_newlines: bool = True, keep_carriage_returns: bool = False) -> str:
    """``text`` with control characters escaped (``\\x1b``, ``\\u202e``): text from a file can neither clear the
    terminal, move the cursor nor reorder what is shown. Tabs and (unless ``keep_newlines`` is False) newlines stay;
    carriage returns only with ``keep_carriage_returns`` (a live progress line of our own)."""
    escaped = _CONTROL.sub(
        lambda found: found.group() if keep_carriage_returns and found.group() == "\r" else escape_char(found.group()),
        text,
    )
    return escaped if keep_newlines else escaped.replace("\n", "\\n").replace("\r", "\\r")


def escape_char(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
