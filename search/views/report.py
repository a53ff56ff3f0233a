"""One self-contained HTML report of a study: summary table, pair matrix, expectations, frontiers, and
each pair's memory timeline and power. plotly.js is inlined once, so the file opens with no network
(GPU machines often have none) and can be mailed or archived with the results.
"""

from __future__ import annotations

import csv
import dataclasses
import html
from datetime import datetime
from pathlib import Path

import plotly.graph_objects as go
from optuna.trial import TrialState

from gpupair_search.launcher.results import atomic_write
from gpupair_search.launcher.spec import StudyKind
from gpupair_search.search.engine.interference import pair_interference, worth_a_note
from gpupair_search.search.engine.study import FeasibilityStudy
from gpupair_search.search.policy.planner import PairPlan
from gpupair_search.search.record.trial_record import TrialView
from gpupair_search.search.views import interference_view, plots
from gpupair_search.search.views.console import budget_words, caveat_lines, measured_trials, time_and_probe_line
from gpupair_search.search.views.export import accumulation_words
from gpupair_search.search.views.labels import batches, pair_label


# -- the data behind the per-pair figures -----------------------------------------------------------------
def read_timeline(result_dir: str | None, results_root: Path | None = None) -> list[dict[str, str]] | None:
    """A trial's ``energy/timeline.csv`` rows; looked up under ``results_root`` too when the results
    directory moved since the run (same run_*/pair dir names)."""
    if not result_dir:
        return None
    candidates = [Path(result_dir)]
    if results_root is not None:
        candidates.append(results_root / Path(result_dir).parent.name / Path(result_dir).name)
    for directory in candidates:
        path = directory / "energy" / "timeline.csv"
        if path.exists():
            with path.open(encoding="utf-8", newline="") as fh:
                return list(csv.DictReader(fh))
    return None


def shown_trials(plan: PairPlan) -> list[TrialView]:
    """The trials a reader needs for a pair: the first at the configured batch sizes (what happened), and
    the one at the recommended batch sizes when the search reduced them (what to run)."""
    measured = [t for t in plan.trials if t.measured]
    chosen = [next((t for t in measured if t.config == plan.original), None)]
    if plan.recommended is not None and plan.recommended != plan.original:
        chosen.append(
            next(
                (t for t in reversed(measured) if t.config == plan.recommended and t.state is TrialState.COMPLETE), None
            )
        )
    return [t for t in chosen if t is not None]


def solo_slowdown(trial: TrialView, views: list[TrialView]) -> tuple[float | None, str]:
    """How much slower the foreground ran next to its background than alone, from a solo run of the same
    foreground at the same batch size in the study: samples/s when both have it, else duration."""
    paired = trial.record.measured
    if paired is None or paired.foreground is None:
        return None, ""
    fg = paired.foreground
    for solo_view in views:
        solo = solo_view.record.measured
        if (
            solo_view.state is not TrialState.COMPLETE
            or solo is None
            or solo.background is not None
            or solo_view is trial
        ):
            continue
        if solo.foreground is None or solo.foreground.key != fg.key or solo_view.fg_batch != trial.fg_batch:
            continue
        mine, alone = paired.foreground_samples_per_second, solo.foreground_samples_per_second
        if mine and alone:
            return alone / mine, f"samples/s, solo trial {solo_view.number}"
        together, apart = paired.foreground_duration_s, solo.foreground_duration_s
        if together and apart and dict(solo.foreground.hyperparameters) == dict(fg.hyperparameters):
            return together / apart, f"duration, solo trial {solo_view.number}"
    return None, ""


# -- building the figures -------------------------------------------------------------------------------
@dataclasses.dataclass
class Section:
    heading: str
    figures: list[go.Figure]
    text: str = ""
    anchor: str = ""


