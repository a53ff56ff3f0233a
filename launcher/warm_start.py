"""The runner's side of the warm launcher: start fork servers (:mod:`launcher.fork_server`) and ask them for jobs.

A built-in workload (a repository with ``train_module``) forked from a server that has already imported
torch starts in a fraction of a second instead of seconds. :func:`launch_warm` hands back a
:class:`WarmProcess`, which answers ``pid``, ``poll``, ``wait`` and ``returncode`` as ``subprocess.Popen``
does, so :class:`launcher.process.RunningJob` wraps either one, and the pair runner, the monitor and
``stop`` cannot tell them apart.

One server per set of cores and start-up environment (:data:`STARTUP_ENV`): libraries size their thread
pools from the affinity and the environment when they are imported, so a job forked from a server
started with other cores, another ``OMP_NUM_THREADS`` or another ``PYTHONPATH`` would not be the process
a cold start gives. Every job still gets its own whole environment. In practice a runner needs one server.
When a server cannot start (torch missing, say), :class:`WarmStartUnavailable` says why, and the caller
starts the job cold and records that.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from gpupair_search.launcher.cpu_share import available_cores, format_cpu_list
from gpupair_search.launcher.registry import Command

SERVER_READY_TIMEOUT_S = 180.0  # importing torch, torchvision, timm and sklearn on a loaded host
REPLY_TIMEOUT_S = 60.0
MAX_IDLE_SERVERS = 4
#: Prefixes of the variables that the interpreter and the preloaded libraries read while importing
#: (paths, thread pools, CUDA's device list); a server serves only jobs that agree on them.
STARTUP_ENV = (
    "PYTHON",
    "LD_",
    "PATH",
    "OMP_",
    "GOMP_",
    "KMP_",
    "MKL_",
    "OPENBLAS_",
    "GOTO_",
    "BLIS_",
    "NUMEXPR_",
    "TORCH",
    "PYTORCH_",
    "CUDA_",
    "NVIDIA_",
)
_SAFE_PATH = ["-P"] if sys.version_info >= (3, 11) else []  # keep the runner's cwd off the server's sys.path


class WarmStartUnavailable(Exception):
    """No warm launcher for this job; the message says why."""


class WarmProcess:
    """A job forked by a fork server, seen as a ``subprocess.Popen``: ``pid`` is its guard's."""

    def __init__(self, pid: int, args: tuple[str, ...], status_fd: int) -> None:
        self.pid, self.args = pid, args
        self.returncode: int | None = None
        self._status_fd: int | None = status_fd
        self._lock = threading.Lock()

    def poll(self) -> int | None:
        self._read(0.0)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.returncode is None:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise subprocess.TimeoutExpired(self.args, timeout)
            self._read(left)
        return self.returncode

    def _read(self, timeout: float | None) -> None:
        with self._lock:
            fd = self._status_fd
            if fd is None or not select.select([fd], [], [], timeout)[0]:
                return
            data = os.read(fd, 64)
            os.close(fd)
            self._status_fd = None
            # No code: the server died without reaping the job, whose death signal has killed it.
            self.returncode = int(data) if data.strip() else -signal.SIGKILL


class WarmServer:
    """One running fork server, started with ``env`` on ``cpus``."""

    def __init__(self, env: dict[str, str], cpus: list[int] | None, grace: float) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.sock, self.env = ours, dict(env)
        self._errors = tempfile.TemporaryFile()  # noqa: SIM115 - open while the server runs: its stderr, for the message when it fails
        self._lock = threading.Lock()
        self._jobs: list[WarmProcess] = []
        argv = [
            sys.executable,
            *_SAFE_PATH,
            "-m",
            "gpupair_search.launcher.fork_server",
            str(os.getpid()),
            str(grace),
            str(theirs.fileno()),
            format_cpu_list(cpus) if cpus else "-",
        ]
        try:
            self.popen = (
                _starter()
                .submit(
                    subprocess.Popen,
                    argv,
                    cwd="/",
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=self._errors,
                    pass_fds=(theirs.fileno(),),
                    start_new_session=True,
                )
                .result()
            )
        except OSError as exc:
            self._discard()
            raise WarmStartUnavailable(f"cannot start the warm launcher: {exc}") from None
        finally:
            theirs.close()
        hello = self._receive(SERVER_READY_TIMEOUT_S, "to import its libraries")
        if not hello.get("ready"):
            self.close()
            raise WarmStartUnavailable(f"the warm launcher could not prepare: {hello.get('error')}")
        self.imported: list[str] = hello["imported"]
        self.skipped: dict[str, str] = hello["skipped"]

    def launch(
        self, command: Command, log_path: Path, env: dict[str, str], grace: float
    ) -> tuple[WarmProcess, list[str]]:
        """Fork ``command`` (a ``python -m`` command) with its output appended to ``log_path``."""
        request = {
            "module": command.module,
            "args": list(command.argv[3:]),
            "cwd": str(command.cwd),
            "env_set": {k: v for k, v in env.items() if self.env.get(k) != v},
            "env_unset": [k for k in self.env if k not in env],
            "grace": grace,
        }
        read_end, write_end = os.pipe()
        try:
            with open(log_path, "ab") as log, self._lock:
                try:
                    socket.send_fds(self.sock, [json.dumps(request).encode()], [log.fileno(), write_end])
                except OSError as exc:
                    raise WarmStartUnavailable(self._gone(f"({exc})")) from None
                reply = self._receive(REPLY_TIMEOUT_S, "to fork the job")
                if "error" not in reply:
                    # Kept while the lock is held: the job runs from here on, and taking the lock again queued
                    # this thread behind other trials' requests until a 2 s job had ended unseen (0 MiB, "ok").
                    job = WarmProcess(reply["pid"], command.argv, read_end)
                    self._jobs = [j for j in self._jobs if j.returncode is None] + [job]
        except BaseException:
            os.close(read_end)
            raise
        finally:
            os.close(write_end)
        if "error" in reply:
            os.close(read_end)
            if reply.get("errno"):
                raise OSError(reply["errno"], reply["error"], str(command.cwd))
            raise WarmStartUnavailable(f"the warm launcher refused the job: {reply['error']}")
        return job, list(reply.get("warnings", []))

    def alive(self) -> bool:
        return self.popen.poll() is None

    def busy(self) -> bool:
        return any(job.poll() is None for job in self._jobs)

    def close(self, timeout: float = 10.0) -> None:
        """Close our end: the server kills whatever it still runs and exits."""
        self.sock.close()
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait()
        self._errors.close()

    def _receive(self, timeout: float, doing: str) -> dict[str, Any]:
        if not select.select([self.sock], [], [], timeout)[0]:
            self.close(timeout=1.0)
            raise WarmStartUnavailable(f"the warm launcher took more than {timeout:.0f} s {doing}")
        try:
            data = self.sock.recv(2**16)
        except OSError:
            data = b""
        if not data:
            raise WarmStartUnavailable(self._gone(""))
        return json.loads(data)

    def _gone(self, detail: str) -> str:
        try:
            code = self.popen.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            code = None
        return f"the warm launcher exited (code {code}) {detail}{_tail(self._errors)}".strip()

    def _discard(self) -> None:
        self.sock.close()
        self._errors.close()


