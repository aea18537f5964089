"""The HTML report of a sweep: a phase diagram with delay and accuracy maps, each cell's learning
curves on click, an overview of the learning curves, and a summary table.

``render_report`` turns the three tables of a results folder (runs, labels, metrics; see
store.py) into one self-contained HTML document: plotly.js is inlined once in the <head> and the
curves behind the click-a-cell view are embedded once as compact binary (base64 float16), so the
file opens offline, by e-mail or from an archive years later. ``write_report`` reads a results
folder and writes ``<sweep>/report.html`` atomically.

What the page holds, top to bottom:

* a summary: runs per phase (and per detail label: semi-grokking, ungrokking, misgrokking), the
  hyperparameters, the date, the grokgrid version and the spec;
* the phase diagram over two swept hyperparameters (log axes where the values span decades), one
  row of small multiples per value of an optional third one (``facet``): (a) the majority phase of
  each cell's runs (seeds and anything else off the axes), with 'k/n' where the runs disagree and a
  marker where at least half carry a detail label, (b) the grokking delay t_val - t_train (median
  over the cell's runs that generalised), (c) the final val accuracy (mean);
* the learning curves (train/val accuracy and loss, weight norm; log steps, with step 0 drawn at
  half the first logged step, as the x titles say) of the runs of the cell last clicked, with
  their timings and reasons;
* the learning curves of up to ``MAX_OVERVIEW_RUNS`` runs, chosen per (phase, detail) group in
  proportion to its size and spread over the grid (the page says how many and how).

Every run's curves are downsampled to at most ``MAX_CURVE_POINTS`` log-spaced steps (plus its first
and last logged step), which keeps a 10,000-run x 1,000-step sweep's report to a few tens of MB and
its rendering to seconds (bench/report.py measures both).

The builders (``phase_grid``, ``phase_diagram_figure``, ``cell_curves_figure``,
``learning_curves_figure``, ``curve_data``, ``report_data``, ``overview_runs``...) are public so
that tests (and notebooks) can check the data behind the pictures.

Pure plotly + pandas + numpy: no torch or Ray import (DESIGN.md section 2), so reports build on a
laptop.
"""

from __future__ import annotations

import base64
import html
import json
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
import plotly.offline

from grokgrid import store
from grokgrid.phases import DETAIL_PHASE, DETAILS, PHASE_COLORS, PHASES
from grokgrid.storage import Location, PathLike, as_location

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
# The one value on an axis with nothing to plot (1-D strip, single cell, no facet).
SINGLE_CELL = "all"
_FALLBACK_COLOR = "#BBBBBB"

# Markers drawn on phase-diagram cells where at least half the runs carry a detail label. White
# with a dark outline, so that they read on every phase colour.
DETAIL_SYMBOLS = {"semi-grokking": "diamond", "ungrokking": "triangle-down", "misgrokking": "x"}
# Outline of the selected cell (with a white inner line, so that it shows on every phase colour).
SELECTION_COLOR = "#111111"

# Element ids of the page (tests and the browser check look for them).
PHASE_DIAGRAM_ID = "grokgrid-phase-diagram"
CELL_CURVES_ID = "grokgrid-cell-curves"
CELL_INFO_ID = "grokgrid-cell-info"
LEARNING_CURVES_ID = "grokgrid-learning-curves"
JS_ERRORS_ID = "grokgrid-js-errors"
DATA_ID = "grokgrid-data"

MAX_OVERVIEW_RUNS = 200  # runs drawn in the learning-curves overview
MAX_CURVE_POINTS = 100  # log-spaced steps kept per run (plus its first and last)
MAX_CELL_RUNS = 40  # runs drawn when a cell is clicked (the table lists them all)
_MAX_RUNS_IN_HOVER = 8

