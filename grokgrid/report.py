"""The HTML report of a sweep: a phase diagram, learning curves and a summary table.

``render_report`` turns the three tables of a results folder (runs, labels, metrics; see
store.py) into one self-contained HTML document: plotly.js is inlined once in the <head>, so the
file opens offline, by e-mail or from an archive years later. ``write_report`` reads a results
folder and writes ``<sweep>/report.html`` atomically.

The figure builders (``phase_grid``, ``phase_diagram_figure``, ``learning_curves_figure``,
``phase_counts``) are public so that tests (and notebooks) can check the data behind the pictures.

Pure plotly + pandas: no torch or Ray import (DESIGN.md section 2), so reports build on a laptop.
"""

from __future__ import annotations

import html
import json
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
import plotly.offline
from plotly.subplots import make_subplots

from grokgrid import store
from grokgrid.phases import PHASE_COLORS, PHASES

# Hyperparameter columns of the runs table, in the order the default axes are picked from.
HYPERPARAMETERS = ("repr_lr", "decoder_lr", "repr_wd", "decoder_wd", "init_scale", "train_fraction", "seed")

DISPLAY_NAMES = {
    "repr_lr": "representation lr",
    "decoder_lr": "decoder lr",
    "repr_wd": "representation weight decay",
    "decoder_wd": "decoder weight decay",
    "init_scale": "init scale",
    "train_fraction": "training fraction",
    "seed": "seed",
}

# Runs with no label yet (pending, failed, not classified) still occupy their cell.
UNLABELED = "unlabeled"
# The one value on an axis with nothing to plot (1-D strip, single cell).
SINGLE_CELL = "all"
_FALLBACK_COLOR = "#BBBBBB"

PHASE_DIAGRAM_ID = "grokgrid-phase-diagram"
LEARNING_CURVES_ID = "grokgrid-learning-curves"

_FONT = dict(family="Helvetica Neue, Helvetica, Arial, sans-serif", size=14, color="#222")
_TEMPLATE = "simple_white"
_CURVE_OPACITY = 0.6
_MAX_RUNS_IN_HOVER = 8
_PLOT_CONFIG = {
    "displaylogo": False,
    # SVG downloads drop straight into a paper.
    "toImageButtonOptions": {"format": "svg"},
}


# ----------------------------------------------------------------------------- axes


def display_name(hyperparameter: str) -> str:
    return DISPLAY_NAMES.get(hyperparameter, hyperparameter.replace("_", " "))


def hyperparameter_columns(runs: pd.DataFrame) -> list[str]:
    return [h for h in HYPERPARAMETERS if h in runs.columns]


def swept_axes(runs: pd.DataFrame) -> list[str]:
    """Hyperparameters (seed excluded) that take more than one value, in HYPERPARAMETERS order."""
    return [h for h in hyperparameter_columns(runs) if h != "seed" and runs[h].nunique(dropna=True) > 1]


def resolve_axes(runs: pd.DataFrame, axes: Sequence[str | None] | None = None) -> tuple[str | None, str | None]:
    """The (x, y) hyperparameters to plot; None where there is nothing to put on that axis.

    Default: the first two swept axes (one swept axis gives a 1-D strip, none a single cell).
    """
    if axes is None:
        picked: list[str | None] = list(swept_axes(runs)[:2])
    else:
        if isinstance(axes, str) or not 1 <= len(axes) <= 2:
            raise ValueError(f"axes must be one or two hyperparameter names, got {axes!r}")
        picked = list(axes)
        valid = hyperparameter_columns(runs)
        for name in picked:
            if name is not None and name not in valid:
                raise ValueError(f"unknown axis {name!r}; valid axes for these runs: {', '.join(valid)}")
        if len(picked) == 2 and picked[0] is not None and picked[0] == picked[1]:
            raise ValueError(f"axes must differ, got {picked[0]!r} twice")
    picked += [None] * (2 - len(picked))
    return picked[0], picked[1]


