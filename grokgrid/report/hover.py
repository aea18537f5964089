"""The text shown when hovering over the phase diagram and above a clicked cell's curves: per
cell its axis values, majority phase, detail label and delay, and a line per run with its
timings, final accuracies and the classifier's reason (plotly's hover HTML subset, escaped)."""

from __future__ import annotations

import html
import math
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from grokgrid.report.axes import display_name, format_value
from grokgrid.report.cells import UNLABELED, identity_columns

_MAX_RUNS_IN_HOVER = 8


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


def cell_hover_texts(table: pd.DataFrame, grid: pd.DataFrame, cell_of_run: np.ndarray, axes, facet) -> list[str]:
    """cell_hover_text for every cell of ``grid`` (the phase panel's hovers), in grid order."""
    identity = identity_columns(table, [*axes, facet])
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


def map_hover_text(cell: Mapping[str, object], axes, facet, col: int) -> str:
    """Hover for a cell of the delay map (``col`` 1) or the accuracy map (``col`` 2): its axis
    values, the value and how many runs it is over, and the majority phase."""
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


def cell_title(cell: Mapping[str, object], axes, facet) -> str:
    """The heading above a clicked cell's runs: where it is, its phase and how many agree."""
    parts = [
        f"{display_name(name)} = {format_value(value, 4)}"
        for name, value in ((axes[0], cell["x"]), (axes[1], cell["y"]), (facet, cell["facet"]))
        if name
    ]
    where = " · ".join(parts) or "all runs"
    detail = f"; {cell['detail']} {cell['n_detail']}/{cell['n_runs']}" if cell["detail"] else ""
    return f"{where} — {cell['phase']} ({cell['n_majority']}/{cell['n_runs']} runs{detail})"