_FONT = dict(family="Helvetica Neue, Helvetica, Arial, sans-serif", size=13, color="#222")
_TEMPLATE = "simple_white"
_NO_VALUE_COLOR = "#EBEBEB"
# Sequential orange-brown (ColorBrewer YlOrBr without its near-white start, which would read as
# the grey "no value" cells): longer delays are darker.
_DELAY_COLORSCALE = ["#FEE391", "#FEC44F", "#FE9929", "#EC7014", "#CC4C02", "#993404", "#662506"]
_ACC_COLORSCALE = "Viridis"
_PLOT_CONFIG = {
    "displaylogo": False,
    # SVG downloads drop straight into a paper.
    "toImageButtonOptions": {"format": "svg", "scale": 1},
}
# Metric columns drawn as curves; the positive ones are embedded as log10 (float16 keeps ~3
# significant digits of the exponent, i.e. ~1% of the value, over any range).
CURVE_METRICS = ("train_acc", "val_acc", "train_loss", "val_loss", "weight_norm")
_LOG_METRICS = ("train_loss", "val_loss", "weight_norm")
_SHORT = {
    "train_acc": "train acc",
    "val_acc": "val acc",
    "train_loss": "train loss",
    "val_loss": "val loss",
    "weight_norm": "weight norm",
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
        _check_varies(runs, [n for n in picked if n is not None], "axis", "axes", varying_hyperparameters(runs))
    picked += [None] * (2 - len(picked))
    return picked[0], picked[1]


def resolve_facet(runs: pd.DataFrame, facet: str | None, axes: Sequence[str | None]) -> str | None:
    """Check the facet (small multiples) hyperparameter: any hyperparameter not on the axes."""
    if facet is None:
        return None
    valid = [h for h in hyperparameter_columns(runs) if h not in axes]
    if facet not in valid:
        what = "is already an axis" if facet in axes else "is not a hyperparameter of these runs"
        raise ValueError(f"facet {facet!r} {what}; valid facets: {', '.join(valid) or 'none'}")
    _check_varies(runs, [facet], "facet", "facets", [h for h in varying_hyperparameters(runs) if h not in axes])
    return facet


def varying_hyperparameters(runs: pd.DataFrame) -> list[str]:
    """Hyperparameters (seed included: it can be put on an axis) that take more than one value."""
    return [h for h in hyperparameter_columns(runs) if runs[h].nunique(dropna=True) > 1]


def _check_varies(runs: pd.DataFrame, names: Sequence[str], one: str, many: str, varying: Sequence[str]) -> None:
    """A named axis or facet with a single value would draw a 1 x 1 map (and overwrite the report
    with it): a ValueError naming it and listing those that vary. The message starts with ``one``
    ('axis' or 'facet'), which the CLI uses to name the option at fault."""
    fixed = [n for n in names if runs[n].nunique(dropna=True) <= 1]
    if not fixed:
        return
    values = [", ".join(format_value(v, 4) for v in runs[n].dropna().unique()) or "no value" for n in fixed]
    named = ", ".join(f"{n!r} (= {v})" for n, v in zip(fixed, values))
    verb = "has" if len(fixed) == 1 else "have"
    label = one if len(fixed) == 1 else many
    listed = ", ".join(varying) or "none"
    raise ValueError(f"{label} {named} {verb} a single value in these runs; {many} that vary: {listed}")


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


def format_steps(value: float) -> str:
    """A step count for colourbar ticks: 1, 10, 100, 1k, 10k, 100k, 1M."""
    for unit, size in (("M", 1e6), ("k", 1e3)):
        if abs(value) >= size:
            return f"{value / size:g}{unit}"
    return f"{value:g}"


# ----------------------------------------------------------------------------- runs and cells


def labelled_runs(runs: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """The runs table with the label columns joined on; runs without a label are 'unlabeled', and
    a missing detail (no label, or a labels file older than the column) is ""."""
    label_columns = [c for c in labels.columns if c != "run_id" and c not in runs.columns]
    table = runs.merge(labels[["run_id", *label_columns]], on="run_id", how="left")
    table["phase"] = table["phase"].astype(object).where(table["phase"].notna(), UNLABELED)
    detail = table["detail"] if "detail" in table.columns else pd.Series("", index=table.index)
    table["detail"] = detail.astype(object).where(detail.notna(), "")
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


def _numeric(table: pd.DataFrame, column: str) -> np.ndarray:
    """A label column as float64 (NaN for missing: no such column, NA, None)."""
    if column not in table.columns:
        return np.full(len(table), np.nan)
    return pd.to_numeric(table[column], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def _identity_columns(runs: pd.DataFrame, fixed: Sequence[str | None]) -> list[str]:
    """Hyperparameters that tell the runs of one cell apart (vary, and are not axes or facet)."""
    return [h for h in hyperparameter_columns(runs) if h not in fixed and runs[h].nunique(dropna=True) > 1]


def _sorted_table(runs: pd.DataFrame, labels: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    table = labelled_runs(runs, labels)
    # Facet, axes, then the other hyperparameters (seed last), then run_id: a stable order in
    # which a cell's runs read naturally (hover, cell table) and a grid walk is spread out.
    by = [k for k in dict.fromkeys([*keys, *hyperparameter_columns(table), "run_id"]) if k in table.columns]
    return table.sort_values(by, kind="stable").reset_index(drop=True)


GRID_COLUMNS = (
    "x", "y", "phase", "n_runs", "n_majority", "run_ids",
    "facet", "detail", "n_detail", "delay", "n_delay", "val_acc",
)  # fmt: skip


def _majority(cell: np.ndarray, names: np.ndarray, n_cells: int, skip: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per cell: the most common name (ties: PHASES order, then alphabetical) and its count."""
    frame = pd.DataFrame({"cell": cell, "name": names})
    if skip is not None:
        frame = frame[frame["name"] != skip]
    best = np.full(n_cells, "" if skip is not None else UNLABELED, dtype=object)
    count = np.zeros(n_cells, dtype=np.int64)
    if frame.empty:
        return best, count
    sizes = frame.groupby(["cell", "name"], sort=False).size().rename("n").reset_index()
    sizes["rank"] = sizes["name"].map(_phase_rank)
    sizes = sizes.sort_values(["cell", "n", "rank", "name"], ascending=[True, False, True, True], kind="stable")
    first = sizes.drop_duplicates("cell")
    best[first["cell"].to_numpy()] = first["name"].to_numpy()
    count[first["cell"].to_numpy()] = first["n"].to_numpy()
    return best, count


def _grid(table: pd.DataFrame, axes: tuple[str | None, str | None], facet: str | None) -> tuple[pd.DataFrame, np.ndarray]:
    """The cells of a labelled (sorted) table and each run's cell number (vectorised over runs)."""
    x_name, y_name = axes
    keys = pd.DataFrame(
        {
            # A missing axis collapses to one category so that 1-D and 0-D sweeps are still grids
            # (not "": plotly treats an empty category as missing data).
            "facet": table[facet] if facet else SINGLE_CELL,
            "x": table[x_name] if x_name else SINGLE_CELL,
            "y": table[y_name] if y_name else SINGLE_CELL,
        },
        index=table.index,
    )
    if table.empty:
        return pd.DataFrame(columns=list(GRID_COLUMNS)), np.zeros(0, dtype=np.int64)
    groups = keys.groupby(["facet", "x", "y"], sort=True, dropna=False)
    cell = groups.ngroup().to_numpy(dtype=np.int64)
    n_cells = int(cell.max()) + 1
    first = keys.groupby(cell, sort=True).first()

    phase, n_majority = _majority(cell, table["phase"].to_numpy(dtype=object), n_cells)
    detail, n_detail = _majority(cell, table["detail"].to_numpy(dtype=object), n_cells, skip="")

    # Grokking delay: median t_val - t_train over the runs that generalised (grokking or
    # comprehension; a diverged run's timings stop at its divergence).
    gap = _numeric(table, "gap")
    generalised = np.isin(table["phase"].to_numpy(dtype=object), ["grokking", "comprehension"]) & np.isfinite(gap)
    delays = pd.Series(gap[generalised]).groupby(cell[generalised])
    delay = delays.median().reindex(range(n_cells)).to_numpy(dtype=np.float64)
    n_delay = delays.size().reindex(range(n_cells), fill_value=0).to_numpy(dtype=np.int64)
    val_acc = pd.Series(_numeric(table, "final_val_acc")).groupby(cell).mean().reindex(range(n_cells)).to_numpy()

    run_ids = table["run_id"].groupby(cell, sort=True).agg(tuple).reindex(range(n_cells))
    grid = pd.DataFrame(
        {
            "x": first["x"].to_numpy(dtype=object),
            "y": first["y"].to_numpy(dtype=object),
            "phase": phase,
            "n_runs": np.bincount(cell, minlength=n_cells),
            "n_majority": n_majority,
            "run_ids": run_ids.to_numpy(dtype=object),
            "facet": first["facet"].to_numpy(dtype=object),
            "detail": detail,
            "n_detail": n_detail,
            "delay": delay,
            "n_delay": n_delay,
            "val_acc": val_acc,
        },
        columns=list(GRID_COLUMNS),
    )
    return grid, cell


def phase_grid(
    runs: pd.DataFrame,
    labels: pd.DataFrame,
    axes: Sequence[str | None] | None = None,
    facet: str | None = None,
) -> pd.DataFrame:
    """One row per (facet, x, y) cell, sorted by facet, x, y:

    x, y         the cell's axis values (SINGLE_CELL where there is no axis)
    phase        the majority phase of its runs (seeds, and every hyperparameter off the axes
                 and facet); ties go to the phase listed first in PHASES
    n_runs, n_majority, run_ids (tuple)
    facet        the facet value (SINGLE_CELL without a facet)
    detail, n_detail   the most common detail label ("" if none) and how many runs carry it
    delay, n_delay     median t_val - t_train over the runs that generalised (grokking or
                       comprehension; NaN if none) and how many those are
    val_acc      mean final val accuracy (NaN if none logged)
    """
    axes = resolve_axes(runs, axes)
    facet = resolve_facet(runs, facet, axes)
    table = _sorted_table(runs, labels, [facet, *axes] if facet else list(axes))
    return _grid(table, axes, facet)[0]


def phase_counts(runs: pd.DataFrame, labels: pd.DataFrame) -> dict[str, int]:
    """Runs per phase: every phase of PHASES (zeros included), then any other phase present."""
    present = labelled_runs(runs, labels)["phase"].value_counts()
    counts = dict.fromkeys(PHASES, 0)
    for phase in ordered_phases(present.index.tolist()):
        counts[phase] = int(present[phase])
    return counts


def detail_counts(runs: pd.DataFrame, labels: pd.DataFrame) -> dict[str, int]:
    """Runs per detail label, every one of DETAILS (zeros included)."""
    present = labelled_runs(runs, labels)["detail"].value_counts()
    return {d: int(present.get(d, 0)) for d in DETAILS}


# ----------------------------------------------------------------------------- hover text


def _number(value: object, spec: str) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return "—"
    # Step columns may arrive as floats (NaN for "never") from a hand-built frame or a file.
    return format(int(value) if spec == "d" else float(value), spec)


def _wrap(text: str, width: int = 100) -> list[str]:
    """Greedy word wrap (hover boxes do not wrap by themselves)."""
    lines, line = [], ""
    for word in text.split(" "):
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return [*lines, line] if line else lines


def _run_identity(row: Mapping[str, object], names: Sequence[str]) -> str:
    """'run <id> (seed=0, repr_wd=0.1)': what tells the runs of one cell apart."""
    parts = [f"{n}={format_value(row[n])}" for n in names]
    suffix = f" ({', '.join(parts)})" if parts else ""
    return f"run {row['run_id']}{suffix}"


def _run_hover_line(row: Mapping[str, object], names: Sequence[str]) -> str:
    label = html.escape(_run_identity(row, names))
    if row["phase"] == UNLABELED:
        return f"{label}: <i>unlabeled</i> (status {html.escape(str(row.get('status', '?')))})"
    detail = f" · {html.escape(str(row['detail']))}" if row.get("detail") else ""
    timings = (
        f"t_train {_number(row.get('t_train'), 'd')}, t_val {_number(row.get('t_val'), 'd')}, "
        f"gap {_number(row.get('gap'), 'd')}"
    )
    accuracies = (
        f"final acc train {_number(row.get('final_train_acc'), '.3f')} / "
        f"val {_number(row.get('final_val_acc'), '.3f')}"
    )
    reason = "<br>    ".join(html.escape(line) for line in _wrap(str(row.get("reason", ""))))
    return (
        f"{label}: <b>{html.escape(str(row['phase']))}</b>{detail}<br>"
        f"    {timings}; {accuracies}<br>    <i>{reason}</i>"
    )


def _axis_lines(cell: Mapping[str, object], axes: Sequence[str | None], facet: str | None) -> list[str]:
    pairs = [(axes[0], cell["x"]), (axes[1], cell["y"]), (facet, cell["facet"])]
    return [
        f"<b>{html.escape(display_name(name))}</b> = {html.escape(format_value(value, 4))}"
        for name, value in pairs
        if name
    ]


def cell_hover_text(
    cell: Mapping[str, object],
    run_lines: Sequence[str],
    axes: Sequence[str | None],
    facet: str | None = None,
) -> str:
    """Hover for one phase-diagram cell: its axis (and facet) values, the majority phase 'k/n
    runs', the detail label, the delay, and one line per run (at most _MAX_RUNS_IN_HOVER) with the
    hyperparameters that tell them apart, phase, timings, final accuracies and reason."""
    lines = _axis_lines(cell, axes, facet)
    lines.append(f"<b>{html.escape(str(cell['phase']))}</b>: {cell['n_majority']}/{cell['n_runs']} runs")
    if cell.get("detail"):
        lines.append(f"<b>{html.escape(str(cell['detail']))}</b>: {cell['n_detail']}/{cell['n_runs']} runs")
    if cell.get("n_delay"):
        lines.append(f"grokking delay (median of {cell['n_delay']}): {_number(cell['delay'], '.0f')} steps")
    shown = list(run_lines[:_MAX_RUNS_IN_HOVER])
    lines += shown
    if cell["n_runs"] > len(shown):
        lines.append(f"… and {cell['n_runs'] - len(shown)} more runs (click the cell to list them)")
    return "<br>".join(lines)


def _cell_hover_texts(table: pd.DataFrame, grid: pd.DataFrame, cell_of_run: np.ndarray, axes, facet) -> list[str]:
    identity = _identity_columns(table, [*axes, facet])
    members: dict[int, list[int]] = {}
    for i, c in enumerate(cell_of_run.tolist()):
        members.setdefault(c, []).append(i)
    # Only the runs that the hovers list (a few per cell) need their records built.
    shown = sorted(i for rows in members.values() for i in rows[:_MAX_RUNS_IN_HOVER])
    records = dict(zip(shown, table.iloc[shown].to_dict("records")))
    texts = []
    for k, cell in enumerate(grid.to_dict("records")):
        rows = members.get(k, [])[:_MAX_RUNS_IN_HOVER]
        texts.append(cell_hover_text(cell, [_run_hover_line(records[i], identity) for i in rows], axes, facet))
    return texts


# ----------------------------------------------------------------------------- phase diagram


def power_of_ten(exponent: int) -> str:
    """'10<sup>−4</sup>' (a true minus sign), as papers print learning rates."""
    return f"10<sup>{str(exponent).replace('-', '−')}</sup>" if exponent not in (0, 1) else ("1" if exponent == 0 else "10")


def _axis_layout(name: str | None, values: list[object]) -> dict:
    if name is None:
        return dict(type="category", showticklabels=False, ticks="", title=None, showline=False)
    scale = axis_scale(values)
    layout = dict(type=scale, title=dict(text=display_name(name)), showgrid=False, mirror=True, ticks="outside")
    texts = [format_value(v) for v in values]
    if scale == "category":
        layout.update(categoryorder="array", categoryarray=texts)
        return layout
    if scale == "log":
        exponents = np.log10(np.asarray(values, dtype=float))
        if len(values) > 6:
            # Too many values to label each: a tick per decade (a log axis places them right).
            decades = range(math.ceil(exponents.min() - 1e-9), math.floor(exponents.max() + 1e-9) + 1)
            layout.update(tickvals=[10.0**k for k in decades], ticktext=[power_of_ten(k) for k in decades])
            return layout
        if np.allclose(exponents, np.round(exponents), atol=1e-9):
            texts = [power_of_ten(int(round(e))) for e in exponents]
    # Ticks exactly at the swept values, labelled with the values themselves.
    layout.update(tickvals=values, ticktext=texts)
    if len(values) > 12:  # too many to label each: let plotly thin them out
        layout.pop("tickvals")
        layout.pop("ticktext")
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


def _sorted_unique(values: pd.Series) -> list[object]:
    return sorted(values.unique().tolist(), key=lambda v: (isinstance(v, str), v))


@dataclass(frozen=True)
class _Geometry:
    """Pixel layout of the diagram: rows of three square-celled panels, laid out by hand so that
    cells are square and colourbars sit right of their panel."""

    nx: int
    ny: int
    rows: int
    faceted: bool
    cell: float = 0.0

    LEFT = 92  # y tick labels and title
    STRIP = 30  # rotated facet label, left of the y title
    GAP_AB = 26  # between the phase and the delay panel (shared y: no tick labels)
    GAP_BC = 84  # delay colourbar and its tick labels
    RIGHT = 64  # accuracy colourbar and its tick labels
    TOP = 96  # the modebar's row, the legend, then the column titles
    LEGEND_Y = 30  # legend top, below plotly's modebar (which would cover its right end)
    BOTTOM = 70  # x tick labels and title
    ROW_GAP = 26
    MAX_WIDTH = 1130

    @classmethod
    def fit(cls, nx: int, ny: int, rows: int, faceted: bool) -> "_Geometry":
        fixed = cls.LEFT + (cls.STRIP if faceted else 0) + cls.GAP_AB + cls.GAP_BC + cls.RIGHT
        cell = min(56.0, (cls.MAX_WIDTH - fixed) / (3 * nx), 340.0 / ny)
        return cls(nx, ny, rows, faceted, max(cell, 4.0))

    @property
    def left(self) -> float:
        return self.LEFT + (self.STRIP if self.faceted else 0)

    @property
    def panel_w(self) -> float:
        return max(self.nx * self.cell, 160.0)  # room for the panel's title when cells are few

    @property
    def panel_h(self) -> float:
        return max(self.ny * self.cell, 36.0)

    @property
    def width(self) -> int:
        return int(math.ceil(self.left + 3 * self.panel_w + self.GAP_AB + self.GAP_BC + self.RIGHT))

    @property
    def height(self) -> int:
        return int(math.ceil(self.TOP + self.rows * self.panel_h + (self.rows - 1) * self.ROW_GAP + self.BOTTOM))

    def x0(self, col: int) -> float:
        return self.left + col * self.panel_w + (self.GAP_AB if col >= 1 else 0) + (self.GAP_BC if col >= 2 else 0)

    def x_domain(self, col: int) -> list[float]:
        return [self.x0(col) / self.width, (self.x0(col) + self.panel_w) / self.width]

    def y_domain(self, row: int) -> list[float]:
        top = self.TOP + row * (self.panel_h + self.ROW_GAP)
        return [1 - (top + self.panel_h) / self.height, 1 - top / self.height]


def _axis_name(row: int, col: int) -> str:
    n = row * 3 + col + 1
    return "" if n == 1 else str(n)


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


@dataclass
class _Diagram:
    figure: go.Figure
    grid: pd.DataFrame
    table: pd.DataFrame
    cell_of_run: np.ndarray
    coordinates: list[tuple[int, object, object]]  # per cell: (row, x, y) in axis coordinates


def _build_diagram(table: pd.DataFrame, axes, facet, title: str | None) -> _Diagram:
    grid, cell_of_run = _grid(table, axes, facet)
    hover = _cell_hover_texts(table, grid, cell_of_run, axes, facet)
    xs, ys = _sorted_unique(grid["x"]), _sorted_unique(grid["y"])
    facets = _sorted_unique(grid["facet"]) if len(grid) else [SINGLE_CELL]
    x_layout, y_layout = _axis_layout(axes[0], xs), _axis_layout(axes[1], ys)
    x_coords, y_coords = _axis_coordinates(xs, x_layout), _axis_coordinates(ys, y_layout)
    x_of, y_of = dict(zip(xs, x_coords)), dict(zip(ys, y_coords))
    geo = _Geometry.fit(max(len(xs), 1), max(len(ys), 1), len(facets), facet is not None)

    phases = ordered_phases(grid["phase"].tolist())
    details = [d for d in DETAILS if d in set(grid.loc[2 * grid["n_detail"] >= grid["n_runs"], "detail"])]
    delay_lo, delay_hi = _decades(grid["delay"].to_numpy(dtype=float))
    delay_z = np.log10(np.clip(grid["delay"].to_numpy(dtype=float), 1, None))
    # 'k/n' labels: as large as fits the cell (a digit is ~0.6 em wide), none below 7 px.
    longest = max((len(f"{n}/{n}") for n in grid["n_runs"]), default=3)
    text_size = int(min(11.0, 0.85 * geo.cell / (0.6 * longest)))
    text_size = text_size if text_size >= 7 else 0

    gap = 2 if geo.cell >= 12 else (1 if geo.cell >= 6 else 0)  # white lines between cells

    traces: list[dict] = []
    for row, fv in enumerate(facets):
        cells = grid[grid["facet"] == fv]
        idx = cells.index.to_list()
        xa, ya = f"x{_axis_name(row, 0)}", f"y{_axis_name(row, 0)}"
        heat = dict(x=x_coords, y=y_coords, xgap=gap, ygap=gap, hoverongaps=False, showscale=False)

        # (a) phases: one heatmap per phase (NaN outside its cells) so that each keeps its fixed
        # colour and its legend entry toggles its cells.
        for phase in phases:
            own = (cells["phase"] == phase).to_numpy()
            if not own.any():
                continue
            color = phase_color(phase)
            traces.append(
                dict(
                    type="heatmap",
                    **heat,
                    z=_cell_matrix(cells[own], [1.0] * int(own.sum()), xs, ys),
                    text=_cell_matrix(cells[own], [hover[k] for k in np.asarray(idx)[own]], xs, ys),
                    customdata=_cell_matrix(cells[own], [int(k) for k in np.asarray(idx)[own]], xs, ys),
                    hovertemplate="%{text}<extra></extra>",
                    colorscale=[[0, color], [1, color]],
                    zmin=0,
                    zmax=1,
                    name=phase,
                    legendgroup=phase,
                    showlegend=False,
                    xaxis=xa,
                    yaxis=ya,
                    meta=["phase", row],
                )
            )
        # 'k/n' where the runs disagree; detail markers where at least half carry one.
        mixed = cells[cells["n_majority"] < cells["n_runs"]]
        marked = cells[(cells["detail"] != "") & (2 * cells["n_detail"] >= cells["n_runs"])]
        if text_size and len(mixed):
            has_marker = set(marked.index)
            traces.append(
                dict(
                    type="scatter",
                    x=[x_of[x] for x in mixed["x"]],
                    y=[y_of[y] for y in mixed["y"]],
                    mode="text",
                    text=[f"{k}/{n}" for k, n in zip(mixed["n_majority"], mixed["n_runs"])],
                    textposition=["top center" if k in has_marker else "middle center" for k in mixed.index],
                    textfont=dict(
                        size=text_size, color=["white" if _is_dark(phase_color(p)) else "#111" for p in mixed["phase"]]
                    ),
                    hoverinfo="skip",
                    showlegend=False,
                    name="runs agreeing",
                    xaxis=xa,
                    yaxis=ya,
                    meta=["agreement", row],
                )
            )
        for detail in details:
            these = marked[marked["detail"] == detail]
            if len(these):
                traces.append(
                    dict(
                        type="scatter",
                        x=[x_of[x] for x in these["x"]],
                        y=[y_of[y] for y in these["y"]],
                        mode="markers",
                        marker=_detail_marker(detail, geo.cell),
                        hoverinfo="skip",
                        name=detail,
                        legendgroup=detail,
                        showlegend=False,
                        xaxis=xa,
                        yaxis=ya,
                        meta=["detail", row],
                    )
                )
        # The selected cell's outline (filled in by the page's script on click): dark outside,
        # white inside, so that it shows on every phase colour.
        for size, color, width in ((geo.cell - 1, SELECTION_COLOR, 3), (geo.cell - 7, "white", 1.5)):
            traces.append(
                dict(
                    type="scatter",
                    x=[],
                    y=[],
                    mode="markers",
                    marker=dict(symbol="square-open", size=max(size, 4), color=color, line=dict(width=width)),
                    hoverinfo="skip",
                    showlegend=False,
                    name="selected cell",
                    xaxis=xa,
                    yaxis=ya,
                    meta=["selection", row],
                )
            )
        # (b) grokking delay and (c) final val accuracy, on a grey "no value" background.
        for col, values, coloraxis, name in (
            (1, delay_z[idx], "coloraxis", "grokking delay"),
            (2, cells["val_acc"].to_numpy(dtype=float), "coloraxis2", "final val acc"),
        ):
            xa_c, ya_c = f"x{_axis_name(row, col)}", f"y{_axis_name(row, col)}"
            traces.append(
                dict(
                    type="heatmap",
                    **heat,
                    z=_cell_matrix(cells, [1.0] * len(cells), xs, ys),
                    colorscale=[[0, _NO_VALUE_COLOR], [1, _NO_VALUE_COLOR]],
                    hoverinfo="skip",
                    name="no value",
                    showlegend=False,
                    xaxis=xa_c,
                    yaxis=ya_c,
                    meta=["background", row],
                )
            )
            shown = [None if not np.isfinite(v) else float(v) for v in values]
            short = [_short_hover(cell, axes, facet, col) for cell in cells.to_dict("records")]
            traces.append(
                dict(
                    type="heatmap",
                    **{k: v for k, v in heat.items() if k != "showscale"},
                    z=_cell_matrix(cells, shown, xs, ys),
                    text=_cell_matrix(cells, short, xs, ys),
                    customdata=_cell_matrix(cells, idx, xs, ys),
                    hovertemplate="%{text}<extra></extra>",
                    coloraxis=coloraxis,
                    name=name,
                    showlegend=False,
                    xaxis=xa_c,
                    yaxis=ya_c,
                    meta=["delay" if col == 1 else "val_acc", row],
                )
            )

    # Legend: one entry per phase present, then one per detail marker shown.
    for phase in phases:
        traces.append(_legend_entry(phase, dict(symbol="square", size=13, color=phase_color(phase))))
    for detail in details:
        traces.append(_legend_entry(detail, _detail_marker(detail, 40)))

    # Traces are plain dicts and the figure skips plotly.py's validation (a thousand traces at
    # 10k runs: seconds); tests check that the figure validates.
    fig = go.Figure(data=traces, _validate=False)
    layout: dict = dict(
        template=pio.templates[_TEMPLATE],
        font=_FONT,
        width=geo.width,
        height=geo.height,
        autosize=False,
        # Laid out by hand (_Geometry): plotly must not grow margins for the legend or the
        # colourbars, which would shrink the panels and unsquare the cells.
        margin=dict(l=0, r=0, t=0, b=0, autoexpand=False),
        showlegend=True,
        legend=dict(
            orientation="h",
            x=geo.left / geo.width,
            xanchor="left",
            y=1 - geo.LEGEND_Y / geo.height,
            yref="container",
            yanchor="top",
            itemclick="toggle",
            itemdoubleclick="toggleothers",
            font=dict(size=12),
        ),
        hoverlabel=dict(align="left", bgcolor="white", font=dict(size=11)),
        coloraxis=dict(
            colorscale=_DELAY_COLORSCALE,
            cmin=delay_lo,
            cmax=delay_hi,
            colorbar=_colorbar(geo, 1, [float(v) for v in range(int(delay_lo), int(delay_hi) + 1)]),
        ),
        coloraxis2=dict(colorscale=_ACC_COLORSCALE, cmin=0, cmax=1, colorbar=_colorbar(geo, 2, [0, 0.25, 0.5, 0.75, 1])),
    )
    if title:
        layout["title"] = dict(text=title, x=0.0, xanchor="left")
    bottom = len(facets) - 1
    for row in range(len(facets)):
        for col in range(3):
            name = _axis_name(row, col)
            # automargin off: the margins are laid out by hand (_Geometry), and plotly growing
            # them would shrink the panels and unsquare the cells.
            xl = dict(x_layout, domain=geo.x_domain(col), anchor=f"y{name}", automargin=False, tickangle=0)
            yl = dict(y_layout, domain=geo.y_domain(row), anchor=f"x{name}", automargin=False)
            if name:
                xl["matches"], yl["matches"] = "x", "y"
            if row != bottom:
                xl.update(showticklabels=False, title=None)
            if col != 0:
                yl.update(showticklabels=False, title=None)
            elif len(facets) > 2 and row != (len(facets) - 1) // 2:
                yl.update(title=None)  # one shared y title, on the middle row
            layout[f"xaxis{name}"], layout[f"yaxis{name}"] = xl, yl
    layout["annotations"] = _diagram_annotations(geo, facet, facets)
    fig.update_layout(layout)

    coordinates = [
        (facets.index(fv), x_of[x], y_of[y]) for fv, x, y in zip(grid["facet"], grid["x"], grid["y"])
    ]
    return _Diagram(fig, grid, table, cell_of_run, coordinates)


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


def _colorbar(geo: _Geometry, col: int, ticks: list[float]) -> dict:
    rows_h = geo.height - geo.TOP - geo.BOTTOM
    return dict(
        x=(geo.x0(col) + geo.panel_w + 10) / geo.width,
        xanchor="left",
        y=1 - geo.TOP / geo.height,
        yanchor="top",
        # Span the first row's panel; at least 110 px (a 1-D strip's panel is one cell tall),
        # reaching into the bottom margin if need be.
        len=max(min(rows_h, max(geo.panel_h, 160)), min(110, geo.height - geo.TOP)) / geo.height,
        thickness=12,
        ypad=0,
        outlinewidth=0,
        ticks="outside",
        tickvals=ticks,
        ticktext=[format_steps(10**t) for t in ticks] if col == 1 else [f"{t:g}" for t in ticks],
    )


def _diagram_annotations(geo: _Geometry, facet: str | None, facets: list[object]) -> list[dict]:
    titles = (
        "<b>(a)</b> phase",
        "<b>(b)</b> grokking delay t<sub>val</sub> − t<sub>train</sub> (steps)",
        "<b>(c)</b> final val accuracy",
    )
    top = geo.y_domain(0)[1]
    notes = [
        dict(
            text=text,
            x=(geo.x0(col) + geo.panel_w / 2) / geo.width,
            y=top,
            xref="paper",
            yref="paper",
            xanchor="center",
            yanchor="bottom",
            yshift=6,
            showarrow=False,
            font=dict(size=13),
        )
        for col, text in enumerate(titles)
    ]
    if facet is not None:
        for row, value in enumerate(facets):
            lo, hi = geo.y_domain(row)
            notes.append(
                dict(
                    text=f"<b>{html.escape(display_name(facet))} = {html.escape(format_value(value, 4))}</b>",
                    x=(geo.STRIP / 2 + 2) / geo.width,
                    y=(lo + hi) / 2,
                    xref="paper",
                    yref="paper",
                    xanchor="center",
                    yanchor="middle",
                    textangle=-90,
                    showarrow=False,
                    font=dict(size=12),
                )
            )
    return notes


def _short_hover(cell: Mapping[str, object], axes, facet, col: int) -> str:
    lines = _axis_lines(cell, axes, facet)
    if col == 1:
        if cell["n_delay"]:
            lines.append(
                f"grokking delay <b>{_number(cell['delay'], '.0f')}</b> steps "
                f"(median of {cell['n_delay']}/{cell['n_runs']} runs that generalised)"
            )
        else:
            lines.append(f"no run generalised (0/{cell['n_runs']})")
    else:
        lines.append(f"final val acc <b>{_number(cell['val_acc'], '.3f')}</b> (mean of {cell['n_runs']} runs)")
    lines.append(f"majority phase {html.escape(str(cell['phase']))} ({cell['n_majority']}/{cell['n_runs']})")
    return "<br>".join(lines)


def phase_diagram_figure(
    runs: pd.DataFrame,
    labels: pd.DataFrame,
    axes: Sequence[str | None] | None = None,
    facet: str | None = None,
    *,
    title: str | None = None,
) -> go.Figure:
    """The phase diagram: one row of three panels per facet value (one row without a facet).

    Traces carry ``meta=[kind, row]``: kind "phase" (one heatmap per phase present in the row,
    name = phase, colour PHASE_COLORS[phase], customdata = the cell's row in phase_grid),
    "agreement" ('k/n' text), "detail" (markers, name = detail), "selection", "background",
    "delay" (log10 of the median delay, on coloraxis) and "val_acc" (on coloraxis2); then
    "legend" entries, one per phase present and one per detail marker shown.
    """
    axes = resolve_axes(runs, axes)
    facet = resolve_facet(runs, facet, axes)
    table = _sorted_table(runs, labels, [facet, *axes] if facet else list(axes))
    return _build_diagram(table, axes, facet, title).figure


# ----------------------------------------------------------------------------- curves data


@dataclass
class CurveData:
    """Downsampled curves of a list of runs, concatenated: run i owns rows offsets[i]:offsets[i+1]
    of ``steps`` and of each ``values[metric]`` (NaN where the metric is missing)."""

    run_ids: list[str]
    offsets: np.ndarray
    steps: np.ndarray
    values: dict[str, np.ndarray]

    def run(self, i: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        a, b = self.offsets[i], self.offsets[i + 1]
        return self.steps[a:b], {k: v[a:b] for k, v in self.values.items()}


def curve_data(metrics: pd.DataFrame, run_ids: Sequence[str], max_points: int = MAX_CURVE_POINTS) -> CurveData:
    """Each run's curves at step >= 0, sorted by step and downsampled to the first logged step at
    or after each of ``max_points`` log-spaced targets between its first positive and its last
    step, plus those two and step 0 (runs with at most ``max_points`` steps keep them all).

    Step 0 (the untrained model) is kept at its true step; the figures draw it at
    ``zero_step_x`` and say so, since a log axis has no 0.

    Vectorised over rows (10M rows in a few seconds); rows may come in any order.
    """
    run_ids = [str(r) for r in run_ids]
    n_runs = len(run_ids)
    if len(metrics) == 0 or n_runs == 0:
        empty = np.zeros(0)
        return CurveData(run_ids, np.zeros(n_runs + 1, dtype=np.int64), empty.astype(np.int64),
                         {m: empty for m in CURVE_METRICS})  # fmt: skip
    # Factorize the 10M-row column (pyarrow dictionary-encodes it fast), then map its few
    # thousand distinct ids onto run_ids: far cheaper than hashing every row against run_ids.
    row_codes, distinct = pd.factorize(metrics["run_id"])
    to_run = pd.Index(run_ids).get_indexer(pd.Index(distinct).astype(str))
    codes = np.where(row_codes >= 0, to_run[np.maximum(row_codes, 0)], -1) if to_run.size else np.full(len(metrics), -1)
    steps = metrics["step"].to_numpy(dtype=np.int64)
    rows = np.flatnonzero((codes >= 0) & (steps >= 0))
    codes, steps = codes[rows].astype(np.int64), steps[rows]
    if steps.size and steps.max() < (1 << 40) and n_runs < (1 << 22):
        key = (codes << 40) | steps
        if not (key[1:] >= key[:-1]).all():  # store.read_metrics gives sorted rows: no sort
            order = np.argsort(key, kind="stable")
            rows, codes, steps, key = rows[order], codes[order], steps[order], key[order]
    else:  # pragma: no cover - steps beyond 2**40 or millions of runs
        order = np.lexsort((steps, codes))
        rows, codes, steps = rows[order], codes[order], steps[order]
        key = None

    counts = np.bincount(codes, minlength=n_runs)
    ends = np.cumsum(counts)
    starts = ends - counts
    keep = np.zeros(rows.size, dtype=bool)
    small = np.repeat(counts <= max_points, counts)
    keep[small] = True
    big = np.flatnonzero(counts > max_points)
    if big.size:
        # The log-spaced targets start at the first positive step (log 0 is -inf); step 0, the
        # run's first row when logged, is kept as well.
        if key is not None:
            positive = np.searchsorted(key, (big << 40) | 1)
        else:  # pragma: no cover
            positive = np.array([starts[b] + np.searchsorted(steps[starts[b] : ends[b]], 1) for b in big])
        positive = np.minimum(positive, ends[big] - 1)
        first = np.maximum(steps[positive], 1).astype(np.float64)
        last = np.maximum(steps[ends[big] - 1], 1).astype(np.float64)
        frac = np.linspace(0.0, 1.0, max_points)
        targets = np.ceil(np.exp(np.log(first)[:, None] + np.outer(np.log(last / first), frac))).astype(np.int64)
        if key is not None:
            pos = np.searchsorted(key, (big[:, None] << 40) | targets)
        else:  # pragma: no cover
            pos = np.stack([starts[b] + np.searchsorted(steps[starts[b] : ends[b]], t) for b, t in zip(big, targets)])
        pos = np.minimum(pos, (ends[big] - 1)[:, None])
        keep[pos.ravel()] = True
        keep[starts[big]] = True
        keep[positive] = True
        keep[ends[big] - 1] = True
    picked = rows[keep]
    per_run = np.bincount(codes[keep], minlength=n_runs)
    offsets = np.concatenate([[0], np.cumsum(per_run)]).astype(np.int64)
    values = {}
    for m in CURVE_METRICS:
        if m in metrics.columns:
            values[m] = metrics[m].to_numpy(dtype=np.float64, na_value=np.nan)[picked]
        else:
            values[m] = np.full(picked.size, np.nan)
    return CurveData(run_ids, offsets, steps[keep], values)


def _b64(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array).tobytes()).decode("ascii")


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


def zero_step_x(steps: np.ndarray) -> float:
    """Where the step axes draw step 0 (a log axis has no 0): at half the smallest positive step
    in the figure (1 if there is none). That is log10(2) = 0.3 decades left of the first logged
    step, the same place for every run of the figure: next to the curves' start yet apart from
    it, where placing it at step 1 would stretch the first segment over a decade or more (or sit
    on a real step 1). The axis title (``step_title``) and the hover (the true step) say so;
    the page's script (zeroStepX) does the same for the clicked cell's runs."""
    positive = np.asarray(steps, dtype=float)
    positive = positive[np.isfinite(positive) & (positive > 0)]
    return float(positive.min()) / 2 if positive.size else 1.0


def plotted_steps(steps: np.ndarray, zero_x: float) -> np.ndarray:
    """x coordinates of ``steps`` on a log step axis: step 0 at ``zero_x`` (see zero_step_x)."""
    steps = np.asarray(steps, dtype=float)
    return np.where(steps > 0, steps, zero_x)


def step_title(has_zero: bool, zero_x: float) -> str:
    """The x title of a step panel; it names where step 0 is drawn when a run logged it."""
    return f"step (step 0 drawn at {format_steps(zero_x)})" if has_zero else "step"


def _positive_range(*arrays: np.ndarray) -> tuple[float, float]:
    values = np.concatenate([np.asarray(a, dtype=float).ravel() for a in arrays]) if arrays else np.zeros(0)
    values = values[np.isfinite(values) & (values > 0)]
    return (float(values.min()), float(values.max())) if values.size else (1.0, 10.0)


def _loss_axis_is_log(curves: CurveData) -> bool:
    losses = np.concatenate([curves.values["train_loss"], curves.values["val_loss"]])
    finite = losses[np.isfinite(losses)]
    # Losses span decades (memorised train loss -> 1e-6); log only when every value allows it.
    return bool(finite.size == 0 or finite.min() > 0)


def encode_curves(curves: CurveData) -> dict:
    """The curves as the page embeds them: per run its point count and step pattern (runs logged
    at the same steps share one), steps as base64 little-endian float64, each metric as base64
    little-endian float16 (log10 of the value for the metrics in ``log_values``)."""
    patterns: dict[bytes, int] = {}
    pattern_of = []
    step_blobs = []
    for i in range(len(curves.run_ids)):
        s = curves.steps[curves.offsets[i] : curves.offsets[i + 1]].astype("<f8")
        blob = s.tobytes()
        if blob not in patterns:
            patterns[blob] = len(patterns)
            step_blobs.append(base64.b64encode(blob).decode("ascii"))
        pattern_of.append(patterns[blob])
    values = {}
    for m, v in curves.values.items():
        if m in _LOG_METRICS:
            with np.errstate(divide="ignore", invalid="ignore"):
                v = np.where(v >= 0, np.log10(np.where(v >= 0, v, 1.0)), np.nan)
        values[m] = _b64(np.clip(v, -65504, 65504).astype("<f2"))
    return {
        "n": np.diff(curves.offsets).tolist(),
        "pattern": pattern_of,
        "patterns": step_blobs,
        "values": values,
        "log_values": list(_LOG_METRICS),
    }


def decode_curves(encoded: Mapping[str, object], i: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Run i's (steps, values) back from ``encode_curves`` (what the page's script does)."""
    n = np.asarray(encoded["n"], dtype=np.int64)
    offset = int(n[:i].sum())
    steps = np.frombuffer(base64.b64decode(encoded["patterns"][encoded["pattern"][i]]), dtype="<f8")
    values = {}
    for m, blob in encoded["values"].items():
        v = np.frombuffer(base64.b64decode(blob), dtype="<f2")[offset : offset + n[i]].astype(np.float64)
        values[m] = 10**v if m in encoded["log_values"] else v
    return steps, values


# ----------------------------------------------------------------------------- overview


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


def _run_labels(table: pd.DataFrame, names: Sequence[str]) -> list[str]:
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


def _overview_figure(table: pd.DataFrame, curves: CurveData, rows: Sequence[int], labels: Sequence[str], title) -> go.Figure:
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
    log_loss = _loss_axis_is_log(curves)
    step_range = _positive_range(plotted_steps(chosen_steps, zero_x))
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
            grid[f"yaxis{name}"].update(log_ticks(*_positive_range(curves.values[metric][chosen])))
    grid["xaxis6"]["visible"] = grid["yaxis6"]["visible"] = False
    # Plain dicts, unvalidated: 1,000 traces validate in seconds (tests check that they would).
    fig = go.Figure(data=traces, layout=grid, _validate=False)
    layout = dict(
        template=pio.templates[_TEMPLATE],
        font=_FONT,
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
    table = _sorted_table(runs, labels, swept_axes(runs))
    rows, _ = overview_runs(table, max_runs)
    curves = curve_data(metrics, table["run_id"].tolist())
    return _overview_figure(table, curves, rows, _run_labels(table, _identity_columns(table, [])), title)


# ----------------------------------------------------------------------------- cell curves


_CELL_HEIGHT, _CELL_BOTTOM, _CELL_LEGEND_COLUMNS, _CELL_LEGEND_ROW = 400, 70, 6, 22
# A t_train / t_val label (~25 px) goes left of its line from this fraction of the (log) step
# range on: right of it, it would run past the right edge of the ~295 px accuracy panel.
_MARK_LABEL_FLIP = 0.85


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
        template=pio.templates[_TEMPLATE],
        font=_FONT,
        width=1120,
        height=_CELL_HEIGHT,
        margin=dict(l=60, r=20, t=60, b=_CELL_BOTTOM),
        # Under the x titles, at the bottom of the figure (the page's script grows the figure by
        # a legend row per _CELL_LEGEND_COLUMNS runs).
        legend=dict(orientation="h", x=0, y=0, yref="container", yanchor="bottom", font=dict(size=11)),
        hovermode="closest",
    )
    return go.Figure(layout=layout, _validate=False)


def default_cell(grid: pd.DataFrame) -> int:
    """The cell shown before any click: the most typical grokking cell if there is one (most runs
    agreeing, then the longest delay), else the same over the next phase in PHASES order."""
    if grid.empty:
        return -1
    frame = grid.assign(
        _rank=grid["phase"].map(lambda p: (["grokking", *[q for q in PHASES if q != "grokking"]] + [p]).index(p)),
        _agree=grid["n_majority"] / grid["n_runs"],
        _delay=grid["delay"].fillna(-1.0),
    )
    best = frame.sort_values(["_rank", "_agree", "_delay"], ascending=[True, False, False], kind="stable")
    return int(best.index[0])


def _cell_title(cell: Mapping[str, object], axes, facet) -> str:
    parts = [
        f"{display_name(name)} = {format_value(value, 4)}"
        for name, value in ((axes[0], cell["x"]), (axes[1], cell["y"]), (facet, cell["facet"]))
        if name
    ]
    where = " · ".join(parts) or "all runs"
    detail = f"; {cell['detail']} {cell['n_detail']}/{cell['n_runs']}" if cell["detail"] else ""
    return f"{where} — {cell['phase']} ({cell['n_majority']}/{cell['n_runs']} runs{detail})"


def _json_value(v: object) -> object:
    if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
        return None
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return None if math.isnan(v) else float(v)
    return v


def report_data(diagram: _Diagram, curves: CurveData, axes, facet) -> dict:
    """Everything the page's script needs: the cells (title, runs, where to draw the selection),
    each run's label, phase, timings and reason, and the encoded curves."""
    table, grid = diagram.table, diagram.grid
    identity = _identity_columns(table, [*axes, facet])
    everything = _identity_columns(table, [])
    members: dict[int, list[int]] = {}
    for i, c in enumerate(diagram.cell_of_run.tolist()):
        members.setdefault(c, []).append(i)
    cells = [
        dict(title=_cell_title(cell, axes, facet), runs=members.get(k, []), row=row, x=_json_value(x), y=_json_value(y))
        for k, (cell, (row, x, y)) in enumerate(zip(grid.to_dict("records"), diagram.coordinates))
    ]

    def column(name: str, kind: str) -> list:
        if name not in table.columns:
            return [None] * len(table)
        if kind == "int":
            return [None if not math.isfinite(v) else int(v) for v in _numeric(table, name)]
        if kind == "float":
            return [None if not math.isfinite(v) else round(float(v), 4) for v in _numeric(table, name)]
        return ["" if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)) else str(v) for v in table[name]]

    runs = {
        "id": table["run_id"].astype(str).tolist(),
        "label": _run_labels(table, everything),
        "short": _run_labels(table, identity) if identity else ["run " + r for r in table["run_id"].astype(str)],
        "phase": table["phase"].astype(str).tolist(),
        "detail": table["detail"].astype(str).tolist(),
        "reason": column("reason", "str"),
        **{c: column(c, "int") for c in ("t_train", "t_val", "gap", "t_drop")},
        **{c: column(c, "float") for c in ("final_train_acc", "final_val_acc")},
    }
    return {
        "cells": cells,
        "default_cell": default_cell(grid),
        "runs": runs,
        "curves": encode_curves(curves),
        "colors": {**PHASE_COLORS, UNLABELED: _FALLBACK_COLOR},
        "max_cell_runs": MAX_CELL_RUNS,
        "selection_color": SELECTION_COLOR,
    }


# ----------------------------------------------------------------------------- HTML


_CSS = """
body { font-family: "Helvetica Neue", Helvetica, Arial, sans-serif; color: #222; margin: 2em auto;
       max-width: 1160px; padding: 0 1.5em; line-height: 1.45; }
h1 { font-size: 1.7em; margin-bottom: 0.2em; }
h2 { font-size: 1.25em; margin-top: 1.8em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
.row { display: flex; flex-wrap: wrap; gap: 0 3em; align-items: flex-start; }
table.summary { border-collapse: collapse; margin: 0.8em 0; font-size: 0.92em; }
table.summary th, table.summary td { padding: 0.22em 0.9em; border-bottom: 1px solid #eee; text-align: left;
                                     vertical-align: top; }
table.summary td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.summary tr.sub td { color: #555; font-size: 0.95em; }
table.summary tr.sub td:first-child { padding-left: 2.2em; }
table.runs td.reason { color: #555; font-size: 0.92em; max-width: 34em; }
.swatch { display: inline-block; width: 0.85em; height: 0.85em; margin-right: 0.4em; vertical-align: -0.05em;
          border-radius: 2px; }
.note { color: #666; font-size: 0.9em; }
.cell-title { font-weight: 600; margin: 0.6em 0 0.2em; }
details pre { background: #f7f7f7; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
#grokgrid-js-errors { color: #a00; background: #fee; padding: 0.6em; white-space: pre-wrap; }
"""

# Installed before anything else runs: every uncaught error, rejected promise or console.error
# lands in <pre id="grokgrid-js-errors">, shown to the reader and read by the browser test.
_ERROR_TRAP = """<script>
(function () {
  var errors = [];
  function show() {
    var el = document.getElementById("%(id)s");
    if (el && errors.length) { el.textContent = errors.join("\\n"); el.hidden = false; }
  }
  function record(text) { errors.push(String(text)); show(); }
  window.grokgridErrors = errors;
  window.addEventListener("error", function (e) {
    var where = e.filename ? " (" + e.filename.split("/").pop() + ":" + e.lineno + ")" : "";
    record("error: " + (e.message || ("failed to load " + ((e.target && (e.target.src || e.target.href)) || "a resource"))) + where);
  }, true);
  window.addEventListener("unhandledrejection", function (e) {
    record("unhandled rejection: " + (e.reason && (e.reason.stack || e.reason.message) || e.reason));
  });
  var consoleError = console.error;
  console.error = function () {
    record("console.error: " + Array.prototype.map.call(arguments, String).join(" "));
    return consoleError.apply(console, arguments);
  };
  document.addEventListener("DOMContentLoaded", show);
})();
</script>""" % {"id": JS_ERRORS_ID}

_APP_JS = """<script>
(function () {
  "use strict";
  var DIAGRAM = "%(diagram)s", CURVES = "%(curves)s", INFO = "%(info)s", DATA = "%(data)s";
  function bytes(b64) {
    var bin = atob(b64), out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }
  var HALF = new Float32Array(65536);  // float16 bit pattern -> value
  for (var u = 0; u < 65536; u++) {
    var s = (u & 0x8000) ? -1 : 1, e = (u >> 10) & 31, f = u & 1023;
    HALF[u] = e === 0 ? s * f * Math.pow(2, -24)
            : e === 31 ? (f ? NaN : s * Infinity) : s * Math.pow(2, e - 15) * (1 + f / 1024);
  }
  function esc(text) {
    return String(text).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  }
  function start() {
    var holder = document.getElementById(DATA), diagram = document.getElementById(DIAGRAM);
    var curvesDiv = document.getElementById(CURVES), info = document.getElementById(INFO);
    if (!holder || !diagram || !curvesDiv || !window.Plotly) throw new Error("grokgrid report: page incomplete");
    var data = JSON.parse(holder.textContent), runs = data.runs, enc = data.curves;
    var offsets = [0];
    enc.n.forEach(function (n, i) { offsets.push(offsets[i] + n); });
    var patterns = enc.patterns.map(function (b) { var x = bytes(b); return Array.from(new Float64Array(x.buffer)); });
    var values = {};
    Object.keys(enc.values).forEach(function (k) { var x = bytes(enc.values[k]); values[k] = new Uint16Array(x.buffer); });
    function series(r, name) {
      var out = new Array(enc.n[r]), v = values[name], o = offsets[r], log = enc.log_values.indexOf(name) >= 0;
      for (var i = 0; i < enc.n[r]; i++) { var x = HALF[v[o + i]]; out[i] = log ? Math.pow(10, x) : x; }
      return out;
    }
    var PANELS = [["train_acc", "x", "y", "dash"], ["val_acc", "x", "y", "solid"],
                  ["train_loss", "x2", "y2", "dash"], ["val_loss", "x2", "y2", "solid"],
                  ["weight_norm", "x3", "y3", "solid"]];
    var baseLayout = curvesDiv.layout, baseAnnotations = (baseLayout.annotations || []).slice();
    // Step 0 (logged before training) is drawn at half the smallest positive step of the cell's
    // runs, as report.zero_step_x (a log axis has no 0); the x titles and the hovers say so.
    function zeroStepX(stepLists) {
      var lo = Infinity;
      stepLists.forEach(function (s) { s.forEach(function (v) { if (v > 0 && v < lo) lo = v; }); });
      return isFinite(lo) ? lo / 2 : 1;
    }
    function stepText(v) {  // as report.format_steps
      var units = [["M", 1e6], ["k", 1e3]];
      for (var i = 0; i < units.length; i++)
        if (Math.abs(v) >= units[i][1]) return String(Number((v / units[i][1]).toPrecision(6))) + units[i][0];
      return String(Number(v.toPrecision(6)));
    }
    // A t_train / t_val label sits right of its line, or left of it from report._MARK_LABEL_FLIP
    // of the way across the (log) step range on: right of a line near the plot's right edge
    // (t_val at the last step) it was cut off there, or plotly stretched the step axis past the
    // last step to fit it (unlike the other two panels').
    function markLabel(name, step, color, lo, hi) {
      var at = hi > lo ? (Math.log10(step) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo)) : 0;
      var left = at > %(label_flip)s;
      return {text: name.replace("_", "<sub>") + "</sub>", x: Math.log10(step), xref: "x", y: 0.04,
              yref: "y domain", xanchor: left ? "right" : "left", xshift: left ? -3 : 3, showarrow: false,
              font: {size: 11, color: color}};
    }
    function cellFigure(cell) {
      var shown = cell.runs.slice(0, data.max_cell_runs), traces = [], shapes = [], notes = baseAnnotations.slice();
      var marks = [], stepLists = shown.map(function (r) { return patterns[enc.pattern[r]]; });
      var zeroX = zeroStepX(stepLists);
      var hasZero = stepLists.some(function (s) { return s.indexOf(0) >= 0; });
      shown.forEach(function (r, k) {
        var steps = stepLists[k], color = data.colors[runs.phase[r]] || "#BBBBBB";
        var x = steps.map(function (s) { return s > 0 ? s : zeroX; });
        var tag = runs.phase[r] + (runs.detail[r] ? " · " + runs.detail[r] : "");
        PANELS.forEach(function (p) {
          // customdata: the true step, for the hover (step 0 is drawn at zeroX).
          traces.push({type: "scatter", mode: "lines", x: x, customdata: steps, y: series(r, p[0]), xaxis: p[1],
                       yaxis: p[2], line: {color: color, width: 2, dash: p[3]}, opacity: 0.85,
                       name: runs.short[r] + " (" + tag + ")", legendgroup: runs.id[r], showlegend: p[0] === "val_acc",
                       hovertemplate: esc(runs.label[r]) + "<br>" + esc(tag) + "<br>step %%{customdata}<br>" +
                                      p[0].replace("_", " ") + " %%{y:.4g}<extra></extra>"});
        });
        if (shown.length <= 3) {  // mark t_train and t_val, as in the papers' figures
          [["t_train", "#777"], ["t_val", color]].forEach(function (t) {
            var step = runs[t[0]][r];
            if (step === null || step <= 0) return;
            shapes.push({type: "line", xref: "x", yref: "y domain", x0: step, x1: step, y0: 0, y1: 1,
                         line: {color: t[1], width: 1.2, dash: "dot"}});
            if (shown.length === 1) marks.push([t[0], step, t[1] === "#777" ? "#555" : t[1]]);
          });
        }
      });
      // Log-axis ticks for this cell's ranges: a label per decade over two decades, else 1-2-5.
      var steps = [], losses = [];
      traces.forEach(function (t) {
        steps = steps.concat(t.x);
        if (t.yaxis === "y2") losses = losses.concat(t.y);
      });
      function logTicks(values) {  // as report.log_ticks
        var lo = Infinity, hi = -Infinity;
        values.forEach(function (v) { if (v > 0 && isFinite(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); } });
        if (!(lo > 0)) return {};
        var decades = Math.log10(hi / lo);
        if (decades > 6) return {dtick: 2, tickvals: null, ticktext: null};
        if (decades >= 2) return {dtick: 1, tickvals: null, ticktext: null};
        var vals = [], texts = [];
        for (var e = Math.floor(Math.log10(lo)) - 1; e <= Math.ceil(Math.log10(hi)); e++)
          [1, 2, 5].forEach(function (m) {
            var v = m * Math.pow(10, e);
            if (v >= lo * 0.8 && v <= hi * 1.25) { vals.push(v); texts.push(String(Number(v.toPrecision(3)))); }
          });
        return {tickvals: vals, ticktext: texts, dtick: null};
      }
      var legendRows = Math.ceil(shown.length / %(legend_columns)s);
      var lo = Infinity, hi = -Infinity;  // the step range, as the (unpadded) line plots span it
      steps.forEach(function (v) { if (v > 0 && isFinite(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); } });
      marks.forEach(function (m) { notes.push(markLabel(m[0], m[1], m[2], lo, hi)); });
      var layout = Object.assign({}, baseLayout, {shapes: shapes, annotations: notes,
        height: %(height)s + %(legend_row)s * legendRows,
        margin: Object.assign({}, baseLayout.margin, {b: %(bottom)s + %(legend_row)s * legendRows})});
      var stepTicks = logTicks(steps);
      var xTitle = {text: hasZero ? "step (step 0 drawn at " + stepText(zeroX) + ")" : "step"};  // as report.step_title
      ["xaxis", "xaxis2", "xaxis3"].forEach(function (a) {
        layout[a] = Object.assign({}, baseLayout[a], stepTicks, {title: xTitle});
      });
      if (baseLayout.yaxis2 && baseLayout.yaxis2.type === "log")
        layout.yaxis2 = Object.assign({}, baseLayout.yaxis2, logTicks(losses));
      return {data: traces, layout: layout};
    }
    function renderInfo(cell) {
      info.textContent = "";
      var title = document.createElement("p");
      title.className = "cell-title";
      title.textContent = cell.title;
      info.appendChild(title);
      var table = document.createElement("table"), head = table.insertRow();
      table.className = "summary runs";
      ["run", "phase", "t_train", "t_val", "gap", "final acc (train / val)", "reason"].forEach(function (h) {
        var th = document.createElement("th"); th.textContent = h; head.appendChild(th);
      });
      cell.runs.forEach(function (r, i) {
        if (i >= 200) return;
        var row = table.insertRow(), swatch = document.createElement("span");
        function add(text, cls) { var td = row.insertCell(); td.textContent = text; if (cls) td.className = cls; return td; }
        add(runs.short[r]).title = runs.id[r];
        swatch.className = "swatch";
        swatch.style.background = data.colors[runs.phase[r]] || "#BBBBBB";
        add(runs.phase[r] + (runs.detail[r] ? " · " + runs.detail[r] : "")).prepend(swatch);
        ["t_train", "t_val", "gap"].forEach(function (k) { add(runs[k][r] === null ? "—" : String(runs[k][r]), "num"); });
        function acc(v) { return v === null ? "—" : v.toFixed(3); }
        add(acc(runs.final_train_acc[r]) + " / " + acc(runs.final_val_acc[r]), "num");
        add(runs.reason[r], "reason");
      });
      info.appendChild(table);
      var notes = [];
      if (cell.runs.length > data.max_cell_runs) notes.push("curves of the first " + data.max_cell_runs + " runs drawn");
      if (cell.runs.length > 200) notes.push("first 200 runs listed");
      if (notes.length) {
        var p = document.createElement("p"); p.className = "note";
        p.textContent = cell.runs.length + " runs in this cell: " + notes.join("; ") + ".";
        info.appendChild(p);
      }
    }
    var selection = [];  // [trace index, facet row] of the outline traces
    diagram.data.forEach(function (t, i) { if (t.meta && t.meta[0] === "selection") selection.push([i, t.meta[1]]); });
    function select(k) {
      var cell = data.cells[k];
      if (!cell) return;
      renderInfo(cell);
      var fig = cellFigure(cell);
      Plotly.react(curvesDiv, fig.data, fig.layout);
      var xs = [], ys = [], ids = [];
      selection.forEach(function (s) {
        ids.push(s[0]); xs.push(s[1] === cell.row ? [cell.x] : []); ys.push(s[1] === cell.row ? [cell.y] : []);
      });
      if (ids.length) Plotly.restyle(diagram, {x: xs, y: ys}, ids);
      document.body.setAttribute("data-selected-cell", String(k));
    }
    diagram.on("plotly_click", function (event) {
      var point = event.points && event.points[0];
      if (!point || point.customdata === null || point.customdata === undefined || point.customdata === "") return;
      select(Number(point.customdata));
    });
    function fromHash() {
      var m = /cell=(\\d+)/.exec(window.location.hash);
      return m ? Number(m[1]) : data.default_cell;
    }
    window.addEventListener("hashchange", function () { select(fromHash()); });
    select(fromHash());
    document.body.setAttribute("data-grokgrid-ready", "1");
  }
  window.addEventListener("load", start);
})();
</script>""" % {
    "diagram": PHASE_DIAGRAM_ID,
    "curves": CELL_CURVES_ID,
    "info": CELL_INFO_ID,
    "data": DATA_ID,
    "height": _CELL_HEIGHT,
    "bottom": _CELL_BOTTOM,
    "legend_columns": _CELL_LEGEND_COLUMNS,
    "legend_row": _CELL_LEGEND_ROW,
    "label_flip": _MARK_LABEL_FLIP,
}


def _swatch(color: str) -> str:
    return f'<span class="swatch" style="background:{html.escape(color)}"></span>'


def _phase_count_rows(counts: Mapping[str, int], details: Mapping[str, int] | None = None) -> list[str]:
    """One row per phase; a detail label's row (when any run has it) goes under its phase."""
    rows = []
    for phase, n in counts.items():
        rows.append(f'<tr><td>{_swatch(phase_color(phase))}{html.escape(phase)}</td><td class="num">{n}</td></tr>')
        for detail, m in (details or {}).items():
            if m and DETAIL_PHASE.get(detail) == phase:
                rows.append(
                    f'<tr class="sub"><td>of which {html.escape(detail)}</td><td class="num" '
                    f'data-detail="{html.escape(detail)}">{m}</td></tr>'
                )
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
        shown = values if len(values) <= 12 else [*values[:5], "…", *values[-5:]]
        text = ", ".join(format_value(v, 4) if v != "…" else v for v in shown)
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
    """The summary section: runs per phase (all PHASES, zeros too) with the detail labels under
    their phase, run count and status, the hyperparameters, and the ``meta`` items, all escaped."""
    counts = phase_counts(runs, labels)
    meta_rows, meta_blocks = _meta_block(meta or {})
    status = _status_text(runs)
    counts_table = [
        '<table class="summary" id="phase-counts"><thead><tr><th>phase</th><th>runs</th></tr></thead><tbody>',
        *_phase_count_rows(counts, detail_counts(runs, labels)),
        f'<tr><th>total</th><td class="num" id="n-runs">{len(runs)}</td></tr>',
        "</tbody></table>",
    ]
    if status:
        counts_table.append(f'<p class="note">run status: {status}</p>')
    parts = ['<div class="row"><div>', *counts_table, "</div><div>"]
    parts += ['<table class="summary" id="hyperparameters"><tbody>', *_hyperparameter_rows(runs), "</tbody></table>"]
    if meta_rows:
        parts += ['<table class="summary" id="meta"><tbody>', *meta_rows, "</tbody></table>"]
    parts += ["</div></div>", *meta_blocks]
    return "\n".join(parts)


def _figure_div(fig: go.Figure, div_id: str) -> str:
    # plotly.js itself is inlined once in <head>, never per figure and never from a CDN.
    return pio.to_html(fig, full_html=False, include_plotlyjs=False, div_id=div_id, config=_PLOT_CONFIG, validate=False)


def _json_script(data: object) -> str:
    text = json.dumps(data, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")
    return f'<script type="application/json" id="{DATA_ID}">{text}</script>'


def _document(title: str, body: str) -> str:
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
{_ERROR_TRAP}
<style>{_CSS}</style>
<script>window.PlotlyConfig = {{MathJaxConfig: "local"}};</script>
<script>{plotly.offline.get_plotlyjs()}</script>
</head>
<body>
<pre id="{JS_ERRORS_ID}" hidden></pre>
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
    axes: Sequence[str | None] | None = None,
    facet: str | None = None,
    meta: Mapping[str, object] | None = None,
) -> str:
    """The whole report as one self-contained HTML document (plotly.js inlined once).

    ``axes``: the two hyperparameters of the phase diagram (default: the first two swept);
    ``facet``: a third one, one row of panels per value. A name that is not a hyperparameter of
    these runs is a ValueError that names it and lists the valid ones.
    """
    axes = resolve_axes(runs, axes)
    facet = resolve_facet(runs, facet, axes)
    meta = dict(meta or {})
    meta.setdefault("generated", datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
    meta.setdefault("grokgrid version", grokgrid_version())
    table = _sorted_table(runs, labels, [facet, *axes] if facet else list(axes))
    diagram = _build_diagram(table, axes, facet, None)
    curves = curve_data(metrics, table["run_id"].tolist())
    overview_rows, overview_note = overview_runs(table)
    overview = _overview_figure(table, curves, overview_rows, _run_labels(table, _identity_columns(table, [])), None)
    data = report_data(diagram, curves, axes, facet)

    plotted = " × ".join(display_name(a) for a in axes if a) or "no swept hyperparameter"
    if facet:
        plotted += f", one row per {display_name(facet)}"
    off_axes = _identity_columns(table, [*axes, facet])
    if off_axes:
        majority = (
            f"the majority phase of its runs (over {html.escape(', '.join(display_name(h) for h in off_axes))}; "
            "ties go to the phase listed first); 'k/n' marks cells whose runs disagree"
        )
    else:
        majority = "the phase of its run"
    body = "\n".join(
        [
            f"<h1>{html.escape(title)}</h1>",
            f'<p class="note">grokgrid sweep report: {len(runs):,} runs, phase diagram over {html.escape(plotted)}.</p>',
            "<h2>Summary</h2>",
            summary_html(runs, labels, meta),
            "<h2>Phase diagram</h2>",
            f'<p class="note">(a) Each cell shows {majority}; a white marker flags cells where at least half '
            "the runs carry a detail label (semi-grokking, ungrokking, misgrokking). (b) Median grokking delay "
            "t<sub>val</sub> − t<sub>train</sub> of the runs that generalised (grokking or comprehension; grey: none "
            "did). (c) Mean final val accuracy. Hover for every run's timings; click a cell to see its runs' curves "
            "below.</p>",
            _figure_div(diagram.figure, PHASE_DIAGRAM_ID),
            "<h2>Runs of the selected cell</h2>",
            f'<div id="{CELL_INFO_ID}"><p class="note">Click a cell of the phase diagram.</p></div>',
            _figure_div(cell_curves_figure(loss_log=_loss_axis_is_log(curves)), CELL_CURVES_ID),
            "<h2>Learning curves</h2>",
            f'<p class="note" id="overview-note">{html.escape(overview_note)} Colour: phase; click a legend entry to '
            "hide or show a phase's runs.</p>",
            _figure_div(overview, LEARNING_CURVES_ID),
            _json_script(data),
            _APP_JS,
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


def write_report(
    sweep_dir: PathLike,
    *,
    axes: Sequence[str | None] | None = None,
    facet: str | None = None,
    out: PathLike | None = None,
) -> Path | Location:
    """Read a results folder (a local path or a filesystem URI) and write ``report.html``
    atomically, in it or at ``out``; returns where it went (a Path when that is local).

    A bad axis or facet name is a ValueError (naming it and the valid ones) and writes nothing.
    """
    sweep_dir = as_location(sweep_dir)
    runs = store.read_runs(sweep_dir)
    labels = store.read_labels(sweep_dir)
    resolve_facet(runs, facet, resolve_axes(runs, axes))  # fail before reading the metrics
    metrics = store.read_metrics(sweep_dir)
    name = sweep_dir.name
    meta: dict[str, object] = {
        "sweep": name,
        "results folder": str(sweep_dir),
        "generated": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "grokgrid version": grokgrid_version(),
    }
    spec_path = sweep_dir / store.SPEC_FILE
    if spec_path.is_file():
        meta["spec"] = spec_path.read_text(encoding="utf-8")
    text = render_report(runs, labels, metrics, title=name, axes=axes, facet=facet, meta=meta)
    path = sweep_dir / store.REPORT_FILE if out is None else as_location(out)
    store.atomic_write_text(path, text)
    return path.local or path