def axis_scale(values: Sequence[object]) -> str:
    """'log' for positive values spanning more than a decade (learning rates), 'category' for
    uneven spacing that a linear axis would squash (e.g. wd 0, 1e-3, 1e-2, 1), else 'linear'."""
    numbers = pd.to_numeric(pd.Series(list(values), dtype=object), errors="coerce")
    if len(numbers) == 0 or numbers.isna().any():
        return "category"
    v = np.sort(numbers.to_numpy(dtype=float))
    if v[0] > 0 and v[-1] / v[0] > 10:
        return "log"
    gaps = np.diff(v)
    if len(gaps) >= 2 and gaps.min() > 0 and gaps.max() / gaps.min() > 10:
        return "category"
    return "linear"


def format_value(value: object, digits: int = 3) -> str:
    """Compact text for a hyperparameter value: 1e-05 -> '1e-5', 0.0003 -> '0.0003', 7 -> '7'."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return "—"
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        text = f"{float(value):.{digits}g}"
        if "e" in text:
            mantissa, exponent = text.split("e")
            text = f"{mantissa}e{int(exponent)}"
        return text
    return str(value)


# ----------------------------------------------------------------------------- phase grid


def labelled_runs(runs: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """The runs table with the label columns joined on; runs without a label are 'unlabeled'."""
    label_columns = [c for c in labels.columns if c != "run_id" and c not in runs.columns]
    table = runs.merge(labels[["run_id", *label_columns]], on="run_id", how="left")
    table["phase"] = table["phase"].astype(object).where(table["phase"].notna(), UNLABELED)
    return table


def _phase_rank(phase: str) -> int:
    # Ties and orderings follow PHASES; phases we do not know come after, unlabeled last.
    if phase in PHASES:
        return PHASES.index(phase)
    return len(PHASES) + (1 if phase == UNLABELED else 0)


def ordered_phases(phases: Sequence[str]) -> list[str]:
    return sorted(set(phases), key=lambda p: (_phase_rank(p), p))


def phase_color(phase: str) -> str:
    return PHASE_COLORS.get(phase, _FALLBACK_COLOR)


def majority_phase(phases: Sequence[str]) -> tuple[str, int]:
    """The most common phase and its count; a tie goes to the phase listed first in PHASES."""
    counts = pd.Series(list(phases), dtype=object).value_counts()
    best = min(counts.index, key=lambda p: (-counts[p], _phase_rank(p), p))
    return best, int(counts[best])


def _cell_keys(table: pd.DataFrame, axes: tuple[str | None, str | None]) -> pd.DataFrame:
    # A missing axis collapses to one category so that 1-D and 0-D sweeps are still grids (not
    # "": plotly treats an empty category as missing data).
    x_name, y_name = axes
    return pd.DataFrame(
        {
            "x": table[x_name] if x_name else SINGLE_CELL,
            "y": table[y_name] if y_name else SINGLE_CELL,
        },
        index=table.index,
    )


def phase_grid(
    runs: pd.DataFrame, labels: pd.DataFrame, axes: Sequence[str | None] | None = None
) -> pd.DataFrame:
    """One row per (x, y) cell: x, y, phase (the majority over seeds and any other hyperparameter
    not on the axes), n_runs, n_majority, run_ids (tuple). Sorted by x, then y. An axis that is
    None (fewer than two swept hyperparameters) holds the single value SINGLE_CELL."""
    axes = resolve_axes(runs, axes)
    table = labelled_runs(runs, labels)
    keys = _cell_keys(table, axes)
    rows = []
    for (x, y), index in keys.groupby(["x", "y"], sort=True, dropna=False).groups.items():
        cell = table.loc[index]
        phase, n_majority = majority_phase(cell["phase"].tolist())
        rows.append(
            dict(x=x, y=y, phase=phase, n_runs=len(cell), n_majority=n_majority, run_ids=tuple(cell["run_id"]))
        )
    return pd.DataFrame(rows, columns=["x", "y", "phase", "n_runs", "n_majority", "run_ids"])


def phase_counts(runs: pd.DataFrame, labels: pd.DataFrame) -> dict[str, int]:
    """Runs per phase: every phase of PHASES (zeros included), then any other phase present."""
    present = labelled_runs(runs, labels)["phase"].value_counts()
    counts = dict.fromkeys(PHASES, 0)
    for phase in ordered_phases(present.index.tolist()):
        counts[phase] = int(present[phase])
    return counts


# ----------------------------------------------------------------------------- hover text


def _number(value: object, spec: str) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return "—"
    # Step columns may arrive as floats (NaN for "never") from a hand-built frame.
    return format(int(value) if spec == "d" else float(value), spec)


def _run_identity(row: pd.Series, names: Sequence[str]) -> str:
    """'run <id> (seed=0, repr_wd=0.1)': what tells the runs of one cell apart."""
    parts = [f"{n}={format_value(row[n])}" for n in names]
    suffix = f" ({', '.join(parts)})" if parts else ""
    return f"run {row['run_id']}{suffix}"


def _run_hover_line(row: pd.Series, names: Sequence[str]) -> str:
    label = html.escape(_run_identity(row, names))
    if row["phase"] == UNLABELED:
        return f"{label}: <i>unlabeled</i> (status {html.escape(str(row.get('status', '?')))})"
    timings = (
        f"t_train {_number(row.get('t_train'), 'd')}, t_val {_number(row.get('t_val'), 'd')}, "
        f"gap {_number(row.get('gap'), 'd')}"
    )
    accuracies = (
        f"final acc train {_number(row.get('final_train_acc'), '.3f')} / "
        f"val {_number(row.get('final_val_acc'), '.3f')}"
    )
    reason = html.escape(str(row.get("reason", "")))
    return f"{label}: <b>{html.escape(row['phase'])}</b><br>  {timings}; {accuracies}<br>  <i>{reason}</i>"


def cell_hover_text(
    cell: pd.Series, runs_of_cell: pd.DataFrame, axes: tuple[str | None, str | None], identity: Sequence[str]
) -> str:
    """Hover for one phase-diagram cell: its axis values, the majority phase 'k/n runs', and one
    line per run (hyperparameters that tell them apart, phase, timings, final accuracies, reason)."""
    lines = [
        f"<b>{html.escape(display_name(name))}</b> = {html.escape(format_value(cell[c], 4))}"
        for name, c in zip(axes, ("x", "y"))
        if name
    ]
    lines.append(f"<b>{html.escape(cell['phase'])}</b>: {cell['n_majority']}/{cell['n_runs']} runs")
    shown = runs_of_cell.head(_MAX_RUNS_IN_HOVER)
    lines += [_run_hover_line(row, identity) for _, row in shown.iterrows()]
    if len(runs_of_cell) > len(shown):
        lines.append(f"… and {len(runs_of_cell) - len(shown)} more runs")
    return "<br>".join(lines)


# ----------------------------------------------------------------------------- phase diagram


def _axis_layout(name: str | None, values: list[object]) -> dict:
    if name is None:
        return dict(type="category", showticklabels=False, ticks="", title=None, showline=False)
    scale = axis_scale(values)
    layout = dict(type=scale, title=dict(text=display_name(name)), showgrid=False, mirror=True)
    texts = [format_value(v) for v in values]
    if scale == "category":
        layout.update(categoryorder="array", categoryarray=texts)
    else:
        # Ticks exactly at the swept values, labelled with the values themselves.
        layout.update(tickvals=values, ticktext=texts)
    return layout


def _axis_coordinates(values: list[object], layout: dict) -> list[object]:
    # A category axis is addressed by the tick texts, a numeric one by the values.
    return [format_value(v) for v in values] if layout["type"] == "category" else list(values)


def _is_dark(color: str) -> bool:
    try:
        r, g, b = (int(color.lstrip("#")[i : i + 2], 16) for i in (0, 2, 4))
    except ValueError:  # a named or rgb() colour: assume light, label in dark text
        return False
    return 0.299 * r + 0.587 * g + 0.114 * b < 128


def _phase_heatmap(phase: str, grid: pd.DataFrame, xs, ys, x_coords, y_coords, hover, run_lists) -> go.Heatmap:
    """One heatmap per phase, NaN outside its cells: each keeps its fixed colour and its legend
    entry toggles its cells (a single heatmap would need a colourscale hack and no legend)."""
    # None (JSON null) is a gap in a plotly heatmap: the other phases' cells show through.
    z: list[list[float | None]] = [[None] * len(xs) for _ in ys]
    for _, cell in grid[grid["phase"] == phase].iterrows():
        z[ys.index(cell["y"])][xs.index(cell["x"])] = 1.0
    color = phase_color(phase)
    return go.Heatmap(
        x=x_coords,
        y=y_coords,
        z=z,
        text=hover,
        customdata=run_lists,
        hovertemplate="%{text}<extra></extra>",
        hoverongaps=False,
        colorscale=[[0, color], [1, color]],
        zmin=0,
        zmax=1,
        showscale=False,
        xgap=2,
        ygap=2,
        name=phase,
        legendgroup=phase,
        showlegend=False,
    )


def _legend_marker(phase: str) -> go.Scatter:
    return go.Scatter(
        x=[None],
        y=[None],
        mode="markers",
        marker=dict(symbol="square", size=14, color=phase_color(phase)),
        name=phase,
        legendgroup=phase,
        showlegend=True,
        hoverinfo="skip",
    )


def _disagreement_labels(grid: pd.DataFrame, x_of, y_of) -> go.Scatter:
    """'k/n' printed on cells whose runs disagree, so uncertain cells stand out without hovering."""
    mixed = grid[grid["n_majority"] < grid["n_runs"]]
    colors = ["white" if _is_dark(phase_color(p)) else "#111" for p in mixed["phase"]]
    return go.Scatter(
        x=[x_of[x] for x in mixed["x"]],
        y=[y_of[y] for y in mixed["y"]],
        mode="text",
        text=[f"{k}/{n}" for k, n in zip(mixed["n_majority"], mixed["n_runs"])],
        textfont=dict(size=12, color=colors),
        hoverinfo="skip",
        showlegend=False,
        name="runs agreeing",
    )


def _sorted_unique(values: pd.Series) -> list[object]:
    return sorted(values.unique().tolist(), key=lambda v: (isinstance(v, str), v))


def phase_diagram_figure(
    runs: pd.DataFrame,
    labels: pd.DataFrame,
    axes: Sequence[str | None] | None = None,
    *,
    title: str = "Phase diagram",
) -> go.Figure:
    """Cells over the two axes, coloured by their majority phase (PHASE_COLORS), legend per phase.

    Traces: one heatmap per phase present (name = phase), one legend marker per phase, and a
    text trace with 'k/n' on cells where the runs disagree.
    """
    axes = resolve_axes(runs, axes)
    grid = phase_grid(runs, labels, axes)
    table = labelled_runs(runs, labels).set_index("run_id", drop=False)
    identity = [h for h in hyperparameter_columns(runs) if h not in axes and runs[h].nunique() > 1]

    xs, ys = _sorted_unique(grid["x"]), _sorted_unique(grid["y"])
    x_layout, y_layout = _axis_layout(axes[0], xs), _axis_layout(axes[1], ys)
    x_coords, y_coords = _axis_coordinates(xs, x_layout), _axis_coordinates(ys, y_layout)

    hover = np.full((len(ys), len(xs)), "", dtype=object)
    run_lists = np.full((len(ys), len(xs)), "", dtype=object)
    for _, cell in grid.iterrows():
        i, j = ys.index(cell["y"]), xs.index(cell["x"])
        hover[i, j] = cell_hover_text(cell, table.loc[list(cell["run_ids"])], axes, identity)
        run_lists[i, j] = " ".join(cell["run_ids"])

    phases = ordered_phases(grid["phase"].tolist())
    fig = go.Figure()
    for phase in phases:
        fig.add_trace(_phase_heatmap(phase, grid, xs, ys, x_coords, y_coords, hover.tolist(), run_lists.tolist()))
    for phase in phases:
        fig.add_trace(_legend_marker(phase))
    fig.add_trace(_disagreement_labels(grid, dict(zip(xs, x_coords)), dict(zip(ys, y_coords))))

    one_row = axes[1] is None
    fig.update_layout(
        template=_TEMPLATE,
        font=_FONT,
        title=dict(text=title, x=0.0, xanchor="left"),
        xaxis=x_layout,
        yaxis=y_layout,
        legend=dict(title=dict(text="phase"), itemclick="toggle", itemdoubleclick="toggleothers"),
        width=max(520, 90 + 70 * len(xs) + 180),
        height=260 if one_row else max(420, 160 + 60 * len(ys)),
        margin=dict(l=80, r=20, t=60, b=70),
        hoverlabel=dict(align="left", bgcolor="white", font=dict(size=12)),
    )
    return fig


# ----------------------------------------------------------------------------- learning curves


def _curve_label(row: pd.Series, names: Sequence[str]) -> str:
    parts = [f"{n}={format_value(row[n])}" for n in names]
    return ", ".join(parts) if parts else str(row["run_id"])


# (row, metric column, dash): validation solid, train dashed, so a run's pair reads as one colour.
_CURVES = (
    (1, "train_acc", "dash"),
    (1, "val_acc", "solid"),
    (2, "train_loss", "dash"),
    (2, "val_loss", "solid"),
    (3, "weight_norm", "solid"),
)
_SHORT = {
    "train_acc": "train acc",
    "val_acc": "val acc",
    "train_loss": "train loss",
    "val_loss": "val loss",
    "weight_norm": "weight norm",
}


def _run_traces(run: pd.Series, curve: pd.DataFrame, label: str, rank: int) -> Iterator[tuple[int, go.Scatter]]:
    color = phase_color(run["phase"])
    for row, column, dash in _CURVES:
        yield row, go.Scatter(
            x=curve["step"].to_numpy(),
            y=curve[column].to_numpy(dtype=float),
            mode="lines",
            line=dict(color=color, width=1.5, dash=dash),
            opacity=_CURVE_OPACITY,
            name=label,
            legendgroup=str(run["run_id"]),
            # One legend entry per run (on its val-acc line) toggles all five of its lines.
            showlegend=column == "val_acc",
            legendrank=1000 + rank,
            meta=[str(run["phase"]), _SHORT[column]],
            hovertemplate=(
                f"{html.escape(label)}<br>%{{meta[0]}}<br>step %{{x}}<br>%{{meta[1]}} %{{y:.4g}}<extra></extra>"
            ),
        )


def _phase_filter_menu(fig: go.Figure) -> dict:
    """Dropdown: all runs, or only one phase's runs (the others stay in the legend, greyed)."""
    trace_phases = [t.meta[0] for t in fig.data]
    buttons = [dict(label="all runs", method="restyle", args=[{"visible": [True] * len(trace_phases)}])]
    for phase in ordered_phases(trace_phases):
        visible = [True if p == phase else "legendonly" for p in trace_phases]
        buttons.append(dict(label=f"{phase} only", method="restyle", args=[{"visible": visible}]))
    return dict(buttons=buttons, direction="down", x=1.0, xanchor="right", y=1.06, yanchor="bottom", showactive=True)


