"""The three maps of a sweep over two swept hyperparameters, as paper figures: the phase diagram
(one colour per phase, a legend), the grokking delay t_val - t_train (log colour bar; cells where
no run generalised are hatched) and the final val accuracy (colour bar). One panel per value of
an optional facet hyperparameter.

What each cell holds is the report's (report.cells.cell_grid: the majority phase over the runs
off the axes, the median delay over the runs that generalised, the mean final val accuracy), as
are the axis scales (report.axes.axis_scale via scales.py), the colours and the theory lines
(report.overlays), so a figure shows what the HTML report shows.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.colors import BoundaryNorm, ListedColormap, LogNorm, Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.collections import PatchCollection
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import FixedLocator, FuncFormatter

from grokgrid.figures import style
from grokgrid.figures.layout import Panels, panels
from grokgrid.figures.scales import Scale, apply, scale_of
from grokgrid.phases import DETAILS
from grokgrid.report.axes import display_name, format_steps, format_value, sorted_unique
from grokgrid.report.cells import SINGLE_CELL, cell_grid, ordered_phases, phase_color
from grokgrid.report.diagram import lattice_positions  # the report's nearest-cell metric
from grokgrid.report.overlays import overlays

MAP_KINDS = ("phase", "delay", "accuracy")


def map_figure(kind: str, table: pd.DataFrame, axes: tuple[str | None, str | None], facet: str | None,
               width: float) -> Figure:
    """The ``kind`` map of a labelled, sorted table (report.cells.sorted_table) over checked axes
    and facet, ``width`` inches wide."""
    grid, _ = cell_grid(table, axes, facet)
    x = scale_of(axes[0], sorted_unique(grid["x"]) if len(grid) else [SINGLE_CELL])
    y = scale_of(axes[1], sorted_unique(grid["y"]) if len(grid) else [SINGLE_CELL])
    facets = sorted_unique(grid["facet"]) if len(grid) else [SINGLE_CELL]
    layout = panels(len(facets), width, aspect=len(y.values) / len(x.values), colorbar=kind != "phase",
                    legend=True, titles=facet is not None)
    for k, value in enumerate(facets):
        ax = layout.axes[k]
        cells = grid[grid["facet"] == value]
        _frame(ax, x, y, layout, k, None if facet is None else f"{display_name(facet)} = {format_value(value)}")
        if kind == "phase":
            _phase_panel(ax, cells, x, y, table if facet is None else table[table[facet] == value], axes, layout)
        else:
            mesh = _value_panel(ax, kind, cells, grid, x, y, layout)
    if kind == "phase":
        _phase_legend(layout, grid, table, axes, x, y)
    else:
        _value_legend(layout, kind, grid, mesh)
    return layout.fit_height()


# ----------------------------------------------------------------------------- shared


def _frame(ax: Axes, x: Scale, y: Scale, layout: Panels, k: int, title: str | None) -> None:
    apply(x, ax, "x", show_labels=layout.is_bottom(k))
    apply(y, ax, "y", show_labels=layout.is_left(k))
    ax.set_facecolor("white")
    ax.tick_params(which="both", direction="out")
    if title:
        ax.set_title(title, pad=3)


def _matrix(cells: pd.DataFrame, values: Sequence[float], x: Scale, y: Scale) -> np.ma.MaskedArray:
    """A len(y) x len(x) array with values[k] at cell k's place, masked where no cell is."""
    out = np.full((len(y.values), len(x.values)), np.nan)
    col = {v: j for j, v in enumerate(x.values)}
    row = {v: i for i, v in enumerate(y.values)}
    for cx, cy, value in zip(cells["x"], cells["y"], values):
        out[row[cy], col[cx]] = value
    return np.ma.masked_invalid(out)


def _mesh(ax: Axes, x: Scale, y: Scale, z: np.ma.MaskedArray, layout: Panels, **kwargs):
    # White lines between cells while cells are large enough for them to read as gaps.
    line = style.CELL_LINE if layout.cell_points(len(x.values), len(y.values)) >= 8 else 0.0
    return ax.pcolormesh(x.edges, y.edges, z, edgecolors="white", linewidth=line, snap=True, **kwargs)


def _present(cells: pd.DataFrame, x: Scale, y: Scale) -> np.ndarray:
    """A len(y) x len(x) mask of the positions a cell (a run) sits at."""
    return ~np.ma.getmaskarray(_matrix(cells, np.ones(len(cells)), x, y))


# ----------------------------------------------------------------------------- phases


