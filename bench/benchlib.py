"""Helpers shared by the bench/ scripts: the bundled registry, the GPU, output files."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import sys
from pathlib import Path

from gpupair_search.launcher.devices import open_device
from gpupair_search.launcher.registry import Registry
from gpupair_search.settings import BUNDLE_ROOT, bundled
from gpupair_search.studies.matrix import MATRIX_MODELS

ROOT = Path(__file__).resolve().parents[1]

#: The built-in models that use the GPU: the matrix study's, each with a shipped memory profile.
GPU_WORKLOADS = list(MATRIX_MODELS)


def bench_job(reg: Registry, key: str, epochs: int, **hyperparameters):
    """``repo/model`` with ``hyperparameters``, for ``epochs`` epochs where the script takes an epoch count."""
    from gpupair_search.launcher.spec import JobConfig

    repo, model = key.rsplit("/", 1)
    job = JobConfig(repo, model, hyperparameters)
    return job.with_hyperparameter("epochs", epochs) if reg.supports(job, "epochs") else job


def one_epoch_probe(reg: Registry, key: str, steps: int):
    """``repo/model`` for one epoch of at most ``steps`` steps (the scripts' own default is many epochs)."""
    return bench_job(reg, key, 1, max_steps=steps)


def registry() -> Registry:
    return Registry.load(bundled("models.json"), base_dir=BUNDLE_ROOT)


def out_dir() -> Path:
    path = Path(os.environ.get("OUT") or ROOT / "results" / "bench")
    path.mkdir(parents=True, exist_ok=True)
    return path


def stamp() -> dict:
    return {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "argv": sys.argv}


def emit(data: dict, path: Path | None) -> None:
    """Print ``data`` as JSON, and write it to ``path`` when one is given."""
    text = json.dumps(data, indent=2, default=str)
    print(text)
    if path:
        path.write_text(text + "\n")


def write_json(name: str, data: dict) -> Path:
    path = out_dir() / name
    path.write_text(json.dumps(data, indent=2, default=str))
    return path


def last_float(pattern: str, text: str) -> float | None:
    found = re.findall(pattern, text)
    return float(found[-1]) if found else None


def self_reported_peak(text: str) -> float | None:
    """max_memory_reserved plus the CUDA context (NVML of the process minus what torch reserved)."""
    reserved = last_float(r"max_memory_reserved_mib=([\d.]+)", text)
    context = last_float(r"context_mib=([\d.]+)", text)
    return reserved + context if reserved is not None and context is not None else None


__all__ = [
    "GPU_WORKLOADS",
    "bench_job",
    "one_epoch_probe",
    "registry",
    "out_dir",
    "stamp",
    "write_json",
    "last_float",
    "self_reported_peak",
    "open_device",
]
