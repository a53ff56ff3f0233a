"""Passwords never reach an output: one function masks them in every form a storage URL or libpq accepts.

A PostgreSQL password can be given as ``user:password@`` in a URL, as a URL parameter (``?password=...``,
``&sslpassword=...``, with the key or the value percent-encoded: ``?pass%77ord=...``), as a keyword/value
connection string (``password=secret host=db`` or ``password = 'with spaces'``), and through the environment
(``PGPASSWORD=...``). :func:`mask_secrets` replaces the value of each with ``***``; every error, console line,
log, job script and dashboard message goes through it (the CLI's streams as a whole, see
:class:`MaskingStream`). A password the process has been given (:func:`remember_secrets`) is also masked
wherever it appears verbatim, decoded or not, so a driver's message that quotes it is masked too.
"""

from __future__ import annotations

import io
import re
import threading
from typing import TextIO
from urllib.parse import unquote

from gpupair_search.launcher.printable import printable

MASK = "***"
#: Keys whose value is a secret: libpq's ``password`` and ``sslpassword``, and the environment's ``PGPASSWORD``.
SECRET_KEYS = frozenset({"password", "sslpassword", "pgpassword", "passwd", "pwd"})
#: A remembered secret shorter than this is not masked wherever it appears: it would mask ordinary words.
_MIN_REMEMBERED = 4

# scheme://user:password@host: the password runs to the last "@" before white space or a quote (SQLAlchemy allows
# "/" in it, libpq stops at the first "@": the longer reading masks both).
_USERINFO = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@?#'\"]*):(?P<secret>[^\s'\"]*)@")
# key=value, in a URL query (?k=v&...) or a keyword/value string (k=v k2='v 2'); keys may be percent-encoded.
_KEY_VALUE = re.compile(
    r"(?P<key>(?:[A-Za-z_]|%[0-9A-Fa-f]{2})(?:[A-Za-z0-9_]|%[0-9A-Fa-f]{2})*)"
    r"(?P<eq>\s*=\s*)(?P<secret>'(?:[^'\\]|\\.)*'?|\"(?:[^\"\\]|\\.)*\"?|[^\s&#;,'\"]*)"
)
# 'password': 'x' and "password": "x" (a dict or JSON in a driver's message).
_QUOTED_KEY = re.compile(
    r"(?P<key>['\"](?:[A-Za-z_]|%[0-9A-Fa-f]{2})+['\"])(?P<eq>\s*:\s*)"
    r"(?P<secret>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")"
)

_remembered: set[str] = set()
_lock = threading.Lock()


def _is_secret_key(key: str) -> bool:
    return unquote(key.strip("'\"")).lower() in SECRET_KEYS


def _mask_pair(found: re.Match[str]) -> str:
    if not _is_secret_key(found.group("key")):
        return found.group(0)
    return f"{found.group('key')}{found.group('eq')}{MASK}"


def mask_secrets(text: str) -> str:
    """``text`` with every password replaced by ``***``: in URLs, URL parameters, keyword/value strings, quoted
    key/value pairs, and wherever a remembered password appears."""
    if not text:
        return text
    out = _USERINFO.sub(lambda m: f"{m.group('head')}:{MASK}@" if m.group("secret") else m.group(0), text)
    out = _KEY_VALUE.sub(_mask_pair, out)
    out = _QUOTED_KEY.sub(_mask_pair, out)
    with _lock:
        known = sorted(_remembered, key=len, reverse=True)
    for secret in known:
        out = out.replace(secret, MASK)
    return out


def secrets_in(text: str) -> list[str]:
    """The passwords ``text`` holds (each as written and percent-decoded), in any of the forms above."""
    found: list[str] = []
    for match in _USERINFO.finditer(text):
        if match.group("secret"):
            found.append(match.group("secret"))
    for pattern in (_KEY_VALUE, _QUOTED_KEY):
        for match in pattern.finditer(text):
            if _is_secret_key(match.group("key")):
                value = match.group("secret")
                found.append(value[1:-1] if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"" else value)
    return [s for value in found for s in dict.fromkeys((value, unquote(value))) if s]


def has_secret(text: str) -> bool:
    """Whether ``text`` (a storage URL or a connection string) carries a password in any form."""
    return bool(secrets_in(text))


def remember_secrets(text: str) -> None:
    """Mask the passwords of ``text`` (a storage URL this process was given) wherever they appear from now on."""
    with _lock:
        _remembered.update(s for s in secrets_in(text) if len(s) >= _MIN_REMEMBERED)


class MaskingStream(io.TextIOBase):
    """A text stream that masks secrets and escapes terminal control characters in what is written to it,
    line by line (a secret is never split across two writes of one line), before passing it on."""

    def __init__(self, inner: TextIO) -> None:
        super().__init__()
        self.inner = inner
        self._pending = ""
        self._lock = threading.Lock()  # packed trials print their lines from several threads

    def write(self, text: str) -> int:
        with self._lock:
            self._pending += text
            head, sep, self._pending = self._pending.rpartition("\n")
            if not sep and "\r" in self._pending:  # a live progress line: redrawn in place, never ends with "\n"
                head, sep, self._pending = self._pending.rpartition("\r")
            if sep:
                self.inner.write(printable(mask_secrets(head), keep_carriage_returns=True) + sep)
        return len(text)

    def flush(self) -> None:
        with self._lock:
            if self._pending:
                self.inner.write(printable(mask_secrets(self._pending), keep_carriage_returns=True))
                self._pending = ""
        self.inner.flush()

    def isatty(self) -> bool:
        return self.inner.isatty()

    def fileno(self) -> int:
        return self.inner.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.inner, "encoding", "utf-8")

    def writable(self) -> bool:
        return True
