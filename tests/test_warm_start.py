"""Warm start: a job forked by the warm launcher is seen as a cold one, and dies as surely.

Real processes throughout: the fork server imports the real torch; the jobs are the fixture script run as a
module (``warm_models.json``) and, for the runner test, the built-in ``examples/mnist``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from gpupair_search.launcher import warm_start
from gpupair_search.launcher.cpu_share import available_cores
from gpupair_search.launcher.devices.cpu import CpuDevice
from gpupair_search.launcher.outcome import Outcome
from gpupair_search.launcher.pair_runner import RunOptions, run_pair
from gpupair_search.launcher.process import RunningJob, start_job
from gpupair_search.launcher.registry import Registry
from gpupair_search.launcher.spec import JobConfig, PairSpec
from gpupair_search.settings import BUNDLE_ROOT, bundled
from tests.conftest import FIXTURES, cli_env, pids_alive, read_pids, run_cli, wait_until

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the warm launcher forks (Linux)")


@pytest.fixture(scope="module", autouse=True)
def servers():
    """One fork server serves the tests that share an environment; none outlives this module."""
    yield
    warm_start.close_all()


@pytest.fixture
def registry() -> Registry:
    return Registry.load(FIXTURES / "warm_models.json", base_dir=FIXTURES)


def start(registry: Registry, log: Path, warm: bool, model: str, env: dict | None = None, **hp) -> RunningJob:
    command = registry.command(JobConfig("warmfixture", model, hp))
    return start_job("foreground", command, log, env or cli_env(), grace=1.0, warm=warm)


def fork_server_of(job: RunningJob) -> psutil.Process:
    return psutil.Process(job.pid).parent()


def test_a_warm_job_is_seen_as_a_cold_one(tmp_path, registry):
    seen = {}
    for warm in (True, False):
        pidfile = tmp_path / f"pids_{warm}"
        job = start(registry, tmp_path / f"{warm}.log", warm, "spawner", seconds=6.0, pidfile=str(pidfile))
        if warm:
            assert "fork_server" in " ".join(fork_server_of(job).cmdline())
        pids = wait_until(lambda pidfile=pidfile: len(read_pids(pidfile)) == 2 and read_pids(pidfile))
        tree, cwd = job.process_ids(), psutil.Process(pids[0]).cwd()
        seen[warm] = {
            "start": job.start,
            "notes": job.notes,
            "cwd": cwd,
            "guard_excluded": job.pid not in tree,
            "tree_has_job_and_grandchild": set(pids) <= tree,
            "code": job.popen.wait(timeout=30),
            "log": (tmp_path / f"{warm}.log").read_text(),
        }
        assert wait_until(lambda pids=pids: pids_alive(pids) == [], timeout=10)
    assert seen[True].pop("start") == "warm" and seen[False].pop("start") == "cold"
    assert seen[True] == seen[False]
    assert seen[True]["code"] == 0 and seen[True]["notes"] == [] and seen[True]["tree_has_job_and_grandchild"]
    assert seen[True]["log"].splitlines() == [
        "starting spawner value=''",
        "starting ok value=''",  # + grandchild
        "Test Accuracy: 97.5%",
        "[SUCCESS] Training completed",
    ]


def test_a_warm_job_sees_what_a_cold_one_sees(tmp_path, registry):
    env = {**cli_env(), "GPUPAIR_FIXTURE": "the job's own"}
    env.pop("HOME", None)
    seen = {}
    for warm in (True, False):
        log = tmp_path / f"{warm}.log"
        job = start(registry, log, warm, "describe", env=env, seconds=0.1, value="GPUPAIR_FIXTURE,HOME")
        assert job.start == ("warm" if warm else "cold") and job.popen.wait(timeout=30) == 0
        seen[warm] = json.loads(log.read_text().splitlines()[1])
    assert seen[True] == seen[False]
    assert seen[True]["env"] == {"GPUPAIR_FIXTURE": "the job's own", "HOME": None}
    assert seen[True]["argv"][1:] == ["-n", "describe", "--seconds", "0.100000", "--value", "GPUPAIR_FIXTURE,HOME"]
    assert seen[True]["path0"] == seen[True]["cwd"] == str(FIXTURES)
    assert (seen[True]["name"], seen[True]["spec"], seen[True]["stdin"]) == ("__main__", "fake_train", "")


def test_a_crashing_workload_exits_non_zero_with_its_traceback_in_the_log(tmp_path, registry):
    for warm in (True, False):
        log = tmp_path / f"{warm}.log"
        job = start(registry, log, warm, "raise", seconds=0.1)
        assert job.start == ("warm" if warm else "cold")
        assert job.popen.wait(timeout=30) == 1
        text = log.read_text()
        assert "Traceback (most recent call last)" in text
        assert text.strip().endswith("RuntimeError: the workload broke")
        assert "fake_train.py" in text  # the frame of the workload itself


def test_an_exit_code_of_the_workload_is_the_jobs_exit_code(tmp_path, registry):
    job = start(registry, tmp_path / "log", True, "crash", seconds=0.1)
    assert job.start == "warm"
    assert job.popen.wait(timeout=30) == 3
    assert job.poll() == 3 and job.ended is not None


def test_stop_kills_the_warm_jobs_whole_tree(tmp_path, registry):
    codes = {}
    for warm in (True, False):
        pidfile = tmp_path / f"pids_{warm}"
        job = start(registry, tmp_path / f"{warm}.log", warm, "spawner", seconds=120, pidfile=str(pidfile))
        pids = wait_until(lambda pidfile=pidfile: len(read_pids(pidfile)) == 2 and read_pids(pidfile))
        assert pids, (tmp_path / f"{warm}.log").read_text()
        codes[warm] = job.stop(grace=1.0)
        assert pids_alive(pids + [job.pid]) == []
        assert job.stop(grace=1.0) == codes[warm]  # safe to call twice
    assert codes[True] == codes[False] == 128 + signal.SIGTERM


def test_a_warm_job_runs_on_the_cores_of_the_thread_that_starts_it(tmp_path, registry):
    cores = available_cores()
    if len(cores) < 2:
        pytest.skip("needs two cores to tell a share from all of them")
    try:
        os.sched_setaffinity(0, [cores[-1]])
        pidfile = tmp_path / "pids"
        job = start(registry, tmp_path / "log", True, "ok", seconds=30, pidfile=str(pidfile))
        pid = wait_until(lambda: read_pids(pidfile))[0]
        assert job.start == "warm"
        assert psutil.Process(pid).cpu_affinity() == [cores[-1]]
        job.stop(grace=1.0)
    finally:
        os.sched_setaffinity(0, cores)


def test_without_torch_the_job_starts_cold_and_says_why(tmp_path, registry):
    broken = tmp_path / "site" / "torch"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text("raise ImportError('torch is not installed here')\n")
    env = {**cli_env(), "PYTHONPATH": str(broken.parent)}
    job = start(registry, tmp_path / "log", True, "ok", env=env, seconds=0.1)
    assert job.start == "cold"
    assert job.popen.wait(timeout=30) == 0
    assert len(job.notes) == 1 and "torch is not installed here" in job.notes[0]
    again = start(registry, tmp_path / "log2", True, "ok", env=env, seconds=0.1)  # the failure is remembered
    assert again.start == "cold" and again.notes == job.notes
    again.popen.wait(timeout=30)


@pytest.mark.parametrize(
    "flag, expected",
    [(["--start", "warm"], "warm"), (["--start", "cold"], "cold"), ([], "cold")],
    ids=["warm", "cold", "default-on-the-cpu"],
)
def test_pair_records_how_each_job_started(tmp_path, flag, expected):
    result = run_cli(
        "pair",
        "--device",
        "cpu",
        "--models",
        str(FIXTURES / "warm_models.json"),
        "--repos-root",
        str(FIXTURES),
        "--results",
        str(tmp_path / "results"),
        "--fg",
        "warmfixture/ok",
        "--fg-param",
        "seconds=1",
        "--bg",
        "warmfixture/ok",
        "--bg-param",
        "seconds=60",
        *flag,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    record = json.loads(next((tmp_path / "results").rglob("experiment.json")).read_text())
    assert record["job_start"] == {"background": expected, "foreground": expected}
    assert record["warnings"] == []


@pytest.mark.parametrize("background, outcome", [("trains", Outcome.OK), ("quick", Outcome.BACKGROUND_UNSTABLE)])
def test_a_short_background_run_is_a_quick_exit_only_if_it_did_not_train(tmp_path, registry, background, outcome):
    """Warm, a tiny probe can end within background_min_run_s: its progress line says it trained.

    Both fixture runs end at once; background_min_run_s is far above any start-up on a loaded host, so that a
    slow restart is never counted as a real run (which would reset the count of quick exits)."""
    pair = PairSpec(1, JobConfig("warmfixture", "ok", {"seconds": 6.0}), JobConfig("warmfixture", background, {}))
    options = RunOptions(background_settle_s=0.3, background_min_run_s=30.0, grace_s=1.0, warm_start=True)
    result = run_pair(pair, registry, CpuDevice(), options, tmp_path / "pair")
    assert result.job_start["background"] == "warm"
    assert result.outcome is outcome, result.error_message
    quick_exits = options.background_max_quick_exits
    assert result.background_runs > quick_exits if outcome is Outcome.OK else result.background_runs == quick_exits


def models_with_mnist_and_the_fixture(tmp_path) -> Path:
    """The built-in examples repository and the fixture module, in one models file."""
    builtin = json.loads(bundled("models.json").read_text())["models"]["examples"]
    fixture = json.loads((FIXTURES / "warm_models.json").read_text())["models"]["warmfixture"]
    models = {
        "examples": {**builtin, "path": str(BUNDLE_ROOT / builtin["path"])},
        "warmfixture": {**fixture, "path": str(FIXTURES)},
    }
    path = tmp_path / "models.json"
    path.write_text(json.dumps({"models": models}))
    return path


def ours(runner: psutil.Process) -> list[psutil.Process]:
    try:
        return runner.children(recursive=True)
    except psutil.Error:
        return []


def test_sigkill_of_the_runner_leaves_no_process_of_the_warm_launcher(tmp_path):
    pidfile = tmp_path / "pids"
    argv = [
        sys.executable,
        "-m",
        "gpupair_search.search.cli.app",
        "pair",
        "--device",
        "cpu",
        "--models",
        str(models_with_mnist_and_the_fixture(tmp_path)),
        "--results",
        str(tmp_path / "results"),
        "--fg",
        "examples/mnist",
        "--fg-param",
        "epochs=100",
        "--fg-param",
        "max_steps=20",
        "--bg",
        "warmfixture/spawner",
        "--bg-param",
        "seconds=120",
        "--bg-param",
        f"pidfile={pidfile}",
        "--start",
        "warm",
    ]
    runner = subprocess.Popen(argv, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    parent = psutil.Process(runner.pid)

    def everything_up():  # the server, two guards, mnist, the spawner and its grandchild
        procs = ours(parent)
        servers = [p for p in procs if "fork_server" in " ".join(p.cmdline())]
        return len(read_pids(pidfile)) == 2 and servers and len(servers[0].children(recursive=True)) >= 5 and procs

    try:
        procs = wait_until(everything_up, timeout=120)
        assert procs, runner.stdout.read() if runner.poll() is not None else "the pair did not start warm"
        log = next((tmp_path / "results").rglob("training.log"))
        assert wait_until(lambda: "Epoch 1 step" in log.read_text(), timeout=60), log.read_text()  # mnist trains
        pids = sorted({p.pid for p in procs} | set(read_pids(pidfile)))
        runner.send_signal(signal.SIGKILL)
        assert runner.wait(timeout=30) == -signal.SIGKILL
        assert wait_until(lambda: pids_alive(pids) == [], timeout=20), f"left alive: {pids_alive(pids)}"
    finally:
        if runner.poll() is None:
            runner.kill()
        runner.wait()


def test_a_fork_warning_can_name_the_threads_that_were_running():
    # In a process of its own: this one's other tests start and end threads of their own at any time.
    script = """