def _phase_panel(ax: Axes, cells: pd.DataFrame, x: Scale, y: Scale, runs: pd.DataFrame, axes, layout: Panels) -> None:
    phases = ordered_phases(cells["phase"].tolist()) or ["unlabeled"]
    cmap = ListedColormap([phase_color(p) for p in phases])
    norm = BoundaryNorm(np.arange(len(phases) + 1) - 0.5, len(phases))
    index = {p: i for i, p in enumerate(phases)}
    _nearest_fill(ax, cells, x, y, cmap, norm, index, layout)
    _mesh(ax, x, y, _matrix(cells, [index[p] for p in cells["phase"]], x, y), layout, cmap=cmap, norm=norm)
    _agreement(ax, cells, x, y, layout)
    _detail_markers(ax, cells, x, y, layout)
    _theory(ax, runs, axes, x, y)


def _nearest_fill(ax, cells, x: Scale, y: Scale, cmap, norm, index, layout: Panels) -> None:
    """A refined diagram's lattice has positions no run sits at: each is painted, faded, in the
    phase of the nearest cell (the report's rule: distance in decades on a log-spaced axis, in
    the axis' range otherwise), so the map reads as each run's region rather than as holes."""
    present = _present(cells, x, y)
    if cells.empty or present.all():
        return
    xp, yp = lattice_positions(x.values), lattice_positions(y.values)
    cx = np.array([xp[v] for v in cells["x"]])
    cy = np.array([yp[v] for v in cells["y"]])
    codes = np.array([index[p] for p in cells["phase"]], dtype=float)
    fill = np.full(present.shape, np.nan)
    for i, yv in enumerate(y.values):
        for j, xv in enumerate(x.values):
            if not present[i, j]:
                fill[i, j] = codes[int(np.argmin((cx - xp[xv]) ** 2 + (cy - yp[yv]) ** 2))]
    _mesh(ax, x, y, np.ma.masked_invalid(fill), layout, cmap=cmap, norm=norm, alpha=style.FADED_ALPHA)


def _agreement(ax: Axes, cells: pd.DataFrame, x: Scale, y: Scale, layout: Panels) -> None:
    """'k/n' in the cells whose runs disagree, where the cell is wide enough for it at 7 pt."""
    mixed = cells[cells["n_majority"] < cells["n_runs"]]
    if mixed.empty:
        return
    longest = max(len(f"{k}/{n}") for k, n in zip(mixed["n_majority"], mixed["n_runs"]))
    if layout.cell_points(len(x.values), len(y.values)) < 0.62 * style.SMALL_PT * longest + 2:
        return
    for cx, cy, k, n, phase in zip(mixed["x"], mixed["y"], mixed["n_majority"], mixed["n_runs"], mixed["phase"]):
        ax.text(x.position(cx), y.position(cy), f"{k}/{n}", ha="center", va="center", fontsize=style.SMALL_PT,
                color="white" if _is_dark(phase_color(phase)) else "#111111")


def _marked(cells: pd.DataFrame) -> pd.DataFrame:
    """The cells that get a detail marker: at least half their runs carry the detail label."""
    return cells[(cells["detail"] != "") & (2 * cells["n_detail"] >= cells["n_runs"])]


def _detail_markers(ax: Axes, cells: pd.DataFrame, x: Scale, y: Scale, layout: Panels) -> None:
    marked = _marked(cells)
    size = max(2.5, min(5.0, layout.cell_points(len(x.values), len(y.values)) / 3))
    for detail in DETAILS:
        these = marked[marked["detail"] == detail]
        if len(these):
            ax.plot([x.position(v) for v in these["x"]], [y.position(v) for v in these["y"]], linestyle="none",
                    **_detail_style(detail, size))


def _detail_style(detail: str, size: float) -> dict:
    return dict(marker=style.DETAIL_MARKER.get(detail, "o"), markersize=size, markerfacecolor="white",
                markeredgecolor="#111111", markeredgewidth=0.6)


def _theory(ax: Axes, runs: pd.DataFrame, axes, x: Scale, y: Scale) -> None:
    """report.overlays' lines (a seed paper's theory fitted from the runs), on numeric axes only."""
    for line in _overlays(runs, axes, x, y):
        xs, ys = zip(*line.points)
        if axes[1] is None:  # a 1-D strip: a vertical line through it
            ax.axvline(xs[0], color=style.THEORY_LINE["color"], linewidth=style.THEORY_LINE["linewidth"],
                       linestyle=style.THEORY_LINE["linestyle"])
        else:
            ax.plot(xs, ys, clip_on=True, **style.THEORY_LINE)