def learning_curves_figure(
    runs: pd.DataFrame,
    labels: pd.DataFrame,
    metrics: pd.DataFrame,
    *,
    title: str = "Learning curves",
) -> go.Figure:
    """Accuracy, loss and weight norm against step (log x), one line set per run coloured by its
    phase. Every trace of a run shares legendgroup=run_id; a dropdown filters by phase."""
    table = labelled_runs(runs, labels)
    table = table.assign(_rank=table["phase"].map(_phase_rank)).sort_values(["_rank", "run_id"], kind="stable")
    identity = swept_axes(runs) + (["seed"] if "seed" in runs.columns and runs["seed"].nunique() > 1 else [])
    # Step 0 has no place on a log axis.
    curves = metrics[metrics["step"] > 0].sort_values(["run_id", "step"])
    by_run = dict(tuple(curves.groupby("run_id", sort=False)))

    fig = make_subplots(
        rows=3,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.07,
        subplot_titles=("accuracy (solid: val, dashed: train)", "loss (solid: val, dashed: train)", "weight norm"),
    )
    placed = [
        placed_trace
        for rank, (_, run) in enumerate(table.iterrows())
        if run["run_id"] in by_run
        for placed_trace in _run_traces(run, by_run[run["run_id"]], _curve_label(run, identity), rank)
    ]
    if placed:
        # One add_traces call: adding hundreds of traces one by one re-validates the figure each time.
        rows, traces = zip(*placed)
        fig.add_traces(list(traces), rows=list(rows), cols=[1] * len(rows))

    fig.update_xaxes(type="log", showgrid=True, gridcolor="#eee")
    fig.update_xaxes(title_text="step", row=3, col=1)
    fig.update_yaxes(showgrid=True, gridcolor="#eee")
    fig.update_yaxes(title_text="accuracy", range=[0, 1.03], row=1, col=1)
    losses = curves[["train_loss", "val_loss"]].to_numpy(dtype=float)
    finite = losses[np.isfinite(losses)]
    # Losses span decades (memorised train loss -> 1e-6); log only when every value allows it.
    fig.update_yaxes(title_text="loss", type="log" if finite.size and finite.min() > 0 else "linear", row=2, col=1)
    fig.update_yaxes(title_text="weight norm", row=3, col=1)
    fig.update_layout(
        template=_TEMPLATE,
        font=_FONT,
        title=dict(text=title, x=0.0, xanchor="left"),
        height=950,
        margin=dict(l=80, r=20, t=90, b=60),
        legend=dict(title=dict(text="run (click to toggle)"), font=dict(size=11), groupclick="togglegroup"),
        hovermode="closest",
        updatemenus=[_phase_filter_menu(fig)] if fig.data else [],
    )
    return fig


