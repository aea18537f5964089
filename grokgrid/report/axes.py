"""Which hyperparameters a report plots, and how their values read: the default and checked
choice of the diagram's axes and facet, display names, and compact number formats (no figures,
no HTML)."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd

from grokgrid.spec import HYPERPARAMETERS

DISPLAY_NAMES = {
    "repr_lr": "representation lr",
    "decoder_lr": "decoder lr",
    "repr_wd": "representation weight decay",
    "decoder_wd": "decoder weight decay",
    "init_scale": "init scale",
    "train_fraction": "training fraction",
    "seed": "seed",
    "train_subset": "training subset",
}


def display_name(hyperparameter: str) -> str:
    if hyperparameter.startswith("training."):  # an intervention's strength: "grokfast: lamb"
        return hyperparameter.removeprefix("training.").replace(".", ": ")
    if "." in hyperparameter:  # an extra axis, e.g. a stage field: "shrink.train_subset"
        owner, _, field = hyperparameter.partition(".")
        return f"{owner}: {display_name(field)}"
    return DISPLAY_NAMES.get(hyperparameter, hyperparameter.replace("_", " "))


def hyperparameter_columns(runs: pd.DataFrame) -> list[str]:
    """The seven hyperparameters, then the grid's extra axes (runs.parquet's dotted columns,
    e.g. a stage's ``shrink.train_subset``)."""
    return [h for h in HYPERPARAMETERS if h in runs.columns] + [c for c in runs.columns if "." in str(c)]


def swept_axes(runs: pd.DataFrame) -> list[str]:
    """Hyperparameters (seed excluded) that take more than one value, in HYPERPARAMETERS order."""
    return [h for h in hyperparameter_columns(runs) if h != "seed" and runs[h].nunique(dropna=True) > 1]


def independent_axes(runs: pd.DataFrame) -> list[str]:
    """The swept axes less those that move in step with an earlier one (tied on the grid:
    ``tie: [[repr_wd, decoder_wd]]``): a diagram of two such axes would be one diagonal."""
    picked: list[str] = []
    for h in swept_axes(runs):
        if not any(_in_step(runs, h, other) for other in picked):
            picked.append(h)
    return picked


def _in_step(runs: pd.DataFrame, a: str, b: str) -> bool:
    """Each value of ``a`` goes with one value of ``b`` and the other way round."""
    pairs = runs[[a, b]].astype(str).drop_duplicates()
    return pairs[a].is_unique and pairs[b].is_unique


def resolve_axes(runs: pd.DataFrame, axes: Sequence[str | None] | None = None) -> tuple[str | None, str | None]:
    """The (x, y) hyperparameters to plot; None where there is nothing to put on that axis.

    Default: the first two swept axes, an axis tied to an earlier one skipped (one swept axis
    gives a 1-D strip, none a single cell).
    """
    if axes is None:
        picked: list[str | None] = list(independent_axes(runs)[:2])
    else:
        if isinstance(axes, str) or not 1 <= len(axes) <= 2:
            raise ValueError(f"axes must be one or two hyperparameter names, got {axes!r}")
        picked = list(axes)
        valid = hyperparameter_columns(runs)
        for name in picked:
            if name is not None and name not in valid:
                raise ValueError(f"unknown axis {name!r}; valid axes for these runs: {', '.join(valid)}")
        if len(picked) == 2 and picked[0] is not None and picked[0] == picked[1]:
            raise ValueError(f"axes must differ, got {picked[0]!r} twice")
        _check_varies(runs, [n for n in picked if n is not None], "axis", "axes", varying_hyperparameters(runs))
    picked += [None] * (2 - len(picked))
    return picked[0], picked[1]


def resolve_facet(runs: pd.DataFrame, facet: str | None, axes: Sequence[str | None]) -> str | None:
    """Check the facet (small multiples) hyperparameter: any hyperparameter not on the axes."""
    if facet is None:
        return None
    valid = [h for h in hyperparameter_columns(runs) if h not in axes]
    if facet not in valid:
        what = "is already an axis" if facet in axes else "is not a hyperparameter of these runs"
        raise ValueError(f"facet {facet!r} {what}; valid facets: {', '.join(valid) or 'none'}")
    _check_varies(runs, [facet], "facet", "facets", [h for h in varying_hyperparameters(runs) if h not in axes])
    return facet


def varying_hyperparameters(runs: pd.DataFrame) -> list[str]:
    """Hyperparameters (seed included: it can be put on an axis) that take more than one value."""
    return [h for h in hyperparameter_columns(runs) if runs[h].nunique(dropna=True) > 1]


def _check_varies(runs: pd.DataFrame, names: Sequence[str], one: str, many: str, varying: Sequence[str]) -> None:
    """A named axis or facet with a single value would draw a 1 x 1 map (and overwrite the report
    with it): a ValueError naming it and listing those that vary. The message starts with ``one``
    ('axis' or 'facet'), which the CLI uses to name the option at fault."""
    fixed = [n for n in names if runs[n].nunique(dropna=True) <= 1]
    if not fixed:
        return
    values = [", ".join(format_value(v, 4) for v in runs[n].dropna().unique()) or "no value" for n in fixed]
    named = ", ".join(f"{n!r} (= {v})" for n, v in zip(fixed, values))
    verb = "has" if len(fixed) == 1 else "have"
    label = one if len(fixed) == 1 else many
    listed = ", ".join(varying) or "none"
    raise ValueError(f"{label} {named} {verb} a single value in these runs; {many} that vary: {listed}")


def axis_scale(values: Sequence[object]) -> str:
    """'log' for positive values spanning more than a decade (learning rates), 'category' for
    uneven spacing that a linear axis would squash (e.g. wd 0, 1e-3, 1e-2, 1), else 'linear'."""
    numbers = pd.to_numeric(pd.Series(list(values), dtype=object), errors="coerce")
    if len(numbers) == 0 or numbers.isna().any():
        return "category"
    v = np.sort(numbers.to_numpy(dtype=float))
    if v[0] > 0 and v[-1] / v[0] > 10:
        return "log"
    gaps = np.diff(v)
    if len(gaps) >= 2 and gaps.min() > 0 and gaps.max() / gaps.min() > 10:
        return "category"
    return "linear"


def format_value(value: object, digits: int = 3) -> str:
    """Compact text for a hyperparameter value: 1e-05 -> '1e-5', 0.0003 -> '0.0003', 7 -> '7'."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return "—"
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        text = f"{float(value):.{digits}g}"
        if "e" in text:
            mantissa, exponent = text.split("e")
            text = f"{mantissa}e{int(exponent)}"
        return text
    return str(value)


def format_steps(value: float) -> str:
    """A step count for colourbar ticks: 1, 10, 100, 1k, 10k, 100k, 1M."""
    for unit, size in (("M", 1e6), ("k", 1e3)):
        if abs(value) >= size:
            return f"{value / size:g}{unit}"
    return f"{value:g}"


def sorted_unique(values: pd.Series) -> list[object]:
    """The distinct values, numbers ascending before strings (an axis's or facet's order)."""
    return sorted(values.unique().tolist(), key=lambda v: (isinstance(v, str), v))
