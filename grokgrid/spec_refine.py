"""The ``refine:`` section: adaptive refinement of a phase diagram's boundaries (issue 18).

After the grid is labelled, each round adds runs inside the diagram's cells whose corners'
labels differ (refine.py decides where); the section names the one or two axes to refine,
the number of rounds and a cap on the runs they add. The rounds that happened are recorded in
the results folder's spec as ``points``: one list per round of the points it added, each a
mapping of the swept axes to values (the seeds are the grid's), so the refined runs are part of
the spec like the grid's (grid.expand) and a resume, status, verify or report sees them.
Standard library only (spec.py loads it without torch).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from grokgrid import spec_checks as check
from grokgrid.spec_checks import SpecError

MAX_ROUNDS = 20  # each round at most doubles the resolution: 20 is a million-fold, far past any need
FIELDS = ("axes", "rounds", "max_runs", "points")


@dataclass(frozen=True)
class RefineSpec:
    """``axes``: one or two per-run numeric axes with at least two grid values each; ``rounds``:
    how many rounds to run; ``max_runs``: a cap on the runs all rounds add (None: none);
    ``points``: the rounds done so far (each a tuple of points, a point a tuple of (axis, value)
    pairs in grid order), written by grokgrid, not by hand."""

    axes: tuple[str, ...]
    rounds: int = 3
    max_runs: int | None = None
    points: tuple[tuple[tuple[tuple[str, float], ...], ...], ...] = ()

    @property
    def rounds_done(self) -> int:
        return len(self.points)

    def runs_added(self, seeds: int) -> int:
        return sum(len(points) for points in self.points) * seeds

    def written(self) -> dict[str, Any]:
        data: dict[str, Any] = {"axes": list(self.axes), "rounds": self.rounds, "max_runs": self.max_runs}
        if self.points:
            data["points"] = [[dict(point) for point in points] for points in self.points]
        return data


def parse_refine(raw: Any, axes: tuple[str, ...], values: Mapping[str, tuple], refinable: tuple[str, ...]) -> RefineSpec | None:
    """The section, checked against the grid: ``axes`` are the grid's axes, ``values`` each
    one's grid values, ``refinable`` those a round may place new values on."""
    if raw is None:
        return None
    data = check.mapping("refine", raw)
    check.reject_unknown("refine", data, FIELDS)
    named = data.get("axes")
    if isinstance(named, str):
        named = [named]
    if not isinstance(named, list) or not 1 <= len(named) <= 2 or not all(isinstance(a, str) for a in named):
        raise SpecError("refine.axes", f"expected one or two axis names, got {named!r}", "write e.g. axes: [repr_lr, decoder_lr]")
    if len(set(named)) != len(named):
        raise SpecError("refine.axes", f"{named[0]} named twice", "name two different axes")
    for i, axis in enumerate(named):
        where = f"refine.axes[{i}]"
        if axis not in refinable:
            raise SpecError(where, f"{check.shown_key(axis)!r} cannot be refined",
                            f"refine a numeric per-run axis of the grid: {', '.join(refinable) or 'none'}")
        if len(values[axis]) < 2:
            raise SpecError(where, f"grid.{axis} has one value: there is no cell to refine", f"sweep {axis} on the grid first")
    rounds = check.integer("refine.rounds", data.get("rounds", RefineSpec.rounds))
    check.at_least("refine.rounds", rounds, 1)
    if rounds > MAX_ROUNDS:
        raise SpecError("refine.rounds", f"{rounds} rounds", f"use at most {MAX_ROUNDS} (each round halves the cells)")
    max_runs = data.get("max_runs")
    if max_runs is not None:
        max_runs = check.integer("refine.max_runs", max_runs)
        check.at_least("refine.max_runs", max_runs, 1)
    points = _points(data.get("points"), axes)
    if len(points) > rounds:
        raise SpecError("refine.points", f"{len(points)} rounds recorded, more than rounds {rounds}", "raise refine.rounds")
    return RefineSpec(axes=tuple(named), rounds=rounds, max_runs=max_runs, points=points)


def _points(raw: Any, axes: tuple[str, ...]) -> tuple[tuple[tuple[tuple[str, float], ...], ...], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise SpecError("refine.points", f"expected a list of rounds, got {type(raw).__name__}",
                        "leave points to grokgrid (it records each round's points there)")
    rounds = []
    for r, points in enumerate(raw):
        if not isinstance(points, list):
            raise SpecError(f"refine.points[{r}]", f"expected a list of points, got {type(points).__name__}", "a round is a list of points")
        parsed = []
        for i, point in enumerate(points):
            where = f"refine.points[{r}][{i}]"
            data = check.mapping(where, point)
            check.reject_unknown(where, data, axes)
            if not data:
                raise SpecError(where, "an empty point", "a point gives a value to each refined axis")
            # In grid order, so that equal points compare (and dump) equal however they were written.
            parsed.append(tuple((axis, check.number(f"{where}.{axis}", data[axis])) for axis in axes if axis in data))
        rounds.append(tuple(parsed))
    return tuple(rounds)
