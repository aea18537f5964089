"""The learning-curve figures: the overview of up to ``MAX_OVERVIEW_RUNS`` runs (train/val
accuracy and loss, weight norm against log step, coloured by phase; ``overview_runs`` picks the
runs) and the empty frame of the click-a-cell view, which the page's script fills in."""

from __future__ import annotations

import html
import math
from typing import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio

from grokgrid.report.axes import format_value, swept_axes
from grokgrid.report.cells import identity_columns, ordered_phases, phase_color, sorted_table
from grokgrid.report.curves import stage_ends
from grokgrid.report.curves import (
    MAX_CURVE_POINTS,
    CurveData,
    curve_data,
    loss_axis_is_log,
    plotted_steps,
    positive_range,
    step_title,
    zero_step_x,
)
from grokgrid.report.style import FONT, TEMPLATE

MAX_OVERVIEW_RUNS = 200  # runs drawn in the learning-curves overview
_SHORT = {
    "train_acc": "train acc",
    "val_acc": "val acc",
    "train_loss": "train loss",
    "val_loss": "val loss",
    "weight_norm": "weight norm",
}

# The click-a-cell view's height and bottom margin (px), grown by a legend row per
# CELL_LEGEND_COLUMNS runs; the page's script reads these from the page data.
CELL_HEIGHT, CELL_BOTTOM, CELL_LEGEND_COLUMNS, CELL_LEGEND_ROW = 400, 70, 6, 22
# A t_train / t_val label (~25 px) goes left of its line from this fraction of the (log) step
# range on: right of it, it would run past the right edge of the ~295 px accuracy panel.
MARK_LABEL_FLIP = 0.85


def log_ticks(lo: float, hi: float) -> dict:
    """Tick settings for a log axis over [lo, hi]: a label every other decade beyond six decades,
    every decade from two, else the 1-2-5 values in range (plotly would label every digit)."""
    if not (lo > 0 and hi >= lo):
        return {}
    decades = math.log10(hi / lo)
    if decades > 6:
        return dict(dtick=2)
    if decades >= 2:
        return dict(dtick=1)
    values = [
        m * 10.0**e
        for e in range(math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1)
        for m in (1, 2, 5)
        if lo * 0.8 <= m * 10.0**e <= hi * 1.25
    ]
    return dict(tickvals=values, ticktext=[format_value(v) for v in values])


def overview_runs(table: pd.DataFrame, max_runs: int = MAX_OVERVIEW_RUNS) -> tuple[list[int], str]:
    """Rows of ``table`` (sorted over the grid) whose curves the overview draws, and a sentence
    saying how they were chosen.

    Every run when there are at most ``max_runs``; otherwise each (phase, detail) group gets seats
    in proportion to its size (at least min(size, 3) while max_runs allows), filled with runs
    evenly spaced through the group in table order, i.e. spread over the grid rather than bunched
    in one corner. Never more than ``max_runs``.
    """
    n = len(table)
    if n <= max_runs:
        return list(range(n)), f"All {n} runs are shown."
    groups = table.groupby(["phase", "detail"], sort=False).indices
    sizes = {g: len(ix) for g, ix in groups.items()}
    floor = {g: min(s, 3) for g, s in sizes.items()}
    seats = {g: max(floor[g], int(max_runs * s / n)) for g, s in sizes.items()}
    # The floors may overshoot: trim seats above the floors first (the biggest excess first),
    # then the floors themselves (the biggest group first), so that max_runs is a hard cap.
    while sum(seats.values()) > max_runs:
        g = max(seats, key=lambda k: (seats[k] - floor[k] > 0, seats[k] - floor[k], seats[k]))
        seats[g] -= 1
    picked: list[int] = []
    for g, ix in groups.items():
        take = np.unique(np.round(np.linspace(0, len(ix) - 1, seats[g])).astype(int)) if seats[g] else []
        picked.extend(int(ix[t]) for t in take)
    picked.sort()
    note = (
        f"Showing {len(picked)} of {n:,} runs: each (phase, detail label) group gets seats in proportion to its "
        f"size (at least 3), filled with runs evenly spread over the grid. Click a phase-diagram cell for any "
        f"run's curves. Curves are downsampled to at most {MAX_CURVE_POINTS} log-spaced steps."
    )
    return picked, note


