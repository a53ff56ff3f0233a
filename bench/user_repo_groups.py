#!/usr/bin/env python3
"""Write the 12 seed groups as a user's project: the built-in workloads behind a ``train.sh`` each, as cold jobs.

    python3 bench/user_repo_groups.py DIR [--groups g01,g02] [--python /path/to/python]

DIR gets the layout of the seed's project, which the tool runs from its root as a user would::

    DIR/repos/<repository>/train.sh        exec PYTHON -m gpupair_search.workloads.<x>.train "$@"
    DIR/mutation/models_config.json        the seed runner's format: path "repos/<repository>", "./train.sh"
    DIR/settings/user_repo_groups.json     the seed groups (all 12, or --groups), naming those repositories

    cd DIR && gpupair-search run --settings settings/user_repo_groups.json --models mutation/models_config.json

The models file is the shipped one (settings/models.json, the same models and hyperparameters) made into a
user's: no ``train_module``, so each job is a fresh process started through its script (no warm start), and none
of the accepted-bounds keys the shipped file adds. ``model_defaults`` stays: it sets the per-model batch sizes
(pcb 32, VulBERTa's mlp 2) that the built-ins' own scripts default to, and the seed's runner ignores it.
"""

from __future__ import annotations

import argparse
import json
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpupair_search.launcher.registry import BOUND_KEYS
from gpupair_search.settings import bundled

MODELS_FILE = Path("mutation") / "models_config.json"
SETTINGS_FILE = Path("settings") / "user_repo_groups.json"
EXPERIMENT_NAME = "user_repo_groups"


@dataclass(frozen=True)
class UserProject:
    """Where the generated project's files are, relative paths as a user runs them from ``root``."""

    root: Path
    models: Path
    settings: Path
    groups: tuple[int, ...]


def parse_groups(text: str | None, available: int) -> tuple[int, ...]:
    """``g01,g02`` (or ``1,2``) as group numbers; None: all of them."""
    if not text:
        return tuple(range(1, available + 1))
    groups = []
    for part in text.split(","):
        digits = part.strip().lower().removeprefix("g")
        if not digits.isdigit() or not 1 <= int(digits) <= available:
            raise SystemExit(f"--groups: {part!r} is not a group of the seed settings (g01 to g{available:02d})")
        groups.append(int(digits))
    return tuple(dict.fromkeys(groups))


def train_script(module: str, python: str) -> str:
    """A user's ``train.sh``: hands its arguments to the training program, in a process of its own."""
    return f'#!/bin/sh\n# A repository\'s training entry point, as a user\'s project has one.\nexec "{python}" -m {module} "$@"\n'


def user_repository(entry: dict[str, Any], name: str) -> dict[str, Any]:
    """The shipped repository entry as a user's: run through ``./train.sh`` in ``repos/<name>``."""
    out = {key: value for key, value in entry.items() if key not in ("train_module", "path", "train_script")}
    out = {"path": f"repos/{name}", "train_script": "./train.sh", **out}
    out["supported_hyperparams"] = {
        hp: {k: v for k, v in spec.items() if k not in BOUND_KEYS}
        for hp, spec in entry["supported_hyperparams"].items()
    }
    return out


def seed_groups(
    groups: tuple[int, ...],
    name: str = EXPERIMENT_NAME,
    how: str = "run as a user's repositories (bench/user_repo_groups.py)",
) -> dict[str, Any]:
    """The bundled 12-group settings file (the seed's), with only ``groups``, in their order."""
    body = json.loads(bundled("parallel_feasibility_test.json").read_text(encoding="utf-8"))
    experiments = body["experiments"]
    chosen = [experiments[g - 1] for g in groups]
    return {
        **body,
        "experiment_name": name,
        "description": f"The seed's feasibility groups {', '.join(f'g{g:02d}' for g in groups)}, {how}",
        "experiments": chosen,
    }


def used_repositories(settings: dict[str, Any]) -> set[str]:
    return {
        job["repo"]
        for e in settings["experiments"]
        for job in (e.get("foreground"), e.get("background"), e)
        if isinstance(job, dict) and "repo" in job
    }


def write_project(root: Path, groups: tuple[int, ...] | None = None, python: str = sys.executable) -> UserProject:
    """Write the project into ``root`` (created; files already there are replaced)."""
    shipped = json.loads(bundled("models.json").read_text(encoding="utf-8"))["models"]
    total = len(json.loads(bundled("parallel_feasibility_test.json").read_text(encoding="utf-8"))["experiments"])
    groups = groups or tuple(range(1, total + 1))
    settings = seed_groups(groups)
    repositories = {}
    for name in sorted(used_repositories(settings)):
        entry = shipped[name]
        repo_dir = root / "repos" / name
        repo_dir.mkdir(parents=True, exist_ok=True)
        script = repo_dir / "train.sh"
        script.write_text(train_script(entry["train_module"], python), encoding="utf-8")
        script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        repositories[name] = user_repository(entry, name)
    models = {
        "_comment": "A user's models file in the seed runner's format, generated by bench/user_repo_groups.py "
        "from the built-in models file; each repository's train.sh starts the built-in workload.",
        "models": repositories,
    }
    for relative, body in ((MODELS_FILE, models), (SETTINGS_FILE, settings)):
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(json.dumps(body, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return UserProject(root, MODELS_FILE, SETTINGS_FILE, groups)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="the project directory to write")
    parser.add_argument("--groups", help="a subset of the seed groups, e.g. g01,g02 (default: all 12)")
    parser.add_argument(
        "--python",
        default=sys.executable,
        help="the interpreter train.sh starts (default: this one, which has gpupair_search)",
    )
    args = parser.parse_args(argv)
    total = len(json.loads(bundled("parallel_feasibility_test.json").read_text(encoding="utf-8"))["experiments"])
    project = write_project(args.root, parse_groups(args.groups, total), args.python)
    print(
        f"wrote {project.root}: {project.models}, {project.settings} ({len(project.groups)} groups)\n"
        f"run from there: gpupair-search run --settings {project.settings} --models {project.models}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
