"""``gpupair-search slurm``: a study's workers as a Slurm job array, one worker (and one GPU) per task.

No scheduler of our own: a plain ``sbatch`` script that the user can read, keep and submit again. Each
array task runs ``gpupair-search worker`` against the study's PostgreSQL storage and takes queued trials
until none is left. Slurm places the tasks; the storage's heartbeat recovers the trial of a task that dies
(a failed node, ``scancel``, the time limit): the remaining tasks, or the next submission of the same
script, run it again, and a configuration already measured is never run again.

The storage URL's password goes neither on a command line nor into the script: the tasks read the URL from
an environment file of mode 0600 (:mod:`with_storage`), or use a URL without a password and ``~/.pgpass``.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from gpupair_search.launcher.errors import UserError
from gpupair_search.launcher.masking import has_secret, mask_secrets
from gpupair_search.launcher.spec import StudyKind
from gpupair_search.search.cli import options as opt
from gpupair_search.search.cli.run_study import RunRequest
from gpupair_search.search.cli.storage_env import STORAGE_VARIABLE, read_storage_env
from gpupair_search.search.engine.session import resolve_inputs
from gpupair_search.search.engine.storage import GRACE_S, HEARTBEAT_S, redact_url
from gpupair_search.search.policy.extension import Policy

#: Heartbeat settings a task must share with every other worker of the study (see search/engine/storage.py).
HEARTBEAT_VARIABLES = ("GPUPAIR_HEARTBEAT_S", "GPUPAIR_GRACE_S")


class SlurmError(UserError):
    pass


@dataclass(frozen=True)
class SlurmJob:
    """What ``sbatch`` is asked for, besides the study's own options."""

    tasks: int = 1
    cpus_per_task: int = 4
    time: str | None = None
    partition: str | None = None
    account: str | None = None
    job_name: str | None = None
    sbatch_options: tuple[str, ...] = ()  # more #SBATCH lines, e.g. "--mem=32G", "--constraint=a100"
    storage: str | None = None  # a PostgreSQL URL without a password (~/.pgpass)
    storage_env: Path | None = None  # or an environment file of mode 0600 with GPUPAIR_STORAGE=...


def require_postgres(url: str, source: str) -> None:
    """Workers on several nodes share the study only through a database server."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        backend = make_url(url).get_backend_name()
    except ArgumentError:
        backend = url.split(":", 1)[0] if ":" in url else "?"
    if backend == "postgresql":
        return
    why = (
        (
            "SQLite on a shared file system loses writes: its file locks do not hold over NFS or Lustre, so "
            "workers on several nodes would corrupt the study"
        )
        if backend == "sqlite"
        else f"'{backend}' is not a storage the cluster workers are built and tested for"
    )
    raise SlurmError(
        f"{source} {redact_url(url)}: slurm needs a PostgreSQL storage; {why}.\n"
        '  fix: start a PostgreSQL server the nodes can reach (docs: "Many GPUs, many hosts", docs/guide/many-gpus.md) and '
        "pass postgresql://user@host:5432/db"
    )


def check_storage(job: SlurmJob) -> str:
    """The PostgreSQL URL the tasks will use, checked; the password stays where it is."""
    if (job.storage is None) == (job.storage_env is None):
        raise SlurmError(
            "give the study's storage as --storage postgresql://user@host/db (password in ~/.pgpass "
            "on the nodes) or as --storage-env FILE (mode 0600, a line GPUPAIR_STORAGE=postgresql://"
            "user:password@host/db); exactly one of them"
        )
    if job.storage_env is not None:
        url = read_storage_env(job.storage_env)[STORAGE_VARIABLE]
        require_postgres(url, f"{job.storage_env}: {STORAGE_VARIABLE}")
        return url
    require_postgres(job.storage, "--storage")
    if has_secret(job.storage):
        raise SlurmError(
            f"--storage {redact_url(job.storage)}: the URL holds a password, which would be written "
            "into the job script and onto every worker's command line.\n"
            f"  fix: put the URL in a file of mode 0600 as {STORAGE_VARIABLE}=... and pass "
            "--storage-env FILE, or drop the password from the URL and keep it in ~/.pgpass"
        )
    return job.storage


def task_device(device: str | None) -> str:
    """Each task's device: the GPU Slurm gave it (cuda:0, the first visible) or the CPU."""
    if device in (None, "auto", "cuda", "cuda:0"):
        return "cuda:0"
    if device == "cpu":
        return "cpu"
    raise SlurmError(
        f"--device {device}: each array task measures on the one GPU Slurm gives it (cuda:0, the "
        "default) or on the CPU (--device cpu)"
    )


