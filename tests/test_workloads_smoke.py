"""Smoke test of the built-in synthetic workloads (workloads/), on the CPU.

Every model registered in settings/models.json runs once as a real subprocess,
with the argv built from the models file the way the launcher builds it, for
one epoch of 2 steps at batch size 2 (evaluation cut to 2 batches). Checks:
exit code 0, the success marker as the last line, every log pattern matches.
"""

import json
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from gpupair_search.launcher.spec import JobConfig
from gpupair_search.search.engine.inputs import load_registry

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
MODELS = json.loads((ROOT / "settings" / "models.json").read_text(encoding="utf-8"))["models"]
REGISTRY = load_registry(None)  # the bundled models file
SUCCESS_MARKER = "[SUCCESS] Training completed"
# hyperparameters given to every repository that has them
SMOKE = {"epochs": 1, "batch_size": 2, "max_steps": 2, "kfold": 2, "max_iter": 3, "n_jobs": 2}
CASES = [(repo, model) for repo, entry in MODELS.items() if not repo.startswith("_") for model in entry["models"]]


@pytest.mark.parametrize(("repo", "model"), CASES, ids=[f"{repo}-{model}" for repo, model in CASES])
def test_workload_runs_and_prints_its_metrics(repo, model):
    pytest.importorskip("sklearn" if repo == "bug-localization-by-dnn-and-rvsm" else "torch")
    if model == "hrnet18":
        pytest.importorskip("timm")
    entry = MODELS[repo]
    hyperparameters = {k: v for k, v in SMOKE.items() if k in entry["supported_hyperparams"]}
    command = REGISTRY.command(JobConfig(repo, model, hyperparameters))  # exactly as the launcher builds it
    argv = list(command.argv)
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")

    proc = subprocess.run(argv, cwd=command.cwd, env=env, capture_output=True, text=True, timeout=300)

    shown = f"$ {shlex.join(argv)}\n--- stdout ---\n{proc.stdout[-4000:]}\n--- stderr ---\n{proc.stderr[-4000:]}"
    assert proc.returncode == 0, shown
    lines = proc.stdout.strip().splitlines()
    assert lines and lines[-1] == SUCCESS_MARKER, shown
    for metric, pattern in entry["performance_metrics"]["log_patterns"].items():
        assert re.search(pattern, proc.stdout), f"log pattern {metric!r} ({pattern}) did not match\n{shown}"
