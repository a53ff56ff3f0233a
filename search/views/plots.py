"""Figures of a feasibility study, each a pure function of plain data (plans, trial views, timeline rows).

Pure so that the HTML report, the dashboard and the per-trial artifacts draw the same picture from the
same numbers, and so a figure can be tested without a study. Every figure names its units, draws the
safe limit where memory is shown, and says SIMULATED in its title when the numbers are not measured.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import plotly.graph_objects as go

from gpupair_search.launcher.measurement import EnergyStats
from gpupair_search.launcher.outcome import Outcome
from gpupair_search.search.policy.extension import Config
from gpupair_search.search.policy.memory_model import LinearMemoryModel
from gpupair_search.search.policy.planner import PairPlan, predict_pair
from gpupair_search.search.policy.verdict import Verdict
from gpupair_search.search.views.export import RISK_CLASSES, risk_bounds, risk_class
from gpupair_search.search.views.labels import batches, jobs, pair_label
from gpupair_search.search.views.labels import measured as labels_measured
from gpupair_search.search.views.matrix_view import PairGrid, cell_text, pair_grid

Row = Mapping[str, Any]  # one timeline sample: t_s, foreground_mib, background_mib, total_mib, power_w, ...

VERDICT_STYLE: dict[str, tuple[str, str]] = {
    v.value: (v.label, v.colour) for v in Verdict
}  # verdict -> (legend, colour)
FG_COLOUR, BG_COLOUR, TOTAL_COLOUR, LIMIT_COLOUR, CARD_COLOUR = "#1f77b4", "#ff7f0e", "#222222", "#d62728", "#555555"
RISK_FILL = {"stable": "#2ca02c", "usable": "#ffbf00", "high risk": "#d62728"}
_FONT = dict(family="Arial, Helvetica, sans-serif", size=14, color="#222")


# -- shared pieces ---------------------------------------------------------------------------------------
def original_peak(plan: PairPlan) -> float | None:
    """Peak measured at the configured batch sizes (the last such measurement), None when unmeasured."""
    peaks = [t.peak_mib for t in plan.trials if t.config == plan.original and t.measured and t.peak_mib is not None]
    return peaks[-1] if peaks else None


def _title(text: str, simulated: bool, subtitle: str = "") -> dict[str, Any]:
    title: dict[str, Any] = {
        "text": ("SIMULATED — " if simulated else "") + text,
        "x": 0.01,
        "xanchor": "left",
        "font": {"size": 18},
    }
    if subtitle:
        title["subtitle"] = {"text": subtitle, "font": {"size": 13, "color": "#555"}}
    return title


def _layout(fig: go.Figure, title: dict[str, Any], height: int = 480, bottom: int = 120, **extra: Any) -> go.Figure:
    """House style. The legend sits under the plot, across the figure's full width: it never hides data,
    also in the dashboard's narrow cards."""
    fig.update_layout(
        title=title,
        template="plotly_white",
        font=_FONT,
        height=height,
        margin=dict(l=80, r=40, t=100 if "subtitle" in title else 70, b=bottom),
        legend=dict(
            orientation="h",
            yref="container",
            y=0.01,
            yanchor="bottom",
            x=0,
            xanchor="left",
            bgcolor="rgba(255,255,255,0.85)",
            bordercolor="#ccc",
            borderwidth=1,
        ),
        **extra,
    )
    return fig


def _limit_lines(fig: go.Figure, safe_limit_mib: float, card_mib: float | None, **where: Any) -> None:
    """Horizontal lines for the safe limit and the card, named in the legend (labels on the lines would
    collide with tall bars and with each other when the two are close)."""
    lines = [(safe_limit_mib, f"safe limit {safe_limit_mib:,.0f} MiB", dict(color=LIMIT_COLOUR, dash="dash", width=2))]
    if card_mib:
        lines.append((card_mib, f"card {card_mib:,.0f} MiB", dict(color=CARD_COLOUR, width=2)))
    for y, name, line in lines:
        fig.add_hline(y=y, line=line, **where)
        fig.add_scatter(x=[None], y=[None], mode="lines", name=name, line=line, hoverinfo="skip")


