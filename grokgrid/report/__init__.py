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

The package, one job per module (imports point down the list):

* ``axes``: which hyperparameters go on the axes and facet (checked), value formats;
* ``cells``: runs with their labels gathered into the diagram's cells (``phase_grid``), and the
  summary's counts (through phases.phase_counts / detail_counts);
* ``hover``: the hover texts of the diagram's cells and runs;
* ``style``, ``diagram_layout``, ``diagram``: the phase diagram figure (phase panel, delay and
  accuracy maps) in its hand-laid frame;
* ``curves``, ``curve_figures``: downsampled and encoded curves; the overview and click-a-cell
  figures;
* ``page_data``: the one JSON blob the page's script reads;
* ``summary``, ``page``: the summary tables, the page assembled from ``assets/`` (skeleton, CSS,
  scripts), and the file written.

The builders re-exported here (``phase_grid``, ``phase_diagram_figure``, ``cell_curves_figure``,
``learning_curves_figure``, ``curve_data``, ``report_data``, ``overview_runs``...) are public so
that tests (and notebooks) can check the data behind the pictures.

Pure plotly + pandas + numpy (and grokgrid.spec, stdlib and yaml): no torch or Ray import
(DESIGN.md section 2), so reports build on a laptop.
"""

from grokgrid.phases import DETAILS
from grokgrid.report.axes import (
    DISPLAY_NAMES,
    axis_scale,
    display_name,
    format_steps,
    format_value,
    hyperparameter_columns,
    resolve_axes,
    resolve_facet,
    swept_axes,
    varying_hyperparameters,
)
from grokgrid.report.cells import (
    GRID_COLUMNS,
    SINGLE_CELL,
    UNLABELED,
    labelled_runs,
    ordered_phases,
    phase_color,
    phase_grid,
    summary_counts,
)
from grokgrid.report.curve_figures import (
    MAX_OVERVIEW_RUNS,
    cell_curves_figure,
    learning_curves_figure,
    log_ticks,
    overview_runs,
)
from grokgrid.report.curves import (
    CURVE_METRICS,
    MAX_CURVE_POINTS,
    CurveData,
    curve_data,
    encode_curves,
    plotted_steps,
    step_title,
    zero_step_x,
)
from grokgrid.report.diagram import phase_diagram_figure
from grokgrid.report.diagram_layout import power_of_ten
from grokgrid.report.hover import cell_hover_text
from grokgrid.report.page import (
    CELL_CURVES_ID,
    CELL_INFO_ID,
    DATA_ID,
    JS_ERRORS_ID,
    LEARNING_CURVES_ID,
    PHASE_DIAGRAM_ID,
    grokgrid_version,
    render_report,
    write_report,
)
from grokgrid.report.page_data import MAX_CELL_RUNS, default_cell, report_data
from grokgrid.report.style import DETAIL_SYMBOLS, SELECTION_COLOR
from grokgrid.report.summary import summary_html
from grokgrid.spec import HYPERPARAMETERS

__all__ = [
    "CELL_CURVES_ID", "CELL_INFO_ID", "CURVE_METRICS", "CurveData", "DATA_ID", "DETAILS", "DETAIL_SYMBOLS",
    "DISPLAY_NAMES", "GRID_COLUMNS", "HYPERPARAMETERS", "JS_ERRORS_ID", "LEARNING_CURVES_ID", "MAX_CELL_RUNS",
    "MAX_CURVE_POINTS", "MAX_OVERVIEW_RUNS", "PHASE_DIAGRAM_ID", "SELECTION_COLOR", "SINGLE_CELL", "UNLABELED",
    "axis_scale", "cell_curves_figure", "cell_hover_text", "curve_data", "default_cell", "display_name",
    "encode_curves", "format_steps", "format_value", "grokgrid_version", "hyperparameter_columns",
    "labelled_runs", "learning_curves_figure", "log_ticks", "ordered_phases", "overview_runs", "phase_color",
    "phase_diagram_figure", "phase_grid", "plotted_steps", "power_of_ten", "render_report", "report_data",
    "resolve_axes", "resolve_facet", "step_title", "summary_counts", "summary_html", "swept_axes",
    "varying_hyperparameters", "write_report", "zero_step_x",
]  # fmt: skip