# ----------------------------------------------------------------------------- HTML


_CSS = """
body { font-family: "Helvetica Neue", Helvetica, Arial, sans-serif; color: #222; margin: 2em auto;
       max-width: 1200px; padding: 0 1.5em; line-height: 1.45; }
h1 { font-size: 1.7em; margin-bottom: 0.2em; }
h2 { font-size: 1.25em; margin-top: 2em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
table.summary { border-collapse: collapse; margin: 0.8em 0; font-size: 0.95em; }
table.summary th, table.summary td { padding: 0.25em 0.9em; border-bottom: 1px solid #eee; text-align: left; }
table.summary td.num { text-align: right; font-variant-numeric: tabular-nums; }
.swatch { display: inline-block; width: 0.85em; height: 0.85em; margin-right: 0.4em; vertical-align: -0.05em;
          border-radius: 2px; }
.note { color: #666; font-size: 0.9em; }
details pre { background: #f7f7f7; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
"""


def _phase_count_rows(counts: Mapping[str, int]) -> list[str]:
    rows = []
    for phase, n in counts.items():
        swatch = f'<span class="swatch" style="background:{html.escape(phase_color(phase))}"></span>'
        rows.append(f'<tr><td>{swatch}{html.escape(phase)}</td><td class="num">{n}</td></tr>')
    return rows


