"""The warm launcher's server: imports the built-in workloads' libraries once, then forks one job per request.

It answers ready once torch is imported, and imports the other libraries while no request waits, so that the
first job of a run need not wait for all of them (bench/startup_parts.py times each).

Why: a trial's time on the GPU machine is mostly process start-up (``import torch`` 3.5-5.4 s there,
torchvision and timm seconds more), paid by every background restart and every foreground. A child forked
from a process that has imported them, but never touched CUDA, has CUDA ready in a fraction of a second,
with the same CUDA context as a fresh process, so the measured peaks do not change.

Started by :mod:`launcher.warm_start`, one per runner (and per set of cores and environment), with the
guarantees that :mod:`launcher.job_guard` gives a cold job:

* **the server** leads its own session, gets SIGTERM when the runner dies (``PR_SET_PDEATHSIG``, also on
  SIGKILL of the runner) and is a child subreaper; on SIGTERM, or when the runner's socket closes, it kills
  every process below it;
* **a guard per job**, forked from the server: its own session and process group, a death signal on the
  server's death, a subreaper; it kills the job's whole tree on SIGTERM and when the job ends, and exits
  with the job's exit code (``128 + signal`` when the job died of a signal), as the cold guard does;
* **the job**, forked from its guard: SIGKILL when the guard dies, the job's cwd, environment, argv,
  stdout/stderr on the job's log, the cores the runner asked for; it runs the workload module as
  ``__main__`` (``runpy``) and exits as ``python -m MODULE`` would: an exception prints its traceback to
  the log and exits 1, ``sys.exit(n)`` exits ``n``, non-daemon threads are waited for, ``atexit`` runs.
  Then it leaves with ``os._exit``, as ``multiprocessing`` ends its forked children: tearing down the
  inherited modules would touch, and so copy, every page of them (about 1 s with torch loaded, on 2 cores).
  Objects' finalizers at shutdown do not run (a file the job never closed is not flushed).

The server forks only while single-threaded (Python warns otherwise, and a lock held by another thread
would stay locked in the child); it never initialises CUDA, whose context does not survive ``fork()``.
It runs with ``-P``, so the runner's directory is not on its ``sys.path``; each job gets its own directory
there, as ``python -m`` gives it.

Protocol, over an AF_UNIX SOCK_SEQPACKET socket from the runner: the server first sends a JSON hello
(``{"ready": true, "imported": [...], "skipped": {...}}`` or ``{"ready": false, "error": ...}``); then each
request is a JSON :class:`JobRequest` with two file descriptors, the job's log and the write end of a
status pipe, and is answered ``{"pid": GUARD_PID, "warnings": [...]}`` or ``{"error": ..., "errno": N}``.
A request carries the job's environment as its difference from the one the server was started with
(usually none), which keeps every message far below the socket's size limit.
When a guard is reaped the server writes its exit code (``os.waitstatus_to_exitcode``) to its status pipe.

Usage: ``python -m gpupair_search.launcher.fork_server RUNNER_PID GRACE SOCKET_FD CPUS`` (CPUS: ``0-3,8`` or ``-``)
"""

from __future__ import annotations

import atexit
import errno
import gc
import importlib
import json
import os
import runpy
import select
import signal
import socket
import sys
import threading
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any

from gpupair_search.launcher.job_guard import PR_SET_CHILD_SUBREAPER, PR_SET_PDEATHSIG, kill_tree, prctl

#: What the built-in workloads import (workloads/*/train.py), most expensive first; what is not installed
#: is skipped. Not ``gpupair_search.workloads.common``: its start-up clock must start in the job.
PRELOAD = (
    "torch",
    "torch.nn",
    "torch.nn.functional",
    "torch.optim",
    "torchvision",
    "timm",
    "numpy",
    "joblib",
    "sklearn.exceptions",
    "sklearn.model_selection",
    "sklearn.neural_network",
    "pynvml",
)
REQUIRED = "torch"  # without it a warm start saves nothing worth a second process
#: the server is ready once these of PRELOAD are imported (torch's import is most of it, bench/startup_parts.py); a
#: job forked before the rest are in imports what it needs itself, as a cold start would
FIRST_PRELOADED = 4
MAX_MESSAGE = 2**20  # far above any request (its environment travels as a difference)
_JOB_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGCHLD}


@dataclass
class JobRequest:
    """One job to fork: ``python -m MODULE ARGS...`` in ``cwd``, with the server's start-up environment
    changed by ``env_set`` and ``env_unset``."""

    module: str
    args: list[str]
    cwd: str
    env_set: dict[str, str] = field(default_factory=dict)
    env_unset: list[str] = field(default_factory=list)
    grace: float = 3.0


