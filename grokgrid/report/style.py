"""The look the report's figures share: plotly template, font, colours and marker symbols, and
the plot configuration of every figure on the page."""

from __future__ import annotations

# Markers drawn on phase-diagram cells where at least half the runs carry a detail label. White
# with a dark outline, so that they read on every phase colour.
DETAIL_SYMBOLS = {"semi-grokking": "diamond", "ungrokking": "triangle-down", "misgrokking": "x"}
# Outline of the selected cell (with a white inner line, so that it shows on every phase colour).
SELECTION_COLOR = "#111111"

FONT = dict(family="Helvetica Neue, Helvetica, Arial, sans-serif", size=13, color="#222")
TEMPLATE = "simple_white"
NO_VALUE_COLOR = "#EBEBEB"
# Sequential orange-brown (ColorBrewer YlOrBr without its near-white start, which would read as
# the grey "no value" cells): longer delays are darker.
DELAY_COLORSCALE = ["#FEE391", "#FEC44F", "#FE9929", "#EC7014", "#CC4C02", "#993404", "#662506"]
ACC_COLORSCALE = "Viridis"
PLOT_CONFIG = {
    "displaylogo": False,
    # SVG downloads drop straight into a paper.
    "toImageButtonOptions": {"format": "svg", "scale": 1},
}