def build_sections(fs: FeasibilityStudy, results_root: Path | None = None) -> list[Section]:
    simulated = fs.kind == StudyKind.SIMULATED
    limit, card = fs.settings.safe_limit_mib, fs.settings.card_mib
    views = fs.views()
    models = fs.models(views)
    plans = fs.plans()
    grid = fs.settings.extension.grid
    grad = {
        p.pair.key: ", ".join(words)
        for p in plans
        if p.recommended is not None and (words := accumulation_words(p.original, p.recommended, grid))
    }
    sections = [
        *[
            Section("Every pair", [figure], anchor="every-pair")
            for figure in plots.verdict_matrix_figures(plans, limit, card, simulated)
        ],
        Section(
            "Summary",
            [plots.summary_table(plans, limit, card, simulated, grad)],
            text=" ".join([time_and_probe_line(views), *caveat_lines(plans)]).strip(),
            anchor="summary",
        ),
        Section("Pair matrix", [plots.pair_matrix(plans, limit, card, simulated)], anchor="matrix"),
        Section("Expected against measured", [plots.expected_vs_measured(plans, limit, simulated)], anchor="expected"),
    ]
    interference = pair_interference(views)
    figures_of = {p.trial: p for p in interference}
    if any(worth_a_note(p) for p in interference):
        sections.append(
            Section(
                "What co-location costs",
                [
                    interference_view.slowdown_heatmap(interference, simulated),
                    interference_view.sequential_bars(interference, "time", simulated),
                    interference_view.sequential_bars(interference, "energy", simulated),
                ],
                "Over each foreground's steady-state window (after warm-up, evaluation left out), from serial trials, "
                "against solo baselines of the same jobs at the same batch sizes. Flagged pairs: "
                + ("; ".join(f"trial {p.trial}: {', '.join(p.flags)}" for p in interference if p.flags) or "none"),
                anchor="interference",
            )
        )
    extended = [p for p in plans if p.extension_trials or p.verdict.shows_frontier]
    if extended:
        sections.append(
            Section(
                "Feasible frontiers of the extended pairs",
                [plots.frontier(p, models, limit, p.path, simulated) for p in extended],
                anchor="frontier",
            )
        )
    for plan in plans:
        figures, missing = [], []
        for trial in shown_trials(plan):
            measured = trial.record.measured
            assert measured is not None, "shown_trials are measured"
            rows = read_timeline(measured.result_dir, results_root)
            what = f"trial {trial.number}, batch {batches(trial.config)}, {trial.outcome}"
            if rows is None:
                missing.append(
                    f"{what}: "
                    + (
                        "simulated, no memory samples"
                        if measured.simulated
                        else f"no timeline at {measured.result_dir}"
                    )
                )
                continue
            figures.append(
                plots.memory_timeline(
                    rows,
                    safe_limit_mib=limit,
                    card_mib=card,
                    outcome=trial.outcome,
                    simulated=simulated,
                    title=f"Memory over time: {pair_label(plan.pair)}",
                    subtitle=f"{what}; pair peak {trial.peak_mib or 0:,.0f} MiB (sum of both jobs' peaks)",
                )
            )
            found = figures_of.get(trial.number)
            if found is not None and found.foreground_slowdown is not None:
                slowdown, basis = found.foreground_slowdown, "steady-state window, solo baseline"
            else:
                slowdown, basis = solo_slowdown(trial, views)
            figures.append(
                plots.energy_power(
                    rows,
                    measured.energy,
                    slowdown=slowdown,
                    slowdown_basis=basis,
                    simulated=simulated,
                    title=f"Power over the foreground window: {pair_label(plan.pair)}, trial {trial.number}",
                )
            )
            window = measured.window
            if window is not None and window.reliable:
                figures.append(
                    interference_view.power_and_cpu(
                        rows,
                        window,
                        simulated=simulated,
                        title=f"Power and CPU: {pair_label(plan.pair)}, trial {trial.number}",
                    )
                )
        text = "; ".join(missing) if missing else ("" if figures else "not measured yet")
        sections.append(
            Section(f"{pair_label(plan.pair)} — {plan.verdict}", figures, text, anchor=f"pair-{plan.pair.group}")
        )
    return sections


