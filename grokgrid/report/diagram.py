"""The phase diagram figure: per facet value a row of three panels over the same cells, (a) the
majority phase (one heatmap per phase, 'k/n' where the runs disagree, detail markers, the
selected cell's outline), (b) the grokking delay map and (c) the final val accuracy map; then
the legend entries. The frame around them (geometry, axes, colourbars) is diagram_layout.py's.

Traces are plain dicts and the figure skips plotly.py's validation (a thousand traces at 10k
runs: seconds); tests check that the figure validates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from grokgrid.phases import DETAILS
from grokgrid.report.axes import resolve_axes, resolve_facet, sorted_unique
from grokgrid.report.cells import SINGLE_CELL, cell_grid, ordered_phases, phase_color, sorted_table
from grokgrid.report.diagram_layout import Geometry, axis_coordinates, axis_layout, axis_name, diagram_layout
from grokgrid.report.hover import cell_hover_texts, map_hover_text
from grokgrid.report.overlays import overlays
from grokgrid.report.style import DETAIL_SYMBOLS, NO_VALUE_COLOR, SELECTION_COLOR


@dataclass
class Diagram:
    """The figure and what the page's script needs to link its cells to their runs."""

    figure: go.Figure
    grid: pd.DataFrame
    table: pd.DataFrame
    cell_of_run: np.ndarray
    coordinates: list[tuple[int, object, object]]  # per cell: (row, x, y) in axis coordinates


@dataclass(frozen=True)
class _Canvas:
    """What every panel of the diagram shares: the axis values in order, where plotly draws them,
    the pixel geometry and the white gap between cells."""

    xs: list[object]
    ys: list[object]
    x_of: dict[object, object]  # axis value -> plotly coordinate
    y_of: dict[object, object]
    geo: Geometry
    gap: int

    def heat(self) -> dict:
        """The settings every heatmap of the diagram starts from."""
        x, y = list(self.x_of.values()), list(self.y_of.values())
        return dict(x=x, y=y, xgap=self.gap, ygap=self.gap, hoverongaps=False, showscale=False)

    def matrix(self, cells: pd.DataFrame, values: Sequence[object]) -> list[list[object]]:
        return _cell_matrix(cells, values, self.xs, self.ys)

    def points(self, cells: pd.DataFrame) -> dict:
        """x and y of the cells' centres, for scatter traces drawn over them."""
        return dict(x=[self.x_of[x] for x in cells["x"]], y=[self.y_of[y] for y in cells["y"]])


def _cell_matrix(cells: pd.DataFrame, values: Sequence[object], xs, ys) -> list[list[object]]:
    """A ys x xs matrix (JSON null where a cell is absent) holding values[k] at cell k's place."""
    out: list[list[object]] = [[None] * len(xs) for _ in ys]
    x_index = {x: j for j, x in enumerate(xs)}
    y_index = {y: i for i, y in enumerate(ys)}
    for (x, y), value in zip(zip(cells["x"], cells["y"]), values):
        out[y_index[y]][x_index[x]] = value
    return out


def _decades(values: np.ndarray) -> tuple[float, float]:
    logs = np.log10(np.clip(values[np.isfinite(values)], 1, None))
    if logs.size == 0:
        return 0.0, 1.0
    lo, hi = math.floor(logs.min()), math.ceil(logs.max())
    return float(lo), float(max(hi, lo + 1))


def _is_dark(color: str) -> bool:
    try:
        r, g, b = (int(color.lstrip("#")[i : i + 2], 16) for i in (0, 2, 4))
    except ValueError:  # a named or rgb() colour: assume light, label in dark text
        return False
    return 0.299 * r + 0.587 * g + 0.114 * b < 128


def _agreement_text_size(grid: pd.DataFrame, geo: Geometry) -> int:
    """Font size of the 'k/n' labels: as large as fits the cell (a digit is ~0.6 em wide); 0
    (no labels) below 7 px."""
    longest = max((len(f"{n}/{n}") for n in grid["n_runs"]), default=3)
    size = int(min(11.0, 0.85 * geo.cell / (0.6 * longest)))
    return size if size >= 7 else 0


