"""Shared helpers, and the split of the suite into two layers.

``unit``: tests that start no process (no CLI, no job, no server); they run in seconds and are what
``pytest -m unit`` runs while working. ``e2e``: everything else, real subprocesses on the CPU and simulated
devices, PostgreSQL and Slurm where CI starts them. A test is ``unit`` when its file is in :data:`UNIT_FILES`
or it is marked ``@pytest.mark.unit``; all others are ``e2e``. The unit layer is checked, not trusted: a
unit test that starts a process fails with a message saying so (an audit hook on process creation).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from gpupair_search.launcher.registry import Registry

#: Files whose every test starts no process (see the module docstring); the rest of the suite is e2e.
UNIT_FILES = frozenset({
    "test_cli_entry_points.py",
    "test_extension_search.py",
    "test_interference.py",
    "test_interference_view.py",
    "test_memory_profiles.py",
    "test_seams.py",
    "test_settings_fuzz.py",
    "test_steady_window.py",
    "test_storage_concurrency.py",
})
#: Audit events of process creation (``subprocess``, ``os.fork``/``exec``/``spawn``, ``multiprocessing``'s too).
_PROCESS_EVENTS = frozenset({"subprocess.Popen", "os.fork", "os.forkpty", "os.exec", "os.posix_spawn", "os.spawn",
                             "os.system", "os.startfile"})
_NO_PROCESSES: list[str] = []  # the unit test running now, if any


def _refuse_processes(event: str, args: tuple) -> None:
    if _NO_PROCESSES and event in _PROCESS_EVENTS:
        raise RuntimeError(f"{_NO_PROCESSES[0]} is a unit test and started a process ({event}): make it a "
                           "function call, or mark it e2e (tests/conftest.py says how)")


sys.addaudithook(_refuse_processes)


#: Files whose tests must not run at the same time as each other under ``pytest -n``: they share one resource.
SERIAL_FILES = {
    "test_slurm_cluster.py": "slurm-cluster",  # one node of 3 CPUs: two 3-task arrays at once would queue
}


def pytest_configure(config: pytest.Config) -> None:
    # ``-n N`` alone hands out tests one by one; ``loadgroup`` keeps each SERIAL_FILES group on one worker
    if getattr(config.option, "dist", "no") == "load":
        config.option.dist = "loadgroup"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("unit") is None and item.get_closest_marker("e2e") is None:
            item.add_marker(pytest.mark.unit if item.path.name in UNIT_FILES else pytest.mark.e2e)
        if item.path.name in SERIAL_FILES:
            item.add_marker(pytest.mark.xdist_group(SERIAL_FILES[item.path.name]))


@pytest.fixture(autouse=True)
def _unit_tests_start_no_process(request: pytest.FixtureRequest):
    """Fixtures a unit test uses run inside this one only if they are function-scoped and requested after it;
    a wider fixture that starts processes belongs to e2e tests anyway."""
    if request.node.get_closest_marker("unit") is None:
        yield
        return
    _NO_PROCESSES.append(request.node.nodeid)
    try:
        yield
    finally:
        _NO_PROCESSES.clear()

FIXTURES = Path(__file__).parent / "fixtures"
#: The user's project layout for the seed's models file: ``repos/<name>/`` of each repository (its paths must exist).
SEED_PROJECT = FIXTURES / "seed_project"
REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "reference"


@pytest.fixture
def fixture_registry() -> Registry:
    return Registry.load(FIXTURES / "models.json", base_dir=FIXTURES)


@pytest.fixture
def reference_dir() -> Path:
    if not REFERENCE.exists():
        pytest.skip(f"the seed's reference files are not at {REFERENCE}")
    return REFERENCE


def pids_alive(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.append(pid)
        except psutil.NoSuchProcess:
            pass
    return alive


def wait_until(predicate, timeout: float = 20.0, step: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return predicate()


def read_pids(path: Path) -> list[int]:
    return [int(x) for x in path.read_text().split()] if path.exists() else []


def cli_env() -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1"}


def run_cli(*args: str, timeout: float = 300, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``gpupair-search ARGS`` as a real subprocess of this Python, output captured; ``env``: variables to add
    or replace in its environment."""
    return subprocess.run([sys.executable, "-m", "gpupair_search.search.cli", *args], env={**cli_env(), **(env or {})},
                          capture_output=True, text=True, timeout=timeout)


def default_sigint() -> None:
    """``preexec_fn`` for a runner a test will Ctrl-C: the signal must reach it even when the tests run as a
    background job (``nohup ... &``), whose children start with SIGINT ignored, which Python then keeps
    ignoring (two local CI runs under nohup timed out on exactly this)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
