"""Static figures of a sweep for papers: the phase diagram, the grokking delay and the final val
accuracy over two swept hyperparameters, and the runs' learning curves, written as PDF, SVG or
PNG (chosen by the file's suffix), a single journal column wide unless told otherwise.

Why matplotlib and not the report's plotly: plotly writes static images through kaleido, which
drives a headless Chrome that a cluster node or CI box rarely has; matplotlib renders PDF, SVG
and PNG itself (no browser, no display), embeds TrueType fonts that journals accept, and is the
figure library most papers in the field are made with, so a figure can be restyled by anyone.

What is drawn is the report's: cells from report.cells, axis scales from report.axes, colours and
markers from phases.PHASE_COLORS and report/style.py, theory lines from report.overlays, curves
from report.curves (the modules here only draw). Nothing imports this package but api.py (and
so the CLI).

    figures.write_figure("results/quickstart", "phase", out="phase.pdf")   # or .svg, .png
    fig = figures.render_figure(runs, labels, metrics, "delay", axes=("repr_lr", "decoder_lr"))
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Callable, Sequence

import matplotlib
import pandas as pd
from matplotlib.figure import Figure

from grokgrid import store
from grokgrid.figures import style
from grokgrid.figures.curves import check_rows, curves_figure
from grokgrid.figures.maps import MAP_KINDS, map_figure
from grokgrid.location import Location, PathLike, as_location
from grokgrid.refusal import Refused
from grokgrid.report.axes import resolve_axes, resolve_facet
from grokgrid.report.cells import sorted_table
from grokgrid.report.curve_figures import overview_runs

KINDS = (*MAP_KINDS, "curves")
FORMATS = {".pdf": "pdf", ".svg": "svg", ".png": "png"}
MAX_CURVE_RUNS = 16  # curves drawn by default: more lines than this make a column-wide panel a blur
MIN_DPI, MAX_DPI = 50, 2400

Metrics = pd.DataFrame | Callable[[list[str]], pd.DataFrame]


class BadOption(Refused):
    """An option a figure cannot be drawn with (a Refused: nothing is written). Its message is
    one line that starts with the option's name (``--axes: ...``) and says what to give instead."""

    def __init__(self, option: str, message: str):
        super().__init__(f"{option}: {message}")
        self.option = option


def output_format(out: PathLike) -> str:
    """'pdf', 'svg' or 'png', from the file's suffix; BadOption for any other."""
    suffix = Path(str(out)).suffix.lower()
    if suffix not in FORMATS:
        raise BadOption("--out", f"{str(out)!r}: the suffix picks the format; end the name in .pdf, .svg or .png")
    return FORMATS[suffix]


def check_options(kind: str, *, axes: Sequence[str] | None = None, width: float = style.COLUMN_WIDTH_IN,
                  dpi: int = style.PNG_DPI, max_runs: int | None = None, run_ids: Sequence[str] | None = None) -> None:
    """The checks that need no data: a known kind, a sane size, options that apply to the kind."""
    if kind not in KINDS:
        raise BadOption("--kind", f"unknown kind {kind!r}; use one of {', '.join(KINDS)}")
    if not style.MIN_WIDTH_IN <= width <= style.MAX_WIDTH_IN:
        raise BadOption("--width", f"{width:g} inches; give {style.MIN_WIDTH_IN:g} to {style.MAX_WIDTH_IN:g} "
                        f"(a journal column is about {style.COLUMN_WIDTH_IN:g}, a page about 7)")
    if not MIN_DPI <= dpi <= MAX_DPI:
        raise BadOption("--dpi", f"{dpi}; give {MIN_DPI} to {MAX_DPI} (print wants {style.PNG_DPI})")
    if kind == "curves" and axes is not None:
        raise BadOption("--axes", "the curves kind draws accuracy against the step; leave --axes out "
                        "(choose runs with --runs or --max-runs, panels with --facet)")
    if kind != "curves":
        for option, given in (("--runs", run_ids), ("--max-runs", max_runs)):
            if given is not None:
                raise BadOption(option, f"only the curves kind draws chosen runs; leave {option} out for --kind {kind}")
    if max_runs is not None and max_runs < 1:
        raise BadOption("--max-runs", f"{max_runs}; give 1 or more")
    if run_ids is not None and not list(run_ids):
        raise BadOption("--runs", "no run id given; give run ids separated by commas")


