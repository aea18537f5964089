"""An axis of a static phase diagram: where each swept value's cell sits and where its edges
are, on the scale the report chooses (report.axes.axis_scale: log for positive values spanning
more than a decade, categories for uneven spacing, linear otherwise), and its ticks.

On a log axis a cell spans the geometric midpoints between neighbouring values, so that the
cells of a log-spaced grid are equally wide and each value sits at its cell's centre; on a
linear axis the arithmetic midpoints. A category axis (or a missing one) puts the values at 0, 1,
2, ... with their values as tick labels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from matplotlib.axes import Axes
from matplotlib.ticker import FixedLocator, NullLocator

from grokgrid.report.axes import axis_scale, display_name, format_value

MAX_LABELLED_VALUES = 7  # more values than this: a tick per decade (log) or matplotlib's ticks


@dataclass(frozen=True)
class Scale:
    """One axis: the hyperparameter (None: nothing on this axis), its sorted values, the scale
    ('log', 'linear' or 'category'), each value's centre and the cell edges (len(values) + 1)."""

    name: str | None
    values: list[object]
    kind: str
    centres: np.ndarray
    edges: np.ndarray

    def position(self, value: object) -> float:
        return float(self.centres[self.values.index(value)])

    def span(self, value: object) -> tuple[float, float]:
        i = self.values.index(value)
        return float(self.edges[i]), float(self.edges[i + 1])

    @property
    def label(self) -> str:
        return display_name(self.name) if self.name else ""


def scale_of(name: str | None, values: list[object]) -> Scale:
    """The axis for a hyperparameter and its sorted distinct values (report.axes.sorted_unique)."""
    kind = axis_scale(values) if name is not None and values else "category"
    if kind == "category":
        centres = np.arange(len(values), dtype=float)
        return Scale(name, values, kind, centres, np.arange(len(values) + 1, dtype=float) - 0.5)
    numbers = np.asarray(values, dtype=float)
    if kind == "log":
        logs = np.log10(numbers)
        return Scale(name, values, kind, numbers, 10.0 ** _edges(logs, 0.5))
    return Scale(name, values, kind, numbers, _edges(numbers, 0.5 * max(abs(numbers[0]), 1.0)))


def _edges(centres: np.ndarray, lone_half_width: float) -> np.ndarray:
    """Midpoints between neighbours, the ends half a neighbour's gap out (a single value:
    ``lone_half_width`` either side)."""
    if centres.size == 1:
        return np.array([centres[0] - lone_half_width, centres[0] + lone_half_width])
    mids = (centres[1:] + centres[:-1]) / 2
    return np.concatenate([[centres[0] - (mids[0] - centres[0])], mids, [centres[-1] + (centres[-1] - mids[-1])]])


def apply(scale: Scale, ax: Axes, which: str, show_labels: bool) -> None:
    """Set ``ax``'s x or y axis (``which``) to the scale: limits at the outer cell edges, ticks
    at the values (a tick per decade when there are many), the hyperparameter as the title."""
    axis = ax.xaxis if which == "x" else ax.yaxis
    set_scale, set_lim = (ax.set_xscale, ax.set_xlim) if which == "x" else (ax.set_yscale, ax.set_ylim)
    if scale.name is None:
        set_lim(-0.5, 0.5)
        axis.set_major_locator(NullLocator())
        axis.set_minor_locator(NullLocator())
        return
    if scale.kind == "log":
        set_scale("log")
    set_lim(scale.edges[0], scale.edges[-1])
    ticks, texts = _ticks(scale)
    axis.set_major_locator(FixedLocator(ticks))
    axis.set_minor_locator(NullLocator())  # minor log ticks would read as cell boundaries
    axis.set_ticklabels(texts)
    if not show_labels:  # an inner panel of a grid: its neighbour's labels say it
        ax.tick_params(axis=which, **({"labelbottom": False} if which == "x" else {"labelleft": False}))
        return
    axis.set_label_text(scale.label)
    if which == "x" and scale.kind == "category" and max(map(len, texts), default=0) * len(texts) > 24:
        for tick in axis.get_ticklabels():  # long category names side by side would overlap
            tick.set_rotation(35)
            tick.set_horizontalalignment("right")


def _ticks(scale: Scale) -> tuple[list[float], list[str]]:
    if scale.kind == "category":
        return scale.centres.tolist(), [format_value(v) for v in scale.values]
    numbers = np.asarray(scale.values, dtype=float)
    if scale.kind == "log":
        exponents = np.log10(numbers)
        if len(numbers) <= MAX_LABELLED_VALUES and np.allclose(exponents, np.round(exponents), atol=1e-9):
            return numbers.tolist(), [power_of_ten(int(round(e))) for e in exponents]
        # Values between decades (a logspace of 6 over 3 decades: 3.98e-5, 1.58e-4, ...) read
        # badly as labels: a tick per decade, where the log axis puts it among the cells.
        decades = range(math.ceil(exponents.min() - 1e-9), math.floor(exponents.max() + 1e-9) + 1)
        if len(decades) >= 2:
            return [10.0**k for k in decades], [power_of_ten(k) for k in decades]
        return numbers.tolist(), [format_value(v) for v in scale.values]
    if len(numbers) > MAX_LABELLED_VALUES:  # evenly thinned, the ends kept
        keep = np.unique(np.round(np.linspace(0, len(numbers) - 1, MAX_LABELLED_VALUES)).astype(int))
        return numbers[keep].tolist(), [format_value(scale.values[i]) for i in keep]
    return numbers.tolist(), [format_value(v) for v in scale.values]


def power_of_ten(exponent: int) -> str:
    """'$10^{-4}$' (mathtext, a true minus sign), as papers print learning rates."""
    return "1" if exponent == 0 else ("10" if exponent == 1 else f"$10^{{{exponent}}}$")