def _detail_marker(detail: str, cell: float) -> dict:
    size = max(7.0, min(13.0, cell / 4))
    return dict(symbol=DETAIL_SYMBOLS.get(detail, "circle"), size=size, color="white", line=dict(color="#111", width=1.5))


def _legend_entry(name: str, marker: dict) -> dict:
    return dict(
        type="scatter",
        x=[None],
        y=[None],
        mode="markers",
        marker=marker,
        name=name,
        legendgroup=name,
        showlegend=True,
        hoverinfo="skip",
        meta=["legend", name],
    )


# ----------------------------------------------------------------------------- (a) phases


def _phase_cells(
    canvas: _Canvas, cells: pd.DataFrame, row: int, phases: Sequence[str], hover: Sequence[str]
) -> list[dict]:
    """One heatmap per phase (NaN outside its cells) so that each keeps its fixed colour and its
    legend entry toggles its cells; customdata is the cell's row in the grid (for the click)."""
    idx = np.asarray(cells.index.to_list())
    traces = []
    for phase in phases:
        own = (cells["phase"] == phase).to_numpy()
        if not own.any():
            continue
        color = phase_color(phase)
        traces.append(
            dict(
                type="heatmap",
                **canvas.heat(),
                z=canvas.matrix(cells[own], [1.0] * int(own.sum())),
                text=canvas.matrix(cells[own], [hover[k] for k in idx[own]]),
                customdata=canvas.matrix(cells[own], [int(k) for k in idx[own]]),
                hovertemplate="%{text}<extra></extra>",
                colorscale=[[0, color], [1, color]],
                zmin=0,
                zmax=1,
                name=phase,
                legendgroup=phase,
                showlegend=False,
                xaxis=f"x{axis_name(row, 0)}",
                yaxis=f"y{axis_name(row, 0)}",
                meta=["phase", row],
            )
        )
    return traces


def _nearest_fill(canvas: _Canvas, cells: pd.DataFrame, row: int, hover: Sequence[str]) -> list[dict]:
    """A refined diagram (refine.py) is irregular: its finer values leave positions of the value
    lattice where no run sits. Each such position gets the colour of the nearest cell's phase,
    faded (distance in decades along a log-spaced axis, in the axis' span otherwise, both scaled
    to the axis' range), so the map reads as each run's region rather than as holes; the hover
    says no run is there and names the nearest cell, whose runs a click shows."""
    if cells.empty or len(cells) >= len(canvas.xs) * len(canvas.ys):
        return []
    x_pos, y_pos = lattice_positions(canvas.xs), lattice_positions(canvas.ys)
    cx = np.array([x_pos[x] for x in cells["x"]])
    cy = np.array([y_pos[y] for y in cells["y"]])
    taken = set(zip(cells["x"], cells["y"]))
    idx = np.asarray(cells.index.to_list())
    filled: dict[str, list[tuple]] = {}
    for x in canvas.xs:
        for y in canvas.ys:
            if (x, y) in taken:
                continue
            k = int(np.argmin((cx - x_pos[x]) ** 2 + (cy - y_pos[y]) ** 2))  # ties: the first cell
            filled.setdefault(cells["phase"].iloc[k], []).append((x, y, int(idx[k])))
    traces = []
    for phase, spots in filled.items():
        where = pd.DataFrame(spots, columns=["x", "y", "cell"])
        color = phase_color(phase)
        traces.append(dict(
            type="heatmap",
            **canvas.heat(),
            z=canvas.matrix(where, [1.0] * len(where)),
            text=canvas.matrix(where, [f"no run here; the nearest cell:<br>{hover[k]}" for k in where["cell"]]),
            customdata=canvas.matrix(where, where["cell"].tolist()),
            hovertemplate="%{text}<extra></extra>",
            colorscale=[[0, color], [1, color]],
            zmin=0,
            zmax=1,
            opacity=0.35,
            name=f"{phase} (nearest run)",
            showlegend=False,
            xaxis=f"x{axis_name(row, 0)}",
            yaxis=f"y{axis_name(row, 0)}",
            meta=["nearest", row],
        ))
    return traces


