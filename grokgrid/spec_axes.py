"""The values of one grid axis (a list, a scalar or a range form) and the checks of a
hyperparameter's value: the building blocks the grid, the stages and the interventions share.
Standard library only (spec.py loads it without torch)."""

from __future__ import annotations

import math
from typing import Any, Mapping

from grokgrid import spec_checks as check
from grokgrid.spec_checks import SpecError

MAX_AXIS_VALUES = 100_000  # values of one grid axis (a finer axis is a typo, not a phase diagram)


def axis_values(where: str, raw: Any) -> list[float]:
    """A grid axis: a scalar, a list, or {logspace|linspace: [start, stop, num]}."""
    if isinstance(raw, Mapping):
        if len(raw) != 1 or next(iter(raw)) not in ("logspace", "linspace"):
            raise SpecError(where, f"unknown range form {dict(raw)!r}", "write a list, or {logspace: [1e-5, 1e-2, 4]}")
        kind, args = next(iter(raw.items()))
        if not isinstance(args, (list, tuple)) or len(args) != 3:
            raise SpecError(f"{where}.{kind}", f"expected [start, stop, num], got {args!r}", "write e.g. [1e-5, 1e-2, 4]")
        start, stop = check.number(f"{where}.{kind}[0]", args[0]), check.number(f"{where}.{kind}[1]", args[1])
        num = check.integer(f"{where}.{kind}[2]", args[2])
        check.at_least(f"{where}.{kind}[2]", num, 1)
        if num > MAX_AXIS_VALUES:  # checked before the values are built: a typo must answer at once
            raise SpecError(f"{where}.{kind}[2]", f"{num:,} values on one axis", f"use at most {MAX_AXIS_VALUES:,} (is it a typo?)")
        if kind == "logspace":
            for i, v in enumerate((start, stop)):
                check.at_least(f"{where}.logspace[{i}]", v, 0, strict=True)
            lo, hi = math.log10(start), math.log10(stop)
            return [round_value(10 ** (lo + (hi - lo) * i / max(num - 1, 1))) for i in range(num)]
        return [round_value(start + (stop - start) * i / max(num - 1, 1)) for i in range(num)]
    values = list(raw) if isinstance(raw, (list, tuple)) else [raw]
    if not values:
        raise SpecError(where, "empty list: the grid would have no runs", "give at least one value")
    return [check.number(f"{where}[{i}]" if isinstance(raw, (list, tuple)) else where, v) for i, v in enumerate(values)]


def round_value(value: float) -> float:
    # 12 significant digits: logspace(1e-5, 1e-2, 4) gives 1e-4 exactly, so run ids are stable.
    return float(f"{value:.12g}")


def check_hyperparameter(where: str, name: str, value: float) -> None:
    if name.endswith("_lr"):
        check.at_least(where, value, 0, strict=True)
    elif name.endswith("_wd"):
        check.at_least(where, value, 0)
    elif name == "init_scale":
        check.at_least(where, value, 0, strict=True)
    elif name == "train_fraction":
        if not 0 < value < 1:
            raise SpecError(where, f"must be in (0, 1), got {value:g}", "use a fraction such as 0.8")
    elif name == "seed":
        if value != int(value) or value < 0:
            raise SpecError(where, f"must be a non-negative integer, got {value:g}", "use e.g. 0")
