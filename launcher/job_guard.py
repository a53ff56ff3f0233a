"""Guard process: runs one job's command and guarantees its whole tree dies with it.

Started by :mod:`launcher.process` as the leader of a new session. It

* asks the kernel for SIGTERM when the runner dies (``PR_SET_PDEATHSIG``), also on SIGKILL of the runner;
* becomes a child subreaper, so processes that the job orphans (double forks, ``setsid``) are
  re-parented to the guard and can still be found and killed;
* on SIGTERM/SIGINT: SIGTERM to every descendant, a short grace period, then SIGKILL to those left;
* exits with the job's exit code (``128 + signal`` when the job died of a signal).

Standard library only, so it starts fast and works before any dependency is importable.
Usage: ``python job_guard.py PARENT_PID GRACE_SECONDS -- ARGV...``
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36


def prctl(option: int, value: int) -> None:
    try:
        ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: fall back to the runner's own clean-up
        pass


def descendants(root: int) -> list[int]:
    """PIDs below ``root`` in the process tree, from /proc (no psutil: keep the guard light)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        ppid = int(stat[stat.rfind(b")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def kill_tree(grace: float) -> None:
    me = os.getpid()
    _signal_all(descendants(me), signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and reap_all():
        time.sleep(0.05)
    for _ in range(3):  # a dying parent can still fork; repeat until the tree is empty
        left = descendants(me)
        if not left:
            break
        _signal_all(left, signal.SIGKILL)
        time.sleep(0.05)
        reap_all()


def reap_all() -> bool:
    """Reap exited children (we are a subreaper); True while children remain."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return False
        if pid == 0:
            return True


def _why_missing(program: str, exc: OSError) -> str:
    """For "No such file or directory" about a file that is there: the interpreter its #! line names is missing,
    most often because the line ends in a carriage return (a script saved with Windows line endings)."""
    if not isinstance(exc, FileNotFoundError) or not os.path.isfile(program):
        return ""
    try:
        with open(program, "rb") as f:
            first = f.readline(512)
    except OSError:
        return ""
    if first.rstrip(b"\n").endswith(b"\r"):
        return f" (its first line ends in a carriage return: Windows line endings; convert it: sed -i 's/\\r$//' {program})"
    return " (the file is there: the interpreter its #! line names is not)"


def main(argv: list[str]) -> int:
    parent, grace, sep, command = int(argv[0]), float(argv[1]), argv[2], argv[3:]
    if sep != "--" or not command:
        print("usage: job_guard.py PARENT_PID GRACE -- ARGV...", file=sys.stderr)
        return 2
    prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    prctl(PR_SET_CHILD_SUBREAPER, 1)
    if os.getppid() != parent:  # the runner died before we asked for the death signal
        return 137

    def stop(signum: int, _frame: object) -> None:
        kill_tree(grace)
        os._exit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        child = subprocess.Popen(command)
    except OSError as exc:
        print(
            f"gpupair-search: cannot start {command[0]!r}: {exc}{_why_missing(command[0], exc)}",
            file=sys.stderr,
            flush=True,
        )
        return 127
    code = child.wait()
    kill_tree(grace)  # the job is done: nothing it started may outlive it
    return 128 - code if code < 0 else code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
