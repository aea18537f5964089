"""Tests for grokgrid.report: the data behind the figures, the HTML document, the file round trip.
(tests/test_report_browser.py opens the document in a real browser.)"""

from __future__ import annotations

import base64
import json
import math
import re

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.offline
import pytest

from grokgrid import report, store
from grokgrid.phases import PHASE_COLORS, PHASES
from grokgrid.report.diagram_layout import axis_layout

REPR_LRS = (1e-4, 1e-3, 1e-2)
DECODER_LRS = (1e-5, 1e-4, 1e-3)
SEEDS = (0, 1)

# Phase per (repr_lr, decoder_lr) cell and seed; the (1e-3, 1e-4) cell's seeds disagree.
CELL_PHASES = {
    (1e-4, 1e-5): ("confusion", "confusion"),
    (1e-4, 1e-4): ("memorization", "memorization"),
    (1e-4, 1e-3): ("memorization", "memorization"),
    (1e-3, 1e-5): ("grokking", "grokking"),
    (1e-3, 1e-4): ("memorization", "grokking"),
    (1e-3, 1e-3): ("comprehension", "comprehension"),
    (1e-2, 1e-5): ("comprehension", "comprehension"),
    (1e-2, 1e-4): ("comprehension", "comprehension"),
    (1e-2, 1e-3): ("diverged", "diverged"),
}
STEPS = (0, 10, 100, 1000, 10000)


def _run_id(repr_lr: float, decoder_lr: float, seed: int) -> str:
    return f"r{REPR_LRS.index(repr_lr)}d{DECODER_LRS.index(decoder_lr)}s{seed}"


def make_runs() -> pd.DataFrame:
    rows = [
        dict(
            run_id=_run_id(r, d, s),
            pack_id="pack0",
            status="done",
            repr_lr=r,
            decoder_lr=d,
            repr_wd=0.0,
            decoder_wd=0.0,
            init_scale=1.0,
            train_fraction=0.5,
            seed=s,
        )
        for r in REPR_LRS
        for d in DECODER_LRS
        for s in SEEDS
    ]
    return pd.DataFrame(rows)


_TIMINGS = {  # phase -> (t_train, t_val, final_train_acc, final_val_acc)
    "comprehension": (100, 100, 1.0, 0.99),
    "grokking": (100, 10000, 1.0, 0.98),
    "memorization": (100, None, 1.0, 0.2),
    "confusion": (None, None, 0.4, 0.1),
    "diverged": (None, None, float("nan"), float("nan")),
}


