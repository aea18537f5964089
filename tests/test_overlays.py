"""Theory lines over the phase map (report/overlays.py): Liu's critical training fraction and
Lyu's t x lr ~ log(alpha) / lambda boundary, fitted from labelled runs, and drawn by the report."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from grokgrid import report
from grokgrid.report.overlays import critical_fraction, lyu_line, overlays


def fraction_table() -> pd.DataFrame:
    """Fractions 0.2-0.8 x decoder_wd 0.1 / 1, two seeds; generalised from 0.5 (wd 1: from 0.4),
    with one seed of wd 0.1 failing at 0.5 (share 1/2 there)."""
    rows = []
    for wd, start in ((0.1, 0.5), (1.0, 0.4)):
        for f in (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8):
            for seed in (0, 1):
                ok = f >= start and not (wd == 0.1 and f == 0.5 and seed == 1)
                rows.append({"train_fraction": f, "decoder_wd": wd, "seed": seed,
                             "phase": "grokking" if ok else "memorization"})
    frame = pd.DataFrame(rows)
    return frame.assign(run_id=[f"r{i}" for i in range(len(frame))], detail="", last_step=1000)


def test_the_critical_fraction_is_where_half_the_runs_generalise():
    line = dict(critical_fraction(fraction_table(), "decoder_wd"))
    assert math.isclose(line[0.1], 0.5)  # 0 at 0.4, 1/2 at 0.5: the crossing is at 0.5 itself
    assert math.isclose(line[1.0], 0.35)  # 0 at 0.3, 1 at 0.4: half way
    never = fraction_table().assign(phase="memorization")
    assert critical_fraction(never, "decoder_wd") == []


def lyu_table(c: float = 2.0, lr: float = 0.01, budget: int = 5000) -> pd.DataFrame:
    """alpha x lambda runs whose t_val follows t x lr = c log(alpha) / lambda; those past the
    budget do not generalise."""
    rows = []
    for alpha in (2.0, 4.0, 8.0, 16.0):
        for lam in (0.01, 0.02, 0.04):
            t = c * math.log(alpha) / lam / lr
            rows.append({"init_scale": alpha, "decoder_wd": lam, "decoder_lr": lr, "seed": 0,
                         "phase": "grokking" if t <= budget else "memorization", "t_val": t if t <= budget else np.nan})
    frame = pd.DataFrame(rows)
    return frame.assign(run_id=[f"r{i}" for i in range(len(frame))], detail="", last_step=budget)


def test_lyus_line_fits_c_and_puts_alpha_where_the_time_reaches_the_budget():
    c, line = lyu_line(lyu_table(), "decoder_wd", 5000)
    assert math.isclose(c, 2.0)
    for lam, alpha in line:
        assert math.isclose(alpha, math.exp(5000 * 0.01 * lam / 2.0))
    assert lyu_line(lyu_table().assign(decoder_lr=[0.01, 0.02] * 6), "decoder_wd", 5000) is None  # lr must be one


def test_only_the_overlays_a_diagram_has_axes_for_apply():
    table = fraction_table()
    assert [o.name for o in overlays(table, ("train_fraction", "decoder_wd"), 1000)] == ["critical fraction (Liu et al.)"]
    assert overlays(table, ("decoder_wd", "seed"), 1000) == []
    (line,) = overlays(lyu_table(), ("decoder_wd", "init_scale"), 5000)
    assert line.name.startswith("t = budget") and all(x in (0.01, 0.02, 0.04) for x, _ in line.points)


def test_the_report_draws_the_lines_over_the_phase_panel():
    table = fraction_table()
    runs = table[["run_id", "train_fraction", "decoder_wd", "seed"]]
    labels = table[["run_id", "phase", "detail", "last_step"]]
    fig = report.phase_diagram_figure(runs, labels, axes=("train_fraction", "decoder_wd"))
    go.Figure(fig.to_plotly_json())
    (theory,) = [t for t in fig.data if t.meta[0] == "theory"]
    assert list(theory.y) == [0.1, 1.0] and math.isclose(theory.x[1], 0.35) and theory.xaxis == "x"
    # A categorical axis (a loss's names) has no place between its values: no line.
    named = runs.assign(loss=runs["decoder_wd"].map({0.1: "ce", 1.0: "mse"}))
    named = named.rename(columns={"loss": "task.loss"})
    assert not [t for t in report.phase_diagram_figure(named, labels, axes=("train_fraction", "task.loss")).data
                if t.meta[0] == "theory"]
