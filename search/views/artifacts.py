"""Attach a trial's files (logs, experiment.json, timeline) to it in an Optuna artifact store.

Called while the trial is still RUNNING: Optuna refuses attributes on finished trials. So that
optuna-dashboard shows, next to each trial, what happened in it: its logs, its record and its memory
timeline as a plot. An upload that fails never costs the measurement: it is noted on the trial instead.
"""

from __future__ import annotations

import sys
from pathlib import Path

import optuna

from gpupair_search.launcher.measurement import timeline_rows
from gpupair_search.launcher.pair_runner import PairResult
from gpupair_search.search.record.trial_record import mark_artifact_errors

TIMELINE_HTML = "memory_timeline.html"
_FILES = ("training.log", "experiment.json", "energy/timeline.csv", TIMELINE_HTML)
_MIMETYPES = {".log": "text/plain", ".json": "application/json", ".csv": "text/csv", ".html": "text/html"}

# Loaded by the viewer's browser (not the GPU machine); if it has no network either, say where the data is.
_FALLBACK = """<script>if (!window.Plotly) { document.body.insertAdjacentHTML("afterbegin",
"<p style='color:#b00020'>plotly.js could not be loaded (no network). The numbers are in energy/timeline.csv; "
+ "`gpupair-search report` writes a self-contained report.</p>"); }</script>"""


def write_timeline_html(result: PairResult, pair_dir: Path, safe_limit_mib: float | None) -> Path | None:
    """The pair's memory timeline as a small HTML page in its results directory (plotly.js from the CDN:
    inlining it would add 4.6 MB to every trial)."""
    from gpupair_search.search.views import plots

    rows = timeline_rows(result.samples)
    if not rows:
        return None
    card = (result.device or {}).get("capacity_mib")
    pair = result.pair
    label = f"G{pair.group} {pair.foreground.model} + {pair.background.model if pair.background else 'solo'}"
    sizes = "/".join(
        "·" if b is None else str(b)
        for b in (result.batch_sizes.get("foreground"), result.batch_sizes.get("background"))
    )
    fig = plots.memory_timeline(
        rows,
        safe_limit_mib=safe_limit_mib or card or 0.0,
        card_mib=card,
        outcome=result.outcome.value,
        simulated=result.simulated,
        title=f"Memory over time: {label}",
        subtitle=f"batch {sizes}; outcome {result.outcome.value}; "
        f"sum of peaks {result.memory.sum_of_peaks_mib:,.0f} MiB",
    )
    path = pair_dir / TIMELINE_HTML
    page = fig.to_html(full_html=True, include_plotlyjs="cdn", config={"displaylogo": False})
    path.write_text(page.replace("</body>", _FALLBACK + "</body>", 1), encoding="utf-8")
    return path


def attach_trial_artifacts(trial: optuna.Trial, result: PairResult, store, safe_limit_mib: float | None) -> list[str]:
    """Upload what the trial's results directory holds (missing files are skipped); returns artifact ids."""
    pair_dir = result.result_dir
    if pair_dir is None or store is None:
        return []
    errors: list[str] = []
    try:
        write_timeline_html(result, Path(pair_dir), safe_limit_mib)
    except Exception as exc:  # noqa: BLE001 - a plot must never cost the measurement
        errors.append(f"{TIMELINE_HTML}: {exc}")
    files = [Path(pair_dir) / name for name in _FILES]
    files += sorted((Path(pair_dir) / "background_logs").glob("run_*.log"))
    ids = []
    for path in files:
        if not path.is_file():
            continue
        try:
            ids.append(
                optuna.artifacts.upload_artifact(
                    artifact_store=store,
                    file_path=str(path),
                    study_or_trial=trial,
                    mimetype=_MIMETYPES.get(path.suffix),
                )
            )
        except Exception as exc:  # noqa: BLE001 - disk full, store unreachable: keep the trial
            errors.append(f"{path.name}: {exc}")
    if errors:
        mark_artifact_errors(trial, errors)
        print(f"warning: trial {trial.number}: some files were not attached: {'; '.join(errors)}", file=sys.stderr)
    return ids