def lattice_positions(values: Sequence[object]) -> dict[object, float]:
    """Where each axis value sits, scaled to [0, 1] (the nearest-cell fill of the report and of
    the figures measures distances in it): in decades on a positive axis spanning a
    decade or more, linearly on another numeric one, by rank on a categorical one."""
    numbers = pd.to_numeric(pd.Series(list(values), dtype=object), errors="coerce").to_numpy(dtype=float)
    if len(values) < 2 or np.isnan(numbers).any():
        return {v: i / max(len(values) - 1, 1) for i, v in enumerate(values)}
    if numbers.min() > 0 and numbers.max() / numbers.min() >= 10:
        numbers = np.log10(numbers)
    span = numbers.max() - numbers.min() or 1.0
    return {v: (n - numbers.min()) / span for v, n in zip(values, numbers)}


def _marked_cells(cells: pd.DataFrame) -> pd.DataFrame:
    """The cells that get a detail marker: at least half their runs carry the detail label."""
    return cells[(cells["detail"] != "") & (2 * cells["n_detail"] >= cells["n_runs"])]


def _agreement_labels(canvas: _Canvas, cells: pd.DataFrame, row: int, text_size: int) -> list[dict]:
    """'k/n' over the cells whose runs disagree (moved up where a detail marker sits)."""
    mixed = cells[cells["n_majority"] < cells["n_runs"]]
    if not (text_size and len(mixed)):
        return []
    has_marker = set(_marked_cells(cells).index)
    return [
        dict(
            type="scatter",
            **canvas.points(mixed),
            mode="text",
            text=[f"{k}/{n}" for k, n in zip(mixed["n_majority"], mixed["n_runs"])],
            textposition=["top center" if k in has_marker else "middle center" for k in mixed.index],
            textfont=dict(
                size=text_size, color=["white" if _is_dark(phase_color(p)) else "#111" for p in mixed["phase"]]
            ),
            hoverinfo="skip",
            showlegend=False,
            name="runs agreeing",
            xaxis=f"x{axis_name(row, 0)}",
            yaxis=f"y{axis_name(row, 0)}",
            meta=["agreement", row],
        )
    ]


def _detail_markers(canvas: _Canvas, cells: pd.DataFrame, row: int, details: Sequence[str]) -> list[dict]:
    marked = _marked_cells(cells)
    traces = []
    for detail in details:
        these = marked[marked["detail"] == detail]
        if len(these):
            traces.append(
                dict(
                    type="scatter",
                    **canvas.points(these),
                    mode="markers",
                    marker=_detail_marker(detail, canvas.geo.cell),
                    hoverinfo="skip",
                    name=detail,
                    legendgroup=detail,
                    showlegend=False,
                    xaxis=f"x{axis_name(row, 0)}",
                    yaxis=f"y{axis_name(row, 0)}",
                    meta=["detail", row],
                )
            )
    return traces


def _selection_outline(canvas: _Canvas, row: int) -> list[dict]:
    """The selected cell's outline, empty until the page's script fills it in on click: dark
    outside, white inside, so that it shows on every phase colour."""
    cell = canvas.geo.cell
    return [
        dict(
            type="scatter",
            x=[],
            y=[],
            mode="markers",
            marker=dict(symbol="square-open", size=max(size, 4), color=color, line=dict(width=width)),
            hoverinfo="skip",
            showlegend=False,
            name="selected cell",
            xaxis=f"x{axis_name(row, 0)}",
            yaxis=f"y{axis_name(row, 0)}",
            meta=["selection", row],
        )
        for size, color, width in ((cell - 1, SELECTION_COLOR, 3), (cell - 7, "white", 1.5))
    ]


