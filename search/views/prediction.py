"""``gpupair-search plan``: which pairs would fit on a card you do not have, SIMULATED from the shipped profiles
through the same study a run uses (in a throw-away storage)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from gpupair_search.launcher.pair_runner import RunOptions
from gpupair_search.launcher.spec import StudyKind
from gpupair_search.search.engine.executors import DeviceExecutor
from gpupair_search.search.engine.session import open_study, resolve_inputs, simulated_device
from gpupair_search.search.policy.planner import ExtensionOptions
from gpupair_search.search.views.console import verdicts_text


def predict(study, settings, gpu_memory, safe_limit, models, repos_root, lenient) -> str:
    inputs = resolve_inputs(study, settings, models, repos_root, lenient, gpu_memory, safe_limit)
    device = simulated_device(inputs)
    with tempfile.TemporaryDirectory() as tmp:
        fs = open_study(inputs, f"sqlite:///{tmp}/plan.db", Path(tmp), ExtensionOptions(), StudyKind.SIMULATED)
        fs.enqueue_initial()
        fs.run(DeviceExecutor(inputs.registry, device, RunOptions(), None))
        table = verdicts_text(fs.plans(), inputs.safe_limit_mib, StudyKind.SIMULATED)
    root = f"{inputs.registry.root_note}\n" if inputs.registry.root_note else ""
    return f"{root}SIMULATED prediction for a {inputs.card_mib:,.0f} MiB card ({device.name})\n{table}"
