"""Tests for grokgrid.report: the data behind the figures, the HTML document, the file round trip."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import plotly.offline
import pytest

from grokgrid import report, store
from grokgrid.phases import PHASE_COLORS, PHASES

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
            )
        )
    frame = pd.DataFrame(rows, columns=list(store.LABELS_SCHEMA.names))
    for name in ("t_train", "t_val", "gap", "last_step"):
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
    assert report.majority_phase(["memorization", "grokking", "memorization"]) == ("memorization", 2)
    assert report.majority_phase(["confusion", "comprehension"]) == ("comprehension", 1)
    assert report.majority_phase([report.UNLABELED, "confusion"]) == ("confusion", 1)


def test_runs_without_a_label_count_as_unlabeled(tables):
    runs, labels, _ = tables
    some = labels[labels["run_id"] != _run_id(1e-2, 1e-3, 0)]
    grid = report.phase_grid(runs, some)
    cell = grid[(grid["x"] == 1e-2) & (grid["y"] == 1e-3)].iloc[0]
    assert (cell["phase"], cell["n_majority"], cell["n_runs"]) == ("diverged", 1, 2)
    counts = report.phase_counts(runs, some)
    assert counts["diverged"] == 1 and counts[report.UNLABELED] == 1


def test_phase_counts_list_every_phase_with_zeros(tables):
    runs, labels, _ = tables
    counts = report.phase_counts(runs, labels)
    assert list(counts)[: len(PHASES)] == list(PHASES)
    assert counts == {"comprehension": 6, "grokking": 3, "memorization": 5, "confusion": 2, "diverged": 2}
    no_confusion = labels[labels["phase"] != "confusion"]
    runs_left = runs[runs["run_id"].isin(no_confusion["run_id"])]
    assert report.phase_counts(runs_left, no_confusion)["confusion"] == 0


# ----------------------------------------------------------------------------- phase diagram


def _heatmaps(fig):
    return {t.name: t for t in fig.data if t.type == "heatmap"}


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


def test_phase_diagram_legend_lists_each_present_phase_in_its_colour(tables):
    runs, labels, _ = tables
    fig = report.phase_diagram_figure(runs, labels)
    legend = [t for t in fig.data if t.showlegend]
    assert [t.name for t in legend] == ["comprehension", "grokking", "memorization", "confusion", "diverged"]
    assert all(t.marker.color == PHASE_COLORS[t.name] for t in legend)
    assert all(t.legendgroup == t.name for t in fig.data if t.type == "heatmap")


def test_phase_diagram_uses_log_axes_with_value_ticks_for_learning_rates(tables):
    runs, labels, _ = tables
    fig = report.phase_diagram_figure(runs, labels)
    assert fig.layout.xaxis.type == "log" and fig.layout.yaxis.type == "log"
    assert list(fig.layout.xaxis.tickvals) == list(REPR_LRS)
    assert list(fig.layout.yaxis.ticktext) == ["1e-5", "0.0001", "0.001"]
    assert fig.layout.xaxis.title.text == "representation lr"
    assert fig.layout.yaxis.title.text == "decoder lr"
    assert fig.layout.template.layout.plot_bgcolor == "white"  # simple_white


def test_phase_diagram_hover_names_hyperparameters_phase_and_timings(tables):
    runs, labels, _ = tables
    fig = report.phase_diagram_figure(runs, labels)
    trace = _heatmaps(fig)["grokking"]
    xs, ys = list(trace.x), list(trace.y)
    text = trace.text[ys.index(1e-4)][xs.index(1e-3)]  # the cell whose seeds disagree
    for part in ("representation lr", "0.001", "decoder lr", "0.0001", "1/2 runs", "seed=0", "seed=1",
                 "memorization", "t_train 100", "t_val 10000", "gap 9900", "train 1.000", "val 0.980",
                 "&lt;because&gt;"):
        assert part in text, part
    # Customdata carries the cell's run ids for the click-to-highlight handler.
    assert sorted(trace.customdata[ys.index(1e-4)][xs.index(1e-3)].split()) == ["r1d1s0", "r1d1s1"]
    agree = [t for t in fig.data if t.type == "scatter" and t.mode == "text"][0]
    assert list(agree.text) == ["1/2"]


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


# ----------------------------------------------------------------------------- learning curves


def test_learning_curves_have_one_trace_group_per_run(tables):
    runs, labels, metrics = tables
    fig = report.learning_curves_figure(runs, labels, metrics)
    groups: dict[str, list] = {}
    for t in fig.data:
        groups.setdefault(t.legendgroup, []).append(t)
    assert set(groups) == set(runs["run_id"])
    phase_of = dict(zip(labels["run_id"], labels["phase"]))
    for run_id, traces in groups.items():
        assert len(traces) == 5  # train/val acc, train/val loss, weight norm
        assert sum(bool(t.showlegend) for t in traces) == 1
        assert {t.line.color for t in traces} == {PHASE_COLORS[phase_of[run_id]]}
        assert all(min(t.x) > 0 for t in traces)  # step 0 dropped: log x axis
    assert all(fig.layout[f"xaxis{i}"].type == "log" for i in ("", "2", "3"))


def test_learning_curves_legend_names_runs_and_dropdown_filters_by_phase(tables):
    runs, labels, metrics = tables
    fig = report.learning_curves_figure(runs, labels, metrics)
    names = {t.name for t in fig.data if t.showlegend}
    assert "repr_lr=0.001, decoder_lr=0.0001, seed=1" in names
    buttons = fig.layout.updatemenus[0].buttons
    assert [b.label for b in buttons] == ["all runs"] + [f"{p} only" for p in PHASES]
    grokking = buttons[2].args[0]["visible"]
    assert sum(v is True for v in grokking) == 3 * 5


# ----------------------------------------------------------------------------- HTML


def test_report_embeds_plotly_js_exactly_once_and_loads_nothing(document):
    assert document.startswith("<!DOCTYPE html>")
    bundle = plotly.offline.get_plotlyjs()
    assert document.count(bundle) == 1
    assert '<script src="http' not in document
    # Outside the bundle (whose only cdn.plot.ly URL is the unused geo topojson default), nothing
    # points at the network.
    ours = document.replace(bundle, "")
    assert "cdn.plot.ly" not in ours and "src=" not in ours
    assert document.count('class="plotly-graph-div"') == 2
    assert 'on("plotly_click"' in document


def test_report_summary_counts_and_escaped_meta(document):
    counts = dict(re.findall(r'</span>([a-z]+)</td><td class="num">(\d+)</td>', document))
    assert counts == {"comprehension": "6", "grokking": "3", "memorization": "5", "confusion": "2", "diverged": "2"}
    assert re.search(r'id="n-runs">18<', document)
    assert "<title>toy &amp; &lt;sweep&gt;</title>" in document
    assert "<td>toy &lt;lr&gt;</td>" in document
    assert re.search(r"<details><summary>spec</summary><pre>name: toy\naxes: .*&lt;x&gt; &amp; y", document)
    assert "<lr>" not in document and "<x>" not in document


def test_write_report_round_trip(tables, tmp_path):
    runs, labels, metrics = tables
    sweep = tmp_path / "toy_sweep"
    store.write_runs(sweep, runs)
    store.write_labels(sweep, labels)
    for run_id, rows in metrics.groupby("run_id"):
        store.write_metrics_part(sweep, run_id, rows.to_dict("records"))
    (sweep / store.SPEC_FILE).write_text("name: toy_sweep\nsteps: 10000\n")

    path = report.write_report(sweep)

    assert path == sweep / store.REPORT_FILE and path.is_file()
    text = path.read_text(encoding="utf-8")
    assert "<title>toy_sweep</title>" in text
    assert "steps: 10000" in text
    assert re.search(r'id="n-runs">18<', text)
    leftovers = [p for p in sweep.rglob("*") if p.name.startswith(".")]
    assert leftovers == []


def test_write_report_passes_axes_through(tables, tmp_path):
    runs, labels, metrics = tables
    store.write_runs(tmp_path, runs)
    store.write_labels(tmp_path, labels)
    with pytest.raises(ValueError, match="nope"):
        report.write_report(tmp_path, axes=("nope", "repr_lr"))
    assert not (tmp_path / store.REPORT_FILE).exists()
    assert math.isclose(report.phase_grid(runs, labels, ("decoder_lr", "repr_lr"))["x"].iloc[0], 1e-5)


def test_hyperparameters_match_the_spec():
    from grokgrid import spec  # report.py may not import spec (DESIGN.md section 2); the test may

    assert report.HYPERPARAMETERS == spec.HYPERPARAMETERS


def test_report_renders_the_classifier_output(tables):
    from grokgrid import phases

    runs, _, metrics = tables
    labels = phases.classify(metrics)
    assert report.phase_counts(runs, labels) == phases.phase_counts(labels)
    grid = report.phase_grid(runs, labels)
    assert grid["n_runs"].sum() == len(runs)
    assert "<!DOCTYPE html>" in report.render_report(runs, labels, metrics, title="classified")
