"""Figures of what co-location costs: the slowdown heatmap (foreground x background), paired against
sequential time and energy, and a pair's power and CPU over its steady-state window.

Pure functions of :class:`~gpupair_search.search.engine.interference.PairInterference` records and timeline rows, so the
report and bench/interference_heatmap.py draw the same picture. Flagged pairs are drawn as what they are (a
labelled empty cell), never as a number.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go

from gpupair_search.launcher.window_stats import WindowStats
from gpupair_search.search.engine.interference import PairInterference
from gpupair_search.search.views.plots import _column, _layout, _title

Row = Mapping[str, Any]
PAIRED_COLOUR, SEQUENTIAL_COLOUR = "#1f77b4", "#aaaaaa"


def _short(identity: str) -> str:
    """``solo:repo/model{...}`` as ``repo/model``."""
    return identity.removeprefix("solo:").split("{", 1)[0]


def labels(identities: Sequence[str]) -> list[str]:
    """Axis labels: ``repo/model``, with its hyperparameters only where two jobs of the figure share it."""
    shared = {_short(a) for a in identities if sum(_short(b) == _short(a) for b in set(identities)) > 1}
    return [
        identity.removeprefix("solo:") if _short(identity) in shared else _short(identity) for identity in identities
    ]


def latest_per_cell(items: Sequence[PairInterference]) -> dict[tuple[str, str], PairInterference]:
    """One record per (foreground, background): the latest usable trial, else the latest one (to show its flag)."""
    cells: dict[tuple[str, str], PairInterference] = {}
    for p in sorted(items, key=lambda p: p.trial):
        key = (p.foreground, p.background)
        if p.usable or key not in cells or not cells[key].usable:
            cells[key] = p
    return cells


def slowdown_heatmap(items: Sequence[PairInterference], simulated: bool = False) -> go.Figure:
    """Rows: foregrounds; columns: backgrounds; colour: how many times slower the foreground ran paired."""
    cells = latest_per_cell(items)
    fgs = sorted({f for f, _ in cells})
    bgs = sorted({b for _, b in cells})
    z: list[list[float | None]] = [[None] * len(bgs) for _ in fgs]
    text: list[list[str]] = [[""] * len(bgs) for _ in fgs]
    for (f, b), p in cells.items():
        i, j = fgs.index(f), bgs.index(b)
        slowdown = p.foreground_slowdown
        z[i][j] = slowdown
        if slowdown is not None:
            bg = f"<br>bg {p.background_slowdown:.2f}×" if p.background_slowdown is not None else ""
            text[i][j] = f"{slowdown:.2f}×{bg}" + ("<br>CPU-starved" if "cpu_starved" in p.flags else "")
        else:
            text[i][j] = ", ".join(p.flags) or "no figure"
    known = [v for row in z for v in row if v is not None]
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=labels(bgs),
            y=labels(fgs),
            text=text,
            texttemplate="%{text}",
            colorscale=[[0.0, "#f7fbff"], [0.5, "#fdae61"], [1.0, "#a50026"]],
            zmin=1.0,
            zmax=max([2.0, *known]),  # 1x (no slowdown) is white; 2x and over, the darkest
            colorbar=dict(title=dict(text="foreground<br>slowdown (×)")),
            hovertemplate="foreground %{y}<br>background %{x}<br>%{text}<extra></extra>",
        )
    )
    fig.update_xaxes(title_text="background job", tickangle=-30)
    fig.update_yaxes(title_text="foreground job", autorange="reversed")
    usable = sum(1 for p in cells.values() if p.usable)
    return _layout(
        fig,
        _title(
            "Foreground slowdown next to each background (samples/s alone ÷ paired)",
            simulated,
            f"{usable} of {len(cells)} pairs with a figure; steady-state window, serial trials, "
            "against solo baselines at the same batch size",
        ),
        height=max(420, 80 + 60 * len(fgs)),
        bottom=160,
    )


def sequential_bars(items: Sequence[PairInterference], what: str, simulated: bool = False) -> go.Figure:
    """Paired against one after the other, per pair: ``what`` is "time" (s) or "energy" (J)."""
    shown = [
        p
        for p in items
        if p.usable
        and p.sequential is not None
        and (what == "time" or p.sequential.paired_energy_j is not None and p.sequential.sequential_energy_j)
    ]
    names = [f"t{p.trial} {_short(p.foreground)} + {_short(p.background)}" for p in shown]
    if what == "time":
        paired = [p.sequential.paired_time_s for p in shown]
        apart = [p.sequential.sequential_time_s for p in shown]
        unit, ratios = "s", [p.sequential.time_ratio for p in shown]
    else:
        paired = [p.sequential.paired_energy_j for p in shown]
        apart = [p.sequential.sequential_energy_j for p in shown]
        unit, ratios = "J", [p.sequential.energy_ratio for p in shown]
    fig = go.Figure()
    fig.add_bar(
        x=names,
        y=paired,
        name="together (paired)",
        marker_color=PAIRED_COLOUR,
        text=[f"{r:.2f}×" for r in ratios],
        textposition="outside",
        hovertemplate=f"%{{y:,.2f}} {unit} together<extra></extra>",
    )
    fig.add_bar(
        x=names,
        y=apart,
        name="one after the other (solo baselines)",
        marker_color=SEQUENTIAL_COLOUR,
        hovertemplate=f"%{{y:,.2f}} {unit} one after the other<extra></extra>",
    )
    fig.update_layout(barmode="group")
    fig.update_yaxes(
        title_text=f"{'GPU energy' if what == 'energy' else 'time'} for the window's work ({unit})", rangemode="tozero"
    )
    fig.update_xaxes(tickangle=-30)
    note = (
        f"{len(shown)} pairs; the same work (both jobs' samples in the foreground's window) done together and "
        "alone; the label is together ÷ apart"
        if shown
        else "no pair has a figure yet (needs solo baselines"
        + (" and a reliable energy window" if what == "energy" else "")
        + ")"
    )
    return _layout(fig, _title(f"Paired against sequential: {what}", simulated, note), height=480, bottom=200)


def power_and_cpu(rows: Sequence[Row], window: WindowStats, *, title: str, simulated: bool = False) -> go.Figure:
    """Device power and the CPU of each job and the host, with the steady-state window shaded."""
    t = _column(rows, "t_s")
    fig = go.Figure()
    power = _column(rows, "power_w")
    has_power = any(v is not None for v in power)
    if has_power:
        fig.add_scatter(x=t, y=power, mode="lines", name="device power (W)", line=dict(color="#d62728", width=2))
    for key, name, colour in (
        ("foreground_cpu_pct", "foreground CPU (%)", "#1f77b4"),
        ("background_cpu_pct", "background CPU (%)", "#ff7f0e"),
        ("host_cpu_pct", "host CPU (% of all cores)", "#555555"),
    ):
        values = _column(rows, key)
        if any(v is not None for v in values):
            fig.add_scatter(
                x=t,
                y=values,
                mode="lines",
                name=name,
                yaxis="y2" if has_power else "y",
                line=dict(color=colour, width=1.5, dash="dot" if key == "host_cpu_pct" else "solid"),
            )
    facts = []
    start, length = window.start_t, window.window_s
    if start is not None and length is not None:
        fig.add_vrect(
            x0=start,
            x1=start + length,
            fillcolor="rgba(44,160,44,0.10)",
            line_width=0,
            annotation_text="steady-state window",
            annotation_position="top left",
        )
        facts.append(f"window {length:.1f} s, {window.foreground_steps} steps")
    for value, label in (
        (window.foreground_cpu_pct, "fg CPU"),
        (window.background_cpu_pct, "bg CPU"),
        (window.host_cpu_pct, "host CPU"),
    ):
        if value is not None:
            facts.append(f"{label} {value:.0f}%")
    if window.energy_note:
        facts.append(f"energy {window.energy_note.split(':')[0]}")
    fig.update_xaxes(title_text="time since the pair started (s)")
    if has_power:
        fig.update_yaxes(title_text="device power (W)", rangemode="tozero")
        fig.update_layout(
            yaxis2=dict(title=dict(text="CPU (%)"), overlaying="y", side="right", rangemode="tozero", showgrid=False)
        )
    else:
        fig.update_yaxes(title_text="CPU (%)", rangemode="tozero")
    return _layout(fig, _title(title, simulated, " · ".join(facts)), height=440)
