"""Every module of the package imports on a machine without a GPU, starts no process while it does (the unit
layer's guard in conftest.py would fail it), and leaves Optuna's logging as it was: a module that only a
GPU run or one CLI command reaches still fails here, in seconds, rather than in front of a user. The built-in
workloads' training scripts are left to tests/test_workloads_smoke.py (they import torch, and run as scripts)."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

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
        "gpupair_search.search.views.dashboard",
        "gpupair_search.studies.feasibility",
    } <= found
    assert len(found) > 60


@pytest.mark.parametrize("name", modules())
def test_each_module_imports_without_a_gpu_and_without_side_effects(name):
    level = optuna.logging.get_verbosity()
    module = importlib.import_module(name)
    assert module.__name__ == name and gpupair_search.__file__
    assert optuna.logging.get_verbosity() == level


# The rooms of the package, and the rooms each may import (docs/architecture.md). Data flows one way: a room
# never imports one below it, so a change in a view can't reach the engine, and the launcher runs a pair
# without knowing that a study exists.
ROOMS = {
    "launcher": {"launcher"},
    "settings": {"settings"},
    "studies": {"studies", "launcher", "settings"},
    "search.record": {"search.record", "launcher"},
    "search.policy": {"search.policy", "search.record", "launcher", "settings"},
    "search.engine": {"search.engine", "search.policy", "search.record", "launcher", "settings", "studies"},
    "search.views": {
        "search.views",
        "search.engine",
        "search.policy",
        "search.record",
        "launcher",
        "settings",
        "studies",
    },
    "search.cli": {
        "search.cli",
        "search.views",
        "search.engine",
        "search.policy",
        "search.record",
        "launcher",
        "settings",
        "studies",
    },
}


def import_graph() -> dict[str, set[str]]:
    """Each module's imports of the package's own modules, those inside functions included."""
    import ast

    files = {}
    for package in PACKAGES:
        root = importlib.import_module(f"gpupair_search.{package}")
        for info in pkgutil.walk_packages(root.__path__, root.__name__ + "."):
            spec = importlib.util.find_spec(info.name)
            files[info.name] = spec.origin
        files[root.__name__] = root.__file__
    graph = {}
    for name, path in files.items():
        deps = set()
        for node in ast.walk(ast.parse(Path(path).read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                deps |= {
                    f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in files else node.module for a in node.names
                }
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names}
        graph[name] = {d for d in deps if d in files and d != name}
    return graph


def room(module: str) -> str:
    parts = module.removeprefix("gpupair_search.").split(".")
    return ".".join(parts[:2]) if parts[0] == "search" and len(parts) > 1 else parts[0]


def test_each_room_imports_only_the_rooms_above_it():
    wrong = [
        f"{module} imports {dep}"
        for module, deps in import_graph().items()
        for dep in deps
        if room(module) in ROOMS and room(dep) not in ROOMS[room(module)]
    ]
    assert not wrong, "\n".join(wrong)


def test_no_module_is_part_of_an_import_circle():
    graph = import_graph()
    circles = []
    for start in graph:  # a path from a module's imports back to it
        seen, todo = set(), list(graph[start])
        while todo:
            module = todo.pop()
            if module == start:
                circles.append(start)
                break
            if module not in seen:
                seen.add(module)
                todo.extend(graph[module])
    assert not circles, f"modules in an import circle: {sorted(circles)}"