def _num(value: Any) -> float | None:
    """A timeline cell as a float (CSV cells are strings; empty means no reading)."""
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _column(rows: Sequence[Row], key: str) -> list[float | None]:
    return [_num(r.get(key)) for r in rows]


# -- the pair matrix -------------------------------------------------------------------------------------
def pair_matrix(
    plans: Sequence[PairPlan], safe_limit_mib: float, card_mib: float, simulated: bool = False
) -> go.Figure:
    """Every pair's peak at its configured batch sizes (bars coloured by verdict), the peak at the
    recommended smaller batch sizes where the search reduced them, against the safe limit and the card."""
    labels = [pair_label(p.pair) for p in plans]
    fig = go.Figure()
    top = max(card_mib, safe_limit_mib)
    low, high = risk_bounds(card_mib)
    for name, (y0, y1) in {"stable": (0, low), "usable": (low, high), "high risk": (high, safe_limit_mib)}.items():
        if y1 > y0:  # the band, named just outside the plot's right edge where no bar can cover it
            fig.add_hrect(y0=y0, y1=y1, fillcolor=RISK_FILL[name], opacity=0.07, line_width=0, layer="below")
            fig.add_annotation(
                xref="paper",
                x=1.005,
                xanchor="left",
                y=(y0 + y1) / 2,
                text=name,
                showarrow=False,
                font=dict(size=12, color="#555"),
            )
    for verdict, (legend, colour) in VERDICT_STYLE.items():
        chosen = [(label, p) for label, p in zip(labels, plans) if p.verdict == verdict]
        if not chosen:
            continue
        peaks = [original_peak(p) for _, p in chosen]
        top = max([top] + [v for v in peaks if v is not None])
        fig.add_bar(
            x=[label for label, _ in chosen],
            y=[v if v is not None else 0 for v in peaks],
            name=legend,
            marker=dict(color=colour, line=dict(color="#333", width=0.5)),
            text=[f"{v:,.0f}" if v is not None else "not measured" for v in peaks],
            textposition="outside",
            customdata=[[jobs(p.pair), p.verdict, batches(p.original)] for _, p in chosen],
            hovertemplate="%{customdata[0]}<br>%{customdata[1]} at batch %{customdata[2]}"
            "<br>peak %{y:,.0f} MiB<extra></extra>",
        )
    reduced = [
        (label, p) for label, p in zip(labels, plans) if p.verdict is Verdict.FITS_REDUCED and p.recommended_peak_mib
    ]
    if reduced:
        fig.add_scatter(
            x=[label for label, _ in reduced],
            y=[p.recommended_peak_mib for _, p in reduced],
            mode="markers",
            name="peak at the recommended batch sizes",
            marker=dict(symbol="star", size=20, color="#ffbf00", line=dict(color="#333", width=1.5)),
            hovertemplate="%{x}: %{y:,.0f} MiB at the recommended batch sizes<extra></extra>",
        )
        for label, p in reduced:
            fig.add_annotation(
                x=label,
                y=p.recommended_peak_mib,
                text=f"{p.recommended_peak_mib:,.0f} MiB at batch {batches(p.recommended)}",
                showarrow=True,
                arrowhead=0,
                ax=70,
                ay=25,
                bgcolor="rgba(255,255,255,0.9)",
                bordercolor="#333",
                font=dict(size=12),
            )
    _limit_lines(fig, safe_limit_mib, card_mib)
    fig.update_xaxes(
        title_text="pair (settings group: foreground + background)",
        categoryorder="array",
        categoryarray=labels,
        tickangle=-30 if len(labels) > 6 else 0,
    )
    fig.update_yaxes(
        title_text="pair peak memory (MiB, sum of both jobs' peaks)",
        range=[0, top * 1.12],
        rangemode="tozero",
        tickformat=",d",
    )
    counts = ", ".join(
        f"{sum(p.verdict == v for p in plans)} {v}" for v in VERDICT_STYLE if any(p.verdict == v for p in plans)
    )
    return _layout(
        fig,
        _title(
            "Which pairs fit: peak memory of each pair",
            simulated,
            f"{len(plans)} pairs: {counts}. Bands: risk classes (stable, usable, high risk), "
            f"scaled to a {card_mib:,.0f} MiB card.",
        ),
        height=620,
        bottom=190 if len(labels) > 6 else 120,
        bargap=0.35,
    ).update_layout(margin=dict(r=90))