@dataclass
class Hello:
    ready: bool
    imported: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    error: str = ""


def send_message(sock: socket.socket, message: dict[str, Any], fds: list[int] | None = None) -> None:
    data = json.dumps(message).encode()
    if fds:
        socket.send_fds(sock, [data], fds)
    else:
        sock.sendall(data)


def os_threads() -> int:
    """Threads of this process as the kernel counts them (what Python checks before it warns on fork)."""
    try:
        with open("/proc/self/status") as fh:
            return next(int(line.split()[1]) for line in fh if line.startswith("Threads:"))
    except (OSError, StopIteration, ValueError):
        return 1


def other_threads() -> list[str]:
    """The names of this process's threads other than the calling one, as the kernel has them (native threads
    too: a library's thread pool shows here and not in ``threading.enumerate()``)."""
    names = []
    try:
        for tid in os.listdir("/proc/self/task"):
            if int(tid) != threading.get_native_id():
                with open(f"/proc/self/task/{tid}/comm") as fh:
                    names.append(fh.read().strip())
    except (OSError, ValueError):
        pass
    return sorted(names)


def preload(names: tuple[str, ...] = PRELOAD[:FIRST_PRELOADED]) -> Hello:
    """Import ``names`` (by default torch's: the server answers ready once they are in, and imports the rest
    of :data:`PRELOAD` while it has no request, :meth:`Server.import_next`); not ready when torch is missing or
    something initialised CUDA."""
    imported, skipped = [], {}
    for name in names:
        error = _import(name)
        if error is None:
            imported.append(name)
        else:
            skipped[name] = error
    if REQUIRED not in imported:
        return Hello(False, imported, skipped, f"cannot import {REQUIRED} ({skipped.get(REQUIRED)})")
    if _cuda_initialised():
        return Hello(False, imported, skipped, "CUDA was initialised while importing; a forked job could not use it")
    return Hello(True, imported, skipped)


def _import(name: str) -> str | None:
    """Import ``name``; the reason when it fails (a failing import only means that library starts cold)."""
    try:
        importlib.import_module(name)
    except Exception as exc:  # noqa: BLE001
        return f"{type(exc).__name__}: {exc}"
    return None


def _cuda_initialised() -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and torch.cuda.is_initialized()


class Server:
    """The fork loop. :meth:`serve` returns an exit code in the server, a :class:`JobRequest` in a job."""

    def __init__(self, sock: socket.socket, grace: float, pending: tuple[str, ...] = PRELOAD[FIRST_PRELOADED:]) -> None:
        self.sock, self.grace = sock, grace
        self.status: dict[int, int] = {}  # guard pid -> write end of its status pipe
        self.wake_r, self.wake_w = os.pipe()
        self.pending = list(pending)  # libraries still to import, between requests
        self.broken = ""  # why no more jobs can be forked (an import initialised CUDA)

    def serve(self) -> int | JobRequest:
        for fd in (self.wake_r, self.wake_w):
            os.set_blocking(fd, False)
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)  # wakes select() through the wakeup fd
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        while True:
            readable, _, _ = select.select([self.sock, self.wake_r], [], [], 0.0 if self.pending else 1.0)
            if self.wake_r in readable:
                _drain(self.wake_r)
            self._reap()
            if self.sock not in readable:
                self.import_next()
                continue
            try:
                message, fds, _, _ = socket.recv_fds(self.sock, MAX_MESSAGE, 2)
            except OSError:
                message, fds = b"", []
            if not message:  # the runner closed its end or died: nothing we started may outlive it
                kill_tree(self.grace)
                return 0
            job = self._handle(message, fds)
            if job is not None:
                return job

    def import_next(self) -> None:
        """Import the next pending library (the runner waits for none of them: a request is answered first).
        One that initialised CUDA ends the forking: a child could not use it."""
        if not self.pending or self.broken:
            return
        _import(self.pending.pop(0))
        if _cuda_initialised():
            self.broken = "CUDA was initialised while importing; a forked job could not use it"

    def _stop(self, signum: int, _frame: object) -> None:
        kill_tree(self.grace)
        os._exit(128 + signum)

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            fd = self.status.pop(pid, None)  # None: an orphan re-parented to us (we are a subreaper)
            if fd is not None:
                try:
                    os.write(fd, f"{os.waitstatus_to_exitcode(status)}\n".encode())
                except OSError:  # the runner stopped listening
                    pass
                os.close(fd)

    def _handle(self, message: bytes, fds: list[int]) -> JobRequest | None:
        try:
            job = JobRequest(**json.loads(message))
            log_fd, status_fd = fds
        except (ValueError, TypeError) as exc:
            for fd in fds:
                os.close(fd)
            send_message(self.sock, {"error": f"bad request: {exc}", "errno": None})
            return None
        if self.broken:
            for fd in fds:
                os.close(fd)
            send_message(self.sock, {"error": self.broken, "errno": None})
            return None
        if not os.path.isdir(job.cwd):
            os.close(log_fd)
            os.close(status_fd)
            send_message(self.sock, {"error": "No such directory", "errno": errno.ENOENT})
            return None
        gc.freeze()  # the child's collections skip what the server made: no copy-on-write of its pages
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, _JOB_SIGNALS)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            pid = os.fork()
        if pid == 0:
            return self._guard(job, log_fd, status_fd)
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        os.close(log_fd)
        self.status[pid] = status_fd
        notes = [str(w.message) for w in caught]
        if not notes and os_threads() > 1:
            notes.append(f"the warm launcher forked while {os_threads()} threads ran")
        if notes and (threads := other_threads()):  # which library started them, for whoever reads the note
            notes.append("the warm launcher's other threads: " + ", ".join(threads))
        send_message(self.sock, {"pid": pid, "warnings": notes})
        return None

    def _guard(self, job: JobRequest, log_fd: int, own_status_fd: int) -> JobRequest:
        """In the forked guard: isolate, fork the job, wait for it, kill its tree, exit with its code.
        Returns only in the job process."""
        server = os.getppid()
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        self.sock.close()
        for fd in (self.wake_r, self.wake_w, own_status_fd, *self.status.values()):
            os.close(fd)  # the status pipes must reach EOF when the server goes, not when we do
        os.setsid()
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != server:  # the server died before we asked for the death signal
            os._exit(137)
        prctl(PR_SET_CHILD_SUBREAPER, 1)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        os.close(log_fd)

        def stop(signum: int, _frame: object) -> None:
            kill_tree(job.grace)
            os._exit(128 + signum)

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        guard = os.getpid()
        pid = os.fork()  # signals are still blocked: none can reach a half-made job
        if pid == 0:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
            if os.getppid() != guard:
                os._exit(137)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _JOB_SIGNALS)
            return job
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _JOB_SIGNALS)
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        kill_tree(job.grace)  # the job is done: nothing it started may outlive it
        os._exit(128 - code if code < 0 else code)


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass


