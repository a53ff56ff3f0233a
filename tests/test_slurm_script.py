"""``gpupair-search slurm`` before anything reaches a cluster: the script ``--dry-run`` prints, and what it
refuses (SQLite, a password in the URL, an environment file others can read). Needs no Slurm and no database:
the real command runs as a subprocess, with ``sbatch`` off its PATH to show that nothing is submitted.
Also the pure parts a worker needs on a node: which GPU ``cuda:N`` is, and its placement record."""

from __future__ import annotations

import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

from gpupair_search.launcher.devices.base import NoDeviceError
from gpupair_search.launcher.devices.visible import match_uuid, visible_gpu
from gpupair_search.search.engine.placement import worker_placement
from tests.conftest import FIXTURES, run_cli

URL = "postgresql://gpupair:s3cret-pw@db.example:5432/gpupair"
STUDY = [
    "--settings",
    str(FIXTURES / "worker_settings.json"),
    "--models",
    str(FIXTURES / "models.json"),
    "--repos-root",
    str(FIXTURES),
    "--gpu-memory",
    "400MiB",
    "--safe-limit",
    "250MiB",
]
NO_SBATCH = {"PATH": os.path.dirname(sys.executable)}  # this Python alone: no sbatch to call


def env_file(tmp_path: Path, url: str = URL, mode: int = 0o600) -> Path:
    path = tmp_path / "storage.env"
    path.write_text(f"# the study's database\nexport GPUPAIR_STORAGE='{url}'\n")
    path.chmod(mode)
    return path


def slurm(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return run_cli("slurm", *args, timeout=120, env={**NO_SBATCH, **(env or {})})


def test_dry_run_prints_a_gpu_array_script_without_the_password_and_submits_nothing(tmp_path):
    secrets = env_file(tmp_path)
    done = slurm(
        *STUDY,
        "--storage-env",
        str(secrets),
        "--tasks",
        "3",
        "--results",
        str(tmp_path / "results"),
        "--time",
        "02:00:00",
        "--sbatch-option=--mem=16G",
        "--dry-run",
    )
    assert done.returncode == 0, done.stderr
    script = done.stdout
    for line in (
        "#SBATCH --array=0-2",
        "#SBATCH --gres=gpu:1",
        "#SBATCH --cpus-per-task=4",
        "#SBATCH --time=02:00:00",
        "#SBATCH --mem=16G",
        "#SBATCH --job-name=gpupair-worker_study",
        f"#SBATCH --output={tmp_path / 'results'}/slurm/%x-%A_%a.out",
    ):
        assert line in script.splitlines(), line
    command = script.splitlines()[-1]
    assert command.startswith(f"exec {sys.executable} -m gpupair_search.search.cli.with_storage {secrets} worker ")
    assert "--device cuda:0" in command and "--gpu-memory 400MiB" in command and "--storage" not in command
    assert "s3cret-pw" not in script and "db.example" not in script
    assert not (tmp_path / "results").exists()  # nothing written, and no sbatch was there to call
    syntax = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True)
    assert syntax.returncode == 0, syntax.stderr