def _status_text(runs: pd.DataFrame) -> str:
    if "status" not in runs.columns:
        return ""
    counts = runs["status"].value_counts()
    return ", ".join(f"{int(n)} {html.escape(str(s))}" for s, n in counts.items())


def _hyperparameter_rows(runs: pd.DataFrame) -> list[str]:
    rows = []
    for name in hyperparameter_columns(runs):
        values = _sorted_unique(runs[name].dropna())
        kind = "fixed" if len(values) == 1 else ("replicates" if name == "seed" else "swept")
        text = ", ".join(format_value(v, 4) for v in values)
        rows.append(
            f"<tr><td>{html.escape(display_name(name))} <span class='note'>({html.escape(name)}, {kind})</span>"
            f"</td><td>{html.escape(text)}</td></tr>"
        )
    return rows


def _meta_block(meta: Mapping[str, object]) -> tuple[list[str], list[str]]:
    """One table row per short item; multi-line items (the spec) go in a collapsed <pre> block."""
    rows, blocks = [], []
    for key, value in meta.items():
        text = "" if value is None else str(value)
        if "\n" in text or len(text) > 120:
            blocks.append(
                f"<details><summary>{html.escape(str(key))}</summary><pre>{html.escape(text)}</pre></details>"
            )
        else:
            rows.append(f"<tr><td>{html.escape(str(key))}</td><td>{html.escape(text)}</td></tr>")
    return rows, blocks