def run_job(job: JobRequest) -> None:
    """In the job process: be ``python -m job.module *job.args`` in ``job.cwd`` with its environment, and
    exit with its status. Never returns."""
    try:
        os.chdir(job.cwd)
        for name in job.env_unset:
            os.environ.pop(name, None)
        os.environ.update(job.env_set)
        sys.argv = [job.module, *job.args]  # run_module puts the module's path in argv[0], as -m does
        sys.path.insert(0, job.cwd)  # the entry `python -m` itself puts first: modules beside the job import
        runpy.run_module(job.module, run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as exc:
        code = exit_status(exc.code)
    except KeyboardInterrupt:  # the interpreter prints it, then dies of SIGINT so that its parent knows
        sys.excepthook(*sys.exc_info())
        _leave(None)
    except BaseException:  # noqa: BLE001 - what the interpreter does with an uncaught exception
        sys.excepthook(*sys.exc_info())
        code = 1
    _leave(code)


def exit_status(value: object) -> int:
    """The status the interpreter gives ``sys.exit(value)``."""
    if value is None:
        return 0
    if isinstance(value, int):
        return value & 0xFF
    print(value, file=sys.stderr)
    return 1


def _leave(code: int | None) -> None:
    """Finish as the interpreter does (threads, atexit, flushed output), then exit without tearing down
    the modules inherited from the server; ``None``: die of SIGINT."""
    threading._shutdown()  # type: ignore[attr-defined]  # waits for non-daemon threads, as at interpreter exit
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    if code is None:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    os._exit(1 if code is None else code)


def main(argv: list[str]) -> int | JobRequest:
    runner, grace, fd, cpus = int(argv[0]), float(argv[1]), int(argv[2]), argv[3]
    prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    prctl(PR_SET_CHILD_SUBREAPER, 1)
    if os.getppid() != runner:  # the runner died before we asked for the death signal
        return 137
    sock = socket.socket(fileno=fd)
    if cpus != "-":  # before any import: libraries size their thread pools from the affinity at load
        from gpupair_search.launcher.cpu_share import parse_cpu_list

        os.sched_setaffinity(0, parse_cpu_list(cpus))
    hello = preload()
    send_message(sock, asdict(hello))
    if not hello.ready:
        return 1
    return Server(sock, grace).serve()


if __name__ == "__main__":
    outcome = main(sys.argv[1:])
    if isinstance(outcome, JobRequest):
        run_job(outcome)
    else:
        sys.exit(outcome)