def _phase_panel(canvas: _Canvas, cells: pd.DataFrame, row: int, phases, details, hover, text_size: int) -> list[dict]:
    """Panel (a) of one row: phases, 'k/n' labels, detail markers, the selection outline."""
    return [
        *_nearest_fill(canvas, cells, row, hover),
        *_phase_cells(canvas, cells, row, phases, hover),
        *_agreement_labels(canvas, cells, row, text_size),
        *_detail_markers(canvas, cells, row, details),
        *_selection_outline(canvas, row),
    ]


def _theory_lines(runs: pd.DataFrame, axes, layouts, row: int, shown_in_legend: bool) -> list[dict]:
    """overlays.py's lines over the phase panel, on numeric axes only (a category axis has no
    place between its values)."""
    if any(layout["type"] == "category" for name, layout in zip(axes, layouts) if name is not None):
        return []
    budget = int(runs["last_step"].max()) if "last_step" in runs.columns and runs["last_step"].notna().any() else None
    traces = []
    for line in overlays(runs, axes, budget):
        xs, ys = zip(*line.points)
        if axes[1] is None:  # a 1-D strip: a vertical line through it
            xs, ys = (xs[0], xs[0]), (SINGLE_CELL, SINGLE_CELL)
        traces.append(dict(
            type="scatter", x=list(xs), y=list(ys), mode="lines+markers",
            line=dict(color="#111", width=2, dash="dash"), marker=dict(size=5, color="#111"),
            name=line.name, legendgroup=line.name, showlegend=shown_in_legend,
            hovertext=line.fit, hoverinfo="text+name",
            xaxis=f"x{axis_name(row, 0)}", yaxis=f"y{axis_name(row, 0)}", meta=["theory", row],
        ))
    return traces


# ----------------------------------------------------------------------------- (b), (c) value maps


def _value_map(canvas: _Canvas, cells: pd.DataFrame, row: int, col: int, values: np.ndarray, *, coloraxis: str,
               name: str, kind: str, hover: Sequence[str]) -> list[dict]:
    """A heatmap of one value per cell (NaN: not drawn) on a grey "no value" background."""
    xaxis, yaxis = f"x{axis_name(row, col)}", f"y{axis_name(row, col)}"
    background = dict(
        type="heatmap",
        **canvas.heat(),
        z=canvas.matrix(cells, [1.0] * len(cells)),
        colorscale=[[0, NO_VALUE_COLOR], [1, NO_VALUE_COLOR]],
        hoverinfo="skip",
        name="no value",
        showlegend=False,
        xaxis=xaxis,
        yaxis=yaxis,
        meta=["background", row],
    )
    shown = [None if not np.isfinite(v) else float(v) for v in values]
    heat = {k: v for k, v in canvas.heat().items() if k != "showscale"}  # the colour axis shows the scale
    value_map = dict(
        type="heatmap",
        **heat,
        z=canvas.matrix(cells, shown),
        text=canvas.matrix(cells, hover),
        customdata=canvas.matrix(cells, cells.index.to_list()),
        hovertemplate="%{text}<extra></extra>",
        coloraxis=coloraxis,
        name=name,
        showlegend=False,
        xaxis=xaxis,
        yaxis=yaxis,
        meta=[kind, row],
    )
    return [background, value_map]


def _delay_map(canvas: _Canvas, cells: pd.DataFrame, row: int, log_delay: np.ndarray, axes, facet) -> list[dict]:
    """Panel (b): log10 of the median grokking delay, on the delay colour axis."""
    hover = [map_hover_text(cell, axes, facet, 1) for cell in cells.to_dict("records")]
    return _value_map(canvas, cells, row, 1, log_delay, coloraxis="coloraxis", name="grokking delay", kind="delay",
                      hover=hover)  # fmt: skip


def _accuracy_map(canvas: _Canvas, cells: pd.DataFrame, row: int, axes, facet) -> list[dict]:
    """Panel (c): the mean final val accuracy, on the accuracy colour axis."""
    hover = [map_hover_text(cell, axes, facet, 2) for cell in cells.to_dict("records")]
    values = cells["val_acc"].to_numpy(dtype=float)
    return _value_map(canvas, cells, row, 2, values, coloraxis="coloraxis2", name="final val acc", kind="val_acc",
                      hover=hover)  # fmt: skip


