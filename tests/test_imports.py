"""Every module of the package imports on a machine without a GPU, starts no process while it does (the unit
layer's guard in conftest.py would fail it), and leaves Optuna's logging as it was: a module that only a
GPU run or one CLI command reaches still fails here, in seconds, rather than in front of a user. The built-in
workloads' training scripts are left to tests/test_workloads_smoke.py (they import torch, and run as scripts)."""

from __future__ import annotations

import importlib
import pkgutil

import optuna
import pytest

import gpupair_search

PACKAGES = ["launcher", "search", "studies", "settings"]


def modules() -> list[str]:
    names = []
    for package in PACKAGES:
        root = importlib.import_module(f"gpupair_search.{package}")
        names += [root.__name__] + [m.name for m in pkgutil.walk_packages(root.__path__, root.__name__ + ".")]
    return sorted(set(names))


def test_the_walk_finds_the_modules_no_test_imports_by_name():
    found = set(modules())
    assert {
        "gpupair_search.launcher.job_guard",
        "gpupair_search.launcher.devices.nvidia",
        "gpupair_search.search.dashboard",
        "gpupair_search.studies.feasibility",
    } <= found
    assert len(found) > 60


@pytest.mark.parametrize("name", modules())
def test_each_module_imports_without_a_gpu_and_without_side_effects(name):
    level = optuna.logging.get_verbosity()
    module = importlib.import_module(name)
    assert module.__name__ == name and gpupair_search.__file__
    assert optuna.logging.get_verbosity() == level
