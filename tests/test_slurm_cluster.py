"""``gpupair-search slurm`` on a real Slurm cluster against the real PostgreSQL: a study spread over 3 array
tasks runs every trial exactly once, and the trial of a task cancelled mid-trial (``scancel``), or killed
without warning as on a dead node, is recovered and run again once by another task.

Needs Slurm's commands and a cluster that answers (CI: ``eval "$(bash .ci/slurm.sh)"``, a one-node cluster on
127.0.0.1 with at least 3 CPUs) and ``GPUPAIR_TEST_POSTGRES`` (``.ci/postgres.sh``). Without them the tests
skip, except where ``GPUPAIR_TEST_SLURM`` says the cluster should be there: then they fail.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import time
from pathlib import Path

import psutil
import pytest
from optuna.trial import TrialState

from gpupair_search.search.engine.placement import PLACEMENT_KEY
from tests.conftest import CPU_CARD_ARGS, pids_alive, read_pids, run_cli, wait_until
from tests.test_postgres_workers import (
    HEARTBEAT,
    URL,
    all_pids,
    assert_each_configuration_ran_once,
    config,
    load,
    measured,
    storage,
    study_settings,
)

TASKS = 3


def _cluster_missing() -> str | None:
    if not URL:
        return 'GPUPAIR_TEST_POSTGRES is not set (CI starts a server with `eval "$(bash .ci/postgres.sh)"`)'
    if shutil.which("sbatch") is None:
        return 'no Slurm here: sbatch is not on PATH (CI starts a cluster with `eval "$(bash .ci/slurm.sh)"`)'
    answer = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=30)
    if answer.returncode != 0 or not answer.stdout.strip():
        return f"the Slurm cluster does not answer: sinfo: {(answer.stderr or 'no nodes').strip().splitlines()[-1]}"
    return None


@pytest.fixture(scope="module")
def cluster() -> None:
    missing = _cluster_missing()
    if missing and os.environ.get("GPUPAIR_TEST_SLURM"):
        pytest.fail(f"GPUPAIR_TEST_SLURM is set, but {missing}")
    if missing:
        pytest.skip(missing)


def submit(settings: Path, tmp_path: Path) -> tuple[str, list[str]]:
    """Submit the study as 3 CPU array tasks, the URL in a 0600 file; the job id and the printed watch command."""
    secrets = tmp_path / "storage.env"
    secrets.write_text(f"GPUPAIR_STORAGE={URL}\n")
    secrets.chmod(0o600)
    done = run_cli(
        "slurm",
        "--settings",
        str(settings),
        *CPU_CARD_ARGS,
        "--full-epoch",
        "--results",
        str(tmp_path / "results"),
        "--storage-env",
        str(secrets),
        "--tasks",
        str(TASKS),
        "--cpus-per-task",
        "1",
        "--time",
        "00:05:00",
        timeout=120,
        env=HEARTBEAT,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("submitted job ") and f"{TASKS} array task(s)" in lines[0], done.stdout
    job = lines[0].split()[2].rstrip(":")
    watch = next(line for line in lines if line.strip().startswith("watch:")).split("watch:", 1)[1]
    return job, shlex.split(watch)


def queued(job: str) -> list[str]:
    """The job's array tasks Slurm still holds (pending or running)."""
    out = subprocess.run(["squeue", "-h", "-j", job, "-o", "%i %T"], capture_output=True, text=True, timeout=30)
    return out.stdout.split("\n") if out.returncode == 0 and out.stdout.strip() else []


def task_states(job: str) -> dict[str, str]:
    """Array task id -> Slurm's final state, from ``scontrol show job`` (no accounting database needed)."""
    out = subprocess.run(["scontrol", "-o", "show", "job", job], capture_output=True, text=True, timeout=30).stdout
    states = {}
    for line in out.splitlines():
        fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
        states[fields.get("ArrayTaskId")] = fields.get("JobState")
    return states


def job_command_lines(job: str) -> list[str]:
    """Command lines of the job's processes (by their environment: the machine may run others' workers)."""
    lines = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if proc.environ().get("SLURM_ARRAY_JOB_ID") == job:
                lines.append(" ".join(proc.info["cmdline"] or []))
        except psutil.Error:
            continue
    return lines


