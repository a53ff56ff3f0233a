"""Processes we start, we end: SIGINT and SIGKILL of the runner leave no process of the pair alive."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from tests.conftest import FIXTURES, cli_env, default_sigint, pids_alive, read_pids, wait_until


def start_runner(tmp_path, pidfile):
    argv = [
        sys.executable,
        "-m",
        "gpupair_search.search.cli.app",
        "pair",
        "--device",
        "cpu",
        "--models",
        str(FIXTURES / "models.json"),
        "--repos-root",
        str(FIXTURES),
        "--results",
        str(tmp_path / "results"),
        "--fg",
        "fixture/ok",
        "--fg-param",
        "seconds=120",
        "--fg-param",
        f"pidfile={pidfile}",
        "--bg",
        "fixture/spawner",
        "--bg-param",
        "seconds=120",
        "--bg-param",
        f"pidfile={pidfile}",
    ]
    return subprocess.Popen(
        argv, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, preexec_fn=default_sigint
    )


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_killing_the_runner_kills_every_process_of_the_pair(tmp_path, sig):
    pidfile = tmp_path / "pids"
    runner = start_runner(tmp_path, pidfile)
    pids = wait_until(lambda: len(read_pids(pidfile)) >= 3 and read_pids(pidfile), timeout=60)
    assert pids and len(pids) == 3, runner.stdout.read() if runner.poll() is not None else "pair did not start"
    runner.send_signal(sig)
    code = runner.wait(timeout=120)
    assert code != 0
    assert wait_until(lambda: pids_alive(pids) == [], timeout=15), f"left alive: {pids_alive(pids)}"
