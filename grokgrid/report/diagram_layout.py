"""The phase diagram's frame: its pixel geometry (rows of three panels with square cells, laid
out by hand), its axes and their ticks, the colourbars of the delay and accuracy maps, the panel
titles and facet labels. The traces inside it are diagram.py's."""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import plotly.io as pio

from grokgrid.report.axes import axis_scale, display_name, format_steps, format_value
from grokgrid.report.style import ACC_COLORSCALE, DELAY_COLORSCALE, FONT, TEMPLATE


def power_of_ten(exponent: int) -> str:
    """'10<sup>−4</sup>' (a true minus sign), as papers print learning rates."""
    return f"10<sup>{str(exponent).replace('-', '−')}</sup>" if exponent not in (0, 1) else ("1" if exponent == 0 else "10")


def axis_layout(name: str | None, values: list[object]) -> dict:
    """An x or y axis of the diagram over its sorted ``values`` (``name`` None: a hidden one):
    log, linear or category (axis_scale), ticks at the values, or one per decade when many."""
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


def axis_coordinates(values: list[object], layout: dict) -> list[object]:
    # A category axis is addressed by the tick texts, a numeric one by the values.
    return [format_value(v) for v in values] if layout["type"] == "category" else list(values)


@dataclass(frozen=True)
class Geometry:
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
    def fit(cls, nx: int, ny: int, rows: int, faceted: bool) -> "Geometry":
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


def axis_name(row: int, col: int) -> str:
    n = row * 3 + col + 1
    return "" if n == 1 else str(n)


def colorbar(geo: Geometry, col: int, ticks: list[float]) -> dict:
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


def diagram_annotations(geo: Geometry, facet: str | None, facets: list[object]) -> list[dict]:
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


def diagram_layout(
    geo: Geometry,
    axis_layouts: tuple[dict, dict],
    delay_decades: tuple[float, float],
    facet: str | None,
    facets: Sequence[object],
    title: str | None,
) -> dict:
    """The diagram's whole layout: size, legend, colour axes of the delay (log10 steps over
    ``delay_decades``) and accuracy maps, one x/y axis pair per panel, titles and facet labels."""
    x_layout, y_layout = axis_layouts
    delay_lo, delay_hi = delay_decades
    layout: dict = dict(
        template=pio.templates[TEMPLATE],
        font=FONT,
        width=geo.width,
        height=geo.height,
        autosize=False,
        # Laid out by hand (Geometry): plotly must not grow margins for the legend or the
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
            colorscale=DELAY_COLORSCALE,
            cmin=delay_lo,
            cmax=delay_hi,
            colorbar=colorbar(geo, 1, [float(v) for v in range(int(delay_lo), int(delay_hi) + 1)]),
        ),
        coloraxis2=dict(colorscale=ACC_COLORSCALE, cmin=0, cmax=1, colorbar=colorbar(geo, 2, [0, 0.25, 0.5, 0.75, 1])),
    )
    if title:
        layout["title"] = dict(text=title, x=0.0, xanchor="left")
    bottom = len(facets) - 1
    for row in range(len(facets)):
        for col in range(3):
            name = axis_name(row, col)
            # automargin off: the margins are laid out by hand (Geometry), and plotly growing
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
    layout["annotations"] = diagram_annotations(geo, facet, list(facets))
    return layout
