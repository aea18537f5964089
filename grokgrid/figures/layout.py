"""The frame of a paper figure: a figure exactly ``width`` inches wide holding n panels in a grid
of columns that fits that width, with the legend above the panels and an optional colour bar on
their right. matplotlib's "compressed" constrained layout places them: the plain constrained
layout sizes a colour bar's room before fixed-aspect panels (square cells) shrink, and then cuts
the y title off at the left edge. No bbox cropping, so the file is the width asked for.

The figure is a bare ``matplotlib.figure.Figure``, never a pyplot one: no backend is chosen or
changed (a notebook's stays as it was), nothing is kept in pyplot's figure list, and no display
is needed. Saving picks the format's own renderer (Agg for PNG, the PDF and SVG backends).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from grokgrid.figures import style

PANEL_MIN_IN = 1.45  # narrowest map panel (ticks and labels still readable at 7 pt)
LEFT_IN, BOTTOM_IN, GAP_IN = 0.55, 0.42, 0.18
COLORBAR_IN = 0.8
LEGEND_ROW_IN, TITLE_IN = 0.17, 0.17
FIT_PAD_IN = 0.03


@dataclass
class Panels:
    figure: Figure
    axes: list[Axes]
    ncols: int
    panel_w_in: float
    panel_h_in: float
    width_in: float
    _legend_drawn: bool = field(default=False)

    @property
    def n(self) -> int:
        return len(self.axes)

    def is_bottom(self, k: int) -> bool:
        """No panel below this one (its x tick labels and title are drawn)."""
        return k + self.ncols >= self.n

    def is_left(self, k: int) -> bool:
        return k % self.ncols == 0

    def cell_points(self, nx: int, ny: int) -> float:
        """About how many points wide a cell of an nx x ny map is (decides what fits in it)."""
        return min(self.panel_w_in * 72 / max(nx, 1), self.panel_h_in * 72 / max(ny, 1))

    def legend(self, handles: list) -> None:
        """One legend above the panels, in as many columns as its entries fit the width."""
        if not handles or self._legend_drawn:
            return
        self._legend_drawn = True
        ncol = legend_columns(handles, self.width_in)
        rows = -(-len(handles) // ncol)
        # The panels' height was planned for one legend row: the figure grows by the others.
        self.figure.set_size_inches(self.width_in, self.figure.get_figheight() + (rows - 1) * LEGEND_ROW_IN)
        self.figure.legend(handles=row_major(handles, ncol), loc="outside upper center", ncol=ncol)

    def fit_height(self) -> Figure:
        """Make the figure as tall as its content needs at its width, and return it: the panels
        keep their shape (square cells), so at a planned height that was too small they would
        shrink and leave the width unused, and at one too large leave white space above and
        below. A few layout passes (tens of ms each) settle it."""
        fig = self.figure
        canvas = FigureCanvasAgg(fig)
        for _ in range(4):
            canvas.draw()
            box = fig.get_tightbbox(canvas.get_renderer())
            width, height = fig.get_size_inches()
            # Too short: the content is narrower than the figure; too tall: it is lower.
            need = height * min((width - 2 * FIT_PAD_IN) / max(box.width, 1e-6), 3.0) if box.width < width - 3 * FIT_PAD_IN \
                else box.height + 2 * FIT_PAD_IN
            if abs(need - height) < 0.02:
                break
            fig.set_size_inches(width, need)
        return fig

    def colorbar(self, mappable, label: str):
        return self.figure.colorbar(mappable, ax=self.axes, label=label, fraction=0.06, pad=0.03, aspect=22)


def legend_columns(handles: list, width_in: float) -> int:
    """Entries per legend row: as many as fit ``width_in`` at 7 pt (about 0.55 em per letter)."""
    widest = max(len(h.get_label()) for h in handles) * 0.55 * style.SMALL_PT / 72 + 0.35
    return max(1, min(len(handles), int(width_in // widest)))


def row_major(handles: list, ncol: int) -> list:
    """The handles in the order that makes matplotlib (which fills a legend column by column)
    show them row by row: phases read left to right in their order."""
    rows = -(-len(handles) // ncol)
    grid = [handles[r * ncol:(r + 1) * ncol] for r in range(rows)]
    return [row[c] for c in range(ncol) for row in grid if c < len(row)]


def panels(n: int, width_in: float, *, aspect: float, colorbar: bool, legend: bool, titles: bool = False, panel_min_in: float = PANEL_MIN_IN) -> Panels:
    """A figure ``width_in`` wide with ``n`` panels of height/width ``aspect`` (cells square on a
    map), in as many columns as fit (each at least ``panel_min_in`` wide); the height follows."""
    aspect = min(max(aspect, 0.12), 3.0)
    room = width_in - LEFT_IN - (COLORBAR_IN if colorbar else 0.1)
    ncols = max(1, min(n, int((room + GAP_IN) // (panel_min_in + GAP_IN))))
    nrows = math.ceil(n / ncols)
    panel_w = max((room - (ncols - 1) * GAP_IN) / ncols, 0.5)
    panel_h = panel_w * aspect
    top = (LEGEND_ROW_IN + 0.08 if legend else 0.08) + (TITLE_IN if titles else 0)
    height = top + BOTTOM_IN + nrows * panel_h + (nrows - 1) * (GAP_IN + (TITLE_IN if titles else 0) + 0.1)
    fig = Figure(figsize=(width_in, height), layout="compressed")
    fig.get_layout_engine().set(w_pad=0.02, h_pad=0.02, wspace=0.04, hspace=0.04)
    # Not shared: each panel gets the same scale set on it, and tick labels stay per panel.
    grid = fig.subplots(nrows, ncols, squeeze=False)
    flat = [ax for row in grid for ax in row]
    for ax in flat[n:]:  # the last row's empty places
        fig.delaxes(ax)
    for ax in flat[:n]:
        ax.set_box_aspect(aspect)
    return Panels(fig, flat[:n], ncols, panel_w, panel_h, width_in)
