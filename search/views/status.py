"""``gpupair-search status``: a stored study's verdicts and interference figures, judged with the card and limit it
was run with (the run prints the same at its end)."""

from __future__ import annotations

import typer

from gpupair_search.search.engine.interference import pair_interference, worth_a_note
from gpupair_search.search.engine.study import FeasibilityStudy
from gpupair_search.search.views.console import budget_words, interference_lines, time_and_probe_line, verdicts_text


def print_status(fs: FeasibilityStudy) -> None:
    """The verdict table of a stored study, judged with the card and limit it was run with."""
    kind = fs.kind
    typer.echo(f"study '{fs.settings.name}': {budget_words(kind, fs.settings.card_mib, fs.settings.safe_limit_mib)}")
    typer.echo(verdicts_text(fs.plans(), fs.settings.safe_limit_mib, kind))
    line = time_and_probe_line(fs.views())
    if line:
        typer.echo(line)
    print_interference(fs)


def print_interference(fs: FeasibilityStudy) -> None:
    """Each pair's slowdowns and energy per sample, when the study has any (after the verdict table). A study
    that measures memory only (no steady-state window, no baselines) has none to show, only a reason per trial
    (the matrix printed 109 such lines, and a "not a pair" for each serial trial whose sub-second window
    caught its background between two short probe runs): one line says so instead."""
    if not fs.wants_baselines and not (fs.definition and fs.definition.min_window_s):
        typer.echo(
            "interference: not measured (memory only: no steady-state window and no solo baselines; "
            "--baselines with --min-window-s 2 measure it, as --study feasibility-cost does)"
        )
        return
    for line in interference_lines([p for p in pair_interference(fs.views()) if worth_a_note(p)]):
        typer.echo(line)
