"""Load the models file and settings file the CLI was given (bundled ones by default)."""
from __future__ import annotations

from pathlib import Path

from gpupair_search.launcher.experiments import Experiment, load_experiment
from gpupair_search.launcher.registry import Registry
from gpupair_search.settings import BUNDLE_ROOT, bundled
from gpupair_search.launcher.jsonfile import printable


def load_registry(models: Path | None, repos_root: Path | None = None) -> Registry:
    """The bundled models file (built-in workloads) unless ``models`` is given. Relative repository paths of
    a user's file resolve against ``repos_root`` (default: the current directory, as the seed's runner)."""
    if models is None:
        return Registry.load(bundled("models.json"), base_dir=BUNDLE_ROOT)
    return Registry.load(models, base_dir=repos_root)


def load_settings(settings: Path, registry: Registry, lenient: bool) -> Experiment:
    return load_experiment(settings, registry, lenient=lenient)


def validation_lines(settings: Path, experiment: Experiment, registry: Registry) -> tuple[list[str], list[str]]:
    """What ``validate`` prints: (stdout lines, stderr warning lines). Every line goes through ``printable``: notes,
    names and keys come from the files, and must not reach the terminal as control sequences."""
    out = [f"{settings}: {len(experiment.pairs)} pair(s) in '{experiment.name}'"]
    repeated = sum(p.repeats for p in experiment.pairs)
    if repeated > len(experiment.pairs):
        out.append(f"  the seed's runner would run {repeated} times in all: each configuration is one trial here, "
                   "its repeat count kept for export")
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
                values = ", ".join(f"{name}={value}" + (" (top of its range)" if name in case["at_maximum"] else "")
                                   for name, value in case["values"].items())
                out.append(f"      {role}: mutation job, checked at the memory worst case of its ranges: {values}")
    warnings = [f"warning: {w}" for w in experiment.warnings]
    return [printable(line, keep_newlines=False) for line in out], [printable(w, keep_newlines=False) for w in warnings]