def launch_warm(command: Command, log_path: Path, env: dict[str, str], grace: float) -> tuple[WarmProcess, list[str]]:
    """Fork ``command`` from the server for this thread's cores and ``env`` (its :data:`STARTUP_ENV` part),
    started on first use.

    Returns the process and any warnings to record with the job. Raises :class:`WarmStartUnavailable`
    when no server can run it (the caller starts the job cold), ``OSError`` when the job's directory is
    missing (as ``subprocess.Popen`` would)."""
    if command.module is None or sys.platform != "linux":
        raise WarmStartUnavailable("only python -m workloads on Linux start warm")
    return _server(env, grace).launch(command, log_path, env, grace)


def _server(env: dict[str, str], grace: float) -> WarmServer:
    """The server for this thread's cores and ``env``, started if there is none (a failure is remembered, and
    said again without a second try)."""
    cpus = available_cores()
    key = _key(cpus, env)
    with _LOCK:
        server = _SERVERS.get(key)
        if server is None or not server.alive():
            if key in _FAILED:
                raise WarmStartUnavailable(_FAILED[key])
            _close_idle()
            try:
                server = _SERVERS[key] = WarmServer(env, cpus, grace)
            except WarmStartUnavailable as exc:
                _SERVERS.pop(key, None)
                _FAILED[key] = str(exc)
                raise
    return server


def prestart(env: dict[str, str], grace: float) -> None:
    """Start the server that :func:`launch_warm` will use for this thread's cores and ``env``, without waiting
    for it: its imports then overlap what the runner does before its first job (the study's queue, the card's
    emulation). A server that cannot start says so at the first :func:`launch_warm`, as without this."""
    if sys.platform != "linux":
        return

    def start() -> None:  # a thread starts on its creator's cores, so it finds the server launch_warm will want
        try:
            _server(env, grace)
        except WarmStartUnavailable:
            pass  # remembered in _FAILED: the first launch_warm says it

    threading.Thread(target=start, name="gpupair-warm-prestart", daemon=True).start()


def _key(cpus: list[int], env: dict[str, str]) -> tuple:
    """Which server serves a job: its cores and its start-up environment (:data:`STARTUP_ENV`)."""
    return tuple(cpus), tuple(sorted((k, v) for k, v in env.items() if k.startswith(STARTUP_ENV)))


def close_all() -> None:
    """Stop every server of this process (and whatever they still run)."""
    with _LOCK:
        servers = list(_SERVERS.values())
        _SERVERS.clear()
        _FAILED.clear()
    for server in servers:
        server.close()


def _close_idle() -> None:
    """Keep at most MAX_IDLE_SERVERS: close the ones that run nothing (caller holds _LOCK)."""
    if len(_SERVERS) < MAX_IDLE_SERVERS:
        return
    for key, server in list(_SERVERS.items()):
        if not server.busy():
            del _SERVERS[key]
            server.close()


def _starter() -> ThreadPoolExecutor:
    """The one thread that starts servers. The kernel's parent-death signal fires when the *thread* that
    started a process ends, so a server started from a short-lived thread (a trial run in a worker thread)
    would be killed with it; this thread lives as long as the runner."""
    global _STARTER
    with _STARTER_LOCK:
        if _STARTER is None:
            _STARTER = ThreadPoolExecutor(1, thread_name_prefix="gpupair-warm-start")
            atexit.register(close_all)
        return _STARTER


def _tail(file, limit: int = 2000) -> str:
    try:
        file.seek(0)
        text = file.read().decode(errors="replace").strip()
    except (OSError, ValueError):
        return ""
    return f": {text[-limit:]}" if text else ""


_SERVERS: dict[tuple, WarmServer] = {}
_FAILED: dict[tuple, str] = {}
_LOCK = threading.Lock()
_STARTER: ThreadPoolExecutor | None = None
_STARTER_LOCK = threading.Lock()