def run_labels(table: pd.DataFrame, names: Sequence[str]) -> list[str]:
    if not names:
        return table["run_id"].astype(str).tolist()
    cols = [table[n].tolist() for n in names]
    return [", ".join(f"{n}={format_value(v)}" for n, v in zip(names, vals)) for vals in zip(*cols)]


def _panel_grid(rows: int, cols: int, titles: Sequence[str], hspace: float, vspace: float, **axis: object) -> dict:
    """Layout of a rows x cols grid of panels (what make_subplots builds, without its slow
    validated updates): axes xaxis, xaxis2... row by row, each with ``axis``'s settings, and a
    title above each panel."""
    layout: dict = {"annotations": []}
    width, height = (1 - hspace * (cols - 1)) / cols, (1 - vspace * (rows - 1)) / rows
    for r in range(rows):
        for c in range(cols):
            n = r * cols + c + 1
            name = "" if n == 1 else str(n)
            x0, y1 = c * (width + hspace), 1 - r * (height + vspace)
            layout[f"xaxis{name}"] = dict(axis, domain=[x0, x0 + width], anchor=f"y{name}")
            layout[f"yaxis{name}"] = dict(axis, domain=[y1 - height, y1], anchor=f"x{name}")
            if titles[n - 1]:
                layout["annotations"].append(
                    dict(
                        text=titles[n - 1], x=x0 + width / 2, y=y1, xref="paper", yref="paper", xanchor="center",
                        yanchor="bottom", showarrow=False, font=dict(size=15),
                    )  # fmt: skip
                )
    return layout


_OVERVIEW_PANELS = (  # (metric, row, col)
    ("train_acc", 1, 1),
    ("val_acc", 1, 2),
    ("weight_norm", 1, 3),
    ("train_loss", 2, 1),
    ("val_loss", 2, 2),
)


STAGE_LINE = dict(color="#555", width=1, dash="dash")  # a stage boundary on every step axis


def stage_shapes(ends: Sequence[int], x_axes: Sequence[str]) -> list[dict]:
    """A dashed vertical line at each stage boundary in each panel (x axes ``x``, ``x2``...)."""
    return [
        dict(type="line", xref=axis, yref=f"{axis.replace('x', 'y')} domain", x0=end, x1=end, y0=0, y1=1,
             line=STAGE_LINE, layer="below")
        for end in ends for axis in x_axes
    ]


