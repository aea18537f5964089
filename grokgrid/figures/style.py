"""The look of the paper figures: sizes in inches and points, the matplotlib settings they are
drawn under, and the report's colours and markers translated to matplotlib.

The colours are the report's own (phases.PHASE_COLORS via report.cells.phase_color, the delay and
accuracy scales of report/style.py), so a figure and the HTML report of a sweep agree; the phase
colours are Okabe-Ito (distinguishable under the common colour-vision deficiencies), the delay
scale is ColorBrewer YlOrBr and the accuracy scale viridis, both sequential and colour-blind safe.
"""

from __future__ import annotations

from matplotlib.colors import LinearSegmentedColormap

from grokgrid.report.style import ACC_COLORSCALE, DELAY_COLORSCALE, DETAIL_SYMBOLS, NO_VALUE_COLOR

# A single journal column (two-column layouts: 3.25-3.5 in); a double column is about 7 in.
COLUMN_WIDTH_IN = 3.4
MIN_WIDTH_IN, MAX_WIDTH_IN = 1.5, 20.0
PNG_DPI = 300  # the usual print requirement for raster figures
# Smallest type a journal accepts is about 6-7 pt at print size; nothing here is smaller than 7.
FONT_PT = 8
SMALL_PT = 7

# Written under these settings only (matplotlib.rc_context): a notebook's own rcParams and
# backend are left alone. Type 42 (TrueType) fonts in PDF and text as text in SVG keep labels
# editable and searchable, and journals' submission checks reject Type 3 fonts.
RC = {
    "font.family": "sans-serif",
    "font.sans-serif": ["Arial", "Helvetica", "Liberation Sans", "DejaVu Sans"],
    "font.size": FONT_PT,
    "axes.titlesize": FONT_PT,
    "axes.labelsize": FONT_PT,
    "xtick.labelsize": SMALL_PT,
    "ytick.labelsize": SMALL_PT,
    "legend.fontsize": SMALL_PT,
    "legend.title_fontsize": SMALL_PT,
    "figure.titlesize": FONT_PT,
    "axes.linewidth": 0.6,
    "xtick.major.width": 0.6,
    "ytick.major.width": 0.6,
    "xtick.minor.width": 0.4,
    "ytick.minor.width": 0.4,
    "xtick.major.size": 2.5,
    "ytick.major.size": 2.5,
    "xtick.minor.size": 1.5,
    "ytick.minor.size": 1.5,
    "lines.linewidth": 0.9,
    "legend.frameon": False,
    "legend.handlelength": 1.4,
    "legend.handletextpad": 0.4,
    "legend.columnspacing": 1.0,
    "legend.borderaxespad": 0.2,
    "hatch.linewidth": 0.5,
    "hatch.color": "#8C8C8C",
    "pdf.fonttype": 42,
    "ps.fonttype": 42,
    "svg.fonttype": "none",
    # Same input, same bytes: no random ids in SVG, no creation date in PDF (see METADATA).
    "svg.hashsalt": "grokgrid",
    "path.simplify": True,
}
# Per format: what savefig's ``metadata`` gets. A date would make every rewrite of an unchanged
# figure a new file (noise in a paper's git history).
METADATA = {
    "pdf": {"Creator": "grokgrid", "Producer": "matplotlib", "CreationDate": None},
    "svg": {"Creator": "grokgrid", "Date": None},
    "png": {"Software": "grokgrid (matplotlib)"},
}

# plotly marker symbols of the report -> matplotlib markers.
DETAIL_MARKERS = {"diamond": "D", "triangle-down": "v", "x": "X", "circle": "o"}
DETAIL_MARKER = {detail: DETAIL_MARKERS.get(symbol, "o") for detail, symbol in DETAIL_SYMBOLS.items()}

NO_VALUE = NO_VALUE_COLOR  # a cell with runs but no value (no run generalised: no delay)
NEVER_HATCH = "/////"
FADED_ALPHA = 0.35  # a refined diagram's lattice positions with no run: the nearest cell's phase, faded
CELL_LINE = 0.4  # white line between cells, in points
THEORY_LINE = dict(color="#111111", linewidth=1.0, linestyle=(0, (4, 2)), marker="o", markersize=2.5)

DELAY_CMAP = LinearSegmentedColormap.from_list("grokgrid_delay", DELAY_COLORSCALE)
ACC_CMAP = ACC_COLORSCALE.lower()  # "Viridis" in plotly: matplotlib's "viridis"
