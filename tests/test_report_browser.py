"""The report in a real browser: headless Chromium opens report.html (offline, file://), and the
page must render its figures without a JavaScript error.

The page records every uncaught error, rejected promise and console.error into
<pre id="grokgrid-js-errors"> (grokgrid/report/assets/error_trap.js); ``chromium --dump-dom``
prints the DOM after the scripts ran, so the test reads both that element and the SVG plotly
drew. No Python dependency beyond the standard library: Chromium is driven by its command line.

Skipped where Chromium is absent (CI installs Debian's `chromium` package); set GROKGRID_CHROMIUM
to use another binary, and GROKGRID_SCREENSHOT_DIR to keep the screenshot.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from grokgrid import phases, report, store

CHROMIUM = os.environ.get("GROKGRID_CHROMIUM", "/usr/bin/chromium")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not os.access(CHROMIUM, os.X_OK),
        reason=f"no Chromium at {CHROMIUM} (apt-get install -y chromium, or set GROKGRID_CHROMIUM)",
    ),
]

# The flags of a quiet, offline, root-friendly headless run; virtual time lets plotly finish.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--disable-dev-shm-usage",  # containers often have a tiny /dev/shm
    "--virtual-time-budget=10000",
]


def chromium(url: str, *args: str) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args, url],
            capture_output=True,
            text=True,
            timeout=120,
        )


def dump_dom(path: Path, fragment: str = "") -> str:
    done = chromium(path.resolve().as_uri() + fragment, "--dump-dom")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "</html>" in done.stdout, "Chromium printed no DOM"
    return done.stdout


def js_errors(dom: str) -> str:
    m = re.search(rf'<pre id="{report.JS_ERRORS_ID}"[^>]*>(.*?)</pre>', dom, re.S)
    assert m, "the page lost its JS error element"
    return m.group(1).strip()


def element(dom: str, element_id: str) -> str:
    """The markup from the element's opening tag to the next report element (enough to look for
    what plotly drew inside it)."""
    start = dom.index(f'id="{element_id}"')
    ends = [dom.find(f'id="{other}"', start + 1) for other in (report.CELL_INFO_ID, report.CELL_CURVES_ID,
                                                               report.LEARNING_CURVES_ID, report.DATA_ID)]
    ends = [e for e in ends if e > start]
    return dom[start : min(ends) if ends else len(dom)]


# ----------------------------------------------------------------------------- a synthetic sweep


def synthetic_sweep(folder: Path) -> None:
    """A 3 x 3 (repr_lr x decoder_lr) x 2 (decoder_wd) x 2 seeds sweep in ``folder`` whose curves
    give every phase and detail label, written with the store's writers like a real sweep."""
    rng = np.random.default_rng(0)
    steps = np.unique(np.round(np.geomspace(10, 20_000, 60)).astype(int))
    runs, parts = [], {}
    shapes = {  # (repr index, decoder index) -> (t_train, t_val, plateau, drop_at)
        (0, 0): (None, None, 0.1, None),  # confusion
        (0, 1): (200, None, 0.1, None),  # memorization
        (0, 2): (100, 3000, 0.55, None),  # semi-grokking
        (1, 0): (300, 6000, 1.0, None),  # grokking
        (1, 1): (200, 5000, 1.0, 12000),  # ungrokking
        (1, 2): (100, 4000, 1.0, None),  # grokking
        (2, 0): (300, 400, 1.0, None),  # comprehension
        (2, 1): (100, 150, 1.0, 9000),  # misgrokking
        (2, 2): (100, 150, 1.0, None),  # diverged (below)
    }
    for i, repr_lr in enumerate((1e-4, 1e-3, 1e-2)):
        for j, decoder_lr in enumerate((1e-4, 1e-3, 1e-2)):
            for wd in (0.0, 0.1):
                for seed in (0, 1):
                    run_id = f"r{i}d{j}w{int(wd * 10)}s{seed}"
                    runs.append(dict(run_id=run_id, pack_id="p", repr_lr=repr_lr, decoder_lr=decoder_lr, repr_wd=0.0,
                                     decoder_wd=wd, init_scale=1.0, train_fraction=0.5, seed=seed, status="done"))
                    t_train, t_val, plateau, drop_at = shapes[(i, j)]
                    jitter = 1 + 0.2 * seed
                    train = np.where(steps >= (t_train or 1e9) * jitter, 1.0, 0.1)
                    val = np.where(steps >= (t_val or 1e9) * jitter, plateau, 0.05)
                    if t_val is None and plateau > 0.4:
                        val = np.where(steps >= 3000 * jitter, plateau, 0.05)
                    if drop_at:
                        val = np.where(steps >= drop_at, 0.3, val)
                    loss = np.exp(-5 * train) + rng.random(steps.size) * 1e-3
                    if (i, j) == (2, 2):
                        loss = np.where(steps >= 5000, np.nan, loss)
                    parts[run_id] = pd.DataFrame(
                        {"run_id": run_id, "step": steps, "train_loss": loss, "val_loss": 2 * loss, "train_acc": train,
                         "val_acc": val, "weight_norm": 10 + np.log(steps), "elapsed_s": steps / 1e4}
                    ).reindex(columns=list(store.METRICS_SCHEMA.names))
    store.write_runs(folder, pd.DataFrame(runs))
    for run_id, frame in parts.items():
        store.write_metrics_part(folder, run_id, frame.to_dict("records"))
    (folder / store.SPEC_FILE).write_text("name: browser_check\n")
    labels = phases.classify(store.read_metrics(folder), phases.PhaseCriteria(gap=1000))
    store.write_labels(folder, labels)


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("browser_check")
    synthetic_sweep(folder)
    labels = store.read_labels(folder)
    # The sweep really holds every label the page has to draw.
    assert set(labels["phase"]) == set(phases.PHASES)
    assert set(labels["detail"]) == {"", *phases.DETAILS}
    return report.write_report(folder, facet="decoder_wd")