# -- every pair: the foreground × background matrix --------------------------------------------------------
def verdict_matrix_figures(
    plans: Sequence[PairPlan], safe_limit_mib: float, card_mib: float, simulated: bool = False
) -> list[go.Figure]:
    """The verdict matrix when the study's pairs form one (matrix_view.pair_grid), else no figure."""
    grid = pair_grid(plans)
    return [] if grid is None else [verdict_matrix(grid, safe_limit_mib, card_mib, simulated)]


def verdict_matrix(grid: PairGrid, safe_limit_mib: float, card_mib: float, simulated: bool = False) -> go.Figure:
    """Foreground (rows) × background (columns), each cell coloured by its pair's verdict and labelled with its
    safe batch sizes; the diagonal is each job alone."""
    order = list(Verdict)
    labels = grid.labels()
    rows = [[grid.plan(fg, bg) for bg in grid.jobs] for fg in grid.jobs]
    steps = len(order)
    scale = [[edge, v.colour] for i, v in enumerate(order) for edge in (i / steps, (i + 1) / steps)]
    fig = go.Figure(
        go.Heatmap(
            z=[[order.index(p.verdict) + 0.5 for p in row] for row in rows],
            zmin=0,
            zmax=steps,
            colorscale=scale,
            showscale=False,
            x=labels,
            y=labels,
            xgap=2,
            ygap=2,
            text=[[cell_text(p) for p in row] for row in rows],
            texttemplate="%{text}",
            textfont=dict(size=12),
            customdata=[
                [
                    [
                        jobs(p.pair),
                        p.verdict.label,
                        batches(p.original),
                        batches(p.recommended),
                        f"{p.recommended_peak_mib or original_peak(p) or 0:,.0f}",
                    ]
                    for p in row
                ]
                for row in rows
            ],
            hovertemplate="%{customdata[0]}<br>%{customdata[1]}<br>batch %{customdata[2]} → safe %{customdata[3]}"
            "<br>peak %{customdata[4]} MiB<extra></extra>",
        )
    )
    counts = {v: sum(p.verdict is v for p in grid.cells.values()) for v in order}
    for verdict, count in counts.items():
        if count:  # the legend: one square per verdict present
            fig.add_scatter(
                x=[None],
                y=[None],
                mode="markers",
                name=f"{verdict.label} ({count})",
                marker=dict(symbol="square", size=14, color=verdict.colour),
                hoverinfo="skip",
            )
    for i in range(len(labels)):  # the diagonal, framed: each job alone, not a pair
        fig.add_shape(type="rect", x0=i - 0.5, x1=i + 0.5, y0=i - 0.5, y1=i + 0.5, line=dict(color="#222", width=2))
    fig.update_xaxes(title_text="background job", side="top", tickangle=-30, showgrid=False)
    fig.update_yaxes(title_text="foreground job (monitored)", autorange="reversed", showgrid=False)
    size = len(labels)
    safe = "predicted to stay" if simulated else "verified"
    return _layout(
        fig,
        _title(
            "Every pair: verdict and safe batch sizes",
            simulated,
            f"{size} × {size}: rows foreground, columns background, diagonal each job alone; cell "
            f"text: batch sizes (fg/bg) {safe} under the safe limit {safe_limit_mib:,.0f} MiB on "
            f"a {card_mib:,.0f} MiB card",
        ),
        height=330 + 52 * size,
        bottom=110,
    ).update_layout(margin=dict(t=270), plot_bgcolor="#ffffff")