def _overlays(runs: pd.DataFrame, axes, x: Scale, y: Scale):
    if any(s.kind == "category" for s in (x, y) if s.name is not None):
        return []  # a category axis has no place between its values
    budget = int(runs["last_step"].max()) if "last_step" in runs.columns and runs["last_step"].notna().any() else None
    return overlays(runs, axes, budget)


def _phase_legend(layout: Panels, grid: pd.DataFrame, table: pd.DataFrame, axes, x: Scale, y: Scale) -> None:
    handles = [Patch(facecolor=phase_color(p), edgecolor="none", label=p) for p in ordered_phases(grid["phase"].tolist())]
    shown = set(_marked(grid)["detail"])
    handles += [Line2D([], [], linestyle="none", label=d, **_detail_style(d, 4.0)) for d in DETAILS if d in shown]
    seen: set[str] = set()
    for line in _overlays(table, axes, x, y):
        if line.name not in seen:
            seen.add(line.name)
            handles.append(Line2D([], [], label=line.name, **style.THEORY_LINE))
    layout.legend(handles)


def _is_dark(color: str) -> bool:
    r, g, b = (int(color.lstrip("#")[i : i + 2], 16) for i in (0, 2, 4))
    return 0.299 * r + 0.587 * g + 0.114 * b < 128


# ----------------------------------------------------------------------------- delay, accuracy


def _norm(kind: str, grid: pd.DataFrame) -> Normalize:
    if kind == "accuracy":
        return Normalize(0.0, 1.0)
    delays = grid["delay"].to_numpy(dtype=float)
    logs = np.log10(np.clip(delays[np.isfinite(delays)], 1, None))
    lo, hi = (math.floor(logs.min()), math.ceil(logs.max())) if logs.size else (0, 1)
    return LogNorm(10.0**lo, 10.0 ** max(hi, lo + 1))


def _values(kind: str, cells: pd.DataFrame) -> np.ndarray:
    if kind == "accuracy":
        return cells["val_acc"].to_numpy(dtype=float)
    # A delay of 0 (val reached at the step train was) is drawn at 1 step: a log scale has no 0.
    return np.clip(cells["delay"].to_numpy(dtype=float), 1, None)


def _value_panel(ax: Axes, kind: str, cells: pd.DataFrame, grid: pd.DataFrame, x: Scale, y: Scale, layout: Panels):
    """A cell with runs but no value (delay: no run generalised; accuracy: none logged) is
    hatched grey; a lattice position with no run (a refined diagram) stays blank: these are
    measurements, not regions."""
    values = _values(kind, cells)
    missing = cells[~np.isfinite(values)]
    if len(missing):  # a QuadMesh draws no hatch: rectangles, few of them
        boxes = [Rectangle((x.span(cx)[0], y.span(cy)[0]), np.diff(x.span(cx))[0], np.diff(y.span(cy))[0])
                 for cx, cy in zip(missing["x"], missing["y"])]
        ax.add_collection(PatchCollection(boxes, facecolor=style.NO_VALUE, edgecolor="white", hatch=style.NEVER_HATCH,
                                          linewidth=style.CELL_LINE, zorder=1))
    cmap = style.DELAY_CMAP if kind == "delay" else style.ACC_CMAP
    return _mesh(ax, x, y, _matrix(cells, values, x, y), layout, cmap=cmap, norm=_norm(kind, grid))


def _value_legend(layout: Panels, kind: str, grid: pd.DataFrame, mesh) -> None:
    if kind == "delay":
        label = "grokking delay $t_\\mathrm{val} - t_\\mathrm{train}$ (steps)"
        norm = mesh.norm
        decades = range(int(round(math.log10(norm.vmin))), int(round(math.log10(norm.vmax))) + 1)
        bar = layout.colorbar(mesh, label)
        bar.ax.yaxis.set_major_locator(FixedLocator([10.0**k for k in decades]))
        bar.ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: format_steps(v)))
        bar.ax.yaxis.set_minor_locator(FixedLocator([]))
        values = grid["delay"].to_numpy(dtype=float)
        missing_label = "no run generalised"
    else:
        bar = layout.colorbar(mesh, "final val accuracy")
        bar.set_ticks([0, 0.25, 0.5, 0.75, 1.0])
        values = grid["val_acc"].to_numpy(dtype=float)
        missing_label = "no value"
    if len(values) and not np.isfinite(values).all():
        layout.legend([Patch(facecolor=style.NO_VALUE, hatch=style.NEVER_HATCH, edgecolor="none", label=missing_label)])