def render_figure(runs: pd.DataFrame, labels: pd.DataFrame, metrics: Metrics | None, kind: str, *,
                  axes: Sequence[str | None] | None = None, facet: str | None = None,
                  width: float = style.COLUMN_WIDTH_IN, threshold: float = 0.9, max_runs: int | None = None,
                  run_ids: Sequence[str] | None = None) -> Figure:
    """The figure of ``kind`` ('phase', 'delay', 'accuracy' or 'curves') for these tables (store.py's
    runs, labels and metrics; ``metrics`` only for 'curves', as a frame or a function of the run
    ids that returns their rows). ``axes``: two swept hyperparameters, x then y (default: the
    report's, the first two swept); ``facet``: one panel per value of another; ``threshold``:
    the phase threshold drawn on the curves. Bad options are BadOption."""
    check_options(kind, axes=axes if kind == "curves" else None, width=width, max_runs=max_runs, run_ids=run_ids)
    with matplotlib.rc_context(style.RC):
        if kind == "curves":
            facet = _checked("--facet", lambda: resolve_facet(runs, facet, (None, None)))
            table = sorted_table(runs, labels, [facet] if facet else [])
            rows = _checked("--runs", lambda: check_rows(table, list(run_ids))) if run_ids is not None \
                else overview_runs(table, max_runs or MAX_CURVE_RUNS)[0]
            ids = table["run_id"].iloc[rows].tolist()
            rows_of = metrics(ids) if callable(metrics) else metrics
            return curves_figure(table, rows_of, rows, facet, width, threshold)
        picked = _checked("--axes", lambda: resolve_axes(runs, axes))
        facet = _checked("--facet", lambda: resolve_facet(runs, facet, picked))
        table = sorted_table(runs, labels, [facet, *picked] if facet else list(picked))
        return map_figure(kind, table, picked, facet, width)


def _checked(option: str, call):
    """report.axes' ValueErrors (unknown, fixed or repeated names) as this option's BadOption."""
    try:
        return call()
    except ValueError as exc:
        raise BadOption(option, str(exc)) from None


def figure_bytes(fig: Figure, fmt: str, dpi: int = style.PNG_DPI) -> bytes:
    """The figure as a file's bytes: 'pdf', 'svg' or 'png' (``dpi`` for PNG; vector formats
    keep text as text)."""
    buffer = io.BytesIO()
    with matplotlib.rc_context(style.RC):
        fig.savefig(buffer, format=fmt, dpi=dpi, metadata=style.METADATA[fmt], facecolor="white")
    return buffer.getvalue()


def write_figure(sweep_dir: PathLike, kind: str, *, out: PathLike, axes: Sequence[str | None] | None = None,
                 facet: str | None = None, width: float = style.COLUMN_WIDTH_IN, dpi: int = style.PNG_DPI,
                 threshold: float = 0.9, max_runs: int | None = None,
                 run_ids: Sequence[str] | None = None) -> Path | Location:
    """Read a labelled results folder and write its ``kind`` figure to ``out`` atomically (a
    hidden temp file moved into place: the whole figure or nothing); the suffix of ``out``
    picks the format. Every option is checked, and the figure drawn, before anything is
    written. Returns where it went (a Path when local)."""
    fmt = output_format(out)
    check_options(kind, axes=axes if kind == "curves" else None, width=width, dpi=dpi, max_runs=max_runs,
                  run_ids=run_ids)
    sweep_dir = as_location(sweep_dir)
    runs, labels = store.read_runs(sweep_dir), store.read_labels(sweep_dir)
    fig = render_figure(runs, labels, lambda ids: store.read_metrics(sweep_dir, ids), kind, axes=axes, facet=facet,
                        width=width, threshold=threshold, max_runs=max_runs, run_ids=run_ids)
    data = figure_bytes(fig, fmt, dpi)
    target = as_location(out)
    target.write_bytes(data)
    return target.local or target


__all__ = ["BadOption", "FORMATS", "KINDS", "MAX_CURVE_RUNS", "check_options", "figure_bytes", "output_format",
           "render_figure", "write_figure"]
