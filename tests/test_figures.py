"""grokgrid figure: the paper figures (phase, delay, accuracy, curves) as PDF, SVG and PNG, what
they draw, and bad options as one-line errors with nothing written.

The quickstart itself (sweeps/quickstart.yaml trained on local Ray: conftest.quickstart_results)
is drawn by the slow tests; the fast ones draw a quickstart-shaped folder built without Ray
(results_folders.make_results) and the report tests' synthetic tables (every phase, seeds that
disagree, a diverged cell)."""

from __future__ import annotations

import re
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from matplotlib.collections import PatchCollection, QuadMesh
from matplotlib.colors import LogNorm, to_hex
from PIL import Image
from typer.testing import CliRunner

import grokgrid
from grokgrid import figures, store
from grokgrid.cli import app
from grokgrid.phases import PHASE_COLORS
from results_folders import make_results
from test_report import CELL_PHASES, DECODER_LRS, REPR_LRS, make_labels, make_metrics, make_runs

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def quickstart_spec(**grid) -> dict:
    """sweeps/quickstart.yaml as data, shortened to 200 steps (the fast tests' fake rows)."""
    data = yaml.safe_load((ROOT / "sweeps" / "quickstart.yaml").read_text())
    data["training"] = {**data["training"], "steps": 200}
    data["grid"] = {**data["grid"], **grid}
    return data


@pytest.fixture(scope="module")
def shaped(tmp_path_factory) -> Path:
    """A labelled quickstart-shaped folder (4 x 4 log-spaced lrs) built without Ray."""
    _, sweep_dir = make_results(tmp_path_factory.mktemp("shaped"), quickstart_spec())
    grokgrid.classify(sweep_dir, reporter=grokgrid.Quiet())
    return sweep_dir


@pytest.fixture(scope="module")
def tables():
    runs = make_runs()
    labels = make_labels(runs)
    return runs, labels, make_metrics(labels)


def _meshes(ax) -> list[QuadMesh]:
    return [c for c in ax.collections if isinstance(c, QuadMesh)]


def _cell_colours(mesh: QuadMesh) -> np.ndarray:
    """The hex colour of each cell of a mesh, as a (ny, nx) array ('' where masked)."""
    values = mesh.get_array()
    rgba = mesh.to_rgba(values)
    out = np.empty(values.shape, dtype=object)
    for index in np.ndindex(values.shape):
        out[index] = "" if np.ma.is_masked(values[index]) else to_hex(rgba[index], keep_alpha=False).upper()
    return out


