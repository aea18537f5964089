"""A sweep's ``expect:`` section: its paper's claims, as statements checkable on labelled runs.

Each item states one claim (``claim``, and optionally ``source``), may restrict it to some runs
(``where``: hyperparameter values or ranges) and holds exactly one check:

- ``phases``: {present: [...], absent: [...], min_runs: 1, min_distinct: N}: each present phase
  labels at least min_runs of the runs, each absent phase none, and at least N different phases
  label the runs;
- ``share``: {phases: [...], at_least: s, at_most: s}: the share of runs with one of the phases;
- ``trend``: {quantity, along, direction: increasing | decreasing, min_rank_correlation: 0.8}:
  the per-value median of a quantity (t_val, final_rqi, ...) rises or falls along an axis;
- ``fit``: {x, y, min_r2, slope: {min, max}}: a straight line y = a x + b over the runs, with
  x and y expressions such as ``log(init_scale) / decoder_wd``;
- ``leads``: {metric, ahead_of, threshold: 0.9, min_share: 1.0, moved: f}: a metric reaches the
  threshold no later than another one (commutativity before val accuracy); with ``moved``, the
  metric's own moment is when it has made f of its change over the run, first logged value to
  last, in whichever direction (a measure with no natural threshold, such as an entropy);
- ``reaches``: {metric, below | above, by_step, min_share: 1.0}: a metric crosses a value by a
  step (val loss below 1e-2 within 1.5x of a paper's step count);
- ``speedup``: {quantity: t_val, of: {...}, over: {...}, at_least: f}: the runs selected by
  ``of`` reach a time at least f times sooner (median against median) than those selected by
  ``over`` (Grokfast against the baseline); an ``over`` run that never gets there counts at its
  last step, so the factor is then a lower bound.

This module parses and validates (standard library only: spec.py loads it); verdicts.py computes
the verdicts. A claim is the paper's, written before looking at the results: the vocabulary has
no knob that turns a failed check into a pass after the fact.
"""

from __future__ import annotations

import ast
import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from grokgrid import spec_checks as check
from grokgrid.spec_checks import SpecError

PHASE_NAMES = ("comprehension", "grokking", "memorization", "confusion", "diverged",
               "semi-grokking", "ungrokking", "misgrokking")  # the four phases, diverged, and the details
# Per-run quantities of the labels (phases.py) ...
LABEL_QUANTITIES = ("t_train", "t_val", "gap", "t_semi", "t_drop", "final_train_acc", "final_val_acc",
                    "max_val_acc", "plateau_val_acc", "last_step")
# ... and the per-step metrics (store.METRICS_SCHEMA; tests check the two lists agree), whose
# value at a run's last logged step is the quantity final_<metric>.
METRICS = ("train_loss", "val_loss", "train_acc", "val_acc", "weight_norm", "repr_norm", "decoder_norm", "rqi",
           "commutativity_acc", "logit_efficiency", "perturbed_entropy")
QUANTITIES = LABEL_QUANTITIES + tuple(f"final_{m}" for m in METRICS if f"final_{m}" not in LABEL_QUANTITIES)
FUNCTIONS = {"log": math.log, "log10": math.log10, "exp": math.exp, "sqrt": math.sqrt, "abs": abs}
CHECKS = ("phases", "share", "trend", "fit", "leads", "reaches", "speedup")
TIMES = ("t_train", "t_val", "t_semi", "t_drop")  # the steps a run reaches something (a speedup's quantity)
DIRECTIONS = ("increasing", "decreasing")


# ----------------------------------------------------------------------------- the checks


@dataclass(frozen=True)
class PhasesCheck:
    present: tuple[str, ...] = ()
    absent: tuple[str, ...] = ()
    min_runs: int = 1
    min_distinct: int | None = None  # at least this many different phases (not details) among the runs


@dataclass(frozen=True)
class ShareCheck:
    phases: tuple[str, ...]
    at_least: float | None = None
    at_most: float | None = None


@dataclass(frozen=True)
class TrendCheck:
    quantity: str
    along: str
    direction: str
    min_rank_correlation: float = 0.8


@dataclass(frozen=True)
class FitCheck:
    x: str
    y: str
    min_r2: float
    slope_min: float | None = None
    slope_max: float | None = None

    def names(self) -> set[str]:
        return expression_names(self.x) | expression_names(self.y)


@dataclass(frozen=True)
class LeadsCheck:
    metric: str
    ahead_of: str
    threshold: float = 0.9
    min_share: float = 1.0
    moved: float | None = None  # the metric's moment: f of its first-to-last change (else: threshold)


