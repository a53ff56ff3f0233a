"""Serve optuna-dashboard on a study's storage, with its trial artifacts and our own figures.

optuna-dashboard already shows trials, parameters and artifacts; what it cannot know is the study's
meaning. So before serving we store in the study the feasible frontier of each extended pair, the pair
matrix (and a matrix study's verdict matrix), and a note that summarises the verdicts. Binds to 127.0.0.1
by default: the dashboard can edit notes and upload files, and it has no authentication.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

from gpupair_search.search.engine.interference import pair_interference, worth_a_note
from gpupair_search.search.engine.session import artifact_store
from gpupair_search.search.engine.storage import open_storage, redact_url
from gpupair_search.search.engine.study import FeasibilityStudy
from gpupair_search.search.record.feasible_best import FeasibleBestStorage, drop_infeasible_best
from gpupair_search.search.views import plots
from gpupair_search.search.views.console import budget_words
from gpupair_search.search.views.labels import batches, jobs

FRONTIER_ID = "gpupair-frontier-g{group:02d}"
MATRIX_ID = "gpupair-pair-matrix"
VERDICT_MATRIX_ID = "gpupair-verdict-matrix"  # foreground × background, for a study whose pairs form that matrix


def verdict_note(fs: FeasibilityStudy, simulated: bool = False) -> str:
    """Markdown for the study's note: the verdict counts and one line per pair."""
    plans = fs.plans()
    limit = fs.settings.safe_limit_mib
    counts = Counter(p.verdict for p in plans)
    lines = [
        f"# {'SIMULATED — ' if simulated else ''}{fs.settings.name}",
        "",
        budget_words(fs.kind, fs.settings.card_mib, limit)
        + ". "
        + ", ".join(f"**{n}** {v}" for v, n in sorted(counts.items()))
        + f" of {len(plans)} pairs.",
        "",
        "Infeasible trials (over the safe limit or out of memory) show as infeasible; each trial's logs, "
        "experiment.json, timeline.csv and memory_timeline.html are under its artifacts.",
        "",
        "| group | pair | verdict | batch fg/bg configured → safe | peak (MiB) | trials |",
        "|---|---|---|---|---|---|",
    ]
    for p in plans:
        peak = p.recommended_peak_mib if p.recommended_peak_mib is not None else plots.original_peak(p)
        detail = f" ({p.detail[:60]})" if p.detail else ""
        lines.append(
            f"| G{p.pair.group} | {jobs(p.pair)} | {p.verdict}{detail} | "
            f"{batches(p.original)} → {batches(p.recommended)} | "
            f"{f'{peak:,.0f}' if peak is not None else '-'} | {p.trials_spent} |"
        )
    figures = [p for p in pair_interference(fs.views()) if worth_a_note(p)]
    if figures:
        lines += [
            "",
            "## Interference (steady-state window, against solo baselines)",
            "",
            "| trial | pair | batch fg/bg | figures |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {p.trial} | {p.pair_key} | {batches((p.fg_batch, p.bg_batch))} | {p.summary()} |" for p in figures
        ]
    return "\n".join(lines) + "\n"


def prepare(fs: FeasibilityStudy, simulated: bool = False) -> list[str]:
    """Store the figures and the note in the study (replacing earlier ones); returns the figure ids."""
    from optuna_dashboard import save_note, save_plotly_graph_object

    limit = fs.settings.safe_limit_mib
    plans = fs.plans()
    models = fs.models()
    ids = []
    for plan in plans:
        if not plan.extension_trials and not plan.verdict.shows_frontier:
            continue
        figure = plots.frontier(plan, models, limit, plan.path, simulated)
        ids.append(
            save_plotly_graph_object(fs.study, figure, graph_object_id=FRONTIER_ID.format(group=plan.pair.group))
        )
    figure = plots.pair_matrix(plans, limit, fs.settings.card_mib, simulated)
    ids.append(save_plotly_graph_object(fs.study, figure, graph_object_id=MATRIX_ID))
    for figure in plots.verdict_matrix_figures(plans, limit, fs.settings.card_mib, simulated):  # a matrix study's
        ids.append(save_plotly_graph_object(fs.study, figure, graph_object_id=VERDICT_MATRIX_ID))
    save_note(fs.study, verdict_note(fs, simulated))
    return ids


def dashboard_app(storage_url: str, results: Path):
    """optuna-dashboard's WSGI app on the study's storage, reading only. Its "Best Trial" is the best *feasible*
    trial (Optuna's ``best_trial`` rule), or none: see feasible_best.py."""
    from optuna_dashboard import wsgi

    app = wsgi(FeasibleBestStorage(open_storage(storage_url, must_exist=True)), artifact_store=artifact_store(results))
    drop_infeasible_best(app)
    return app


def serve(storage_url: str, results: Path, host: str = "127.0.0.1", port: int = 8080) -> None:
    """Block serving the dashboard until interrupted."""
    import bottle

    app = dashboard_app(storage_url, results)
    print(
        f"optuna-dashboard on http://{host}:{port}/dashboard (storage {redact_url(storage_url)}); Ctrl-C to stop",
        file=sys.stderr,
        flush=True,
    )
    bottle.run(app, host=host, port=port)