# -- memory over time ------------------------------------------------------------------------------------
def oom_moment(rows: Sequence[Row], outcome: str | None, card_mib: float | None = None) -> float | None:
    """When the pair ran out of memory: the last sample before the failing job's memory fell (its process
    died), or for an over-budget pair the first sample over the card. None when the outcome is no OOM."""
    kind = next((o for o in Outcome if o.value == outcome), None)
    if kind is None or not kind.is_oom or not rows:
        return None
    times = _column(rows, "t_s")
    if kind.oom_role is None:  # over the pair's budget
        total = _column(rows, "total_mib")
        if card_mib:
            over = [t for t, v in zip(times, total) if v is not None and v > card_mib]
            if over:
                return over[0]
        return _argmax(times, total)
    values = _column(rows, f"{kind.oom_role}_mib")
    peak_at = max(range(len(values)), key=lambda i: values[i] or 0.0)
    peak = values[peak_at] or 0.0
    i = peak_at
    while i + 1 < len(values) and (values[i + 1] or 0.0) >= 0.5 * peak:
        i += 1
    return times[i]


def _argmax(times: list[float | None], values: list[float | None]) -> float | None:
    pairs = [(v, t) for t, v in zip(times, values) if v is not None and t is not None]
    return max(pairs)[1] if pairs else None


def foreground_window(rows: Sequence[Row], window_s: float | None = None) -> tuple[float, float] | None:
    """The foreground's time window: while it held memory; ``window_s`` (its measured duration) extends
    the start back to its launch, before its first allocation showed."""
    times, fg = _column(rows, "t_s"), _column(rows, "foreground_mib")
    held = [t for t, v in zip(times, fg) if t is not None and v]
    if not held:
        return None
    start, end = held[0], held[-1]
    if window_s:
        first = next((t for t in times if t is not None), start)
        start = max(first, min(start, end - window_s))
    return start, end


def memory_timeline(
    rows: Sequence[Row],
    *,
    safe_limit_mib: float,
    card_mib: float | None = None,
    outcome: str | None = None,
    title: str = "Memory over time",
    subtitle: str = "",
    simulated: bool = False,
) -> go.Figure:
    """Foreground, background and pair memory against time, the safe limit, and a marker at the OOM."""
    t = _column(rows, "t_s")
    fig = go.Figure()
    window = foreground_window(rows)
    if window:
        fig.add_vrect(
            x0=window[0],
            x1=window[1],
            fillcolor=FG_COLOUR,
            opacity=0.06,
            line_width=0,
            layer="below",
            annotation=dict(text="foreground running", font=dict(size=12, color="#555")),
            annotation_position="top left",
        )
    for key, name, colour, width in (
        ("foreground_mib", "foreground job", FG_COLOUR, 2),
        ("background_mib", "background job", BG_COLOUR, 2),
        ("total_mib", "pair (both jobs)", TOTAL_COLOUR, 3),
    ):
        fig.add_scatter(
            x=t,
            y=_column(rows, key),
            mode="lines",
            name=name,
            line=dict(color=colour, width=width),
            hovertemplate=f"{name}: %{{y:,.0f}} MiB at %{{x:.1f}} s<extra></extra>",
        )
    when = oom_moment(rows, outcome, card_mib)
    if when is not None:
        total = dict(zip(t, _column(rows, "total_mib"))).get(when) or 0.0
        fig.add_scatter(
            x=[when],
            y=[total],
            mode="markers",
            name=f"out of memory ({outcome})",
            marker=dict(symbol="x", size=18, color=LIMIT_COLOUR, line=dict(width=2, color="#fff")),
            hovertemplate=f"{outcome} at %{{x:.1f}} s, pair %{{y:,.0f}} MiB<extra></extra>",
        )
        fig.add_annotation(
            x=when,
            y=total,
            text=f"OOM ({(outcome or '').removeprefix('oom_')}) at {when:.1f} s",
            showarrow=True,
            arrowcolor=LIMIT_COLOUR,
            ax=-70,
            ay=45,
            bgcolor="rgba(255,255,255,0.9)",
            bordercolor=LIMIT_COLOUR,
            font=dict(color=LIMIT_COLOUR),
        )
    _limit_lines(fig, safe_limit_mib, card_mib)
    values = [v for v in _column(rows, "total_mib") if v is not None]
    top = max(values + [safe_limit_mib, card_mib or 0.0])
    fig.update_xaxes(title_text="time since the pair started (s)")
    fig.update_yaxes(title_text="memory (MiB)", range=[0, top * 1.1], tickformat=",d")
    return _layout(fig, _title(title, simulated, subtitle), height=480)