def absolute(req: RunRequest) -> RunRequest:
    """Paths as the nodes will see them (the script also runs in this directory)."""

    def resolve(path: Path | None) -> Path | None:
        return None if path is None else Path(path).resolve()

    return replace(
        req,
        results=resolve(req.results),
        settings=resolve(req.settings),
        models=resolve(req.models),
        repos_root=resolve(req.repos_root),
    )


def job_name(req: RunRequest, study_name: str, job: SlurmJob) -> str:
    return job.job_name or re.sub(r"[^A-Za-z0-9_.-]", "_", f"gpupair-{study_name}")


def logs_dir(req: RunRequest) -> Path:
    return Path(req.results) / "slurm"


def worker_command(req: RunRequest, job: SlurmJob, python: str) -> list[str]:
    """What each task runs: the worker, its storage from the environment file or the password-free URL."""
    options = req.worker_options(task_device(req.device))
    if job.storage_env is not None:
        return [
            python,
            "-m",
            "gpupair_search.search.cli.with_storage",
            str(job.storage_env.resolve()),
            "worker",
            *options,
        ]
    return [python, "-m", "gpupair_search.search.cli.app", "worker", "--storage", job.storage, *options]


def status_command(req: RunRequest, job: SlurmJob, python: str) -> list[str]:
    """The command that prints the study's verdicts, from any machine that reaches the storage."""
    args = []
    for flag, value in (
        ("--study", req.study),
        ("--settings", req.settings),
        ("--name", req.name),
        ("--models", req.models),
        ("--repos-root", req.repos_root),
        ("--results", req.results),
    ):
        if value is not None:
            args += [flag, str(value)]
    args += ["--lenient"] * req.lenient
    if job.storage_env is not None:
        return [python, "-m", "gpupair_search.search.cli.with_storage", str(job.storage_env.resolve()), "status", *args]
    return ["gpupair-search", "status", "--storage", job.storage, *args]


def _sbatch_line(option: str) -> str:
    if any(c.isspace() for c in option):  # sbatch splits #SBATCH lines at white space
        raise SlurmError(
            f"sbatch option {option!r}: contains white space, which a #SBATCH line cannot hold; "
            "use a path or value without spaces"
        )
    return f"#SBATCH {option}"


def build_script(
    req: RunRequest, job: SlurmJob, study_name: str, python: str | None = None, environ: dict[str, str] | None = None
) -> str:
    """The job script: readable, one worker per array task; it holds no password."""
    req = absolute(req)
    python = python or sys.executable
    environ = os.environ if environ is None else environ
    device = task_device(req.device)
    name = job_name(req, study_name, job)
    options = [f"--job-name={name}", f"--array=0-{job.tasks - 1}", "--ntasks=1", f"--cpus-per-task={job.cpus_per_task}"]
    options += ["--gres=gpu:1"] if device.startswith("cuda") else []
    options += [f"--chdir={Path.cwd()}", f"--output={logs_dir(req)}/%x-%A_%a.out"]
    options += [
        f"--{flag}={value}"
        for flag, value in (("time", job.time), ("partition", job.partition), ("account", job.account))
        if value
    ]
    options += list(job.sbatch_options)
    beat = {k: environ[k] for k in HEARTBEAT_VARIABLES if environ.get(k)}
    secret = (
        (
            f"# The storage URL, with its password, is read by each task from {job.storage_env.resolve()}\n"
            "# (mode 0600); it is written neither here nor on a command line.\n"
        )
        if job.storage_env
        else "# The database password is not in the URL: each node reads it from ~/.pgpass.\n"
    )
    lines = [
        "#!/bin/bash",
        f"# Written by `gpupair-search slurm` on {datetime.now():%Y-%m-%d %H:%M}: study '{study_name}', "
        f"{job.tasks} array task(s),",
        f"# one worker each{' on the GPU that Slurm gives the task (cuda:0)' if device != 'cpu' else ' on the CPU'}, "
        "taking queued trials until none is left.",
        f"# A task that dies leaves its trial to the heartbeat: after {GRACE_S} s without one, another task,",
        "# or the next submission of this script (sbatch THIS_FILE), runs it again.",
        *(_sbatch_line(o) for o in options),
        "set -euo pipefail",
        "export PYTHONUNBUFFERED=1",
    ]
    if beat:
        lines.append("# Every worker of the study must use the same heartbeat settings:")
        lines.append("export " + " ".join(f"{k}={shlex.quote(v)}" for k, v in beat.items()))
    else:
        lines.append(
            f"# Heartbeat: the defaults ({HEARTBEAT_S} s, stale after {GRACE_S} s); "
            "set GPUPAIR_HEARTBEAT_S / GPUPAIR_GRACE_S when submitting to change them."
        )
    lines.append(
        'echo "gpupair worker: node ${SLURMD_NODENAME:-$(hostname)}, job ${SLURM_JOB_ID:-?}, '
        'task ${SLURM_ARRAY_TASK_ID:-?}, GPUs ${CUDA_VISIBLE_DEVICES:-none}" >&2'
    )
    lines.append(secret.rstrip("\n"))
    lines.append("exec " + shlex.join(worker_command(req, job, python)))
    text = "\n".join(lines) + "\n"
    if mask_secrets(text) != text:  # check_storage refuses a URL with a password; nothing else may carry one
        raise SlurmError(
            "the job script would hold a password; nothing was written. Pass the storage with "
            "--storage-env FILE (mode 0600)"
        )
    return text


