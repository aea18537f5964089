"""Where a refinement round adds runs: the cells of the phase diagram whose corners disagree.

Pure functions (no Ray, no files): ``propose`` takes the spec (its grid, ``refine`` section and
the rounds recorded so far) and the runs' phase labels, and returns the next round's points.

The diagram is one or two refined axes; every other swept axis is held at each of its values
(a *slice*). In each slice the cells start as the grid's (neighbouring values on each axis) and
form a quadtree: a cell whose centre is a point already is split into four (two on one axis).
A leaf cell whose corners all have labels, and whose labels are not all the same, is split by
this round: its centre is proposed, and the midpoint of each edge whose two ends disagree (an
edge whose ends agree is taken not to hold the boundary: its midpoint's label is read as theirs
when a later round needs it as a corner, ``_inferred``). A corner where a run sits but has no
label yet (unfinished, damaged) keeps its cells waiting.
A point's label is the phase most of its seeds got (ties: the first in PHASES order), so the
seeds of a point never disagree with each other about a boundary. Midpoints are geometric on an
axis the grid spans logarithmically (positive values over a decade or more), arithmetic
otherwise, rounded to 12 significant digits like the grid's own values (stable run ids).

Deterministic: the same spec and labels give the same points in the same order (slices in grid
order, then cells by position), and a ``max_runs`` cap keeps the first ones.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from typing import Iterable, Mapping, Sequence

from grokgrid.grid import RunConfig
from grokgrid.spec import SweepSpec
from grokgrid.spec_axes import round_value

PHASE_ORDER = ("comprehension", "grokking", "memorization", "confusion", "diverged")

Point = tuple  # the values of the diagram's axes and the slice's, in a fixed axis order


def is_log_axis(values: Sequence[float]) -> bool:
    """Positive values spanning a decade or more (learning rates, weight decays > 0)."""
    return min(values) > 0 and max(values) / min(values) >= 10


def midpoint(low: float, high: float, log: bool) -> float:
    return round_value(math.sqrt(low * high) if log else (low + high) / 2)


def point_labels(runs: Iterable[RunConfig], phases: Mapping[str, str], axes: Sequence[str]) -> dict[Point, str]:
    """The majority phase of each point's labelled seeds (a point: its values on ``axes``)."""
    votes: dict[Point, Counter] = {}
    for run in runs:
        phase = phases.get(run.run_id)
        if phase is None:  # unlabelled (unfinished, damaged): its point stays undecided
            continue
        values = run.hyperparameters()
        votes.setdefault(tuple(values[a] for a in axes), Counter())[phase] += 1
    return {point: max(counter, key=lambda p: (counter[p], -_rank(p))) for point, counter in votes.items()}


def _rank(phase: str) -> int:
    return PHASE_ORDER.index(phase) if phase in PHASE_ORDER else len(PHASE_ORDER)


def propose(spec: SweepSpec, runs: Sequence[RunConfig], phases: Mapping[str, str]) -> list[dict[str, float]]:
    """The next round's points (each a mapping of the refined and slice axes to values), at most
    as many as the remaining ``max_runs`` allows (a point trains one run per seed)."""
    refine = spec.refine
    if refine is None:
        return []
    diagram = list(refine.axes)
    slice_axes = [a for a in spec.grid.axes() if a != "seed" and a not in diagram and len(spec.grid.values(a)) > 1]
    axes = diagram + slice_axes
    labels = point_labels(runs, phases, axes)
    existing = {tuple(run.hyperparameters()[a] for a in axes) for run in runs}
    logs = [is_log_axis(spec.grid.values(a)) for a in diagram]
    proposed: list[Point] = []
    seen = set(existing)
    for held in itertools.product(*(spec.grid.values(a) for a in slice_axes)):
        in_slice = {point[: len(diagram)]: label for point, label in labels.items() if point[len(diagram):] == held}
        trained = {point[: len(diagram)] for point in existing if point[len(diagram):] == held}
        for cell in _leaf_cells(spec, diagram, logs, trained):
            corners = {c: in_slice.get(c) if c in trained else _inferred(c, in_slice) for c in _corners(cell)}
            if None in corners.values() or len(set(corners.values())) == 1:
                continue
            for new in _split_points(cell, logs, corners):
                point = (*new, *held)
                if point not in seen:
                    seen.add(point)
                    proposed.append(point)
    seeds = len(spec.grid.seed)
    if refine.max_runs is not None:
        room = max(0, refine.max_runs - refine.runs_added(seeds)) // seeds
        proposed = proposed[:room]
    return [dict(zip(axes, point)) for point in proposed]


def _leaf_cells(spec: SweepSpec, diagram: list[str], logs: list[bool], points: set[tuple]) -> list[tuple]:
    """The quadtree's leaves in one slice: a cell is ((low, high) per axis); it is split when its
    centre is a point."""
    spans = [sorted(spec.grid.values(a)) for a in diagram]
    cells = [tuple(zip(edges, edges[1:])) for edges in spans]
    leaves = []
    stack = [tuple(cell) for cell in itertools.product(*cells)]
    stack.reverse()
    while stack:  # depth first, in grid order: deterministic
        cell = stack.pop()
        centre = tuple(midpoint(lo, hi, log) for (lo, hi), log in zip(cell, logs))
        if centre in points:
            halves = [((lo, c), (c, hi)) for (lo, hi), c in zip(cell, centre)]
            stack.extend(reversed(list(itertools.product(*halves))))
        else:
            leaves.append(cell)
    return leaves


def _corners(cell: tuple) -> list[tuple]:
    return list(itertools.product(*cell))


def _split_points(cell: tuple, logs: list[bool], corners: Mapping[tuple, str]) -> list[tuple]:
    """The centre of a cell and the midpoints of the edges whose ends disagree (in one
    dimension: the midpoint). An edge whose ends agree is taken not to hold the boundary: its
    midpoint is not trained, and a later round reads its label as the ends' (``_inferred``)."""
    mids = [midpoint(lo, hi, log) for (lo, hi), log in zip(cell, logs)]
    if len(cell) == 1:
        return [(mids[0],)]
    (a_lo, a_hi), (b_lo, b_hi) = cell
    a, b = mids
    edges = [((a, b_lo), (a_lo, b_lo), (a_hi, b_lo)), ((a, b_hi), (a_lo, b_hi), (a_hi, b_hi)),
             ((a_lo, b), (a_lo, b_lo), (a_lo, b_hi)), ((a_hi, b), (a_hi, b_lo), (a_hi, b_hi))]
    return [(a, b)] + [mid for mid, one, other in edges if corners[one] != corners[other]]


def _inferred(point: tuple, labels: Mapping[tuple, str]) -> str | None:
    """The label of a point no run sits at: that of its nearest labelled neighbours on a line
    through it (along one axis, the other fixed) when the two agree; None otherwise."""
    for axis in range(len(point)):
        line = [p for p in labels if all(p[k] == point[k] for k in range(len(point)) if k != axis)]
        below = max((p for p in line if p[axis] < point[axis]), key=lambda p: p[axis], default=None)
        above = min((p for p in line if p[axis] > point[axis]), key=lambda p: p[axis], default=None)
        if below is not None and above is not None and labels[below] == labels[above]:
            return labels[below]
    return None
