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