def overview_figure(table: pd.DataFrame, curves: CurveData, rows: Sequence[int], labels: Sequence[str], title,
                    stage_ends: Sequence[int] = ()) -> go.Figure:
    chosen = np.concatenate([np.arange(curves.offsets[i], curves.offsets[i + 1]) for i in rows]) if len(rows) else []
    chosen_steps = curves.steps[chosen]
    zero_x = zero_step_x(chosen_steps)
    traces = []
    for i in rows:
        steps, values = curves.run(i)
        if steps.size == 0:
            continue
        x = plotted_steps(steps, zero_x)
        phase = str(table.at[i, "phase"])
        detail = str(table.at[i, "detail"])
        name = html.escape(labels[i])
        tag = html.escape(phase + (f" · {detail}" if detail else ""))
        for metric, r, c in _OVERVIEW_PANELS:
            n = "" if (r, c) == (1, 1) else str((r - 1) * 3 + c)
            traces.append(
                dict(
                    type="scatter",
                    x=x,
                    y=values[metric],
                    customdata=steps,  # the true step, for the hover (step 0 is drawn at zero_x)
                    xaxis=f"x{n}",
                    yaxis=f"y{n}",
                    mode="lines",
                    line=dict(color=phase_color(phase), width=1.1),
                    opacity=0.45,
                    name=labels[i],
                    legendgroup=phase,
                    showlegend=False,
                    meta=[phase, metric, str(table.at[i, "run_id"])],
                    hovertemplate=f"{name}<br>{tag}<br>step %{{customdata}}<br>{_SHORT[metric]} %{{y:.4g}}<extra></extra>",
                )
            )
    for phase in ordered_phases(table.loc[list(rows), "phase"].tolist()):
        traces.append(
            dict(
                type="scatter", x=[None], y=[None], mode="lines", line=dict(color=phase_color(phase), width=3),
                name=phase, legendgroup=phase, showlegend=True, hoverinfo="skip", meta=[phase, "legend", ""],
            )  # fmt: skip
        )
    log_loss = loss_axis_is_log(curves)
    step_range = positive_range(plotted_steps(chosen_steps, zero_x))
    x_title = dict(text=step_title(bool((chosen_steps == 0).any()), zero_x))
    grid = _panel_grid(
        2, 3, ("train accuracy", "val accuracy", "weight norm", "train loss", "val loss", ""), 0.08, 0.16,
        showgrid=True, gridcolor="#eee", ticks="outside", exponentformat="power",
    )  # fmt: skip
    for name in ("", "2", "3", "4", "5"):  # every panel's x axis titled: they are read one by one
        grid[f"xaxis{name}"].update(type="log", title=dict(x_title), **log_ticks(*step_range))
    for name in ("", "2"):
        grid[f"yaxis{name}"]["range"] = [-0.02, 1.03]
    for name, metric in (("4", "train_loss"), ("5", "val_loss")):
        grid[f"yaxis{name}"]["type"] = "log" if log_loss else "linear"
        if log_loss:
            grid[f"yaxis{name}"].update(log_ticks(*positive_range(curves.values[metric][chosen])))
    grid["xaxis6"]["visible"] = grid["yaxis6"]["visible"] = False
    # Plain dicts, unvalidated: 1,000 traces validate in seconds (tests check that they would).
    fig = go.Figure(data=traces, layout=grid, _validate=False)
    layout = dict(
        template=pio.templates[TEMPLATE],
        font=FONT,
        width=1120,
        height=660,
        margin=dict(l=70, r=20, t=80 if title else 60, b=60),
        legend=dict(
            title=dict(text="phase (click to hide)"), x=0.73, y=0.36, xanchor="left", yanchor="top",
            groupclick="togglegroup", font=dict(size=12),
        ),  # fmt: skip
        hovermode="closest",
    )
    if title:
        layout["title"] = dict(text=title, x=0.0, xanchor="left")
    if stage_ends:
        layout["shapes"] = stage_shapes(stage_ends, ("x", "x2", "x3", "x4", "x5"))
    fig.update_layout(layout)
    return fig


def learning_curves_figure(
    runs: pd.DataFrame,
    labels: pd.DataFrame,
    metrics: pd.DataFrame,
    *,
    title: str | None = None,
    max_runs: int = MAX_OVERVIEW_RUNS,
) -> go.Figure:
    """Train/val accuracy, train/val loss and weight norm against step (log x) for the runs that
    ``overview_runs`` picks, one line per run and metric coloured by its phase; legend = phases
    (click toggles a phase's runs). Traces carry ``meta=[phase, metric, run_id]``."""
    table = sorted_table(runs, labels, swept_axes(runs))
    rows, _ = overview_runs(table, max_runs)
    curves = curve_data(metrics, table["run_id"].tolist())
    return overview_figure(table, curves, rows, run_labels(table, identity_columns(table, [])), title, stage_ends(metrics))


def cell_curves_figure(*, loss_log: bool = True) -> go.Figure:
    """The empty frame of the click-a-cell view: accuracy, loss and weight norm against step (log
    x). The page's script fills in the clicked cell's runs (from ``report_data``)."""
    layout = _panel_grid(
        1, 3, ("accuracy (solid: val, dashed: train)", "loss (solid: val, dashed: train)", "weight norm"), 0.075, 0,
        showgrid=True, gridcolor="#eee", ticks="outside", exponentformat="power",
    )  # fmt: skip
    for name in ("", "2", "3"):
        layout[f"xaxis{name}"].update(type="log", title=dict(text="step"))
    layout["yaxis"]["range"] = [-0.02, 1.03]
    layout["yaxis2"]["type"] = "log" if loss_log else "linear"
    layout.update(
        template=pio.templates[TEMPLATE],
        font=FONT,
        width=1120,
        height=CELL_HEIGHT,
        margin=dict(l=60, r=20, t=60, b=CELL_BOTTOM),
        # Under the x titles, at the bottom of the figure (the page's script grows the figure by
        # a legend row per CELL_LEGEND_COLUMNS runs).
        legend=dict(orientation="h", x=0, y=0, yref="container", yanchor="bottom", font=dict(size=11)),
        hovermode="closest",
    )
    return go.Figure(layout=layout, _validate=False)