import threading
from gpupair_search.launcher.fork_server import other_threads
alone = other_threads()
release = threading.Event()
thread = threading.Thread(target=release.wait)
thread.start()
print(len(alone), len(other_threads()))
release.set()
thread.join()
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=cli_env())
    assert done.returncode == 0, done.stderr
    alone, with_one = map(int, done.stdout.split())
    assert with_one == alone + 1  # the kernel's list of the process's threads, native ones included


def test_the_launcher_answers_once_torch_is_in_and_imports_the_rest_between_jobs(tmp_path, registry):
    """The first job need not wait for every library (seconds): the server is ready with torch, a
    job forked at once has only what was in by then, and the rest comes in while no request waits."""
    import importlib.util

    from gpupair_search.launcher.fork_server import FIRST_PRELOADED, PRELOAD

    env = {**cli_env(), "PYTHONGPUPAIRTEST": str(tmp_path)}  # a start-up variable of its own: a fresh server
    server = warm_start.WarmServer(env, available_cores(), 1.0)
    names = ",".join(PRELOAD)

    def modules_of_a_new_job(log: Path) -> dict[str, bool]:
        job, _ = server.launch(registry.command(JobConfig("warmfixture", "describe", {"value": names})), log, env, 1.0)
        assert job.wait(timeout=30) == 0
        return json.loads(log.read_text().splitlines()[1])["modules"]

    try:
        assert server.imported == list(PRELOAD[:FIRST_PRELOADED])
        first = modules_of_a_new_job(tmp_path / "first.log")
        installed = [name for name in PRELOAD if importlib.util.find_spec(name) is not None]
        assert all(first[name] for name in PRELOAD[:FIRST_PRELOADED]) and not all(first[name] for name in installed)
        logs = iter(tmp_path / f"later{i}.log" for i in range(1000))
        assert wait_until(lambda: all(modules_of_a_new_job(next(logs))[name] for name in installed), timeout=120)
    finally:
        server.close()


def test_every_one_of_many_concurrent_requests_gets_its_job_back_while_the_job_still_runs(tmp_path, registry):
    """Packed trials ask the launcher at once. A job is handed back as soon as it is forked: a trial that got a
    short job back only after the job had ended (queued for the launcher again, behind other trials' requests)
    would measure nothing of it and record 0 MiB, "ok"."""
    import threading

    env = {**cli_env(), "PYTHONGPUPAIRTEST": f"{tmp_path}/concurrent"}  # a fresh server: it imports between jobs
    server = warm_start.WarmServer(env, available_cores(), 1.0)
    running_at_return: dict[int, bool] = {}

    def ask(i: int) -> None:
        job, _ = server.launch(
            registry.command(JobConfig("warmfixture", "ok", {"seconds": 0.5})), tmp_path / f"{i}.log", env, 1.0
        )
        running_at_return[i] = job.poll() is None
        assert job.wait(timeout=60) == 0

    try:
        threads = [threading.Thread(target=ask, args=(i,)) for i in range(14)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    finally:
        server.close()
    assert running_at_return == {i: True for i in range(14)}