@pytest.fixture(scope="module")
def dom(page) -> str:
    return dump_dom(page)


# ----------------------------------------------------------------------------- the checks


def test_page_runs_without_javascript_errors(dom):
    assert js_errors(dom) == ""
    assert 'data-grokgrid-ready="1"' in dom  # the page's own script ran to its end


def test_phase_diagram_rendered(dom, page):
    diagram = element(dom, report.PHASE_DIAGRAM_ID)
    assert 'class="main-svg"' in diagram
    # Two facet rows of three heatmap panels, drawn as images, and the legend's entries.
    assert diagram.count('class="hm"') >= 2 * 3
    for name in (*phases.PHASES, *phases.DETAILS):
        assert f'data-unformatted="{name}"' in diagram, name
    assert "decoder weight decay = 0.1" in diagram


def test_default_cell_shows_its_runs_curves_and_table(dom, page):
    data = report_data(page)
    k = data["default_cell"]
    assert f'data-selected-cell="{k}"' in dom
    cell = data["cells"][k]
    info = element(dom, report.CELL_INFO_ID)
    assert html_text(cell["title"]) in info
    assert info.count("<tr>") == 1 + len(cell["runs"])  # header + one row per run
    curves = element(dom, report.CELL_CURVES_ID)
    assert 'class="main-svg"' in curves
    # Five lines per run (train/val accuracy and loss, weight norm).
    assert curves.count('class="trace scatter') == 5 * len(cell["runs"])


def test_a_link_to_another_cell_shows_that_cell(page):
    data = report_data(page)
    k = next(i for i, c in enumerate(data["cells"]) if "ungrokking" in c["title"] and c["row"] == 1)
    dom = dump_dom(page, f"#cell={k}")
    assert js_errors(dom) == ""
    assert f'data-selected-cell="{k}"' in dom
    assert html_text(data["cells"][k]["title"]) in element(dom, report.CELL_INFO_ID)


