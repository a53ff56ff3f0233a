"""Load the models file and settings file the CLI was given (bundled ones by default)."""
from __future__ import annotations

from pathlib import Path

from gpupair_search.launcher.experiments import Experiment, load_experiment
from gpupair_search.launcher.registry import Registry
from gpupair_search.settings import BUNDLE_ROOT, bundled


def load_registry(models: Path | None, repos_root: Path | None = None) -> Registry:
    """The bundled models file (built-in workloads) unless ``models`` is given. Relative repository paths of
    a user's file resolve against ``repos_root`` (default: the current directory, as the seed's runner)."""
    if models is None:
        return Registry.load(bundled("models.json"), base_dir=BUNDLE_ROOT)
    return Registry.load(models, base_dir=repos_root)


def load_settings(settings: Path, registry: Registry, lenient: bool) -> Experiment:
    return load_experiment(settings, registry, lenient=lenient)