def make_labels(runs: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for _, run in runs.iterrows():
        phase = CELL_PHASES[(run["repr_lr"], run["decoder_lr"])][run["seed"]]
        t_train, t_val, train_acc, val_acc = _TIMINGS[phase]
        gap = t_val - t_train if t_train is not None and t_val is not None else None
        rows.append(
            dict(
                run_id=run["run_id"],
                phase=phase,
                reason=f"synthetic {phase} <because>",
                t_train=t_train,
                t_val=t_val,
                gap=gap,
                final_train_acc=train_acc,
                final_val_acc=val_acc,
                max_val_acc=val_acc,
                last_step=STEPS[-1],
                val_before_train=False,
                detail="",
                t_semi=None,
                t_drop=None,
                plateau_val_acc=val_acc,
            )
        )
    frame = pd.DataFrame(rows, columns=list(store.LABELS_SCHEMA.names))
    for name in ("t_train", "t_val", "gap", "t_semi", "t_drop", "last_step"):
        frame[name] = frame[name].astype("Int64")
    return frame


def make_metrics_rows(run_id: str, phase: str) -> list[dict]:
    rows = []
    for i, step in enumerate(STEPS):
        frac = i / (len(STEPS) - 1)
        rows.append(
            dict(
                run_id=run_id,
                step=step,
                train_loss=1.0 - 0.9 * frac,
                val_loss=1.0 - 0.5 * frac if phase != "diverged" else float("nan"),
                train_acc=frac,
                val_acc=frac if phase in ("comprehension", "grokking") else 0.1,
                weight_norm=10.0 + frac,
                elapsed_s=float(step) / 1000,
            )
        )
    return rows


def make_metrics(labels: pd.DataFrame) -> pd.DataFrame:
    rows = [r for _, lab in labels.iterrows() for r in make_metrics_rows(lab["run_id"], lab["phase"])]
    return pd.DataFrame(rows, columns=list(store.METRICS_SCHEMA.names))


@pytest.fixture(scope="module")
def tables() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    runs = make_runs()
    labels = make_labels(runs)
    return runs, labels, make_metrics(labels)


@pytest.fixture(scope="module")
def document(tables) -> str:
    runs, labels, metrics = tables
    meta = {"sweep": "toy <lr>", "spec": "name: toy\naxes: [repr_lr, decoder_lr] # <x> & y\n"}
    return report.render_report(runs, labels, metrics, title="toy & <sweep>", meta=meta)


# ----------------------------------------------------------------------------- axes


def test_default_axes_are_the_first_two_swept_hyperparameters(tables):
    runs, _, _ = tables
    assert report.swept_axes(runs) == ["repr_lr", "decoder_lr"]
    assert report.resolve_axes(runs) == ("repr_lr", "decoder_lr")
    assert report.resolve_axes(runs, ("decoder_lr", "seed")) == ("decoder_lr", "seed")


def test_unknown_axis_is_a_value_error_naming_it_and_the_valid_ones(tables):
    runs, labels, metrics = tables
    with pytest.raises(ValueError, match=r"'learning_rate'.*repr_lr, decoder_lr"):
        report.render_report(runs, labels, metrics, title="t", axes=("learning_rate", "decoder_lr"))
    with pytest.raises(ValueError, match="differ"):
        report.resolve_axes(runs, ("repr_lr", "repr_lr"))


def test_one_swept_axis_gives_a_strip_and_none_a_single_cell(tables):
    runs, labels, _ = tables
    strip = runs[runs["decoder_lr"] == 1e-4]
    assert report.resolve_axes(strip) == ("repr_lr", None)
    grid = report.phase_grid(strip, labels)
    assert grid["x"].tolist() == list(REPR_LRS)
    assert set(grid["y"]) == {report.SINGLE_CELL}
    fig = report.phase_diagram_figure(strip, labels)
    assert fig.layout.xaxis.type == "log"

    single = runs[(runs["repr_lr"] == 1e-2) & (runs["decoder_lr"] == 1e-5)]
    assert report.resolve_axes(single) == (None, None)
    grid = report.phase_grid(single, labels)
    assert grid[["phase", "n_runs", "n_majority"]].values.tolist() == [["comprehension", 2, 2]]
    report.phase_diagram_figure(single, labels)  # builds without axes to plot


def test_axis_scale_picks_log_linear_or_category():
    assert report.axis_scale([1e-5, 1e-4, 1e-3, 1e-2]) == "log"
    assert report.axis_scale([0.3, 0.5, 0.7]) == "linear"
    assert report.axis_scale([1.0, 2.0, 4.0]) == "linear"  # positive but within a decade
    assert report.axis_scale([0.0, 1e-3, 1e-2, 1.0]) == "category"  # zero rules out log
    assert report.format_value(1e-5) == "1e-5"
    assert report.format_value(0.0003) == "0.0003"
    assert report.format_value(np.int64(3)) == "3"


# ----------------------------------------------------------------------------- phase grid


def test_phase_grid_takes_the_majority_over_seeds(tables):
    runs, labels, _ = tables
    grid = report.phase_grid(runs, labels, ("repr_lr", "decoder_lr"))
    assert len(grid) == 9
    assert list(grid.columns[:5]) == ["x", "y", "phase", "n_runs", "n_majority"]
    for _, cell in grid.iterrows():
        seeds = CELL_PHASES[(cell["x"], cell["y"])]
        assert cell["n_runs"] == 2
        assert sorted(cell["run_ids"]) == sorted(_run_id(cell["x"], cell["y"], s) for s in SEEDS)
        if seeds[0] == seeds[1]:
            assert (cell["phase"], cell["n_majority"]) == (seeds[0], 2)
    mixed = grid[(grid["x"] == 1e-3) & (grid["y"] == 1e-4)].iloc[0]
    # A 1-1 tie goes to the phase listed first in PHASES (grokking before memorization).
    assert (mixed["phase"], mixed["n_majority"], mixed["n_runs"]) == ("grokking", 1, 2)


def test_majority_phase_counts_and_breaks_ties_by_phases_order():
    # One cell per repr_lr, one run per seed (None: the run has no label yet).
    cell_phases = {
        1e-4: ["memorization", "grokking", "memorization"],
        1e-3: ["confusion", "comprehension"],
        1e-2: [None, "confusion"],
    }
    runs = pd.DataFrame(
        [dict(run_id=f"{lr}-{s}", repr_lr=lr, seed=s) for lr, ps in cell_phases.items() for s in range(len(ps))]
    )
    labels = pd.DataFrame(
        [dict(run_id=f"{lr}-{s}", phase=p) for lr, ps in cell_phases.items() for s, p in enumerate(ps) if p]
    )
    grid = report.phase_grid(runs, labels).set_index("x")
    majority = {lr: (grid.loc[lr, "phase"], grid.loc[lr, "n_majority"]) for lr in cell_phases}
    assert majority == {1e-4: ("memorization", 2), 1e-3: ("comprehension", 1), 1e-2: ("confusion", 1)}


def test_runs_without_a_label_count_as_unlabeled(tables):
    runs, labels, _ = tables
    some = labels[labels["run_id"] != _run_id(1e-2, 1e-3, 0)]
    grid = report.phase_grid(runs, some)
    cell = grid[(grid["x"] == 1e-2) & (grid["y"] == 1e-3)].iloc[0]
    assert (cell["phase"], cell["n_majority"], cell["n_runs"]) == ("diverged", 1, 2)
    counts, _ = report.summary_counts(runs, some)
    assert counts["diverged"] == 1 and counts[report.UNLABELED] == 1


def test_phase_counts_list_every_phase_with_zeros(tables):
    runs, labels, _ = tables
    counts, _ = report.summary_counts(runs, labels)
    assert list(counts)[: len(PHASES)] == list(PHASES)
    assert counts == {"comprehension": 6, "grokking": 3, "memorization": 5, "confusion": 2, "diverged": 2}
    no_confusion = labels[labels["phase"] != "confusion"]
    runs_left = runs[runs["run_id"].isin(no_confusion["run_id"])]
    assert report.summary_counts(runs_left, no_confusion)[0]["confusion"] == 0


def test_phase_grid_aggregates_delay_and_val_acc(tables):
    runs, labels, _ = tables
    grid = report.phase_grid(runs, labels).set_index(["x", "y"])
    # Delay: median t_val - t_train of the runs that generalised (grokking or comprehension).
    assert grid.loc[(1e-3, 1e-5), ["delay", "n_delay"]].tolist() == [9900.0, 2]
    assert grid.loc[(1e-3, 1e-4), ["delay", "n_delay"]].tolist() == [9900.0, 1]  # the memorization seed has none
    assert grid.loc[(1e-2, 1e-5), ["delay", "n_delay"]].tolist() == [0.0, 2]
    assert math.isnan(grid.loc[(1e-4, 1e-4), "delay"]) and grid.loc[(1e-4, 1e-4), "n_delay"] == 0
    assert grid.loc[(1e-3, 1e-4), "val_acc"] == pytest.approx((0.2 + 0.98) / 2)
    assert math.isnan(grid.loc[(1e-2, 1e-3), "val_acc"])  # diverged: NaN accuracies
    assert (grid["detail"] == "").all() and (grid["n_detail"] == 0).all()
    assert set(grid["facet"]) == {report.SINGLE_CELL}


# ----------------------------------------------------------------------------- facets


def faceted(tables):
    """The toy sweep with decoder_wd = 0 for seed 0 and 0.1 for seed 1 (one run per faceted cell)."""
    runs, labels, metrics = tables
    runs = runs.assign(decoder_wd=runs["seed"].map({0: 0.0, 1: 0.1}))
    return runs, labels, metrics


def test_facet_splits_the_grid_by_the_third_hyperparameter(tables):
    runs, labels, _ = faceted(tables)
    grid = report.phase_grid(runs, labels, facet="decoder_wd")
    assert len(grid) == 18 and set(grid["facet"]) == {0.0, 0.1}
    assert (grid["n_runs"] == 1).all()
    assert grid["facet"].tolist() == [0.0] * 9 + [0.1] * 9  # sorted by facet, then x, then y
    mixed = grid[(grid["x"] == 1e-3) & (grid["y"] == 1e-4)]
    assert mixed["phase"].tolist() == ["memorization", "grokking"]


def test_bad_facet_is_a_value_error_naming_it_and_the_valid_ones(tables):
    runs, labels, metrics = tables
    with pytest.raises(ValueError, match=r"facet 'wd' is not a hyperparameter.*valid facets: repr_wd, decoder_wd"):
        report.render_report(runs, labels, metrics, title="t", facet="wd")
    with pytest.raises(ValueError, match=r"facet 'repr_lr' is already an axis"):
        report.phase_grid(runs, labels, facet="repr_lr")


def _axis_px(fig, name):
    """(width, height) in pixels of the panel of x/y axis ``name`` ('' or '2'...)."""
    x0, x1 = fig.layout[f"xaxis{name}"].domain
    y0, y1 = fig.layout[f"yaxis{name}"].domain
    return (x1 - x0) * fig.layout.width, (y1 - y0) * fig.layout.height


def test_faceted_diagram_has_a_row_of_three_square_celled_panels_per_facet_value(tables):
    runs, labels, _ = faceted(tables)
    fig = report.phase_diagram_figure(runs, labels, facet="decoder_wd")
    rows = {t.meta[1] for t in fig.data if t.meta and t.meta[0] == "phase"}
    assert rows == {0, 1}
    for name in ("", "2", "3", "4", "5", "6"):
        w, h = _axis_px(fig, name)
        assert w == pytest.approx(h)  # 3 x 3 cells: square panels, square cells
    # Rows stack top to bottom without overlapping; panels of a row side by side.
    assert fig.layout.yaxis4.domain[1] < fig.layout.yaxis.domain[0]
    assert fig.layout.xaxis.domain[1] < fig.layout.xaxis2.domain[0] < fig.layout.xaxis3.domain[0]
    strips = [a.text for a in fig.layout.annotations if a.textangle == -90]
    assert strips == ["<b>decoder weight decay = 0</b>", "<b>decoder weight decay = 0.1</b>"]
    titles = [a.text for a in fig.layout.annotations if a.textangle != -90]
    assert titles[0].endswith("phase") and "grokking delay" in titles[1] and "final val accuracy" in titles[2]
    # Row 0 holds seed 0's phases, row 1 seed 1's.
    row1 = {t.name for t in fig.data if t.meta and t.meta[:2] == ("phase", 1)}
    assert "grokking" in row1
    # Only the bottom row shows x tick labels; only the first column y tick labels.
    assert fig.layout.xaxis.showticklabels is False and fig.layout.xaxis4.showticklabels is not False
    assert fig.layout.yaxis2.showticklabels is False and fig.layout.yaxis4.showticklabels is not False


# ----------------------------------------------------------------------------- phase diagram


def _traces(fig, kind, row=0):
    return [t for t in fig.data if t.meta and tuple(t.meta[:2]) == (kind, row)]


def _heatmaps(fig, row=0):
    return {t.name: t for t in _traces(fig, "phase", row)}


def test_figures_validate(tables):
    # The builders skip plotly.py's validation for speed; the result must still be valid.
    runs, labels, metrics = tables
    for fig in (
        report.phase_diagram_figure(runs, labels),
        report.phase_diagram_figure(*faceted(tables)[:2], facet="decoder_wd"),
        report.learning_curves_figure(runs, labels, metrics),
        report.cell_curves_figure(),
    ):
        go.Figure(fig.to_plotly_json())  # raises on an invalid property or value


def test_phase_diagram_colours_each_cell_by_its_phase(tables):
    runs, labels, _ = tables
    fig = report.phase_diagram_figure(runs, labels)
    grid = report.phase_grid(runs, labels)
    heatmaps = _heatmaps(fig)
    assert list(heatmaps) == [p for p in PHASES if p in set(grid["phase"])]
    xs, ys = list(heatmaps["grokking"].x), list(heatmaps["grokking"].y)
    assert xs == list(REPR_LRS) and ys == list(DECODER_LRS)
    for phase, trace in heatmaps.items():
        assert {c for _, c in trace.colorscale} == {PHASE_COLORS[phase]}
        z = np.array(trace.z, dtype=float)
        filled = {(xs[j], ys[i]) for i, j in zip(*np.nonzero(~np.isnan(z)))}
        assert filled == {(x, y) for x, y in grid.loc[grid["phase"] == phase, ["x", "y"]].itertuples(index=False)}
        # customdata: the cell's row in phase_grid (what a click selects), on its own cells only.
        for i, j in zip(*np.nonzero(~np.isnan(z))):
            k = trace.customdata[i][j]
            assert (grid.loc[k, "x"], grid.loc[k, "y"]) == (xs[j], ys[i])


def test_delay_and_accuracy_panels_show_the_grid_values(tables):
    runs, labels, _ = tables
    fig = report.phase_diagram_figure(runs, labels)
    grid = report.phase_grid(runs, labels)
    (delay,) = _traces(fig, "delay")
    (acc,) = _traces(fig, "val_acc")
    assert (delay.xaxis, acc.xaxis) == ("x2", "x3")
    xs, ys = list(delay.x), list(delay.y)
    for _, cell in grid.iterrows():
        i, j = ys.index(cell["y"]), xs.index(cell["x"])
        d, a = delay.z[i][j], acc.z[i][j]
        assert (d is None) == math.isnan(cell["delay"])
        if d is not None:
            assert d == pytest.approx(math.log10(max(cell["delay"], 1)))  # log colour scale
        assert (a is None) == math.isnan(cell["val_acc"])
        if a is not None:
            assert a == pytest.approx(cell["val_acc"])
    assert fig.layout.coloraxis2.cmin == 0 and fig.layout.coloraxis2.cmax == 1
    # Delays 0 .. 9900 steps: colour bar from 1 to 10k, ticks labelled in steps.
    assert (fig.layout.coloraxis.cmin, fig.layout.coloraxis.cmax) == (0, 4)
    assert list(fig.layout.coloraxis.colorbar.ticktext) == ["1", "10", "100", "1k", "10k"]
    assert "median of 1/2 runs" in delay.text[ys.index(1e-4)][xs.index(1e-3)]


def test_phase_diagram_legend_lists_each_present_phase_in_its_colour(tables):
    runs, labels, _ = tables
    fig = report.phase_diagram_figure(runs, labels)
    legend = [t for t in fig.data if t.showlegend]
    assert [t.name for t in legend] == ["comprehension", "grokking", "memorization", "confusion", "diverged"]
    assert all(t.marker.color == PHASE_COLORS[t.name] for t in legend)
    assert all(t.legendgroup == t.name for t in _heatmaps(fig).values())
    assert fig.layout.legend.orientation == "h"


def test_phase_diagram_uses_log_axes_with_value_ticks_for_learning_rates(tables):
    runs, labels, _ = tables
    fig = report.phase_diagram_figure(runs, labels)
    assert fig.layout.xaxis.type == "log" and fig.layout.yaxis.type == "log"
    assert list(fig.layout.xaxis.tickvals) == list(REPR_LRS)
    assert list(fig.layout.yaxis.ticktext) == ["10<sup>−5</sup>", "10<sup>−4</sup>", "10<sup>−3</sup>"]
    assert fig.layout.xaxis.title.text == "representation lr"
    assert fig.layout.yaxis.title.text == "decoder lr"
    assert fig.layout.template.layout.plot_bgcolor == "white"  # simple_white
    # Panels (b) and (c) share the axes: same values, y tick labels only on (a).
    assert fig.layout.xaxis2.matches == "x" and fig.layout.yaxis3.matches == "y"
    assert fig.layout.yaxis2.showticklabels is False


def test_axis_ticks_for_many_or_uneven_log_values():
    values = list(np.logspace(-5, -2, 10))
    layout = axis_layout("repr_lr", values)  # 10 values: one tick per decade
    assert layout["tickvals"] == pytest.approx([1e-5, 1e-4, 1e-3, 1e-2])
    assert layout["ticktext"][0] == "10<sup>−5</sup>"
    uneven = axis_layout("repr_lr", [1e-4, 3e-4, 1e-2])  # not powers of ten: the values
    assert uneven["ticktext"] == ["0.0001", "0.0003", "0.01"]
    assert report.power_of_ten(0) == "1" and report.power_of_ten(2) == "10<sup>2</sup>"


def test_phase_diagram_hover_names_hyperparameters_phase_and_timings(tables):
    runs, labels, _ = tables
    fig = report.phase_diagram_figure(runs, labels)
    trace = _heatmaps(fig)["grokking"]
    xs, ys = list(trace.x), list(trace.y)
    text = trace.text[ys.index(1e-4)][xs.index(1e-3)]  # the cell whose seeds disagree
    for part in ("representation lr", "0.001", "decoder lr", "0.0001", "1/2 runs", "seed=0", "seed=1",
                 "memorization", "t_train 100", "t_val 10000", "gap 9900", "train 1.000", "val 0.980",
                 "&lt;because&gt;", "grokking delay (median of 1): 9900 steps"):
        assert part in text, part
    (agree,) = _traces(fig, "agreement")
    assert list(agree.text) == ["1/2"]


def test_hover_lists_at_most_eight_runs_and_wraps_long_reasons():
    runs = pd.DataFrame({"run_id": [f"r{i}" for i in range(10)], "repr_lr": 1e-3, "seed": range(10)})
    labels = pd.DataFrame({"run_id": runs["run_id"], "phase": "grokking", "reason": "word " * 60})
    fig = report.phase_diagram_figure(runs, labels)
    text = _heatmaps(fig)["grokking"].text[0][0]
    assert text.count("run r") == 8 and "… and 2 more runs" in text
    assert max(len(line) for line in text.split("<br>")) < 130


def test_detail_labels_mark_their_cells_and_the_legend(tables):
    runs, labels, metrics = tables
    labels = labels.copy()
    both_grokked = labels["run_id"].isin([_run_id(1e-3, 1e-5, s) for s in SEEDS])
    labels.loc[both_grokked, "detail"] = "ungrokking"
    labels.loc[labels["run_id"] == _run_id(1e-4, 1e-4, 0), "detail"] = "semi-grokking"  # 1 of 2: marked
    labels.loc[labels["run_id"] == _run_id(1e-3, 1e-3, 0), "detail"] = "misgrokking"  # 1 of 2: marked
    grid = report.phase_grid(runs, labels).set_index(["x", "y"])
    assert grid.loc[(1e-3, 1e-5), ["detail", "n_detail"]].tolist() == ["ungrokking", 2]
    assert grid.loc[(1e-4, 1e-4), ["detail", "n_detail"]].tolist() == ["semi-grokking", 1]
    fig = report.phase_diagram_figure(runs, labels)
    markers = {t.name: t for t in _traces(fig, "detail")}
    assert set(markers) == {"semi-grokking", "ungrokking", "misgrokking"}
    assert (list(markers["ungrokking"].x), list(markers["ungrokking"].y)) == ([1e-3], [1e-5])
    assert markers["ungrokking"].marker.symbol == report.DETAIL_SYMBOLS["ungrokking"]
    legend = [t.name for t in fig.data if t.showlegend]
    assert legend[-3:] == ["semi-grokking", "ungrokking", "misgrokking"]
    assert report.summary_counts(runs, labels)[1] == {"semi-grokking": 1, "ungrokking": 2, "misgrokking": 1}
    summary = report.summary_html(runs, labels)
    assert re.search(r'of which ungrokking</td><td class="num" data-detail="ungrokking">2<', summary)
    # ...and its rows come right under the phase they refine.
    assert summary.index("of which ungrokking") > summary.index(">grokking<") > summary.index("of which misgrokking")


def test_labels_from_before_the_detail_column_still_render(tables):
    runs, labels, metrics = tables
    old = labels.drop(columns=["detail", "t_semi", "t_drop", "plateau_val_acc"])
    assert (report.phase_grid(runs, old)["detail"] == "").all()
    assert report.summary_counts(runs, old)[1] == dict.fromkeys(report.DETAILS, 0)
    nulls = labels.assign(detail=None)  # store.read_labels of an old file: nulls
    assert "<!DOCTYPE html>" in report.render_report(runs, nulls, metrics, title="old")


def test_non_log_axes(tables):
    runs, labels, _ = tables
    runs = runs.copy()
    runs["train_fraction"] = runs["seed"].map({0: 0.3, 1: 0.6})
    runs["decoder_wd"] = runs["repr_lr"].map({1e-4: 0.0, 1e-3: 1e-2, 1e-2: 1.0})
    fig = report.phase_diagram_figure(runs, labels, ("decoder_wd", "train_fraction"))
    assert fig.layout.xaxis.type == "category"
    assert list(fig.layout.xaxis.categoryarray) == ["0", "0.01", "1"]
    assert fig.layout.yaxis.type == "linear"
    assert report.phase_grid(runs, labels, ("decoder_wd", "train_fraction"))["n_runs"].tolist() == [3] * 6


def test_default_cell_prefers_a_grokking_cell_that_agrees(tables):
    runs, labels, _ = tables
    grid = report.phase_grid(runs, labels)
    k = report.default_cell(grid)
    assert (grid.loc[k, "x"], grid.loc[k, "y"], grid.loc[k, "phase"]) == (1e-3, 1e-5, "grokking")
    no_grokking = grid[grid["phase"] != "grokking"]
    assert no_grokking.loc[report.default_cell(no_grokking), "phase"] == "comprehension"
    assert report.default_cell(grid.iloc[:0]) == -1


# ----------------------------------------------------------------------------- curves


def test_curve_data_keeps_every_step_in_order_for_each_run(tables):
    runs, labels, metrics = tables
    ids = ["r0d0s0", "r2d2s1", "missing"]
    shuffled = metrics.sample(frac=1.0, random_state=1)
    curves = report.curve_data(shuffled, ids)
    assert curves.run_ids == ids and list(np.diff(curves.offsets)) == [5, 5, 0]
    steps, values = curves.run(0)
    assert list(steps) == [0, 10, 100, 1000, 10000]  # step 0 too: the figures place it (zero_step_x)
    expected = metrics[metrics["run_id"] == "r0d0s0"]
    for m in report.CURVE_METRICS:
        np.testing.assert_array_equal(values[m], expected[m].to_numpy())
    assert np.isnan(curves.run(1)[1]["val_loss"]).all()  # a diverged run's NaN losses stay NaN


def test_curve_data_downsamples_long_runs_to_log_spaced_steps():
    n = 5000
    metrics = pd.DataFrame(
        {"run_id": np.repeat(["a", "b"], n), "step": np.tile(np.arange(1, n + 1) * 10, 2), "val_acc": np.arange(2.0 * n)}
    )
    curves = report.curve_data(metrics.iloc[::-1], ["a", "b"], max_points=50)  # any row order
    steps, values = curves.run(0)
    assert 40 <= steps.size <= 52
    assert steps[0] == 10 and steps[-1] == n * 10  # first and last step always kept
    assert (np.diff(steps) > 0).all()
    ratios = steps[1:] / steps[:-1]
    assert ratios[-10:].max() < 1.3  # log-spaced: even ratios, not the dense linear tail
    np.testing.assert_array_equal(values["val_acc"], steps / 10 - 1)  # values stay with their steps
    np.testing.assert_array_equal(curves.run(1)[0], steps)
    assert np.isnan(values["train_loss"]).all()  # a metric the frame lacks is NaN


def test_curve_data_keeps_step_0_when_downsampling():
    n = 5000
    metrics = pd.DataFrame({"run_id": "a", "step": np.arange(n + 1) * 10, "val_acc": np.arange(n + 1.0)})
    steps, values = report.curve_data(metrics, ["a"], max_points=50).run(0)
    assert list(steps[:2]) == [0, 10]  # step 0, then the first positive step the log spacing starts at
    assert steps[-1] == n * 10 and (np.diff(steps) > 0).all()
    assert steps.size <= 52
    assert (steps[1:] / np.maximum(steps[:-1], 1))[-10:].max() < 1.3  # still log-spaced
    np.testing.assert_array_equal(values["val_acc"], steps / 10)


def test_step_0_is_drawn_at_half_the_first_step_and_said_so(tables):
    runs, labels, metrics = tables
    assert report.zero_step_x(np.array([0, 10, 100])) == 5.0
    assert report.zero_step_x(np.array([0, 1, 2])) == 0.5
    assert report.zero_step_x(np.array([0])) == 1.0
    fig = report.learning_curves_figure(runs, labels, metrics)
    lines = [t for t in fig.data if t.meta[1] != "legend"]
    for t in lines:
        # Drawn at 5 (a log axis has no 0), hovered as what it is: step 0.
        assert t.x[0] == 5.0 and t.customdata[0] == 0
        np.testing.assert_array_equal(t.x[1:], t.customdata[1:])
        assert "step %{customdata}" in t.hovertemplate and "%{x}" not in t.hovertemplate
    titles = {fig.layout[f"xaxis{i}"].title.text for i in ("", "2", "3", "4", "5")}
    assert titles == {"step (step 0 drawn at 5)"}
    # Runs that never logged step 0 keep the plain title and their steps as they are.
    later = report.learning_curves_figure(runs, labels, metrics[metrics["step"] > 0])
    assert {later.layout[f"xaxis{i}"].title.text for i in ("", "2", "3", "4", "5")} == {"step"}
    assert all(min(t.x) == 10 for t in later.data if t.meta[1] != "legend")


def test_every_curves_panel_has_a_step_x_title(tables):
    runs, labels, metrics = tables
    overview = report.learning_curves_figure(runs, labels, metrics)
    for name in ("", "2", "3", "4", "5"):  # xaxis6 is the empty slot (hidden)
        assert overview.layout[f"xaxis{name}"].title.text.startswith("step"), name
    assert overview.layout.xaxis6.visible is False
    cell = report.cell_curves_figure()
    for name in ("", "2", "3"):
        assert cell.layout[f"xaxis{name}"].title.text == "step", name


def _decode_curves(encoded: dict, i: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Run i's (steps, values) back from the page's encoded curves, as the page's script does."""
    n = np.asarray(encoded["n"], dtype=np.int64)
    offset = int(n[:i].sum())
    steps = np.frombuffer(base64.b64decode(encoded["patterns"][encoded["pattern"][i]]), dtype="<f8")
    values = {}
    for m, blob in encoded["values"].items():
        v = np.frombuffer(base64.b64decode(blob), dtype="<f2")[offset : offset + n[i]].astype(np.float64)
        values[m] = 10**v if m in encoded["log_values"] else v
    return steps, values


def test_encoded_curves_round_trip_within_float16_precision(tables):
    runs, labels, metrics = tables
    metrics = metrics.assign(train_loss=metrics["train_loss"] * 1e-7)  # tiny losses survive (log10 stored)
    ids = runs["run_id"].tolist()
    curves = report.curve_data(metrics, ids)
    encoded = report.encode_curves(curves)
    json.dumps(encoded)  # JSON-ready
    assert len(encoded["patterns"]) == 1  # every run logged the same steps: one shared pattern
    for i in range(len(ids)):
        steps, values = _decode_curves(encoded, i)
        want_steps, want = curves.run(i)
        np.testing.assert_array_equal(steps, want_steps)
        for m in report.CURVE_METRICS:
            np.testing.assert_allclose(values[m], want[m], rtol=2e-2, atol=1e-3, equal_nan=True)


def test_overview_shows_every_run_when_few():
    table = pd.DataFrame({"phase": ["grokking"] * 5, "detail": [""] * 5})
    rows, note = report.overview_runs(table, max_runs=10)
    assert rows == list(range(5)) and note == "All 5 runs are shown."


def test_overview_picks_runs_per_phase_and_detail_in_proportion():
    phases = ["memorization"] * 900 + ["grokking"] * 95 + ["confusion"] * 5
    details = [""] * 900 + ["ungrokking"] * 2 + [""] * 93 + [""] * 5
    table = pd.DataFrame({"phase": phases, "detail": details})
    rows, note = report.overview_runs(table, max_runs=100)
    picked = table.iloc[rows]
    assert len(rows) <= 100 and rows == sorted(set(rows))
    counts = picked.groupby(["phase", "detail"]).size().to_dict()
    assert counts[("confusion", "")] == 3 and counts[("grokking", "ungrokking")] == 2  # floors
    assert 85 <= counts[("memorization", "")] <= 90 and 8 <= counts[("grokking", "")] <= 10
    mem = [r for r in rows if r < 900]
    assert mem[0] == 0 and mem[-1] == 899  # spread over the whole group, not its first rows
    assert note.startswith(f"Showing {len(rows)} of 1,000 runs")


def test_learning_curves_have_five_traces_per_run_coloured_by_phase(tables):
    runs, labels, metrics = tables
    fig = report.learning_curves_figure(runs, labels, metrics)
    runs_traces: dict[str, list] = {}
    for t in fig.data:
        if t.meta[1] != "legend":
            runs_traces.setdefault(t.meta[2], []).append(t)
    assert set(runs_traces) == set(runs["run_id"])
    phase_of = dict(zip(labels["run_id"], labels["phase"]))
    for run_id, traces in runs_traces.items():
        assert sorted(t.meta[1] for t in traces) == sorted(report.CURVE_METRICS)
        assert {t.line.color for t in traces} == {PHASE_COLORS[phase_of[run_id]]}
        assert all(min(t.x) > 0 for t in traces)  # step 0 drawn at a positive step: log x axis
        assert not any(t.showlegend for t in traces)
    legend = [t.name for t in fig.data if t.showlegend]
    assert legend == list(PHASES)  # one entry per phase, toggling its runs (legendgroup)
    assert all(fig.layout[f"xaxis{i}"].type == "log" for i in ("", "2", "3", "4", "5"))
    assert fig.layout.yaxis4.type == "log"  # train loss: positive
    assert fig.layout.legend.groupclick == "togglegroup"
    names = {t.name for t in fig.data}
    assert "repr_lr=0.001, decoder_lr=0.0001, seed=1" in names


def test_learning_curves_are_capped_and_the_page_says_so(tables):
    runs, labels, metrics = tables
    fig = report.learning_curves_figure(runs, labels, metrics, max_runs=6)
    shown = {t.meta[2] for t in fig.data if t.meta[1] != "legend"}
    assert len(shown) == 6  # a hard cap, even with five (phase, detail) groups of 2..6 runs


def test_log_ticks():
    assert report.log_ticks(1e-9, 1.0) == {"dtick": 2}
    assert report.log_ticks(10, 1e5) == {"dtick": 1}
    ticks = report.log_ticks(0.21, 2.6)
    assert ticks["ticktext"] == ["0.2", "0.5", "1", "2"]
    assert report.log_ticks(0, 1) == {}


# ----------------------------------------------------------------------------- HTML


def _page_data(document: str) -> dict:
    m = re.search(rf'<script type="application/json" id="{report.DATA_ID}">(.*?)</script>', document, re.S)
    return json.loads(m.group(1))


def test_report_embeds_plotly_js_exactly_once_and_loads_nothing(document):
    assert document.startswith("<!DOCTYPE html>")
    bundle = plotly.offline.get_plotlyjs()
    assert document.count(bundle) == 1
    assert '<script src="http' not in document
    # Outside the bundle (whose only cdn.plot.ly URL is the unused geo topojson default), nothing
    # points at the network.
    ours = document.replace(bundle, "")
    assert "cdn.plot.ly" not in ours and "src=" not in ours and "http://" not in ours.replace("http://www.w3.org", "")
    assert document.count('class="plotly-graph-div"') == 3
    for element in (report.PHASE_DIAGRAM_ID, report.CELL_CURVES_ID, report.LEARNING_CURVES_ID, report.CELL_INFO_ID):
        assert f'id="{element}"' in document
    assert 'on("plotly_click"' in document


def test_report_traps_js_errors_before_anything_runs(document):
    trap = document.index('window.addEventListener("error"')
    assert trap < document.index(plotly.offline.get_plotlyjs()[:200])
    assert f'<pre id="{report.JS_ERRORS_ID}" hidden></pre>' in document


def test_page_assets_ship_in_the_package_and_find_the_page_by_its_ids():
    from importlib import resources

    assets = resources.files("grokgrid.report").joinpath("assets")
    names = {"page.html", "summary.html", "report.css", "error_trap.js", "report.js"}
    assert names <= {p.name for p in assets.iterdir()}
    # The two ids the scripts spell out themselves; every other one reaches them in the data blob.
    assert f'"{report.JS_ERRORS_ID}"' in assets.joinpath("error_trap.js").read_text(encoding="utf-8")
    assert f'"{report.DATA_ID}"' in assets.joinpath("report.js").read_text(encoding="utf-8")


def test_report_data_lets_a_click_show_each_cells_runs(tables, document):
    runs, labels, _ = tables
    data = _page_data(document)
    grid = report.phase_grid(runs, labels)
    assert len(data["cells"]) == len(grid)
    ids = data["runs"]["id"]
    for k, cell in enumerate(data["cells"]):
        assert sorted(ids[r] for r in cell["runs"]) == sorted(grid.loc[k, "run_ids"])
        assert (cell["row"], cell["x"], cell["y"]) == (0, grid.loc[k, "x"], grid.loc[k, "y"])
    k = data["default_cell"]
    assert data["cells"][k]["title"] == "representation lr = 0.001 · decoder lr = 1e-5 — grokking (2/2 runs)"
    r = ids.index("r1d0s1")
    assert data["runs"]["short"][r] == "seed=1"
    assert data["runs"]["label"][r] == "repr_lr=0.001, decoder_lr=1e-5, seed=1"
    assert (data["runs"]["t_train"][r], data["runs"]["t_val"][r], data["runs"]["gap"][r]) == (100, 10000, 9900)
    assert data["runs"]["reason"][r] == "synthetic grokking <because>"
    steps, values = _decode_curves(data["curves"], r)
    assert list(steps) == [0, 10, 100, 1000, 10000]  # the true steps; the script draws step 0 at 5
    assert data["colors"]["grokking"] == PHASE_COLORS["grokking"]


def test_report_escapes_its_embedded_json(tables):
    runs, labels, metrics = tables
    labels = labels.assign(reason="</script><script>alert(1)</script>")
    document = report.render_report(runs, labels, metrics, title="t")
    assert "</script><script>alert(1)" not in document
    assert _page_data(document)["runs"]["reason"][0] == "</script><script>alert(1)</script>"


def test_report_summary_counts_and_escaped_meta(document):
    counts = dict(re.findall(r'</span>([a-z]+)</td><td class="num">(\d+)</td>', document))
    assert counts == {"comprehension": "6", "grokking": "3", "memorization": "5", "confusion": "2", "diverged": "2"}
    assert re.search(r'id="n-runs">18<', document)
    assert "<title>toy &amp; &lt;sweep&gt;</title>" in document
    assert "<td>toy &lt;lr&gt;</td>" in document
    assert re.search(r"<details><summary>spec</summary><pre>name: toy\naxes: .*&lt;x&gt; &amp; y", document)
    assert "<lr>" not in document and "<x>" not in document
    assert re.search(r"<td>grokgrid version</td><td>[0-9]", document)
    assert re.search(r"<td>generated</td><td>20\d\d-\d\d-\d\d \d\d:\d\d UTC</td>", document)
    assert 'id="overview-note">All 18 runs are shown.' in document


def test_write_report_round_trip(tables, tmp_path):
    runs, labels, metrics = tables
    sweep = tmp_path / "toy_sweep"
    store.write_runs(sweep, runs)
    store.write_labels(sweep, labels)
    for run_id, rows in metrics.groupby("run_id"):
        store.write_metrics_part(sweep, run_id, rows.reindex(columns=list(store.METRICS_SCHEMA.names)).to_dict("records"))
    (sweep / store.SPEC_FILE).write_text("name: toy_sweep\nsteps: 10000\n")

    path = report.write_report(sweep)

    assert path == sweep / store.REPORT_FILE and path.is_file()
    text = path.read_text(encoding="utf-8")
    assert "<title>toy_sweep</title>" in text
    assert "steps: 10000" in text
    assert re.search(r'id="n-runs">18<', text)
    leftovers = [p for p in sweep.rglob("*") if p.name.startswith(".")]
    assert leftovers == []
    # With a facet: one row of panels per value.
    store.write_runs(sweep, faceted(tables)[0])
    text = report.write_report(sweep, axes=("decoder_lr", "repr_lr"), facet="decoder_wd").read_text(encoding="utf-8")
    assert "one row per decoder weight decay" in text


def test_write_report_checks_axes_and_facet_before_writing(tables, tmp_path):
    runs, labels, metrics = tables
    store.write_runs(tmp_path, runs)
    store.write_labels(tmp_path, labels)
    with pytest.raises(ValueError, match="nope"):
        report.write_report(tmp_path, axes=("nope", "repr_lr"))
    with pytest.raises(ValueError, match="facet 'nope'"):
        report.write_report(tmp_path, facet="nope")
    assert not (tmp_path / store.REPORT_FILE).exists()
    assert math.isclose(report.phase_grid(runs, labels, ("decoder_lr", "repr_lr"))["x"].iloc[0], 1e-5)


def _write_sweep(folder, runs, labels, metrics) -> None:
    store.write_runs(folder, runs)
    store.write_labels(folder, labels)
    for run_id, rows in metrics.groupby("run_id"):
        store.write_metrics_part(folder, run_id, rows.reindex(columns=list(store.METRICS_SCHEMA.names)).to_dict("records"))


def test_an_axis_or_facet_with_one_value_is_a_value_error_and_writes_nothing(tables, tmp_path):
    runs, labels, metrics = tables
    _write_sweep(tmp_path, runs, labels, metrics)
    default = report.write_report(tmp_path).read_text(encoding="utf-8")
    # repr_wd is fixed (0), seed varies: the message names the fixed axis and lists those that
    # vary (seed too: it may go on an axis), on one line. The CLI prints it as "--axes: ...".
    with pytest.raises(ValueError) as error:
        report.write_report(tmp_path, axes=("repr_wd", "seed"))
    assert str(error.value) == (
        "axis 'repr_wd' (= 0) has a single value in these runs; axes that vary: repr_lr, decoder_lr, seed"
    )
    with pytest.raises(ValueError, match=r"^facet 'init_scale' \(= 1\) has a single value in these runs; "
                                         r"facets that vary: seed$"):
        report.write_report(tmp_path, facet="init_scale")
    # The default report was not overwritten by a 1 x 1 map.
    assert (tmp_path / store.REPORT_FILE).read_text(encoding="utf-8") == default

    one_seed = runs[runs["seed"] == 0]
    with pytest.raises(ValueError, match=r"^axes 'repr_wd' \(= 0\), 'seed' \(= 0\) have a single value .*"
                                         r"axes that vary: repr_lr, decoder_lr$"):
        report.render_report(one_seed, labels, metrics, title="t", axes=("repr_wd", "seed"))
    with pytest.raises(ValueError, match="^facet 'seed'"):
        report.phase_grid(one_seed, labels, facet="seed")
    # What varies still goes on an axis or facet, seed included.
    assert report.phase_grid(runs, labels, ("decoder_lr", "seed"), facet="repr_lr")["n_runs"].tolist() == [1] * 18
    fresh = tmp_path / "fresh"
    _write_sweep(fresh, runs, labels, metrics)
    with pytest.raises(ValueError, match="'train_fraction'"):
        report.write_report(fresh, axes=("repr_lr", "train_fraction"))
    assert not (fresh / store.REPORT_FILE).exists()


def test_hyperparameters_match_the_spec():
    from grokgrid import spec  # the report takes them from spec (stdlib and yaml only: no torch, no Ray)

    assert report.HYPERPARAMETERS == spec.HYPERPARAMETERS


def test_report_renders_the_classifier_output(tables):
    from grokgrid import phases

    runs, _, metrics = tables
    labels = phases.classify(metrics)
    assert report.summary_counts(runs, labels)[0] == phases.phase_counts(labels)
    grid = report.phase_grid(runs, labels)
    assert grid["n_runs"].sum() == len(runs)
    assert "<!DOCTYPE html>" in report.render_report(runs, labels, metrics, title="classified")


def test_render_is_fast_enough_for_large_sweeps():
    # 1,000 runs x 200 steps: a scaled-down check of the 10k x 1k target (< 20 s; bench/report.py).
    import time

    rng = np.random.default_rng(0)
    n_runs, n_steps = 1000, 200
    runs = pd.DataFrame(
        {
            "run_id": [f"run{i:05d}" for i in range(n_runs)],
            "repr_lr": np.tile(np.logspace(-5, -2, 10), 100),
            "decoder_lr": np.repeat(np.logspace(-5, -2, 10), 100),
            "decoder_wd": np.tile(np.repeat([0.0, 0.1], 10), 50),
            "seed": np.repeat(np.arange(5), 200),
            "status": "done",
        }
    )
    metrics = pd.DataFrame(
        {
            "run_id": np.repeat(runs["run_id"].to_numpy(), n_steps),
            "step": np.tile(np.arange(1, n_steps + 1) * 50, n_runs),
            **{m: rng.random(n_runs * n_steps) for m in report.CURVE_METRICS},
        }
    )
    from grokgrid import phases

    labels = phases.classify(metrics)
    start = time.perf_counter()
    text = report.render_report(runs, labels, metrics, title="big", facet="decoder_wd")
    # ~1 s here; the bound is loose so that a busy CI machine does not flake.
    assert time.perf_counter() - start < 10.0
    assert len(text) < 15e6
    assert "Showing 200 of 1,000 runs" in text


# ----------------------------------------------------------------------------- stages


def test_stage_boundaries_are_drawn_and_stage_axes_are_axes(tables):
    runs, labels, metrics = tables
    runs = runs.assign(**{"shrink.train_subset": [0.25 if i % 4 < 2 else 0.5 for i in range(len(runs))]})
    staged = metrics.assign(stage=(metrics["step"] > 100).astype("int64"))  # stage 0 ends at step 100
    assert report.curves.stage_ends(staged) == [100] and report.curves.stage_ends(metrics) == []
    assert "shrink.train_subset" in report.hyperparameter_columns(runs)
    assert report.display_name("shrink.train_subset") == "shrink: training subset"
    assert report.display_name("training.grokfast.lamb") == "grokfast: lamb"
    fig = report.learning_curves_figure(runs, labels, staged)
    lines = [s for s in fig.layout.shapes if s.x0 == 100]
    assert {s.xref for s in lines} == {"x", "x2", "x3", "x4", "x5"}
    document = report.render_report(runs, labels, staged, title="staged", axes=("repr_lr", "shrink.train_subset"))
    assert _page_data(document)["stage_ends"] == [100]
    assert "stage_ends" in report.templates.asset("report.js")
    assert not report.learning_curves_figure(runs, labels, metrics).layout.shapes  # no stages: no lines


def test_a_refined_irregular_diagram_fades_the_empty_positions_in_the_nearest_cells_phase():
    # A 2 x 2 grid and one refined run inside its cell: the value lattice is 3 x 3 with four
    # positions no run sits at. Distances in decades scaled to each axis' range (x: 1e-3..1e-1,
    # 3e-2 at 0.74 of it; y: 1e-4..1e-2, 1e-3 at its middle).
    points = [(1e-3, 1e-4, "memorization"), (1e-1, 1e-4, "confusion"), (1e-3, 1e-2, "memorization"),
              (1e-1, 1e-2, "confusion"), (3e-2, 1e-3, "grokking")]
    runs = pd.DataFrame({"run_id": [f"r{i}" for i in range(5)], "repr_lr": [p[0] for p in points],
                         "decoder_lr": [p[1] for p in points], "seed": 0})
    labels = pd.DataFrame({"run_id": runs["run_id"], "phase": [p[2] for p in points], "detail": ""})
    fig = report.phase_diagram_figure(runs, labels)
    go.Figure(fig.to_plotly_json())
    grid = report.phase_grid(runs, labels)
    painted = {}
    for trace in (t for t in fig.data if t.meta[0] == "nearest"):
        assert trace.opacity < 1 and trace.name.endswith("(nearest run)")
        z = np.array(trace.z, dtype=float)
        for i, j in zip(*np.nonzero(~np.isnan(z))):
            cell = grid.loc[trace.customdata[i][j]]  # a click shows the nearest cell's runs
            assert trace.name == f"{cell['phase']} (nearest run)" and "no run here" in trace.text[i][j]
            painted[(trace.x[j], trace.y[i])] = cell["phase"]
    assert painted == {(3e-2, 1e-4): "confusion", (1e-3, 1e-3): "memorization", (1e-1, 1e-3): "grokking",
                       (3e-2, 1e-2): "confusion"}
    regular = report.phase_diagram_figure(runs.iloc[:4], labels.iloc[:4])
    assert not [t for t in regular.data if t.meta[0] == "nearest"]  # a full grid has no empty position