# ----------------------------------------------------------------------------- the figure


def build_diagram(table: pd.DataFrame, axes, facet, title: str | None) -> Diagram:
    """The diagram of a labelled, sorted table (cells.sorted_table) over checked axes and facet."""
    grid, cell_of_run = cell_grid(table, axes, facet)
    hover = cell_hover_texts(table, grid, cell_of_run, axes, facet)
    xs, ys = sorted_unique(grid["x"]), sorted_unique(grid["y"])
    facets = sorted_unique(grid["facet"]) if len(grid) else [SINGLE_CELL]
    x_layout, y_layout = axis_layout(axes[0], xs), axis_layout(axes[1], ys)
    x_of = dict(zip(xs, axis_coordinates(xs, x_layout)))
    y_of = dict(zip(ys, axis_coordinates(ys, y_layout)))
    geo = Geometry.fit(max(len(xs), 1), max(len(ys), 1), len(facets), facet is not None)
    gap = 2 if geo.cell >= 12 else (1 if geo.cell >= 6 else 0)  # white lines between cells
    canvas = _Canvas(xs, ys, x_of, y_of, geo, gap)

    phases = ordered_phases(grid["phase"].tolist())
    details = [d for d in DETAILS if d in set(grid.loc[2 * grid["n_detail"] >= grid["n_runs"], "detail"])]
    log_delay = np.log10(np.clip(grid["delay"].to_numpy(dtype=float), 1, None))
    text_size = _agreement_text_size(grid, geo)

    traces: list[dict] = []
    for row, facet_value in enumerate(facets):
        cells = grid[grid["facet"] == facet_value]
        traces += _phase_panel(canvas, cells, row, phases, details, hover, text_size)
        runs = table if facet is None else table[table[facet] == facet_value]
        traces += _theory_lines(runs, axes, (x_layout, y_layout), row, shown_in_legend=row == 0)
        traces += _delay_map(canvas, cells, row, log_delay[cells.index.to_list()], axes, facet)
        traces += _accuracy_map(canvas, cells, row, axes, facet)
    # Legend: one entry per phase present, then one per detail marker shown.
    traces += [_legend_entry(phase, dict(symbol="square", size=13, color=phase_color(phase))) for phase in phases]
    traces += [_legend_entry(detail, _detail_marker(detail, 40)) for detail in details]

    fig = go.Figure(data=traces, _validate=False)
    delay_decades = _decades(grid["delay"].to_numpy(dtype=float))
    fig.update_layout(diagram_layout(geo, (x_layout, y_layout), delay_decades, facet, facets, title))
    coordinates = [
        (facets.index(fv), x_of[x], y_of[y]) for fv, x, y in zip(grid["facet"], grid["x"], grid["y"])
    ]
    return Diagram(fig, grid, table, cell_of_run, coordinates)


def phase_diagram_figure(
    runs: pd.DataFrame,
    labels: pd.DataFrame,
    axes: Sequence[str | None] | None = None,
    facet: str | None = None,
    *,
    title: str | None = None,
) -> go.Figure:
    """The phase diagram: one row of three panels per facet value (one row without a facet).

    Traces carry ``meta=[kind, row]``: kind "nearest" (a refined, irregular diagram only: the
    positions no run sits at, faded in the nearest cell's phase colour, customdata = that cell),
    "phase" (one heatmap per phase present in the row,
    name = phase, colour PHASE_COLORS[phase], customdata = the cell's row in phase_grid),
    "agreement" ('k/n' text), "detail" (markers, name = detail), "selection", "background",
    "delay" (log10 of the median delay, on coloraxis) and "val_acc" (on coloraxis2), "theory"
    (overlays.py's fitted lines over the phase panel, where a seed paper gives one); then
    "legend" entries, one per phase present and one per detail marker shown.
    """
    axes = resolve_axes(runs, axes)
    facet = resolve_facet(runs, facet, axes)
    table = sorted_table(runs, labels, [facet, *axes] if facet else list(axes))
    return build_diagram(table, axes, facet, title).figure