# Clicks the centre of cell K in the (a) panel of its facet row with real mouse events on
# plotly's drag layer, then reports what the page shows into <pre id="probe">.
_CLICK = """<script>
window.addEventListener("load", function () { setTimeout(function () {
  var d = document.getElementById("%(diagram)s"), cell = %(cell)s, n = cell.row * 3 + 1;
  var name = n === 1 ? "" : String(n), layout = d._fullLayout;
  var xa = layout["xaxis" + name], ya = layout["yaxis" + name];
  var box = d.querySelector(".main-svg").getBoundingClientRect();
  var x = box.left + xa._offset + xa.d2p(cell.x), y = box.top + ya._offset + ya.d2p(cell.y);
  var drag = d.querySelector(".draglayer .x" + name + "y" + name + " .nsewdrag");
  ["mousemove", "mousedown", "mouseup"].forEach(function (type) {
    (type === "mouseup" ? document : drag).dispatchEvent(new MouseEvent(type,
      {clientX: x, clientY: y, bubbles: true, cancelable: true, view: window, buttons: type === "mousedown" ? 1 : 0}));
  });
  setTimeout(function () {
    var probe = document.createElement("pre"), selection = d.data.filter(function (t) {
      return t.meta && t.meta[0] === "selection" && t.x.length; });
    probe.id = "probe";
    probe.textContent = JSON.stringify({
      selected: document.body.getAttribute("data-selected-cell"),
      title: document.querySelector(".cell-title").textContent,
      traces: document.getElementById("%(curves)s").data.length,
      outline: selection.map(function (t) { return [t.meta[1], t.x[0], t.y[0]]; })});
    document.body.appendChild(probe);
  }, 500);
}, 300); });
</script></body>"""


def click(page: Path, folder: Path, point: dict) -> dict:
    """Open ``page`` with _CLICK aimed at ``point`` (row, x, y in axis values) and return what
    the page showed after the click (the probe), checking that no script failed."""
    import json

    script = _CLICK % {"diagram": report.PHASE_DIAGRAM_ID, "curves": report.CELL_CURVES_ID, "cell": json.dumps(point)}
    clicked = folder / f"clicked_{page.name}"
    clicked.write_text(page.read_text().replace("</body>", script))
    dom = dump_dom(clicked)
    assert js_errors(dom) == ""
    return json.loads(re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S).group(1).replace("&amp;", "&"))


def test_clicking_a_cell_shows_its_runs(page, tmp_path):
    data = report_data(page)
    k = next(i for i, c in enumerate(data["cells"]) if c["row"] == 1 and i != data["default_cell"] and "semi" in c["title"])
    cell = data["cells"][k]
    probe = click(page, tmp_path, cell)
    assert probe["selected"] == str(k)
    assert probe["title"] == cell["title"]
    assert probe["traces"] == 5 * len(cell["runs"])
    # The clicked cell is outlined (two traces: dark and white lines), in its facet row only.
    assert probe["outline"] == [[1, cell["x"], cell["y"]]] * 2


# Runs FUNCTION_BODY once the page has drawn and puts what it returns, as JSON, in <pre id="probe">.
_PROBE = """<script>
window.addEventListener("load", function () { setTimeout(function () {
  var probe = document.createElement("pre");
  probe.id = "probe";
  probe.textContent = JSON.stringify((function () { %s })());
  document.body.appendChild(probe);
}, 500); });
</script></body>"""


def probe(page: Path, folder: Path, function_body: str) -> dict:
    import json

    probed = folder / f"probed_{page.name}"
    probed.write_text(page.read_text().replace("</body>", _PROBE % function_body))
    dom = dump_dom(probed)
    assert js_errors(dom) == ""
    return json.loads(re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S).group(1).replace("&amp;", "&"))