# -- the feasible frontier -------------------------------------------------------------------------------
def frontier(
    plan: PairPlan,
    models: Mapping[str, LinearMemoryModel],
    safe_limit_mib: float,
    path: Sequence[Config] = (),
    simulated: bool = False,
) -> go.Figure:
    """Measured feasible and infeasible configurations of a pair in the (foreground batch, background batch)
    plane, the fitted memory model's boundary (predicted peak = safe limit) and the recommended point.
    A pair with one batch-size knob is drawn as batch size against peak instead."""
    if None in plan.original:
        return _frontier_1d(plan, models, safe_limit_mib, simulated)
    measured = [t for t in plan.trials if t.feasible is not None and None not in t.config]
    xs = [c[0] for c in [plan.original, *path] + [t.config for t in measured]]
    ys = [c[1] for c in [plan.original, *path] + [t.config for t in measured]]
    x_max, y_max = max(xs) * 1.15 + 1, max(ys) * 1.15 + 1
    fig = go.Figure()
    boundary = _boundary(lambda x, y: predict_pair(plan.pair, (x, y), models), safe_limit_mib, x_max, y_max)
    if boundary:
        fig.add_scatter(
            x=boundary[0],
            y=boundary[1],
            mode="lines",
            fill="tozeroy",
            name="model: predicted to fit",
            line=dict(color="#2ca02c", dash="dash", width=2),
            fillcolor="rgba(44,160,44,0.08)",
            hovertemplate="model boundary: fg %{x:.0f}, bg %{y:.1f}<extra></extra>",
        )
    if path:
        fig.add_scatter(
            x=[plan.original[0], *[c[0] for c in path]],
            y=[plan.original[1], *[c[1] for c in path]],
            mode="lines+markers",
            name="reduction path (candidates)",
            line=dict(color="#bbb", width=1, dash="dot"),
            marker=dict(size=4, color="#bbb"),
            hoverinfo="skip",
        )
    for ok, name, symbol, colour in (
        (True, "measured: fits", "circle", "#2ca02c"),
        (False, "measured: over the limit or OOM", "x", "#d62728"),
    ):
        points = [t for t in measured if t.feasible is ok]
        if points:
            fig.add_scatter(
                x=[t.fg_batch for t in points],
                y=[t.bg_batch for t in points],
                mode="markers+text",
                name=name,
                marker=dict(symbol=symbol, size=13, color=colour, line=dict(width=1, color="#fff")),
                text=[f"{t.peak_mib:,.0f}" if t.peak_mib is not None else "" for t in points],
                textposition="middle right",
                textfont=dict(size=11, color=colour),
                customdata=[[t.number, t.outcome] for t in points],
                hovertemplate="trial %{customdata[0]}: fg %{x}, bg %{y}<br>peak %{text} MiB, "
                "%{customdata[1]}<extra></extra>",
            )
    fig.add_scatter(
        x=[plan.original[0]],
        y=[plan.original[1]],
        mode="markers",
        name="configured batch sizes",
        marker=dict(symbol="square-open", size=20, color="#333", line=dict(width=2)),
    )
    if plan.recommended and None not in plan.recommended:
        fig.add_scatter(
            x=[plan.recommended[0]],
            y=[plan.recommended[1]],
            mode="markers",
            name=f"recommended ({batches(plan.recommended)}, {plan.recommended_peak_mib or 0:,.0f} MiB)",
            marker=dict(symbol="star", size=22, color="#ffbf00", line=dict(width=1.5, color="#333")),
        )
    fig.update_xaxes(title_text="foreground batch size (samples)", range=[0, x_max], rangemode="tozero")
    fig.update_yaxes(title_text="background batch size (samples)", range=[0, y_max], rangemode="tozero")
    subtitle = (
        f"{jobs(plan.pair)}; verdict {plan.verdict}; {plan.trials_spent} trials; labels: {labels_measured(simulated)} pair peak "
        f"(MiB); model boundary: predicted peak = safe limit {safe_limit_mib:,.0f} MiB"
        + ("" if boundary else " (no fitted model for both jobs)")
    )
    return _layout(fig, _title(f"Feasible frontier of {pair_label(plan.pair)}", simulated, subtitle), height=620)


