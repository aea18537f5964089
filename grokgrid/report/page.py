"""The report as a page and a file: ``render_report`` fills the page skeleton (assets/page.html)
with the summary, the three figures, the page's CSS and scripts (assets/report.css,
error_trap.js, report.js), plotly.js (inlined once, never from a CDN) and one JSON blob holding
everything the script needs; ``write_report`` reads a results folder and writes the page
atomically.

The assets are package data (templates.py reads them), so that the page's HTML, CSS and
JavaScript live in files of their own language rather than in Python strings.
"""

from __future__ import annotations

import html
import json
from datetime import datetime, timezone
from pathlib import Path
from string import Template
from typing import Mapping, Sequence

import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
import plotly.offline

from grokgrid import store
from grokgrid.report import curve_figures
from grokgrid.report.axes import display_name, resolve_axes, resolve_facet
from grokgrid.report.cells import identity_columns, sorted_table
from grokgrid.report.curve_figures import cell_curves_figure, overview_figure, overview_runs, run_labels
from grokgrid.report.curves import curve_data, loss_axis_is_log, stage_ends
from grokgrid.report.diagram import build_diagram
from grokgrid.report.page_data import report_data
from grokgrid.report.style import PLOT_CONFIG
from grokgrid.report.summary import claims_html, summary_html
from grokgrid.report.templates import asset
from grokgrid.location import Location, PathLike, as_location

# Element ids of the page (tests and the browser check look for them). The page's script finds
# the data blob by DATA_ID and the error trap its <pre> by JS_ERRORS_ID (both spelled out in
# the assets); the other ids reach the script through the blob.
PHASE_DIAGRAM_ID = "grokgrid-phase-diagram"
CELL_CURVES_ID = "grokgrid-cell-curves"
CELL_INFO_ID = "grokgrid-cell-info"
LEARNING_CURVES_ID = "grokgrid-learning-curves"
JS_ERRORS_ID = "grokgrid-js-errors"
DATA_ID = "grokgrid-data"


def _figure_div(fig: go.Figure, div_id: str) -> str:
    # plotly.js itself is inlined once in <head>, never per figure and never from a CDN.
    return pio.to_html(fig, full_html=False, include_plotlyjs=False, div_id=div_id, config=PLOT_CONFIG, validate=False)


def _json_text(data: object) -> str:
    """JSON for a <script type="application/json"> element: no '</' that would end it early."""
    return json.dumps(data, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")


def _script_settings() -> dict:
    """What the page's script needs to know about the page: the elements it works on and the
    sizes of the click-a-cell view (as cell_curves_figure lays it out)."""
    return {
        "phase_diagram_id": PHASE_DIAGRAM_ID,
        "cell_curves_id": CELL_CURVES_ID,
        "cell_info_id": CELL_INFO_ID,
        "cell_height": curve_figures.CELL_HEIGHT,
        "cell_bottom": curve_figures.CELL_BOTTOM,
        "cell_legend_columns": curve_figures.CELL_LEGEND_COLUMNS,
        "cell_legend_row": curve_figures.CELL_LEGEND_ROW,
        "mark_label_flip": curve_figures.MARK_LABEL_FLIP,
    }


def _plotted_text(axes: Sequence[str | None], facet: str | None) -> str:
    """What the diagram is drawn over, for the page's first line."""
    plotted = " × ".join(display_name(a) for a in axes if a) or "no swept hyperparameter"
    if facet:
        plotted += f", one row per {display_name(facet)}"
    return plotted


def _majority_text(table: pd.DataFrame, axes: Sequence[str | None], facet: str | None) -> str:
    """What a cell's colour means: its one run's phase, or the majority over what is off the axes."""
    off_axes = identity_columns(table, [*axes, facet])
    if not off_axes:
        return "the phase of its run"
    return (
        f"the majority phase of its runs (over {html.escape(', '.join(display_name(h) for h in off_axes))}; "
        "ties go to the phase listed first); 'k/n' marks cells whose runs disagree"
    )


def render_report(
    runs: pd.DataFrame,
    labels: pd.DataFrame,
    metrics: pd.DataFrame,
    *,
    title: str,
    axes: Sequence[str | None] | None = None,
    facet: str | None = None,
    meta: Mapping[str, object] | None = None,
    verdicts: Sequence | None = None,
    unfinished: int = 0,
) -> str:
    """The whole report as one self-contained HTML document (plotly.js inlined once).

    ``verdicts``: the spec's claims checked on these runs (verdicts.Verdict), shown at the top
    (provisional while ``unfinished`` runs are not finished).

    ``axes``: the two hyperparameters of the phase diagram (default: the first two swept);
    ``facet``: a third one, one row of panels per value. A name that is not a hyperparameter of
    these runs is a ValueError that names it and lists the valid ones.
    """
    axes = resolve_axes(runs, axes)
    facet = resolve_facet(runs, facet, axes)
    meta = dict(meta or {})
    meta.setdefault("generated", datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
    meta.setdefault("grokgrid version", grokgrid_version())
    table = sorted_table(runs, labels, [facet, *axes] if facet else list(axes))
    diagram = build_diagram(table, axes, facet, None)
    curves = curve_data(metrics, table["run_id"].tolist())
    overview_rows, overview_note = overview_runs(table)
    ends = stage_ends(metrics)  # stage boundaries, drawn on every curve panel
    overview = overview_figure(table, curves, overview_rows, run_labels(table, identity_columns(table, [])), None, ends)
    data = {**report_data(diagram, curves, axes, facet), "stage_ends": ends, "page": _script_settings()}
    return Template(asset("page.html")).substitute(
        title=html.escape(title),
        error_trap=asset("error_trap.js"),
        css=asset("report.css"),
        plotly_js=plotly.offline.get_plotlyjs(),
        js_errors_id=JS_ERRORS_ID,
        n_runs=f"{len(runs):,}",
        plotted=html.escape(_plotted_text(axes, facet)),
        claims=claims_html(verdicts, unfinished),
        summary=summary_html(runs, labels, meta),
        majority=_majority_text(table, axes, facet),
        phase_diagram=_figure_div(diagram.figure, PHASE_DIAGRAM_ID),
        cell_info_id=CELL_INFO_ID,
        cell_curves=_figure_div(cell_curves_figure(loss_log=loss_axis_is_log(curves)), CELL_CURVES_ID),
        overview_note=html.escape(overview_note),
        learning_curves=_figure_div(overview, LEARNING_CURVES_ID),
        data_id=DATA_ID,
        data=_json_text(data),
        app_js=asset("report.js"),
    )


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
    verdicts: Sequence | None = None,
    unfinished: int = 0,
) -> Path | Location:
    """Read a results folder (a local path or a filesystem URI) and write ``report.html``
    atomically, in it or at ``out``; returns where it went (a Path when that is local).
    ``verdicts`` and ``unfinished``: as render_report's.

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
    text = render_report(runs, labels, metrics, title=name, axes=axes, facet=facet, meta=meta,
                         verdicts=verdicts, unfinished=unfinished)
    path = sweep_dir / store.REPORT_FILE if out is None else as_location(out)
    store.atomic_write_text(path, text)
    return path.local or path
