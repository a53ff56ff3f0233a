"""Load the models file and settings file the CLI was given (bundled ones by default)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpupair_search.launcher.errors import UserError
from gpupair_search.launcher.experiments import Experiment, load_experiment
from gpupair_search.launcher.jsonfile import read_json
from gpupair_search.launcher.printable import printable
from gpupair_search.launcher.registry import Registry
from gpupair_search.settings import BUNDLE_ROOT, bundled


@dataclass(frozen=True)
class ReposRoot:
    """The directory relative repository paths of a models file resolve against, and how it was found."""

    path: Path
    why: str

    def note(self) -> str:
        return f"repositories: relative paths resolve against {self.path} ({self.why})"


def find_repos_root(models: Path, given: Path | None = None, cwd: Path | None = None) -> ReposRoot:
    """Where the user's runner would find the repositories: its project root, which holds ``repos/`` and the
    models file at ``mutation/models_config.json`` (the runner's ``run.sh`` runs ``$PROJECT_ROOT/$REPO_PATH``).

    ``given`` (``--repos-root``) wins. Otherwise each candidate (the current directory, the folder above the
    models file's folder, the models file's folder) is scored by how many repositories it holds with their train
    script; the best one is used, the current directory where several hold all of them. Where none holds any
    (a machine with only the settings), the runner's layout is assumed when the models file sits in a
    ``mutation/`` folder, else the current directory."""
    cwd = Path.cwd() if cwd is None else cwd
    if given is not None:
        return ReposRoot(Path(given), "--repos-root")
    models = Path(models).absolute()
    layout = models.parent.parent.resolve()
    candidates = {
        cwd.resolve(): "the current directory",
        layout.resolve(): f"the folder above {models.parent.name}/, the models file's folder",
        models.parent.resolve(): "the models file's folder",
    }
    relative = _relative_repositories(models)
    if not relative:
        return ReposRoot(cwd, "the current directory; every repository path of the models file is absolute")
    scores = {root: sum(_holds(root, path, script) for path, script in relative) for root in candidates}
    best = max(scores.values())
    folders = {root: sum(_holds(root, path, "") for path, _ in relative) for root in candidates}
    if best == 0 and max(folders.values()) > 0:  # the folders are there, their train scripts not (yet, or misnamed)
        root = max(folders, key=lambda r: folders[r])
        return ReposRoot(
            root,
            f"{candidates[root]}, which holds {folders[root]} of the models file's {len(relative)} repository "
            "folders, none with its train script",
        )
    if best == 0:
        if models.parent.name == "mutation":
            return ReposRoot(
                layout, f"{candidates[layout.resolve()]}, the runner's layout; no repository is cloned there yet"
            )
        return ReposRoot(
            cwd,
            "the current directory; no repository of the models file is cloned under it, the "
            "folder above the models file's folder, or the models file's folder",
        )
    winners = [root for root, score in scores.items() if score == best]
    root = winners[0]
    held = "all" if best == len(relative) else f"{best} of {len(relative)}"
    why = f"{candidates[root]}, which holds {held} of the models file's repositories"
    if len(winners) > 1:
        why += f"; {', '.join(str(w) for w in winners[1:])} holds them too: give --repos-root to choose"
    return ReposRoot(root, why)


def _relative_repositories(models: Path) -> list[tuple[str, str]]:
    """(path, train script) of each repository with a relative path; [] where the file cannot be read (loading it
    then says why)."""
    try:
        data: Any = read_json(models, "models file")
    except UserError:
        return []
    entries = data.get("models") if isinstance(data, dict) else None
    if not isinstance(entries, dict):
        return []
    return [
        (e["path"], e.get("train_script") if isinstance(e.get("train_script"), str) else "")
        for e in entries.values()
        if isinstance(e, dict) and isinstance(e.get("path"), str) and e["path"] and not Path(e["path"]).is_absolute()
    ]


def _holds(root: Path, path: str, script: str) -> bool:
    try:
        folder = root / path
        return folder.is_dir() and (not script or (folder / script).exists())
    except (OSError, ValueError):
        return False


def load_registry(models: Path | None, repos_root: Path | None = None, need_clones: bool = True) -> Registry:
    """The bundled models file (built-in workloads) unless ``models`` is given. Relative repository paths of a
    user's file resolve against ``repos_root``, else the project root :func:`find_repos_root` finds; the registry's
    ``root_note`` says which. ``need_clones``: whether each job's clone must be there (to run it), or only the
    files' meaning is checked (``validate``)."""
    if models is None:
        return Registry.load(bundled("models.json"), base_dir=BUNDLE_ROOT, require_paths=need_clones)
    root = find_repos_root(models, repos_root)
    registry = Registry.load(models, base_dir=root.path, require_paths=need_clones)
    if _relative_repositories(Path(models)):  # where every path is absolute, no root is used: nothing to say
        registry.root_note = root.note()
    return registry


def load_settings(settings: Path, registry: Registry, lenient: bool) -> Experiment:
    """The settings file; a file of another kind given in its place (a trial's experiment.json, a models file) is
    named as what it is, not judged as a broken settings file."""
    from gpupair_search.launcher.file_kinds import SETTINGS, refuse_other_kind
    from gpupair_search.launcher.jsonfile import read_json_with_duplicates

    data, _ = read_json_with_duplicates(Path(settings), SETTINGS)
    refuse_other_kind(str(settings), data, SETTINGS)
    return load_experiment(settings, registry, lenient=lenient)


def clone_warnings(experiment: Experiment, registry: Registry) -> list[str]:
    """For ``validate``, which checks meaning only: each repository the pairs use whose clone (or train script) is
    not there, as a warning that ``run`` needs it."""
    used = dict.fromkeys(job.repo for pair in experiment.pairs for job in (pair.foreground, pair.background) if job)
    return [
        f"{problem.render().splitlines()[0]}; `run` needs it (`validate` checks only the files' meaning)"
        for name in used
        for problem in registry.start_problems(name)
    ]


def validation_lines(settings: Path, experiment: Experiment, registry: Registry) -> tuple[list[str], list[str]]:
    """What ``validate`` prints: (stdout lines, stderr warning lines). Every line goes through ``printable``: notes,
    names and keys come from the files, and must not reach the terminal as control sequences."""
    out = [f"{settings}: {len(experiment.pairs)} pair(s) in '{experiment.name}'"]
    if registry.root_note:
        out.append(registry.root_note)
    repeated = sum(p.repeats for p in experiment.pairs)
    if repeated > len(experiment.pairs):
        out.append(
            f"  the seed's runner would run {repeated} times in all: each configuration is one trial here, "
            "its repeat count kept for export"
        )
    for pair in experiment.pairs:
        runs = f"  ×{pair.repeats} runs" if pair.repeats > 1 else ""
        out.append(f"  {pair.key}  {pair.note}{runs}")
        if pair.repeated_at:
            out.append(f"      repeats: also {', '.join(pair.repeated_at)} (identical configuration)")
        for role, job in (("foreground", pair.foreground), ("background", pair.background)):
            if job is None:
                continue
            out.append(f"      {role}: {registry.command(job).display()}")
            case = pair.worst_case.get(role)
            if case:
                values = ", ".join(
                    f"{name}={value}" + (" (top of its range)" if name in case["at_maximum"] else "")
                    for name, value in case["values"].items()
                )
                out.append(f"      {role}: mutation job, checked at the memory worst case of its ranges: {values}")
    warnings = [f"warning: {w}" for w in experiment.warnings]
    if not registry.require_paths:
        warnings += [f"warning: {w}" for w in clone_warnings(experiment, registry)]
    return [printable(line, keep_newlines=False) for line in out], [printable(w, keep_newlines=False) for w in warnings]
