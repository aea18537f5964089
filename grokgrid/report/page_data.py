"""What the page's script needs besides the figures, gathered into one JSON-ready dict
(``report_data``): per cell its title, runs and place in the diagram, per run its labels, phase,
timings and reason, the encoded curves, the phase colours, and the cell shown before any click."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from grokgrid.phases import PHASE_COLORS, PHASES
from grokgrid.report.cells import FALLBACK_COLOR, UNLABELED, identity_columns, numeric_column
from grokgrid.report.curve_figures import run_labels
from grokgrid.report.curves import CurveData, encode_curves
from grokgrid.report.diagram import Diagram
from grokgrid.report.hover import cell_title
from grokgrid.report.style import SELECTION_COLOR

MAX_CELL_RUNS = 40  # runs drawn when a cell is clicked (the table lists them all)


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


def _json_value(v: object) -> object:
    if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
        return None
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return None if math.isnan(v) else float(v)
    return v


def report_data(diagram: Diagram, curves: CurveData, axes, facet) -> dict:
    """Everything the page's script needs: the cells (title, runs, where to draw the selection),
    each run's label, phase, timings and reason, and the encoded curves."""
    table, grid = diagram.table, diagram.grid
    identity = identity_columns(table, [*axes, facet])
    everything = identity_columns(table, [])
    members: dict[int, list[int]] = {}
    for i, c in enumerate(diagram.cell_of_run.tolist()):
        members.setdefault(c, []).append(i)
    cells = [
        dict(title=cell_title(cell, axes, facet), runs=members.get(k, []), row=row, x=_json_value(x), y=_json_value(y))
        for k, (cell, (row, x, y)) in enumerate(zip(grid.to_dict("records"), diagram.coordinates))
    ]

    def column(name: str, kind: str) -> list:
        if name not in table.columns:
            return [None] * len(table)
        if kind == "int":
            return [None if not math.isfinite(v) else int(v) for v in numeric_column(table, name)]
        if kind == "float":
            return [None if not math.isfinite(v) else round(float(v), 4) for v in numeric_column(table, name)]
        return ["" if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)) else str(v) for v in table[name]]

    runs = {
        "id": table["run_id"].astype(str).tolist(),
        "label": run_labels(table, everything),
        "short": run_labels(table, identity) if identity else ["run " + r for r in table["run_id"].astype(str)],
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
        "colors": {**PHASE_COLORS, UNLABELED: FALLBACK_COLOR},
        "max_cell_runs": MAX_CELL_RUNS,
        "selection_color": SELECTION_COLOR,
    }
