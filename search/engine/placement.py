"""Where a worker runs: its node, its Slurm job and array task, its GPU. Recorded on each of its trials.

With workers spread over a cluster, a trial's numbers are only worth as much as knowing which card they
came from (a faulty GPU, a node that died): every trial a worker starts carries this record as its
``placement`` user attribute, also a trial that its worker did not live to finish.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

PLACEMENT_KEY = "placement"

#: Slurm's variables of a batch job, by the key they get in the record.
SLURM_VARIABLES = {
    "slurm_job_id": "SLURM_JOB_ID",
    "slurm_array_job_id": "SLURM_ARRAY_JOB_ID",
    "slurm_array_task_id": "SLURM_ARRAY_TASK_ID",
    "slurm_cpus_on_node": "SLURM_CPUS_ON_NODE",
}


def worker_placement(device: object | None, env: Mapping[str, str] | None = None) -> dict[str, object]:
    """The node (Slurm's name for it, else the host name), the worker's PID, the Slurm ids when it runs
    in a Slurm job, the cores it may use, and the GPU's UUID when its device is a GPU."""
    env = os.environ if env is None else env
    record: dict[str, object] = {"node": env.get("SLURMD_NODENAME") or socket.gethostname(), "pid": os.getpid()}
    record.update({key: env[name] for key, name in SLURM_VARIABLES.items() if env.get(name)})
    if hasattr(os, "sched_getaffinity"):
        from gpupair_search.launcher.cpu_share import available_cores, format_cpu_list

        record["cpus"] = format_cpu_list(available_cores())
    uuid = device.uuid if device is not None else None
    if uuid:
        record["gpu_uuid"] = uuid
    return record