def single_run_cells_page(folder: Path) -> Path:
    """Two cells of one run each, logged from step 0 to 20,000; the grokking one (the default
    cell) generalises at its very last step, so its t_val line sits on the plot's right edge."""
    steps = np.concatenate([[0], np.unique(np.round(np.geomspace(10, 20_000, 40)).astype(int))])
    runs, labels, metrics = [], [], []
    for i, (repr_lr, phase, t_val) in enumerate(((1e-3, "grokking", 20_000), (1e-2, "comprehension", 200))):
        run_id = f"r{i}"
        runs.append(dict(run_id=run_id, pack_id="p", repr_lr=repr_lr, decoder_lr=1e-3, repr_wd=0.0, decoder_wd=0.0,
                         init_scale=1.0, train_fraction=0.5, seed=0, status="done"))
        labels.append(dict(run_id=run_id, phase=phase, reason="synthetic", t_train=100, t_val=t_val, gap=t_val - 100,
                           final_train_acc=1.0, final_val_acc=1.0, detail=""))
        metrics.append(pd.DataFrame({"run_id": run_id, "step": steps, "train_loss": 1 / (1 + steps),
                                     "val_loss": 2 / (1 + steps), "train_acc": (steps >= 100) * 0.9 + 0.1,
                                     "val_acc": (steps >= t_val) * 0.9 + 0.1, "weight_norm": 10 + np.log1p(steps)}))
    text = report.render_report(pd.DataFrame(runs), pd.DataFrame(labels), pd.concat(metrics), title="one run a cell")
    path = folder / "single.html"
    path.write_text(text)
    return path


# The t_val label's box, its line and the accuracy panel's plot area (page pixels), the first
# trace's first points and hover, and the three x titles, as drawn.
_CELL_CURVES_PROBE = """
  var d = document.getElementById("%(curves)s"), layout = d._fullLayout, xa = layout.xaxis;
  var box = d.querySelector(".main-svg").getBoundingClientRect(), t_val = %(t_val)s;
  var label = d.querySelector('.annotation-text[data-unformatted="t<sub>val</sub>"]').getBoundingClientRect();
  return {label: [label.left, label.right], plot: [box.left + xa._offset, box.left + xa._offset + xa._length],
          line: box.left + xa._offset + xa.d2p(t_val),
          x: d.data[0].x.slice(0, 2), customdata: (d.data[0].customdata || []).slice(0, 2),
          hover: d.data[0].hovertemplate,
          titles: ["xaxis", "xaxis2", "xaxis3"].map(function (a) { return layout[a].title.text; })};
""" % {"curves": report.CELL_CURVES_ID, "t_val": 20_000}


def test_selected_cells_curves_keep_the_t_val_label_and_step_0_in_view(tmp_path):
    page = single_run_cells_page(tmp_path)
    seen = probe(page, tmp_path, _CELL_CURVES_PROBE)
    # The t_val line at the last step sits on the plot's right edge; its label reads in full
    # left of it, inside the plot area (it used to hang right of the line, at the edge, where
    # it was cut, or stretched the panel's step axis past the last step to make room).
    left, right = seen["label"]
    assert seen["plot"][0] <= left < right <= seen["line"] <= seen["plot"][1] + 0.5, seen
    assert seen["plot"][1] - seen["line"] < 2, seen
    # Step 0 is drawn at half the first logged step (a log axis has no 0), hovered as step 0,
    # and every x title says so.
    assert seen["x"] == [5, 10] and seen["customdata"] == [0, 10]
    assert "step %{customdata}" in seen["hover"]
    assert seen["titles"] == ["step (step 0 drawn at 5)"] * 3


def test_overview_rendered(dom):
    overview = element(dom, report.LEARNING_CURVES_ID)
    assert 'class="main-svg"' in overview and 'class="trace scatter' in overview