def _boundary(
    predict: Callable[[float, float], float | None], limit: float, x_max: float, y_max: float, steps: int = 120
) -> tuple[list[float], list[float]] | None:
    """Points (x, y) where ``predict(x, y) == limit``, by bisection in y: memory grows with batch size,
    so for each foreground batch there is at most one such background batch. y is clipped to the plot."""
    xs, ys = [], []
    for i in range(steps + 1):
        x = x_max * i / steps
        low_value, high_value = predict(x, 0.0), predict(x, y_max)
        if low_value is None or high_value is None:
            return None
        if low_value > limit:
            xs.append(x), ys.append(0.0)
            break
        if high_value <= limit:
            xs.append(x), ys.append(y_max)
            continue
        lo, hi = 0.0, y_max
        for _ in range(40):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if (predict(x, mid) or 0.0) <= limit else (lo, mid)
        xs.append(x), ys.append(lo)
    return (xs, ys) if xs else None


def _frontier_1d(
    plan: PairPlan, models: Mapping[str, LinearMemoryModel], safe_limit_mib: float, simulated: bool
) -> go.Figure:
    index = 0 if plan.original[0] is not None else 1
    role = "foreground" if index == 0 else "background"
    measured = [t for t in plan.trials if t.feasible is not None and t.config[index] is not None]
    top_batch = max([plan.original[index] or 1] + [t.config[index] for t in measured]) * 1.15 + 1
    fig = go.Figure()
    grid = [top_batch * i / 100 for i in range(101)]

    def config(b: float) -> Config:
        return (b, plan.original[1]) if index == 0 else (plan.original[0], b)

    predicted = [predict_pair(plan.pair, config(b), models) for b in grid]
    if all(v is not None for v in predicted):
        fig.add_scatter(
            x=grid,
            y=predicted,
            mode="lines",
            name="model: predicted pair peak",
            line=dict(color="#2ca02c", dash="dash"),
        )
    for ok, name, symbol, colour in (
        (True, "measured: fits", "circle", "#2ca02c"),
        (False, "measured: over the limit or OOM", "x", "#d62728"),
    ):
        points = [t for t in measured if t.feasible is ok]
        if points:
            fig.add_scatter(
                x=[t.config[index] for t in points],
                y=[t.peak_mib for t in points],
                mode="markers",
                name=name,
                marker=dict(symbol=symbol, size=13, color=colour),
            )
    if plan.recommended:
        fig.add_scatter(
            x=[plan.recommended[index]],
            y=[plan.recommended_peak_mib],
            mode="markers",
            name="recommended",
            marker=dict(symbol="star", size=22, color="#ffbf00", line=dict(width=1.5, color="#333")),
        )
    _limit_lines(fig, safe_limit_mib, None)
    fig.update_xaxes(title_text=f"{role} batch size (samples; the other job has no batch-size knob)")
    fig.update_yaxes(title_text="pair peak memory (MiB)", rangemode="tozero")
    return _layout(
        fig,
        _title(
            f"Feasible batch sizes of {pair_label(plan.pair)}", simulated, f"{jobs(plan.pair)}; verdict {plan.verdict}"
        ),
        height=480,
    )