def summary_html(runs: pd.DataFrame, labels: pd.DataFrame, meta: Mapping[str, object] | None = None) -> str:
    """The summary section: runs per phase (all PHASES, zeros too), run count and status, the
    hyperparameters, and the ``meta`` items, all text escaped."""
    counts = phase_counts(runs, labels)
    meta_rows, meta_blocks = _meta_block(meta or {})
    status = _status_text(runs)
    parts = [
        '<table class="summary" id="phase-counts"><thead><tr><th>phase</th><th>runs</th></tr></thead><tbody>',
        *_phase_count_rows(counts),
        f'<tr><th>total</th><td class="num" id="n-runs">{len(runs)}</td></tr>',
        "</tbody></table>",
    ]
    if status:
        parts.append(f'<p class="note">run status: {status}</p>')
    parts += ['<table class="summary" id="hyperparameters"><tbody>', *_hyperparameter_rows(runs), "</tbody></table>"]
    if meta_rows:
        parts += ['<table class="summary" id="meta"><tbody>', *meta_rows, "</tbody></table>"]
    parts += meta_blocks
    return "\n".join(parts)


def _figure_div(fig: go.Figure, div_id: str) -> str:
    # plotly.js itself is inlined once in <head>, never per figure and never from a CDN.
    return pio.to_html(fig, full_html=False, include_plotlyjs=False, div_id=div_id, config=_PLOT_CONFIG)