def test_dry_run_on_the_cpu_asks_for_no_gpu_and_passes_the_heartbeat_settings_on(tmp_path):
    without_card = [a for a in STUDY if a not in ("--gpu-memory", "400MiB")]  # on the CPU the card is --cpu-memory
    done = slurm(
        *without_card,
        "--storage",
        "postgresql://gpupair@db.example/gpupair",
        "--device",
        "cpu",
        "--cpu-memory",
        "1GiB",
        "--cpus-per-task",
        "1",
        "--dry-run",
        env={"GPUPAIR_HEARTBEAT_S": "2", "GPUPAIR_GRACE_S": "9"},
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert not [line for line in lines if "--gres" in line]
    assert "#SBATCH --cpus-per-task=1" in lines
    assert "export GPUPAIR_HEARTBEAT_S=2 GPUPAIR_GRACE_S=9" in lines
    assert lines[-1].startswith(
        f"exec {sys.executable} -m gpupair_search.search.cli.app worker "
        "--storage postgresql://gpupair@db.example/gpupair --device cpu "
    )
    assert "--cpu-memory 1GiB" in lines[-1]


@pytest.mark.parametrize("url", ["sqlite:///results/gpupair.db", "sqlite:////shared/study.db"])
def test_sqlite_is_refused_because_a_shared_file_system_loses_its_writes(tmp_path, url):
    for storage in (["--storage", url], ["--storage-env", str(env_file(tmp_path, url))]):
        done = slurm(*STUDY, *storage, "--dry-run")
        assert done.returncode == 1 and not done.stdout
        assert "slurm needs a PostgreSQL storage; SQLite on a shared file system loses writes" in done.stderr
        assert "Traceback" not in done.stderr


def test_other_databases_and_a_url_with_its_password_are_refused(tmp_path):
    mysql = slurm(*STUDY, "--storage", "mysql://u@db.example/study", "--dry-run")
    assert mysql.returncode == 1 and "slurm needs a PostgreSQL storage" in mysql.stderr
    with_password = slurm(*STUDY, "--storage", URL, "--dry-run")
    assert with_password.returncode == 1 and "the URL holds a password" in with_password.stderr
    assert "s3cret-pw" not in with_password.stderr and "--storage-env" in with_password.stderr
    neither = slurm(*STUDY, "--dry-run")
    assert neither.returncode == 1 and "exactly one of them" in neither.stderr


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_an_environment_file_others_can_read_is_refused_with_the_chmod_to_run(tmp_path, mode):
    secrets = env_file(tmp_path, mode=mode)
    done = slurm(*STUDY, "--storage-env", str(secrets), "--dry-run")
    assert done.returncode == 1 and not done.stdout
    assert f"{secrets}: has mode {mode:04o}: other users could read the database password" in done.stderr
    assert f"fix: chmod 600 {secrets}" in done.stderr and "s3cret-pw" not in done.stderr
    # and each task checks again before it reads the file (it may have changed since)
    task = subprocess.run(
        [sys.executable, "-m", "gpupair_search.search.cli.with_storage", str(secrets), "status"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert task.returncode == 1 and f"has mode {mode:04o}" in task.stderr and "Traceback" not in task.stderr


def test_an_environment_file_without_the_url_names_what_it_must_hold(tmp_path):
    secrets = tmp_path / "storage.env"
    secrets.write_text("PGSSLMODE=require\nnot a variable line\n")
    secrets.chmod(0o600)
    done = slurm(*STUDY, "--storage-env", str(secrets), "--dry-run")
    assert done.returncode == 1 and f"{secrets}: line 2: is not a KEY=VALUE line" in done.stderr
    secrets.write_text("PGSSLMODE=require\n")
    done = slurm(*STUDY, "--storage-env", str(secrets), "--dry-run")
    assert done.returncode == 1 and f"{secrets}: sets no GPUPAIR_STORAGE" in done.stderr


def test_a_settings_mistake_stops_the_submission_here_not_in_every_task(tmp_path):
    bad = tmp_path / "settings.json"
    bad.write_text('{"experiments": [')
    done = slurm("--settings", str(bad), "--storage-env", str(env_file(tmp_path)), "--dry-run")
    assert done.returncode != 0 and str(bad) in done.stderr and "Traceback" not in done.stderr


def test_without_sbatch_the_submission_says_where_to_run_it(tmp_path):
    done = slurm(*STUDY, "--storage-env", str(env_file(tmp_path)), "--results", str(tmp_path / "results"))
    assert done.returncode == 1 and "sbatch was not found" in done.stderr
    kept = list((tmp_path / "results" / "slurm").glob("*.sbatch"))
    assert len(kept) == 1 and str(kept[0]) in done.stderr


def test_cuda_n_is_the_n_th_visible_gpu_by_index_or_uuid():
    assert visible_gpu(1, None) == 1  # unset: every GPU of the host
    assert visible_gpu(0, "3") == 3  # Slurm gave GPU 3: cuda:0 is NVML's GPU 3
    assert visible_gpu(1, "2, 5") == 5
    assert visible_gpu(0, "GPU-8f2a1c3e-0000-4d6e-9a1b-aaaaaaaaaaaa,1") == "GPU-8f2a1c3e-0000-4d6e-9a1b-aaaaaaaaaaaa"
    assert visible_gpu(1, "GPU-8f2a,1") == 1


@pytest.mark.parametrize(
    "n, visible, message",
    [
        (1, "3", "cuda:1 is not visible to this process: CUDA_VISIBLE_DEVICES='3' makes 1 GPU(s) visible (cuda:0)"),
        (0, "", "makes 0 GPU(s) visible (none)"),
        (0, "-1", "makes 0 GPU(s) visible"),
        (0, "MIG-4b2a", "names a MIG instance"),
        (0, "gpu0", "entry 'gpu0' is neither a GPU index nor a GPU UUID"),
    ],
)
def test_a_gpu_that_is_not_visible_is_refused_with_what_is(n, visible, message):
    with pytest.raises(NoDeviceError, match=message.replace("(", r"\(").replace(")", r"\)")):
        visible_gpu(n, visible)


def test_a_uuid_or_a_unique_prefix_of_one_finds_its_nvml_index():
    uuids = ["GPU-11aa", "GPU-22bb", "GPU-22cc"]
    assert match_uuid("GPU-22cc", uuids) == 2 and match_uuid("GPU-11", uuids) == 0
    with pytest.raises(NoDeviceError, match="2 GPUs of this host match"):
        match_uuid("GPU-22", uuids)
    with pytest.raises(NoDeviceError, match="no GPU of this host has"):
        match_uuid("GPU-33", uuids)


def test_the_placement_names_the_slurm_node_job_task_and_gpu():
    env = {
        "SLURMD_NODENAME": "gpu-node-07",
        "SLURM_JOB_ID": "4242",
        "SLURM_ARRAY_JOB_ID": "4240",
        "SLURM_ARRAY_TASK_ID": "2",
    }
    record = worker_placement(types.SimpleNamespace(uuid="GPU-11aa"), env)
    assert record["node"] == "gpu-node-07" and record["gpu_uuid"] == "GPU-11aa" and record["pid"] == os.getpid()
    assert (record["slurm_job_id"], record["slurm_array_job_id"], record["slurm_array_task_id"]) == (
        "4242",
        "4240",
        "2",
    )
    outside = worker_placement(None, {})
    assert outside["node"] and not [k for k in outside if k.startswith("slurm") or k == "gpu_uuid"]
