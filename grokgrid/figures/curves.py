"""Learning curves as a paper figure: train (dashed) and val (solid) accuracy against the step
on a log axis, one panel per phase (or per value of a facet hyperparameter), each run in its
phase's colour, the phase threshold dotted and any stage boundary dashed.

The runs drawn are the report's choice when there are more than the cap (report.curve_figures.
overview_runs: seats per (phase, detail) group in proportion to its size, spread over the grid),
or those asked for by id; the curves are the report's downsampled ones (report.curves.curve_data,
at most MAX_CURVE_POINTS log-spaced steps per run) with step 0 drawn at half the first logged
step, as the x title says (report.curves.zero_step_x).
"""

from __future__ import annotations

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from grokgrid.figures.layout import Panels, panels
from grokgrid.report.axes import display_name, format_value, sorted_unique
from grokgrid.report.cells import ordered_phases, phase_color
from grokgrid.report.curves import CurveData, curve_data, plotted_steps, stage_ends, step_title, zero_step_x

VAL = dict(linestyle="-", linewidth=0.9, alpha=0.9)
TRAIN = dict(linestyle=(0, (3, 1.5)), linewidth=0.8, alpha=0.75)
THRESHOLD = dict(color="#777777", linestyle=":", linewidth=0.7)
STAGE = dict(color="#BBBBBB", linestyle="--", linewidth=0.6)


def curves_figure(table: pd.DataFrame, metrics: pd.DataFrame, rows: list[int], facet: str | None, width: float,
                  threshold: float) -> Figure:
    """Curves of ``table``'s ``rows`` (a labelled, sorted table: report.cells.sorted_table) from
    their ``metrics`` rows, one panel per phase present (or per ``facet`` value)."""
    picked = table.iloc[rows].reset_index(drop=True)
    curves = curve_data(metrics, picked["run_id"].tolist())
    groups = _groups(picked, facet)
    layout = panels(len(groups), width, aspect=0.75, colorbar=False, legend=True, titles=True, panel_min_in=1.2)
    zero_x = zero_step_x(curves.steps)
    ends = stage_ends(metrics)
    for k, (title, members) in enumerate(groups):
        ax = layout.axes[k]
        _panel(ax, curves, picked, members, zero_x, threshold, ends)
        ax.set_title(title if facet is not None else f"{title} ({_of(table, title, len(members))})", pad=3)
        _labels(ax, layout, k, bool((curves.steps == 0).any()), zero_x)
    layout.legend(_legend(picked, facet, threshold))
    return layout.fit_height()


def _groups(picked: pd.DataFrame, facet: str | None) -> list[tuple[str, list[int]]]:
    """(panel title, rows of ``picked``) per phase present, or per facet value."""
    if facet is None:
        return [(p, picked.index[picked["phase"] == p].tolist()) for p in ordered_phases(picked["phase"].tolist())]
    return [(f"{display_name(facet)} = {format_value(v)}", picked.index[picked[facet] == v].tolist())
            for v in sorted_unique(picked[facet])]


def _of(table: pd.DataFrame, phase: str, shown: int) -> str:
    total = int((table["phase"] == phase).sum())
    return f"{total} run{'s' if total != 1 else ''}" if shown == total else f"{shown} of {total} runs"


def _panel(ax: Axes, curves: CurveData, picked: pd.DataFrame, members: list[int], zero_x: float, threshold: float,
           ends: list[int]) -> None:
    for i in members:
        steps, values = curves.run(i)
        x = plotted_steps(steps, zero_x)
        color = phase_color(picked["phase"].iloc[i])
        ax.plot(x, values["train_acc"], color=color, **TRAIN)
        ax.plot(x, values["val_acc"], color=color, **VAL)
    ax.axhline(threshold, **THRESHOLD)
    for end in ends:
        ax.axvline(end, **STAGE)
    ax.set_xscale("log")
    ax.set_ylim(-0.03, 1.03)
    ax.set_yticks([0, 0.5, 1])


def _labels(ax: Axes, layout: Panels, k: int, has_zero: bool, zero_x: float) -> None:
    if layout.is_bottom(k):
        ax.set_xlabel(step_title(has_zero, zero_x))
    if layout.is_left(k):
        ax.set_ylabel("accuracy")
    else:
        ax.tick_params(axis="y", labelleft=False)


def _legend(picked: pd.DataFrame, facet: str | None, threshold: float) -> list:
    handles: list = [Line2D([], [], color="#222222", label="val", **VAL),
                     Line2D([], [], color="#222222", label="train", **TRAIN),
                     Line2D([], [], label=f"threshold {threshold:g}", **THRESHOLD)]
    if facet is not None:  # the panels are not per phase: the colours need naming
        handles += [Patch(facecolor=phase_color(p), label=p) for p in ordered_phases(picked["phase"].tolist())]
    return handles


def check_rows(table: pd.DataFrame, run_ids: list[str]) -> list[int]:
    """The table rows of ``run_ids`` (in table order); a ValueError naming the unknown ones."""
    known = dict(zip(table["run_id"].astype(str), range(len(table))))
    unknown = [r for r in run_ids if r not in known]
    if unknown:
        sample = ", ".join(list(known)[:3])
        raise ValueError(f"unknown run id(s) {', '.join(unknown[:3])}; give ids of this sweep's runs (e.g. {sample}: "
                         "`grokgrid.open(RESULTS).runs`)")
    return sorted({known[r] for r in run_ids})