def wait_for(job: str, timeout: float = 150) -> list[str]:
    """Until the job has left the queue; returns the command lines its processes had meanwhile."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while queued(job) and time.monotonic() < deadline:
        seen += job_command_lines(job)
        time.sleep(0.5)
    assert not queued(job), f"job {job} still queued after {timeout:.0f} s: {queued(job)}"
    return seen


def placement(trial) -> dict:
    return trial.user_attrs.get(PLACEMENT_KEY, {})


def node_name() -> str:
    return subprocess.run(["sinfo", "-h", "-N", "-o", "%N"], capture_output=True, text=True, timeout=30).stdout.split()[
        0
    ]


def test_three_array_tasks_run_every_trial_of_the_study_exactly_once(cluster, tmp_path):
    name, settings = study_settings(tmp_path)
    started = time.monotonic()
    job, watch = submit(settings, tmp_path)
    try:
        command_lines = wait_for(job)
    finally:
        subprocess.run(["scancel", job], timeout=30)
    elapsed = time.monotonic() - started
    assert any("with_storage" in line for line in command_lines), command_lines[:3]  # the workers were seen
    assert not [line for line in command_lines if URL in line], "the storage URL was on a command line"
    assert set(task_states(job).values()) == {"COMPLETED"}, task_states(job)
    assert len(task_states(job)) == TASKS
    trials = load(name)
    assert_each_configuration_ran_once(trials)
    assert len({config(t)[0] for t in trials}) == 9
    assert any(t.user_attrs.get("phase") == "extension" for t in trials if "outcome" in t.user_attrs)
    ran = [t for t in trials if "outcome" in t.user_attrs]
    assert {placement(t).get("slurm_array_job_id") for t in ran} == {job}
    assert {placement(t).get("node") for t in ran} == {node_name()}
    tasks = {placement(t).get("slurm_array_task_id") for t in ran}
    assert len(tasks) >= 2 and tasks <= {str(i) for i in range(TASKS)}, tasks  # the tasks shared the work
    assert wait_until(lambda: not pids_alive(all_pids(tmp_path)), timeout=15)
    script = next((tmp_path / "results" / "slurm").glob("*.sbatch")).read_text()
    assert URL not in script
    status = subprocess.run(watch, capture_output=True, text=True, timeout=60)  # the command it printed
    assert status.returncode == 0 and "fits_reduced" in status.stdout, status.stderr
    print(f"{TASKS} array tasks, {sum(measured(trials).values())} trials measured in {elapsed:.0f} s")


def running_long_trial(name: str, tmp_path: Path, timeout: float = 90):
    """A trial of a 3 s pair whose foreground is running, and the array task that runs it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            trials = load(name)
        except KeyError:  # the first task has not created the study yet
            trials = []
        for t in trials:
            task = placement(t).get("slurm_array_task_id")
            if t.state is TrialState.RUNNING and task is not None and "ok+fixture/ok" in config(t)[0]:
                foreground = tmp_path / "pids" / f"{int(config(t)[0][1:3]) - 1}_foreground"
                if wait_until(lambda foreground=foreground: read_pids(foreground), timeout=10, step=0.05):
                    return t, task
        time.sleep(0.2)
    raise AssertionError("no array task ran a trial of a long pair")


def pair_processes(worker_pid: int) -> list[int]:
    try:
        return [p.pid for p in psutil.Process(worker_pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def assert_ran_again_once_by_another_task(name: str, victim, task: str) -> None:
    trials = load(name)
    dead = trials[victim.number]
    assert dead.state is TrialState.FAIL and "outcome" not in dead.user_attrs, (dead.state, dead.user_attrs)
    again = [t for t in trials if config(t) == config(victim) and "outcome" in t.user_attrs]
    assert len(again) == 1 and again[0].number > dead.number
    assert again[0].user_attrs.get("retry_of") == dead.number
    assert placement(again[0]).get("slurm_array_task_id") != task  # run by a task that lived on
    assert_each_configuration_ran_once(trials)


def test_a_task_cancelled_mid_trial_has_its_trial_run_again_once_by_another_task(cluster, tmp_path):
    name, settings = study_settings(tmp_path, seconds=3.0, extension=False)
    job, _ = submit(settings, tmp_path)
    try:
        victim, task = running_long_trial(name, tmp_path)
        processes = pair_processes(placement(victim)["pid"])
        subprocess.run(["scancel", f"{job}_{task}"], check=True, timeout=30)
        assert processes and wait_until(lambda: not pids_alive(processes), timeout=30), (
            f"the cancelled task's pair outlived it: {pids_alive(processes)}"
        )
        wait_for(job)
    finally:
        subprocess.run(["scancel", job], timeout=30)
    states = task_states(job)
    assert states.pop(task) == "CANCELLED" and set(states.values()) == {"COMPLETED"}, task_states(job)
    assert_ran_again_once_by_another_task(name, victim, task)
    assert load(name)[victim.number].user_attrs.get("fail_reason", "").startswith("interrupted")
    assert wait_until(lambda: not pids_alive(all_pids(tmp_path)), timeout=15)


def test_a_task_killed_without_warning_has_its_trial_recovered_by_heartbeat(cluster, tmp_path):
    """As when a node dies: SIGKILL leaves the trial RUNNING. Made to look like another host's (the test cluster
    has one node, where the dead worker's PID would give it away), only its stopped heartbeat tells."""
    name, settings = study_settings(tmp_path, seconds=3.0, extension=False)
    job, _ = submit(settings, tmp_path)
    try:
        victim, task = running_long_trial(name, tmp_path)
        storage().set_trial_system_attr(victim._trial_id, "gpupair:host", "dead-node.example")
        processes = pair_processes(placement(victim)["pid"])
        subprocess.run(["scancel", "--batch", "--signal=KILL", f"{job}_{task}"], check=True, timeout=30)
        killed_at = time.time()
        assert processes and wait_until(lambda: not pids_alive(processes), timeout=30), (
            f"the killed task's pair outlived it: {pids_alive(processes)}"
        )
        wait_for(job)
    finally:
        subprocess.run(["scancel", job], timeout=30)
    assert_ran_again_once_by_another_task(name, victim, task)
    dead = load(name)[victim.number]
    assert "fail_reason" not in dead.user_attrs  # nobody marked it: the heartbeat's grace period ran out
    again = [t for t in load(name) if t.user_attrs.get("retry_of") == dead.number][0]
    assert again.datetime_start.timestamp() - killed_at >= int(HEARTBEAT["GPUPAIR_GRACE_S"]) - 1
    assert wait_until(lambda: not pids_alive(all_pids(tmp_path)), timeout=15)