# -- energy and power ------------------------------------------------------------------------------------
def energy_power(
    rows: Sequence[Row],
    energy: EnergyStats | None,
    *,
    title: str = "Power over the foreground window",
    slowdown: float | None = None,
    slowdown_basis: str = "",
    simulated: bool = False,
) -> go.Figure:
    """Device power (and utilisation) over the foreground's window, with the energy totals recorded for
    the trial and the foreground's slowdown against its solo run when the study has one."""
    window = foreground_window(rows, energy.window_s if energy else None)
    inside = [r for r in rows if window is None or window[0] <= (_num(r.get("t_s")) or 0.0) <= window[1]]
    t = _column(inside, "t_s")
    power, util = _column(inside, "power_w"), _column(inside, "utilization_pct")
    fig = go.Figure()
    has_power = any(v is not None for v in power)
    if has_power:
        fig.add_scatter(
            x=t,
            y=power,
            mode="lines",
            name="device power (W)",
            line=dict(color="#d62728", width=2),
            fill="tozeroy",
            fillcolor="rgba(214,39,40,0.08)",
            hovertemplate="%{y:.0f} W at %{x:.1f} s<extra></extra>",
        )
    if any(v is not None for v in util):  # on a second axis next to power; alone, on the only one
        fig.add_scatter(
            x=t,
            y=util,
            mode="lines",
            name="device utilisation (%)",
            yaxis="y2" if has_power else "y",
            line=dict(color="#7f7f7f", width=1.5, dash="dot"),
            hovertemplate="%{y:.0f} % at %{x:.1f} s<extra></extra>",
        )
    facts = []
    totals = (
        (
            (energy.gpu_energy_j, "energy", "J"),
            (energy.power_avg_w, "mean power", "W"),
            (energy.power_max_w, "max power", "W"),
            (energy.window_s, "window", "s"),
        )
        if energy
        else ()
    )
    for value, label, unit in totals:
        if value is not None:
            facts.append(f"{label} {value:,.1f} {unit}")
    if not has_power:
        facts.append("no power readings on this device")
    if slowdown is not None:
        facts.append(
            f"foreground {slowdown:.2f}× slower than solo" + (f" ({slowdown_basis})" if slowdown_basis else "")
        )
    fig.update_xaxes(title_text="time since the pair started (s)")
    if has_power:
        fig.update_yaxes(title_text="device power (W)", rangemode="tozero")
        fig.update_layout(
            yaxis2=dict(
                title=dict(text="utilisation (%)"),
                overlaying="y",
                side="right",
                range=[0, 105],
                tickmode="array",
                tickvals=[0, 25, 50, 75, 100],
                showgrid=False,
            )
        )
    else:
        fig.update_yaxes(title_text="device utilisation (%)", range=[0, 105])
    return _layout(fig, _title(title, simulated, " · ".join(facts)), height=440)


# -- expected against measured ---------------------------------------------------------------------------
def expected_vs_measured(plans: Sequence[PairPlan], safe_limit_mib: float, simulated: bool = False) -> go.Figure:
    """The memory the settings note expected (e.g. "(1300MB)") next to the peak measured at the configured
    batch sizes, per pair: where the design's guesses were off, and by how much."""
    labels = [pair_label(p.pair) for p in plans]
    expected = [p.pair.expected_mib for p in plans]
    measured = [original_peak(p) for p in plans]
    fig = go.Figure()
    fig.add_bar(
        x=labels,
        y=expected,
        name="expected (settings note, MB as written)",
        marker=dict(color="#d9d9d9", line=dict(color="#777", width=1), pattern=dict(shape="/")),
        text=[f"{v:,.0f}" if v is not None else "none" for v in expected],
        textposition="outside",
    )
    word = labels_measured(simulated)
    fig.add_bar(
        x=labels,
        y=measured,
        name=f"{word} peak at the configured batch sizes (MiB)",
        marker=dict(color=[VERDICT_STYLE.get(p.verdict, ("", "#777"))[1] for p in plans]),
        text=[_ratio(m, e) for m, e in zip(measured, expected)],
        textposition="outside",
        customdata=[
            [f"{m:,.0f}" if m is not None else "-", f"{e:,.0f}" if e is not None else "-"]
            for m, e in zip(measured, expected)
        ],
        hovertemplate=f"%{{x}}: {word} %{{customdata[0]}} MiB, expected %{{customdata[1]}} MB<extra></extra>",
    )
    _limit_lines(fig, safe_limit_mib, None)
    values = [v for v in expected + measured if v is not None] + [safe_limit_mib]
    fig.update_xaxes(title_text="pair (settings group)", tickangle=-30 if len(labels) > 6 else 0)
    fig.update_yaxes(
        title_text="pair memory (MiB; the note's MB taken as MiB)", range=[0, max(values) * 1.15], tickformat=",d"
    )
    return _layout(
        fig,
        _title(
            "Expected against measured pair memory",
            simulated,
            "labels: expected MB; measured ÷ expected. Measured bars coloured by verdict.",
        ),
        height=540,
        bottom=190 if len(labels) > 6 else 120,
        barmode="group",
    )