@dataclass(frozen=True)
class Submission:
    job_id: str
    script: Path
    logs: Path
    status: list[str]


def write_script(text: str, req: RunRequest, name: str) -> Path:
    """Keep the script with the results (``sbatch`` reads it, the user may read and resubmit it)."""
    folder = logs_dir(absolute(req))
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{name}-{datetime.now():%Y%m%d-%H%M%S}"
    for n in range(1, 1000):
        path = folder / (f"{stem}.sbatch" if n == 1 else f"{stem}-{n}.sbatch")
        try:
            with path.open("x") as fh:
                fh.write(text)
            return path
        except FileExistsError:
            continue
    raise SlurmError(f"{folder}: cannot find a free name for the job script")


def sbatch(script: Path) -> str:
    """Submit; the job id. No shell: the script's path is one argv element."""
    if shutil.which("sbatch") is None:
        raise SlurmError(
            "sbatch was not found: run `gpupair-search slurm` where Slurm's commands are installed "
            f"(a login node), or see the script with --dry-run. The script was kept: {script}"
        )
    done = subprocess.run(["sbatch", "--parsable", str(script)], capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip() or f"exit code {done.returncode}"
        raise SlurmError(f"sbatch refused the job: {detail}\n  script: {script}")
    return done.stdout.strip().split(";")[0]


def submit(req: RunRequest, job: SlurmJob, dry_run: bool = False) -> str:
    """Check everything here, then write and submit the script (or, ``dry_run``, return it). Returns what to
    print."""
    if req.policy not in {p.value for p in Policy}:
        raise SlurmError(f"--policy {req.policy!r}: expected one of " + ", ".join(p.value for p in Policy))
    device = task_device(req.device)
    check_storage(job)
    card = opt.card_size(StudyKind.CPU if device == "cpu" else StudyKind.GPU, req.gpu_memory, req.cpu_memory)
    inputs = resolve_inputs(
        req.study, req.settings, req.models, req.repos_root, req.lenient, card, req.safe_limit
    )  # a mistake in the settings stops here, not in every task
    text = build_script(req, job, inputs.name)
    if dry_run:
        return text
    name = job_name(req, inputs.name, job)
    script = write_script(text, req, name)
    job_id = sbatch(script)
    done = Submission(
        job_id,
        script,
        logs_dir(absolute(req)) / f"{name}-{job_id}_<task>.out",
        status_command(absolute(req), job, sys.executable),
    )
    return (
        f"submitted job {done.job_id}: {job.tasks} array task(s), one worker each, study '{inputs.name}'\n"
        f"  script: {done.script}\n"
        f"  logs:   {done.logs}\n"
        f"  watch:  {shlex.join(done.status)}\n"
        f"  cancel: scancel {done.job_id}   (a cancelled task's trial is run again by the remaining tasks "
        "or by the next submission)"
    )
