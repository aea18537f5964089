"""Theory drawn over the phase map where a seed paper gives one, fitted from the runs (issue 18):

* Liu et al. 2022's critical training fraction, on a diagram with ``train_fraction`` on an axis:
  for each value of the other axis, the fraction at which the share of runs that generalised
  (comprehension or grokking) crosses one half, interpolated linearly between the neighbouring
  fractions of the grid (none where the share never crosses);
* Lyu et al. 2023's grokking time, t x lr ~ c log(alpha) / lambda, on a diagram of
  ``init_scale`` (alpha) against a weight decay (lambda): c is the median of t_val x lr x lambda /
  log(alpha) over the runs that generalised with alpha > 1, and the line is where that time
  equals the run's step budget, alpha*(lambda) = exp(budget x lr x lambda / c): above it a run is
  predicted not to generalise in time.

Pure functions of the labelled runs table (no plotly): each returns the line's points in axis
values (x, y) and a one-line description of the fit for the legend and hover.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

GENERALISED = ("comprehension", "grokking")
WEIGHT_DECAYS = ("decoder_wd", "repr_wd")


@dataclass(frozen=True)
class Overlay:
    name: str  # legend text
    points: list[tuple[float, float]]  # (x, y) in the diagram's axis values
    fit: str  # what was fitted, for the hover


def overlays(table: pd.DataFrame, axes: tuple[str | None, str | None], budget: int | None) -> list[Overlay]:
    """The overlays that apply to a diagram over ``axes`` (x, y); ``budget``: the runs' steps."""
    x, y = axes
    found = []
    if "train_fraction" in (x, y):
        other = y if x == "train_fraction" else x
        line = critical_fraction(table, other)
        if line:
            points = [(f, v) if x == "train_fraction" else (v, f) for v, f in line]
            found.append(Overlay("critical fraction (Liu et al.)", points,
                                 "where half the runs generalise, interpolated between the grid's fractions"))
    if budget is not None and "init_scale" in (x, y) and ({x, y} & set(WEIGHT_DECAYS)):
        wd = x if x in WEIGHT_DECAYS else y
        fitted = lyu_line(table, wd, budget)
        if fitted is not None:
            c, line = fitted
            points = [(w, a) if x == wd else (a, w) for w, a in line]
            found.append(Overlay("t = budget (Lyu et al.)", points,
                                 f"t x lr = c log(alpha) / lambda, c = {c:.3g} fitted; alpha where t reaches {budget:,} steps"))
    return found


def critical_fraction(table: pd.DataFrame, other: str | None) -> list[tuple[object, float]]:
    """(value of ``other``, critical fraction) for each value whose share of generalised runs
    crosses one half along the fraction (the first crossing from below)."""
    frame = table.assign(_ok=table["phase"].isin(GENERALISED).astype(float))
    groups = frame.groupby(other, sort=True) if other else [(None, frame)]
    line = []
    for value, rows in groups:
        share = rows.groupby("train_fraction")["_ok"].mean().sort_index()
        fractions, shares = share.index.to_numpy(dtype=float), share.to_numpy()
        for i in range(1, len(fractions)):
            if shares[i - 1] < 0.5 <= shares[i]:
                t = (0.5 - shares[i - 1]) / (shares[i] - shares[i - 1])
                line.append((value, float(fractions[i - 1] + t * (fractions[i] - fractions[i - 1]))))
                break
    return line


def lyu_line(table: pd.DataFrame, wd: str, budget: int) -> tuple[float, list[tuple[float, float]]] | None:
    """c fitted from the generalised runs, and (lambda, alpha*) at each positive lambda of the
    table; None without a single decoder lr or without runs to fit."""
    if table["decoder_lr"].nunique() != 1:
        return None
    lr = float(table["decoder_lr"].iloc[0])
    ok = table[table["phase"].isin(GENERALISED) & (table["init_scale"] > 1) & (table[wd] > 0) & table["t_val"].notna()]
    if ok.empty:
        return None
    c = float(np.median(ok["t_val"].to_numpy(float) * lr * ok[wd].to_numpy(float) / np.log(ok["init_scale"].to_numpy(float))))
    if not c > 0:
        return None
    lambdas = sorted(v for v in table[wd].unique() if v > 0)
    line = []
    for lam in lambdas:
        exponent = budget * lr * lam / c
        if exponent < 700:  # exp overflows past ~709: such an alpha is off any diagram
            line.append((float(lam), math.exp(exponent)))
    return c, line