def _ratio(measured: float | None, expected: float | None) -> str:
    """Bar label: measured ÷ expected (short enough to stay legible over a dozen pairs)."""
    if measured is None:
        return "not measured"
    if not expected:
        return f"{measured:,.0f}"
    return f"{measured / expected:.1f}×"


# -- the summary table -----------------------------------------------------------------------------------
def summary_table(
    plans: Sequence[PairPlan],
    safe_limit_mib: float,
    card_mib: float,
    simulated: bool = False,
    accumulation: Mapping[str, str] | None = None,
) -> go.Figure:
    """One row per pair: verdict, risk class, batch sizes before and after, peak, margin, trials spent.
    ``accumulation``: pair key -> gradient-accumulation text, where the export would reduce batch sizes."""
    head = [
        "group",
        "foreground<br>model (repository)",
        "background<br>model (repository)",
        "verdict",
        "risk class",
        "batch fg/bg<br>configured → safe",
        "peak<br>(MiB)",
        "margin to<br>limit (MiB)",
        "expected<br>(MB)",
        "gradient<br>accumulation",
        "trials",
        "measured",
        "detail",
    ]
    widths = [45, 170, 170, 95, 65, 105, 60, 75, 65, 95, 45, 80, 170]
    rows = []
    for p in plans:
        peak = p.recommended_peak_mib if p.recommended_peak_mib is not None else original_peak(p)
        safe = p.recommended is not None
        rows.append(
            [
                f"G{p.pair.group}",
                _job_cell(p.pair.foreground),
                _job_cell(p.pair.background),
                p.verdict,
                risk_class(peak, card_mib) if safe and peak is not None else "-",
                f"{batches(p.original)} → {batches(p.recommended)}",
                f"{peak:,.0f}" if peak is not None else "-",
                f"{safe_limit_mib - peak:,.0f}" if peak is not None else "-",
                f"{p.pair.expected_mib:,.0f}" if p.pair.expected_mib is not None else "-",
                (accumulation or {}).get(p.pair.key, "-"),
                str(p.trials_spent),
                p.measured_as,
                (p.detail or "")[:90],
            ]
        )
    fill = [_tint(VERDICT_STYLE.get(p.verdict, ("", "#cccccc"))[1]) for p in plans]
    fig = go.Figure(
        go.Table(
            columnwidth=widths,
            header=dict(
                values=[f"<b>{h}</b>" for h in head],
                fill_color="#404040",
                font=dict(color="white", size=13),
                align="left",
                height=44,
            ),
            cells=dict(
                values=list(map(list, zip(*rows))) if rows else [[] for _ in head],
                fill_color=[fill] * len(head),
                align="left",
                font=dict(size=12),
                height=40,
            ),
        )
    )
    classes = ", ".join(f"{name} {text}" for name, text in _risk_legend(card_mib))
    height = 150 + 44 + sum(_row_height(row, widths) for row in rows)
    return _layout(
        fig,
        _title(
            "Summary of every pair",
            simulated,
            f"safe limit {safe_limit_mib:,.0f} MiB on a {card_mib:,.0f} MiB card; risk classes: {classes}",
        ),
        height=height,
    ).update_layout(margin=dict(b=20))


def _job_cell(job) -> str:
    """Model on the first line, repository on the second: long repository names wrap instead of clipping."""
    return "(solo)" if job is None else f"{job.model}<br>({job.repo})"


def _row_height(row: list[str], widths: list[int]) -> int:
    """Pixels a table row needs: plotly wraps cells at spaces, about 6.5 px a character at 12 px type."""
    lines = max(
        sum(max(1, math.ceil(len(part) * 6.5 / width)) for part in text.split("<br>"))
        for text, width in zip(row, widths)
    )
    return max(40, 8 + 15 * lines)


def _risk_legend(card_mib: float) -> list[tuple[str, str]]:
    low, high = risk_bounds(card_mib)
    return [
        (RISK_CLASSES[0], f"< {low:,.0f} MiB"),
        (RISK_CLASSES[1], f"{low:,.0f}–{high:,.0f} MiB"),
        (RISK_CLASSES[2], f"> {high:,.0f} MiB"),
    ]


def _tint(hex_colour: str, alpha: float = 0.18) -> str:
    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"