def test_screenshot(page, tmp_path):
    shot = tmp_path / "report.png"
    done = chromium(page.resolve().as_uri(), "--window-size=1400,2600", f"--screenshot={shot}")
    assert done.returncode == 0, done.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    # A blank 1400 x 2600 page compresses to ~20 kB; colour maps and curves take far more.
    assert len(data) > 150_000, f"screenshot suspiciously small ({len(data)} bytes): blank page?"
    if os.environ.get("GROKGRID_SCREENSHOT_DIR"):
        shutil.copy(shot, Path(os.environ["GROKGRID_SCREENSHOT_DIR"]) / "report.png")


# ----------------------------------------------------------------------------- the checks catch breakage


def test_a_script_error_is_caught(page, tmp_path):
    broken = tmp_path / "broken.html"
    broken.write_text(page.read_text().replace("</body>", "<script>window.noSuchFunction();</script></body>"))
    errors = js_errors(dump_dom(broken))
    assert "noSuchFunction" in errors


def test_a_page_without_plotly_fails_the_checks(page, tmp_path):
    import plotly.offline

    broken = tmp_path / "no_plotly.html"
    broken.write_text(page.read_text().replace(plotly.offline.get_plotlyjs(), ""))
    dom = dump_dom(broken)
    assert "Plotly is not defined" in js_errors(dom)
    assert 'class="main-svg"' not in element(dom, report.PHASE_DIAGRAM_ID)
    assert 'data-grokgrid-ready="1"' not in dom


# ----------------------------------------------------------------------------- helpers


def report_data(page: Path) -> dict:
    import json

    m = re.search(rf'<script type="application/json" id="{report.DATA_ID}">(.*?)</script>', page.read_text(), re.S)
    return json.loads(m.group(1))


def html_text(text: str) -> str:
    """How text set with textContent appears in the dumped DOM."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def test_clicking_where_no_run_sits_in_a_refined_diagram_shows_the_nearest_cell(tmp_path):
    # A 2 x 2 grid and one refined run inside (report/diagram.py's nearest fill): the lattice
    # position (3e-2, 1e-4) holds no run; the nearest cell is (1e-1, 1e-4), a confused one.
    steps = np.array([0, 100, 200, 400, 800, 1600])
    shapes = [(1e-3, 1e-4, 100, None), (1e-1, 1e-4, None, None), (1e-3, 1e-2, 100, None), (1e-1, 1e-2, None, None),
              (3e-2, 1e-3, 100, 800)]
    runs, metrics = [], []
    for i, (repr_lr, decoder_lr, t_train, t_val) in enumerate(shapes):
        runs.append(dict(run_id=f"r{i}", pack_id="p", repr_lr=repr_lr, decoder_lr=decoder_lr, repr_wd=0.0, decoder_wd=0.0,
                         init_scale=1.0, train_fraction=0.5, seed=0, status="done"))
        metrics.append(pd.DataFrame({"run_id": f"r{i}", "step": steps, "train_loss": 1 / (1 + steps), "val_loss": 2 / (1 + steps),
                                     "train_acc": np.where(steps >= (t_train or 1e9), 1.0, 0.1),
                                     "val_acc": np.where(steps >= (t_val or 1e9), 1.0, 0.05), "weight_norm": 10.0}))
    metrics = pd.concat(metrics, ignore_index=True)
    labels = phases.classify(metrics, phases.PhaseCriteria(gap=500))
    page = tmp_path / "refined.html"
    page.write_text(report.render_report(pd.DataFrame(runs), labels, metrics, title="refined"))
    data = report_data(page)
    nearest = next(k for k, c in enumerate(data["cells"]) if (c["x"], c["y"]) == (1e-1, 1e-4))
    seen = click(page, tmp_path, {"row": 0, "x": 3e-2, "y": 1e-4})  # no run sits there
    assert seen["selected"] == str(nearest)
    assert seen["title"] == data["cells"][nearest]["title"]
