"""The matrix study: every ordered pair of the 11 built-in models, and each model alone, at its defaults.

121 entries (11 solo ``default`` entries, then 110 ``parallel`` ones, foreground by foreground) on the same
8 GiB card and 7500 MiB safe limit as ``feasibility``. The settings file is seed format, generated from the
models file so that each job runs at the models file's own defaults; ``settings/matrix.json`` is the
generated file, shipped, and a test keeps it equal to what :func:`matrix_settings` makes of
``settings/models.json``. Regenerate it after editing the models file::

    python -m gpupair_search.studies.write_matrix            # rewrites settings/matrix.json
    python -m gpupair_search.studies.write_matrix --check    # exit 1 when it is out of date

The solos run first and the pairs largest predicted peak first (``likely_failures_first``, see
search/engine/work_order.py): the order of the queue only, never the set of pairs.
"""

from __future__ import annotations

import json
from typing import Any

from gpupair_search.launcher.errors import UserError
from gpupair_search.launcher.registry import BUILTIN_PROBE_STEPS, MAX_STEPS, Registry
from gpupair_search.settings import BUNDLE_ROOT, bundled
from gpupair_search.studies.definition import StudyDefaults, StudyDefinition

#: The 11 built-in models, as ``repo/model`` of settings/models.json: the seed's workloads that use the GPU, each
#: with a shipped memory profile. Left out: bug-localization (scikit-learn on the CPU, 0 MiB on the GPU as
#: measured, so its row and column would repeat the solos) and resnet32/44/56 (depths of resnet20 that the
#: seed's studies never run).
MATRIX_MODELS = (
    "examples/mnist",
    "examples/mnist_rnn",
    "examples/mnist_ff",
    "examples/siamese",
    "pytorch_resnet_cifar10/resnet20",
    "Person_reID_baseline_pytorch/densenet121",
    "Person_reID_baseline_pytorch/hrnet18",
    "Person_reID_baseline_pytorch/pcb",
    "VulBERTa/mlp",
    "VulBERTa/cnn",
    "MRT-OAST/default",
)
#: Hyperparameters of the models file that are no training settings: ``max_steps`` caps a probe (probe mode
#: sets it), it is not a default a user would run.
_NOT_WRITTEN = (MAX_STEPS,)
SETTINGS_NAME = "matrix.json"

STUDY = StudyDefinition(
    name="matrix",
    settings=bundled(SETTINGS_NAME),
    card_mib=8192.0,
    safe_limit_mib=7500.0,
    defaults=StudyDefaults(
        likely_failures_first=True,
        # The matrix answers memory: its solos are its solo runs, and a probe needs no steady-state window (the
        # background would otherwise train at least 5 x 2 s per pair, longer than a whole serial pair takes).
        baselines=False,
        min_window_s=0.0,
        # A survey of 110 pairs: packed peaks clearly under the limit are its verdicts (labelled packed); what is
        # near the card or the limit is still confirmed alone on it (search/policy/confirmation.py).
        confirm="near-limits",
        probe_steps=BUILTIN_PROBE_STEPS,
    ),
)


def default_hyperparameters(registry: Registry, key: str) -> dict[str, Any]:
    """The job ``repo/model`` at its models-file defaults: each hyperparameter's default, with the model's own
    ``model_defaults`` (e.g. pcb's batch size 32) over the repository's."""
    repo_name, _, model = key.partition("/")
    repo = registry.repositories.get(repo_name)
    if repo is None or model not in repo.models:
        raise UserError(
            f"{registry.file}: has no model {key!r}, which the matrix study pairs; add it to the models "
            "file or remove it from MATRIX_MODELS in studies/matrix.py"
        )
    values = {
        name: hp.default
        for name, hp in repo.hyperparameters.items()
        if hp.default is not None and name not in _NOT_WRITTEN
    }
    values.update(
        {
            name: value
            for name, value in repo.model_defaults.get(model, {}).items()
            if name in repo.hyperparameters and name not in _NOT_WRITTEN
        }
    )
    return values


def _job(registry: Registry, key: str, **extra: Any) -> dict[str, Any]:
    repo, _, model = key.partition("/")
    return {"repo": repo, "model": model, **extra, "hyperparameters": default_hyperparameters(registry, key)}


def matrix_settings(registry: Registry, models: tuple[str, ...] = MATRIX_MODELS) -> dict[str, Any]:
    """The matrix study's settings file (seed format): each of ``models`` alone, then every ordered pair."""
    solos = [{"mode": "default", **_job(registry, key), "note": f"Matrix: solo {key}"} for key in models]
    pairs = [
        {
            "mode": "parallel",
            "foreground": _job(registry, fg, mode="default"),
            "background": _job(registry, bg),
            "note": f"Matrix: fg {fg} + bg {bg}",
        }
        for fg in models
        for bg in models
        if fg != bg
    ]
    n = len(models)
    return {
        "_comment": "Generated from settings/models.json by `python -m gpupair_search.studies.write_matrix`; do not edit "
        "by hand (a test checks it against the generator).",
        "experiment_name": "matrix",
        "description": f"Every ordered pair of {n} built-in models ({len(pairs)} pairs) and each model alone "
        f"({n} solo runs), at the models file's default hyperparameters",
        "governor": "performance",
        "runs_per_config": 1,
        "max_retries": 1,
        "mode": "parallel",
        "experiments": solos + pairs,
    }


def render(settings: dict[str, Any]) -> str:
    """The file's exact text (stable, so the shipped file can be compared byte for byte)."""
    return json.dumps(settings, indent=2, ensure_ascii=False) + "\n"


def bundled_registry() -> Registry:
    return Registry.load(bundled("models.json"), base_dir=BUNDLE_ROOT)
