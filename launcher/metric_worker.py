"""Child process of :mod:`launcher.log_metrics`: applies the models file's metric patterns to a training log.

A pattern from a user's file can backtrack catastrophically (``(a+)+$`` on a long line of ``a``'s takes longer
than the universe's age) and Python's ``re`` cannot be interrupted, so the match runs here, where the parent can
kill it. Reads ``{"patterns": {name: regex}, "text": log}`` as JSON on stdin and prints one JSON line per pattern,
``{"name": ..., "value": float or null}``, as soon as it is done. Standard library only, so it starts fast; it
dies with its parent (``PR_SET_PDEATHSIG``) and after ``argv[1]`` seconds of CPU in any case.
"""

from __future__ import annotations

import ctypes
import json
import re
import resource
import signal
import sys

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the CPU limit below still ends it
        pass


def _last_value(pattern: str, text: str) -> float | None:
    found = re.findall(pattern, text)
    if not found:
        return None
    try:
        return float(found[-1])
    except (TypeError, ValueError):
        return None


def main() -> None:
    _die_with_parent()
    seconds = max(1, int(float(sys.argv[1]))) if len(sys.argv) > 1 else 10
    resource.setrlimit(resource.RLIMIT_CPU, (seconds, seconds + 1))
    request = json.load(sys.stdin)
    for name, pattern in request["patterns"].items():
        try:
            value = _last_value(pattern, request["text"])
        except re.error:
            value = None
        sys.stdout.write(json.dumps({"name": name, "value": value}) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