@dataclass(frozen=True)
class ReachesCheck:
    """A metric crosses a value (``below`` or ``above``) by a step, in min_share of the runs."""

    metric: str
    by_step: int
    below: float | None = None
    above: float | None = None
    min_share: float = 1.0


@dataclass(frozen=True)
class Range:
    """A hyperparameter's allowed values: listed ones, or [low, high] (either may be None)."""

    values: tuple[Any, ...] = ()  # numbers, or a categorical axis' values (text, bools, layer lists as tuples)
    low: float | None = None
    high: float | None = None

    def to_data(self) -> Any:
        if self.values:
            listed = [list(v) if isinstance(v, tuple) else v for v in self.values]
            return listed[0] if len(listed) == 1 and not isinstance(self.values[0], tuple) else listed
        return {k: v for k, v in (("min", self.low), ("max", self.high)) if v is not None}


@dataclass(frozen=True)
class SpeedupCheck:
    """Runs ``of`` (a where: axis -> values) reach ``quantity`` at least ``at_least`` times
    sooner than runs ``over``: median(over) / median(of) >= at_least."""

    quantity: str
    of: tuple[tuple[str, Range], ...]
    over: tuple[tuple[str, Range], ...]
    at_least: float


Check = PhasesCheck | ShareCheck | TrendCheck | FitCheck | LeadsCheck | ReachesCheck | SpeedupCheck


@dataclass(frozen=True)
class Expectation:
    claim: str
    check: Check
    where: tuple[tuple[str, Range], ...] = ()
    source: str = ""

    @property
    def kind(self) -> str:
        return _KIND_OF[type(self.check)]

    def to_data(self) -> dict[str, Any]:
        """The item as written in a spec (what spec.yaml holds, read back equal)."""
        data: dict[str, Any] = {"claim": self.claim}
        if self.source:
            data["source"] = self.source
        if self.where:
            data["where"] = {axis: r.to_data() for axis, r in self.where}
        data[self.kind] = _check_data(self.check)
        return data

    def axes(self, hyperparameters: Sequence[str]) -> set[str]:
        """The hyperparameters this item names."""
        named = {axis for axis, _ in self.where}
        if isinstance(self.check, SpeedupCheck):
            named |= {axis for axis, _ in (*self.check.of, *self.check.over)}
        if isinstance(self.check, TrendCheck):
            named.add(self.check.along)
        if isinstance(self.check, FitCheck):
            named |= self.check.names() & set(hyperparameters)
        return named


_KIND_OF = {PhasesCheck: "phases", ShareCheck: "share", TrendCheck: "trend", FitCheck: "fit", LeadsCheck: "leads",
            ReachesCheck: "reaches", SpeedupCheck: "speedup"}


def _check_data(c: Check) -> dict[str, Any]:
    if isinstance(c, PhasesCheck):
        data: dict[str, Any] = {}
        if c.present:
            data["present"] = list(c.present)
        if c.absent:
            data["absent"] = list(c.absent)
        if c.min_runs != 1:
            data["min_runs"] = c.min_runs
        if c.min_distinct is not None:
            data["min_distinct"] = c.min_distinct
        return data
    if isinstance(c, ShareCheck):
        return {"phases": list(c.phases), **{k: v for k, v in (("at_least", c.at_least), ("at_most", c.at_most)) if v is not None}}
    if isinstance(c, TrendCheck):
        return {"quantity": c.quantity, "along": c.along, "direction": c.direction, "min_rank_correlation": c.min_rank_correlation}
    if isinstance(c, FitCheck):
        slope = {k: v for k, v in (("min", c.slope_min), ("max", c.slope_max)) if v is not None}
        return {"x": c.x, "y": c.y, "min_r2": c.min_r2, **({"slope": slope} if slope else {})}
    if isinstance(c, ReachesCheck):
        bound = {"below": c.below} if c.below is not None else {"above": c.above}
        return {"metric": c.metric, **bound, "by_step": c.by_step, "min_share": c.min_share}
    if isinstance(c, SpeedupCheck):
        return {"quantity": c.quantity, "of": {a: r.to_data() for a, r in c.of}, "over": {a: r.to_data() for a, r in c.over},
                "at_least": c.at_least}
    moved = {"moved": c.moved} if c.moved is not None else {}
    return {"metric": c.metric, "ahead_of": c.ahead_of, "threshold": c.threshold, "min_share": c.min_share, **moved}