def _legend_as_read(fig) -> list[str]:
    """The legend's entries in reading order (rows top down, each left to right), as drawn."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    texts = fig.legends[0].get_texts()
    boxes = [t.get_window_extent(canvas.get_renderer()) for t in texts]
    order = sorted(range(len(texts)), key=lambda i: (-round(boxes[i].y0), boxes[i].x0))
    return [texts[i].get_text() for i in order]


# ----------------------------------------------------------------------------- files


def _pdf_width_pt(data: bytes) -> float:
    box = re.search(rb"/MediaBox\s*\[\s*0\s+0\s+([\d.]+)\s+([\d.]+)\s*\]", data)
    assert box, "no MediaBox"
    return float(box.group(1))


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def check_file(path: Path, fmt: str, width_in: float = 3.4, dpi: int = 300) -> None:
    data = path.read_bytes()
    assert len(data) > 1000
    if fmt == "pdf":
        assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF")
        assert _pdf_width_pt(data) == pytest.approx(width_in * 72, abs=0.05)
        assert b"/FontFile2" in data  # TrueType (Type 42) fonts embedded, not Type 3
    elif fmt == "png":
        width, height = _png_size(data)
        assert width == round(width_in * dpi) and 0.3 * width < height < 4 * width
        with Image.open(path) as image:
            image.verify()
    else:
        root = ET.fromstring(data)
        assert root.tag.endswith("svg")
        assert float(root.attrib["width"].removesuffix("pt")) == pytest.approx(width_in * 72, abs=0.05)
        assert "<text" in data.decode()  # text kept as text (svg.fonttype none)


@pytest.mark.slow
@pytest.mark.parametrize("kind", figures.KINDS)
def test_each_kind_of_the_quickstart_is_written_as_pdf_png_and_svg(quickstart_results, tmp_path, kind):
    for fmt in ("pdf", "png", "svg"):
        out = tmp_path / f"{kind}.{fmt}"
        result = invoke("figure", quickstart_results, "--kind", kind, "--out", out)
        assert result.exit_code == 0, result.output + result.stderr
        assert result.stdout.strip() == f"figure: {out}"
        check_file(out, fmt)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{kind}.{f}" for f in ("pdf", "png", "svg"))


@pytest.mark.slow
def test_the_default_figure_is_the_phase_diagram_as_pdf_in_the_results_folder(quickstart_results):
    result = invoke("figure", quickstart_results)
    assert result.exit_code == 0, result.stderr
    check_file(quickstart_results / "figures" / "phase.pdf", "pdf")


@pytest.mark.slow
def test_the_quickstarts_phase_diagram_colours_each_cell_by_its_runs_phase(quickstart_results):
    s = grokgrid.open(quickstart_results)
    table = s.runs.merge(s.labels, on="run_id")
    fig = figures.render_figure(s.runs, s.labels, None, "phase")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "representation lr" and ax.get_ylabel() == "decoder lr"
    colours = _cell_colours(_meshes(ax)[-1])
    for _, run in table.iterrows():  # one run per cell: its phase's colour at its place
        i = sorted(table["decoder_lr"].unique()).index(run["decoder_lr"])
        j = sorted(table["repr_lr"].unique()).index(run["repr_lr"])
        assert colours[i, j] == PHASE_COLORS[run["phase"]].upper()
    order = [p for p in ("comprehension", "grokking", "memorization", "confusion") if p in set(table["phase"])]
    assert _legend_as_read(fig) == order and len(order) >= 3


@pytest.mark.slow
def test_the_quickstarts_delay_map_hatches_the_cells_where_no_run_generalised(quickstart_results):
    s = grokgrid.open(quickstart_results)
    table = s.runs.merge(s.labels, on="run_id")
    generalised = table[table["phase"].isin(["grokking", "comprehension"])]
    fig = figures.render_figure(s.runs, s.labels, None, "delay")
    ax = fig.axes[0]
    hatched = [c for c in ax.collections if isinstance(c, PatchCollection)]
    assert len(hatched) == 1 and len(hatched[0].get_paths()) == len(table) - len(generalised)
    mesh = _meshes(ax)[-1]
    assert isinstance(mesh.norm, LogNorm)
    drawn = mesh.get_array().compressed()
    assert sorted(drawn.tolist()) == sorted(np.clip(generalised["gap"].astype(float), 1, None).tolist())


# ----------------------------------------------------------------------------- what is drawn


def test_log_spaced_axes_are_log_axes_with_ticks_at_the_values(shaped):
    s = grokgrid.open(shaped)
    ax = figures.render_figure(s.runs, s.labels, None, "phase").axes[0]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert ax.get_xticks().tolist() == pytest.approx([1e-4, 1e-3, 1e-2, 1e-1])
    assert [t.get_text() for t in ax.get_yticklabels()] == ["$10^{-5}$", "$10^{-4}$", "$10^{-3}$", "$10^{-2}$"]
    # Cells span the geometric midpoints: each value sits at its cell's centre on the log axis.
    lo, hi = ax.get_xlim()
    assert (lo, hi) == pytest.approx((10**-4.5, 10**-0.5))


def test_a_log_axis_between_decades_is_ticked_per_decade(tmp_path):
    _, sweep_dir = make_results(tmp_path, quickstart_spec(repr_lr=[1e-3], decoder_lr={"logspace": [1e-5, 1e-2, 6]},
                                                          seed=[0, 1]))
    grokgrid.classify(sweep_dir, reporter=grokgrid.Quiet())
    s = grokgrid.open(sweep_dir)
    ax = figures.render_figure(s.runs, s.labels, None, "phase", axes=("decoder_lr", "seed")).axes[0]
    assert ax.get_xscale() == "log" and ax.get_xticks().tolist() == pytest.approx([1e-5, 1e-4, 1e-3, 1e-2])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["$10^{-5}$", "$10^{-4}$", "$10^{-3}$", "$10^{-2}$"]


def test_linear_and_uneven_axes(tmp_path):
    data = quickstart_spec(repr_lr=[1e-3], decoder_lr=[1e-3], train_fraction=[0.3, 0.5, 0.7], decoder_wd=[0, 1e-3, 1e-2, 1])
    _, sweep_dir = make_results(tmp_path, data)
    grokgrid.classify(sweep_dir, reporter=grokgrid.Quiet())
    s = grokgrid.open(sweep_dir)
    ax = figures.render_figure(s.runs, s.labels, None, "accuracy", axes=("train_fraction", "decoder_wd")).axes[0]
    assert ax.get_xscale() == "linear" and ax.get_xticks().tolist() == pytest.approx([0.3, 0.5, 0.7])
    # 0, 1e-3, 1e-2, 1: too uneven for a linear axis, no log axis for 0: categories, as the report.
    assert ax.get_yscale() == "linear" and ax.get_yticks().tolist() == [0, 1, 2, 3]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["0", "0.001", "0.01", "1"]


def test_phase_map_takes_the_majority_marks_disagreement_and_colours_every_phase(tables):
    runs, labels, _ = tables
    fig = figures.render_figure(runs, labels, None, "phase")
    ax = fig.axes[0]
    colours = _cell_colours(_meshes(ax)[-1])
    for (r, d), seeds in CELL_PHASES.items():
        majority = "grokking" if seeds == ("memorization", "grokking") else seeds[0]  # a tie: PHASES order
        assert colours[DECODER_LRS.index(d), REPR_LRS.index(r)] == PHASE_COLORS[majority].upper()
    assert [t.get_text() for t in ax.texts] == ["1/2"]  # the one cell whose seeds disagree
    assert _legend_as_read(fig) == list(PHASE_COLORS)  # in the phases' order, read row by row


def test_accuracy_map_holds_each_cells_mean_final_val_accuracy(tables):
    runs, labels, _ = tables
    ax = figures.render_figure(runs, labels, None, "accuracy").axes[0]
    mesh = _meshes(ax)[-1]
    values = mesh.get_array()
    table = runs.merge(labels, on="run_id")
    for (r, d), cell in table.groupby(["repr_lr", "decoder_lr"]):
        expected = cell["final_val_acc"].mean()
        got = values[DECODER_LRS.index(d), REPR_LRS.index(r)]
        if np.isnan(expected):  # the diverged cell: no value, hatched
            assert np.ma.is_masked(got)
        else:
            assert got == pytest.approx(expected)
    assert mesh.norm.vmin == 0 and mesh.norm.vmax == 1
    assert len([c for c in ax.collections if isinstance(c, PatchCollection)][0].get_paths()) == 1


def test_curves_draw_train_and_val_per_run_on_a_log_step_axis_one_panel_per_phase(tables):
    runs, labels, metrics = tables
    fig = figures.render_figure(runs, labels, metrics, "curves", max_runs=len(runs))
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == [f"{p} ({n} runs)" for p, n in
                                                 labels["phase"].value_counts().reindex(list(PHASE_COLORS)).items()]
    for ax in panels:
        assert ax.get_xscale() == "log"
        phase = ax.get_title().split(" (")[0]
        curves = [line for line in ax.get_lines() if line.get_color() == PHASE_COLORS[phase]]
        assert len(curves) == 2 * int((labels["phase"] == phase).sum())  # train and val per run
    for cap in (None, 5):  # by default at most MAX_CURVE_RUNS (16 of these 18 runs)
        capped = figures.render_figure(runs, labels, metrics, "curves", max_runs=cap)
        drawn = [line for ax in capped.axes for line in ax.get_lines() if line.get_color() in PHASE_COLORS.values()]
        assert len(drawn) == 2 * (cap or figures.MAX_CURVE_RUNS)
    chosen = figures.render_figure(runs, labels, metrics, "curves", run_ids=["r0d0s0", "r2d2s1"])
    assert sorted(ax.get_title() for ax in chosen.axes if ax.get_title()) == ["confusion (1 of 2 runs)", "diverged (1 of 2 runs)"]


def test_facet_draws_a_panel_per_value(shaped):
    s = grokgrid.open(shaped)
    fig = figures.render_figure(s.runs, s.labels, None, "phase", axes=("repr_lr", None), facet="decoder_lr")
    assert [ax.get_title() for ax in fig.axes] == [f"decoder lr = {v}" for v in ("1e-5", "0.0001", "0.001", "0.01")]
    curves = figures.render_figure(s.runs, s.labels, s.metrics(), "curves", facet="decoder_lr")
    assert len([ax for ax in curves.axes if ax.get_title()]) == 4


def test_a_refined_lattice_fades_the_empty_positions_in_the_nearest_cells_phase(tables):
    runs, labels, _ = tables
    keep = ~((runs["repr_lr"] == 1e-2) & (runs["decoder_lr"] == 1e-3))  # a position with no run
    ax = figures.render_figure(runs[keep], labels[labels["run_id"].isin(runs[keep]["run_id"])], None, "phase").axes[0]
    faded, cells = _meshes(ax)
    assert faded.get_alpha() == pytest.approx(0.35)
    filled = _cell_colours(faded)
    assert (filled != "").sum() == 1 and filled[2, 2] == PHASE_COLORS["comprehension"].upper()
    assert _cell_colours(cells)[2, 2] == ""


@pytest.mark.parametrize("kind", figures.KINDS)
@pytest.mark.parametrize("width, facet", [(3.4, None), (3.4, "seed"), (7.0, "seed")])
def test_nothing_is_drawn_outside_the_figure_and_panels_fill_its_width(tables, kind, width, facet):
    # A label cut off at the figure's edge, or panels shrunk to leave the width unused, would
    # not show in a file's header: measure what is drawn.
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    runs, labels, metrics = tables
    fig = figures.render_figure(runs, labels, metrics, kind, facet=facet, width=width)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    box = fig.get_tightbbox(canvas.get_renderer())
    w, h = fig.get_size_inches()
    assert w == width
    assert box.x0 >= 0 and box.y0 >= 0 and box.x1 <= w + 1e-6 and box.y1 <= h + 1e-6, (box, w, h)
    assert box.width > 0.9 * w and box.height > 0.85 * h  # the content fills the figure


def test_width_and_dpi_set_the_size_and_the_same_figure_gives_the_same_bytes(shaped, tmp_path):
    for fmt in ("png", "pdf", "svg"):
        out = tmp_path / f"wide.{fmt}"
        assert invoke("figure", shaped, "--kind", "delay", "--width", 7, "--dpi", 100, "--out", out).exit_code == 0
        check_file(out, fmt, width_in=7, dpi=100)
        first = out.read_bytes()
        assert invoke("figure", shaped, "--kind", "delay", "--width", 7, "--dpi", 100, "--out", out).exit_code == 0
        assert out.read_bytes() == first  # no date or random id inside: a rerun changes nothing


def test_library_entry_points(shaped, tmp_path):
    path = grokgrid.figure(shaped, "accuracy", out=tmp_path / "a.svg", reporter=grokgrid.Quiet())
    assert path == tmp_path / "a.svg" and path.is_file()
    path = grokgrid.open(shaped).figure("curves", out=tmp_path / "c.png", max_runs=3, reporter=grokgrid.Quiet())
    check_file(path, "png")
    with pytest.raises(grokgrid.Refused, match="^--kind: unknown kind 'heat'"):
        grokgrid.figure(shaped, "heat", out=tmp_path / "h.pdf")


def test_no_pyplot_and_no_backend_change(shaped, tmp_path):
    # A notebook's matplotlib backend and pyplot figures are its own: figures never touch them.
    # (The backend is read with dict.__getitem__: rcParams["backend"] would itself import pyplot.)
    code = ("import sys, matplotlib; raw = lambda: dict.__getitem__(matplotlib.rcParams, 'backend'); before = raw(); "
            "import grokgrid; "
            f"grokgrid.figure({str(shaped)!r}, 'phase', out={str(tmp_path / 'p.png')!r}, reporter=grokgrid.Quiet()); "
            "print('matplotlib.pyplot' in sys.modules, raw() == before)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "True"]


# ----------------------------------------------------------------------------- bad input

BAD = [
    (("--kind", "heat"), "error: --kind: unknown kind 'heat'; use one of phase, delay, accuracy, curves"),
    (("--axes", "repr_lr,nope"), "error: --axes: unknown axis 'nope'; valid axes for these runs: repr_lr, decoder_lr"),
    (("--axes", "repr_lr,repr_wd"), "error: --axes: axis 'repr_wd' (= 0) has a single value in these runs"),
    (("--axes", "repr_lr"), "error: --axes 'repr_lr': give two hyperparameters separated by a comma"),
    (("--facet", "seed"), "error: --facet: facet 'seed' (= 0) has a single value in these runs"),
    (("--out", "{tmp}/fig.jpg"), "error: --out: '{tmp}/fig.jpg': the suffix picks the format; end the name in .pdf, .svg or .png"),
    (("--out", "{tmp}/fig"), "error: --out: '{tmp}/fig': the suffix picks the format"),
    (("--kind", "curves", "--axes", "repr_lr,decoder_lr"), "error: --axes: the curves kind draws accuracy against the step"),
    (("--kind", "curves", "--runs", "nope"), "error: --runs: unknown run id(s) nope; give ids of this sweep's runs"),
    (("--kind", "curves", "--max-runs", "0"), "error: --max-runs: 0; give 1 or more"),
    (("--runs", "abc"), "error: --runs: only the curves kind draws chosen runs; leave --runs out for --kind phase"),
    (("--width", "0.5"), "error: --width: 0.5 inches; give 1.5 to 20"),
    (("--dpi", "5"), "error: --dpi: 5; give 50 to 2400"),
]


@pytest.mark.parametrize("args, message", BAD)
def test_a_bad_option_is_one_line_exit_2_and_writes_nothing(shaped, tmp_path, args, message):
    args = [a.format(tmp=tmp_path) for a in args]
    out = ["--out", tmp_path / "fig.pdf"] if "--out" not in args else []
    result = invoke("figure", shaped, *args, *out)
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1 and result.stdout == ""
    assert result.stderr.startswith(message.format(tmp=tmp_path)), result.stderr
    assert list(tmp_path.iterdir()) == [] and not (shaped / "figures").exists()


def test_a_missing_or_unlabelled_folder_is_one_line_exit_2(tmp_path):
    result = invoke("figure", tmp_path / "absent")
    assert result.exit_code == 2 and result.stderr.strip() == (
        f"error: {tmp_path / 'absent'}: no such folder; give a sweep's results folder, e.g. results/quickstart")
    _, sweep_dir = make_results(tmp_path, quickstart_spec())  # trained, never classified
    result = invoke("figure", sweep_dir, "--out", tmp_path / "f.pdf")
    assert result.exit_code == 2 and result.stderr.strip() == (
        f"error: {sweep_dir}: no {store.LABELS_FILE} yet; run `grokgrid classify {sweep_dir}` first")
    assert not (tmp_path / "f.pdf").exists() and not (sweep_dir / "figures").exists()


def test_a_bad_option_in_a_real_process_has_no_traceback(shaped, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "grokgrid", "figure", str(shaped), "--kind", "heat"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == ["error: --kind: unknown kind 'heat'; use one of phase, delay, accuracy, curves"]