# -- the page -------------------------------------------------------------------------------------------
_ERROR_HOOK = """<pre id="js-errors"></pre>
<script>
(function () {
  var out = document.getElementById("js-errors");
  function add(text) { out.textContent += text + "\\n"; }
  window.onerror = function (message, source, line, column) {
    add(message + " (" + source + ":" + line + ":" + column + ")");
    return false;
  };
  window.addEventListener("unhandledrejection", function (event) {
    var reason = event.reason;
    add("unhandled rejection: " + (reason && reason.message ? reason.message : reason));
  });
})();
</script>"""

_STYLE = """
body { font-family: Arial, Helvetica, sans-serif; color: #222; max-width: 1400px; margin: 0 auto; padding: 0 24px 48px; }
h1 { margin-bottom: 4px; } h2 { margin-top: 40px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
.meta { color: #555; margin: 0 0 16px; } .note { color: #555; font-style: italic; }
.banner { background: #fff3cd; border: 2px solid #d39e00; padding: 10px 14px; font-weight: bold; margin: 12px 0; }
#js-errors { color: #b00020; white-space: pre-wrap; } #js-errors:empty { display: none; }
nav a { margin-right: 14px; } .figure { margin: 18px 0; }
"""

_CONFIG = {
    "displaylogo": False,
    "responsive": True,
    "toImageButtonOptions": {"format": "svg", "scale": 1},
}  # SVG download: paper quality


_BANNERS = {
    StudyKind.SIMULATED: "SIMULATED: every number below comes from memory models, not from a measurement on a GPU.",
    StudyKind.CPU: "CPU: every number below is host memory (RSS; a forked worker counts its own pages) against a host-memory budget, measured on the CPU; "
    "none is GPU memory.",
}


def render(fs: FeasibilityStudy, sections: list[Section]) -> str:
    kind = fs.kind
    simulated = kind == StudyKind.SIMULATED
    name = html.escape(fs.settings.name)
    count = sum(len(s.figures) for s in sections)
    parts = [
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
        f"<title>{'SIMULATED — ' if simulated else ''}gpupair-search report: {name}</title>",
        f'<meta name="gpupair-figures" content="{count}">',
        f"<style>{_STYLE}</style></head><body>",
        _ERROR_HOOK,
        f"<h1>{'SIMULATED — ' if simulated else ''}Which training jobs can share one GPU: {name}</h1>",
        f'<p class="meta">{html.escape(budget_words(kind, fs.settings.card_mib, fs.settings.safe_limit_mib))}'
        f" · settings {html.escape(str(fs.experiment.file))} · {measured_trials(fs.plans())} trials · "
        f"report written {datetime.now().isoformat(timespec='seconds')}</p>",
    ]
    if kind in _BANNERS:
        parts.append(f'<div class="banner">{_BANNERS[kind]}</div>')
    parts.append(
        "<nav>"
        + "".join(f'<a href="#{s.anchor}">{html.escape(s.heading.split(" — ")[0])}</a>' for s in sections if s.anchor)
        + "</nav>"
    )
    first = True
    for section in sections:
        parts.append(f'<h2 id="{section.anchor}">{html.escape(section.heading)}</h2>')
        if section.text:
            parts.append(f'<p class="note">{html.escape(section.text)}</p>')
        for fig in section.figures:
            parts.append(
                '<div class="figure">' + fig.to_html(full_html=False, include_plotlyjs=first, config=_CONFIG) + "</div>"
            )
            first = False
    parts.append("</body></html>\n")
    return "\n".join(parts)


def write_report(fs: FeasibilityStudy, output: Path, results_root: Path | None = None) -> int:
    """Write the report; returns the number of figures in it."""
    sections = build_sections(fs, results_root)
    atomic_write(output, render(fs, sections))
    output.chmod(0o644)  # a report is for sharing; atomic_write's temp file is private
    return sum(len(s.figures) for s in sections)