def _cell_click_script(grid: pd.DataFrame) -> str:
    """Clicking a phase-diagram cell highlights its runs' learning curves; clicking it again (or
    double-clicking the diagram) shows all runs evenly again."""
    runs_by_cell = {" ".join(map(str, ids)): list(map(str, ids)) for ids in grid["run_ids"]}
    data = json.dumps(runs_by_cell).replace("</", "<\\/")
    return f"""<script>
window.addEventListener("load", function () {{
  var diagram = document.getElementById("{PHASE_DIAGRAM_ID}");
  var curves = document.getElementById("{LEARNING_CURVES_ID}");
  var runsByCell = {data};
  if (!diagram || !curves || !diagram.on || !curves.data) return;
  var selected = null;
  function highlight(ids) {{
    var keep = {{}};
    (ids || []).forEach(function (id) {{ keep[id] = true; }});
    var opacity = curves.data.map(function (t) {{
      return ids ? (keep[t.legendgroup] ? 1.0 : 0.07) : {_CURVE_OPACITY};
    }});
    var width = curves.data.map(function (t) {{ return ids && keep[t.legendgroup] ? 2.5 : 1.5; }});
    Plotly.restyle(curves, {{"opacity": opacity, "line.width": width}});
  }}
  diagram.on("plotly_click", function (event) {{
    var key = event.points && event.points[0] && event.points[0].customdata;
    if (!key || !runsByCell[key]) return;
    if (key === selected) {{ selected = null; highlight(null); return; }}
    selected = key;
    highlight(runsByCell[key]);
  }});
  diagram.on("plotly_doubleclick", function () {{ selected = null; highlight(null); }});
}});
</script>"""