# ----------------------------------------------------------------------------- parsing


def parse(raw: Any, axes: Sequence[str]) -> tuple[Expectation, ...]:
    """The ``expect`` section (a list of items) of a spec, or SpecError naming the field.
    ``axes``: the hyperparameter names a ``where``, ``along`` or expression may use."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise SpecError("expect", f"expected a list of claims, got {type(raw).__name__}", "write '- claim: ...' items")
    return tuple(_item(f"expect[{i}]", item, tuple(axes)) for i, item in enumerate(raw))


def _item(where: str, raw: Any, axes: tuple[str, ...]) -> Expectation:
    data = check.mapping(where, raw)
    check.reject_unknown(where, data, ("claim", "source", "where", *CHECKS))
    claim = data.get("claim")
    if not isinstance(claim, str) or not claim.strip():
        raise SpecError(f"{where}.claim", "missing or empty", "state the paper's claim in words, e.g. 'wd 0 does not grok'")
    source = data.get("source", "")
    if not isinstance(source, str):
        raise SpecError(f"{where}.source", f"expected text, got {type(source).__name__}", "quote it")
    kinds = [k for k in CHECKS if k in data]
    if len(kinds) != 1:
        found = f"{len(kinds)} ({', '.join(kinds)})" if kinds else "none"
        raise SpecError(where, f"needs exactly one check, found {found}", f"give one of {', '.join(CHECKS)}")
    kind = kinds[0]
    parsed = _PARSERS[kind](f"{where}.{kind}", check.mapping(f"{where}.{kind}", data[kind]), axes)
    return Expectation(claim=claim.strip(), check=parsed, where=_where(f"{where}.where", data.get("where"), axes), source=source)


def _where(where: str, raw: Any, axes: tuple[str, ...]) -> tuple[tuple[str, Range], ...]:
    data = check.mapping(where, raw)
    check.reject_unknown(where, data, axes)
    return tuple((axis, _range(f"{where}.{axis}", value)) for axis, value in data.items())


def _range(where: str, raw: Any) -> Range:
    if isinstance(raw, Mapping):
        check.reject_unknown(where, raw, ("min", "max"))
        if not raw:
            raise SpecError(where, "an empty range", "give min, max or both")
        low = None if raw.get("min") is None else check.number(f"{where}.min", raw["min"])
        high = None if raw.get("max") is None else check.number(f"{where}.max", raw["max"])
        if low is not None and high is not None and low > high:
            raise SpecError(where, f"min {low:g} is above max {high:g}", "swap them")
        return Range(low=low, high=high)
    values = raw if isinstance(raw, list) else [raw]
    if not values:
        raise SpecError(where, "an empty list", "give at least one value")
    return Range(values=tuple(_where_value(f"{where}[{i}]", v) for i, v in enumerate(values)))


def _where_value(where: str, raw: Any) -> Any:
    """A value a claim selects: a number, or a categorical axis' value (a loss name, a bool, a
    layer list), which spec.py checks against the grid."""
    if isinstance(raw, (bool, list)) or (isinstance(raw, str) and not _is_number(raw)):
        return tuple(raw) if isinstance(raw, list) else raw
    return check.number(where, raw)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _phase_list(where: str, raw: Any) -> tuple[str, ...]:
    values = raw if isinstance(raw, list) else [raw]
    return tuple(check.choice(f"{where}[{i}]", v, PHASE_NAMES) for i, v in enumerate(values))


def _share(where: str, raw: Any) -> float:
    value = check.number(where, raw)
    if not 0 <= value <= 1:
        raise SpecError(where, f"must be a share in [0, 1], got {value:g}", "use e.g. 0.5")
    return value


def _phases(where: str, data: Mapping[str, Any], axes: tuple[str, ...]) -> PhasesCheck:
    check.reject_unknown(where, data, PhasesCheck)
    present = _phase_list(f"{where}.present", data.get("present", []))
    absent = _phase_list(f"{where}.absent", data.get("absent", []))
    min_distinct = data.get("min_distinct")
    if min_distinct is not None:
        min_distinct = check.integer(f"{where}.min_distinct", min_distinct)
        if not 2 <= min_distinct <= 5:
            raise SpecError(f"{where}.min_distinct", f"must be 2 to 5 (the four phases and diverged), got {min_distinct}", "use e.g. 3")
    if not present and not absent and min_distinct is None:
        raise SpecError(where, "names no phase", "give present: [...], absent: [...] and/or min_distinct: N")
    if set(present) & set(absent):
        raise SpecError(where, f"{sorted(set(present) & set(absent))[0]} is both present and absent", "keep it in one list")
    min_runs = check.integer(f"{where}.min_runs", data.get("min_runs", 1))
    check.at_least(f"{where}.min_runs", min_runs, 1)
    return PhasesCheck(present=present, absent=absent, min_runs=min_runs, min_distinct=min_distinct)


def _share_check(where: str, data: Mapping[str, Any], axes: tuple[str, ...]) -> ShareCheck:
    check.reject_unknown(where, data, ShareCheck)
    if "phases" not in data:
        raise SpecError(f"{where}.phases", "missing", "name the phases whose share is claimed")
    bounds = {k: _share(f"{where}.{k}", data[k]) for k in ("at_least", "at_most") if data.get(k) is not None}
    if not bounds:
        raise SpecError(where, "no bound", "give at_least, at_most or both")
    if len(bounds) == 2 and bounds["at_least"] > bounds["at_most"]:
        raise SpecError(where, "at_least is above at_most", "swap them")
    return ShareCheck(phases=_phase_list(f"{where}.phases", data["phases"]), **bounds)


def _trend(where: str, data: Mapping[str, Any], axes: tuple[str, ...]) -> TrendCheck:
    check.reject_unknown(where, data, TrendCheck)
    for key in ("quantity", "along", "direction"):
        if key not in data:
            raise SpecError(f"{where}.{key}", "missing", f"give the trend's {key}")
    correlation = check.number(f"{where}.min_rank_correlation", data.get("min_rank_correlation", 0.8))
    if not 0 < correlation <= 1:
        raise SpecError(f"{where}.min_rank_correlation", f"must be in (0, 1], got {correlation:g}", "use e.g. 0.8")
    return TrendCheck(
        quantity=check.choice(f"{where}.quantity", data["quantity"], QUANTITIES),
        along=check.choice(f"{where}.along", data["along"], axes),
        direction=check.choice(f"{where}.direction", data["direction"], DIRECTIONS),
        min_rank_correlation=correlation,
    )


def _fit(where: str, data: Mapping[str, Any], axes: tuple[str, ...]) -> FitCheck:
    check.reject_unknown(where, data, ("x", "y", "min_r2", "slope"))
    for key in ("x", "y", "min_r2"):
        if key not in data:
            raise SpecError(f"{where}.{key}", "missing", "a fit needs x, y (expressions) and min_r2")
    names = (*axes, *QUANTITIES)
    x, y = (_expression(f"{where}.{k}", data[k], names) for k in ("x", "y"))
    min_r2 = check.number(f"{where}.min_r2", data["min_r2"])
    if not 0 < min_r2 <= 1:
        raise SpecError(f"{where}.min_r2", f"must be in (0, 1], got {min_r2:g}", "use e.g. 0.8")
    slope = _range(f"{where}.slope", data["slope"]) if "slope" in data else Range()
    if slope.values:
        raise SpecError(f"{where}.slope", "a list of values", "give a range: {min: ..., max: ...}")
    return FitCheck(x=x, y=y, min_r2=min_r2, slope_min=slope.low, slope_max=slope.high)


def _leads(where: str, data: Mapping[str, Any], axes: tuple[str, ...]) -> LeadsCheck:
    check.reject_unknown(where, data, LeadsCheck)
    for key in ("metric", "ahead_of"):
        if key not in data:
            raise SpecError(f"{where}.{key}", "missing", "a lead needs metric and ahead_of (metric names)")
    return LeadsCheck(
        metric=check.choice(f"{where}.metric", data["metric"], METRICS),
        ahead_of=check.choice(f"{where}.ahead_of", data["ahead_of"], METRICS),
        threshold=check.number(f"{where}.threshold", data.get("threshold", 0.9)),
        min_share=_share(f"{where}.min_share", data.get("min_share", 1.0)),
        moved=_moved(f"{where}.moved", data["moved"]) if "moved" in data else None,
    )


def _moved(where: str, value: Any) -> float:
    moved = check.number(where, value)
    if not 0 < moved <= 1:
        raise SpecError(where, f"must be in (0, 1], got {moved:g}", "the share of the metric's change, e.g. moved: 0.5 (half way)")
    return moved


def _reaches(where: str, data: Mapping[str, Any], axes: tuple[str, ...]) -> ReachesCheck:
    check.reject_unknown(where, data, ReachesCheck)
    for key in ("metric", "by_step"):
        if key not in data:
            raise SpecError(f"{where}.{key}", "missing", "e.g. {metric: val_loss, below: 0.01, by_step: 515}")
    bounds = [k for k in ("below", "above") if data.get(k) is not None]
    if len(bounds) != 1:
        raise SpecError(where, "needs exactly one of below and above", "e.g. below: 0.01 for a loss, above: 0.9 for an accuracy")
    by_step = check.integer(f"{where}.by_step", data["by_step"])
    check.at_least(f"{where}.by_step", by_step, 0)
    value = check.number(f"{where}.{bounds[0]}", data[bounds[0]])
    return ReachesCheck(metric=check.choice(f"{where}.metric", data["metric"], METRICS), by_step=by_step,
                        **{bounds[0]: value}, min_share=_share(f"{where}.min_share", data.get("min_share", 1.0)))


def _speedup(where: str, data: Mapping[str, Any], axes: tuple[str, ...]) -> SpeedupCheck:
    check.reject_unknown(where, data, SpeedupCheck)
    for key in ("of", "over", "at_least"):
        if key not in data:
            raise SpecError(f"{where}.{key}", "missing",
                            "e.g. {quantity: t_val, of: {training.grokfast.lamb: 2}, over: {training.grokfast.lamb: 0}, at_least: 10}")
    of, over = (_where(f"{where}.{key}", data[key], axes) for key in ("of", "over"))
    for key, selection in (("of", of), ("over", over)):
        if not selection:
            raise SpecError(f"{where}.{key}", "selects every run", "name the axis values of this group")
    if of == over:
        raise SpecError(f"{where}.over", "selects the same runs as 'of'", "select the runs to compare against (the baseline)")
    factor = check.number(f"{where}.at_least", data["at_least"])
    check.at_least(f"{where}.at_least", factor, 0, strict=True)
    return SpeedupCheck(quantity=check.choice(f"{where}.quantity", data.get("quantity", "t_val"), TIMES), of=of, over=over,
                        at_least=factor)


_PARSERS = {"phases": _phases, "share": _share_check, "trend": _trend, "fit": _fit, "leads": _leads, "reaches": _reaches,
            "speedup": _speedup}


# ----------------------------------------------------------------------------- expressions


def _expression(where: str, raw: Any, names: Sequence[str]) -> str:
    """An arithmetic expression over ``names`` (+ - * / **, numbers, and FUNCTIONS), checked."""
    if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
        raise SpecError(where, f"expected an expression, got {raw!r}", "write e.g. 'log(init_scale) / decoder_wd'")
    text = str(raw).strip()
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError:
        raise SpecError(where, f"cannot read {text!r}", "write e.g. 'log(init_scale) / decoder_wd'") from None
    for node in ast.walk(tree):
        problem = _disallowed(node, names)
        if problem:
            raise SpecError(where, f"{problem} in {text!r}", f"use {', '.join(FUNCTIONS)}, + - * / ** and the names {', '.join(names)}")
    return text


def _disallowed(node: ast.AST, names: Sequence[str]) -> str | None:
    if isinstance(node, ast.Name):
        return None if node.id in names or node.id in FUNCTIONS else f"unknown name {node.id!r}"
    if isinstance(node, ast.Call):
        ok = isinstance(node.func, ast.Name) and node.func.id in FUNCTIONS and len(node.args) == 1 and not node.keywords
        return None if ok else "a call other than one-argument " + "/".join(FUNCTIONS)
    if isinstance(node, ast.Constant):
        return None if isinstance(node.value, (int, float)) and not isinstance(node.value, bool) else f"the constant {node.value!r}"
    allowed = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow, ast.USub, ast.UAdd, ast.Load)
    return None if isinstance(node, allowed) else f"{type(node).__name__.lower()} is not allowed"


def expression_names(text: str) -> set[str]:
    """The variables an expression reads (not its functions)."""
    return {n.id for n in ast.walk(ast.parse(text, mode="eval")) if isinstance(n, ast.Name) and n.id not in FUNCTIONS}


def evaluate(text: str, variables: Mapping[str, Any]) -> Any:
    """The value of a checked expression; works elementwise on numpy arrays (FUNCTIONS map to
    numpy's where ``variables`` hold arrays)."""
    import numpy as np

    functions = {"log": np.log, "log10": np.log10, "exp": np.exp, "sqrt": np.sqrt, "abs": np.abs}
    code = compile(ast.parse(text, mode="eval"), "<expect>", "eval")
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return eval(code, {"__builtins__": {}}, {**functions, **variables})  # noqa: S307 - a checked expression