def _document(title: str, body: str) -> str:
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>{_CSS}</style>
<script>window.PlotlyConfig = {{MathJaxConfig: "local"}};</script>
<script>{plotly.offline.get_plotlyjs()}</script>
</head>
<body>
{body}
</body>
</html>
"""


def render_report(
    runs: pd.DataFrame,
    labels: pd.DataFrame,
    metrics: pd.DataFrame,
    *,
    title: str,
    axes: tuple[str, str] | None = None,
    meta: dict | None = None,
) -> str:
    """The whole report as one self-contained HTML document (plotly.js inlined once)."""
    axes = resolve_axes(runs, axes)
    grid = phase_grid(runs, labels, axes)
    diagram = phase_diagram_figure(runs, labels, axes, title="Phase diagram")
    curves = learning_curves_figure(runs, labels, metrics, title="Learning curves")
    plotted = " × ".join(display_name(a) for a in axes if a) or "no swept hyperparameter"
    body = "\n".join(
        [
            f"<h1>{html.escape(title)}</h1>",
            f'<p class="note">grokgrid sweep report: {len(runs)} runs, phase diagram over {html.escape(plotted)}.</p>',
            "<h2>Summary</h2>",
            summary_html(runs, labels, meta),
            "<h2>Phase diagram</h2>",
            '<p class="note">Each cell shows the majority phase of its runs (seeds and other hyperparameters '
            "off the axes); 'k/n' marks cells whose runs disagree. Hover for every run's timings; click a cell "
            "to highlight its runs below.</p>",
            _figure_div(diagram, PHASE_DIAGRAM_ID),
            "<h2>Learning curves</h2>",
            '<p class="note">Click a legend entry to hide or show a run, double-click to isolate it; the '
            "dropdown keeps one phase.</p>",
            _figure_div(curves, LEARNING_CURVES_ID),
            _cell_click_script(grid),
        ]
    )
    return _document(title, body)


# ----------------------------------------------------------------------------- files


def grokgrid_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("grokgrid")
    except metadata.PackageNotFoundError:
        import grokgrid

        return str(getattr(grokgrid, "__version__", "unknown"))


def write_report(sweep_dir: Path | str, *, axes: tuple[str, str] | None = None) -> Path:
    """Read a results folder and write ``<sweep_dir>/report.html`` atomically; returns its path."""
    sweep_dir = Path(sweep_dir)
    runs = store.read_runs(sweep_dir)
    labels = store.read_labels(sweep_dir)
    metrics = store.read_metrics(sweep_dir)
    name = sweep_dir.resolve().name
    meta: dict[str, object] = {
        "sweep": name,
        "results folder": str(sweep_dir.resolve()),
        "generated": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "grokgrid version": grokgrid_version(),
    }
    spec_path = sweep_dir / store.SPEC_FILE
    if spec_path.is_file():
        meta["spec"] = spec_path.read_text(encoding="utf-8")
    text = render_report(runs, labels, metrics, title=name, axes=axes, meta=meta)
    path = sweep_dir / store.REPORT_FILE
    store.atomic_write_text(path, text)
    return path
