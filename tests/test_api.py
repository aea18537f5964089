"""The Python API (grokgrid.open, run_sweep, resume_sweep, status, classify, ls) on results
folders built without Ray, and (slow) on a tiny sweep trained on local Ray."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

import grokgrid
from grokgrid import driver, store
from grokgrid.refusal import Refused
from results_folders import make_results

TINY = {
    "name": "tiny",
    "model": {"hidden": [16, 16]},
    "training": {"steps": 40, "eval_every": 10, "batch_size": 32},
    "grid": {"repr_lr": [1e-3, 1e-2], "decoder_lr": [1e-3]},
    "resources": {"cpus_per_trial": 1, "pack_size": 1},
}


# Four runs (2 repr_lr x 2 seeds), 40 steps each, classified once.
FOUR = {**TINY, "name": "four", "grid": {"repr_lr": [1e-3, 1e-2], "seed": [0, 1]}}


@pytest.fixture
def whole(tmp_path) -> Path:
    """A whole, classified results folder with a runs table, metrics and labels."""
    _, sweep_dir = make_results(tmp_path, FOUR)
    grokgrid.classify(sweep_dir, reporter=driver.Quiet())
    return sweep_dir


def test_import_grokgrid_is_cheap_and_the_api_loads_on_first_use():
    code = "import sys, grokgrid; print(sorted(m for m in ('pandas', 'torch', 'ray') if m in sys.modules)); grokgrid.open"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    with pytest.raises(AttributeError, match="no attribute 'bogus'"):
        grokgrid.bogus  # noqa: B018


def test_open_reads_the_spec_runs_labels_and_one_runs_curves(whole):
    s = grokgrid.open(whole)
    assert s.name == "four" and s.spec.name == "four" and "four" in repr(s)
    runs = s.runs
    assert len(runs) == 4 and {"run_id", "pack_id", "repr_lr", "decoder_lr", "status"} <= set(runs.columns)
    labels = s.labels
    assert set(labels["run_id"]) == set(runs["run_id"])
    assert labels.equals(store.read_labels(whole))
    run_id = runs["run_id"].iloc[0]
    curves = s.curves(run_id)
    assert curves.index.name == "step" and curves.index.is_monotonic_increasing
    assert curves.index[-1] == s.spec.training.steps
    expected = store.read_metrics(whole, [run_id]).drop(columns="run_id").set_index("step")
    pd.testing.assert_frame_equal(curves, expected)
    assert set(s.metrics()["run_id"]) == set(runs["run_id"])
    with pytest.raises(Refused, match="run nope: no rows"):
        s.curves("nope")


def test_status_counts_from_the_rows_on_disk(whole):
    now = grokgrid.status(whole)
    assert now.runs == 4 and now.counts["done"] == 4 and now.unfinished == 0
    assert now.run_steps_done == now.run_steps_total == 4 * now.spec.training.steps
    assert now.driver is None and not now.damaged
    labels = grokgrid.open(whole).labels
    assert sum(now.phases_done.values()) == 4
    # classified now with the spec's criteria: the same phases as the shipped labels
    assert now.phases_done == dict(labels["phase"].value_counts().reindex(list(now.phases_done), fill_value=0))


def test_classify_and_report_write_into_the_folder_or_elsewhere(whole, tmp_path):
    (whole / store.LABELS_FILE).unlink()
    assert grokgrid.open(whole).labels is None
    labels = grokgrid.classify(whole, reporter=driver.Quiet())
    assert len(labels) == 4 and (whole / store.LABELS_FILE).is_file()
    strict = grokgrid.classify(whole, out=tmp_path / "strict.parquet", threshold=0.999, reporter=driver.Quiet())
    assert (tmp_path / "strict.parquet").is_file() and len(strict) == 4
    path = grokgrid.open(whole).report(out=tmp_path / "r.html")
    assert Path(path) == tmp_path / "r.html" and "<html" in (tmp_path / "r.html").read_text()[:500].lower()
    with pytest.raises(Refused, match="--axes 'repr_lr': give two hyperparameters"):
        grokgrid.open(whole).report(axes="repr_lr")


def test_bad_input_is_refused_in_one_line_and_nothing_is_written(tmp_path):
    with pytest.raises(Refused, match="no such folder"):
        grokgrid.open(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(Refused, match="not a grokgrid results folder"):
        grokgrid.open(tmp_path / "empty")
    with pytest.raises(Refused, match="training.steps"):
        grokgrid.run_sweep({**TINY, "training": {"steps": -1}}, results=tmp_path / "results")
    with pytest.raises(Refused, match="--cpus-per-trial"):
        grokgrid.run_sweep(TINY, results=tmp_path / "results", cpus_per_trial=0)
    assert not (tmp_path / "results").exists()


def test_ls_lists_every_sweep_under_a_root(whole, tmp_path):
    root = whole.parent
    (root / "not-a-sweep").mkdir()
    (root / "unfinished").mkdir()
    (root / "unfinished" / store.SPEC_FILE).write_text(yaml.safe_dump(TINY | {"name": "unfinished"}))
    found = {item.name: item for item in grokgrid.ls(root)}
    assert set(found) == {"four", "unfinished"}
    assert (found["four"].runs, found["four"].done) == (4, 4)
    assert sum(found["four"].phases.values()) == 4
    assert (found["unfinished"].runs, found["unfinished"].done, found["unfinished"].phases) == (2, 0, None)
    assert not found["four"].running
    with pytest.raises(Refused, match="no such folder"):
        grokgrid.ls(tmp_path / "nowhere")


@pytest.mark.slow
def test_run_sweep_then_resume_sweep_from_python(tmp_path, ray_local):
    s = grokgrid.run_sweep(TINY, results=tmp_path / "results", reporter=driver.Quiet())
    assert isinstance(s, grokgrid.Sweep) and s.status().counts["done"] == 2
    assert len(s.labels) == 2 and (s.path / store.REPORT_FILE).is_file()
    again = grokgrid.resume_sweep(s.path, report=False, reporter=driver.Quiet())
    assert again.status().counts["done"] == 2
    pd.testing.assert_frame_equal(again.metrics(), s.metrics())


def _readme_block(marker: str) -> str:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    after = readme.split(f"<!-- {marker}", 1)[1]
    return after.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_readmes_reading_example_runs_on_a_results_folder(tmp_path, monkeypatch):
    # The README's notebook example, as written, on a quickstart-shaped folder built without Ray.
    quickstart = {**FOUR, "name": "quickstart", "grid": {"repr_lr": [1e-3, 1e-2], "decoder_lr": [1e-4, 1e-3]}}
    _, sweep_dir = make_results(tmp_path, quickstart)
    grokgrid.classify(sweep_dir, reporter=grokgrid.Quiet())
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(_readme_block("api-read"), "README.md", "exec"), namespace)  # noqa: S102
    assert namespace["table"].shape[0] == 4 and namespace["curve"].index.name == "step"
    assert (tmp_path / "strict.parquet").is_file() and (tmp_path / "diagram.html").is_file()


def test_every_api_name_stays_the_function_once_the_library_is_loaded():
    # A submodule named like an API function would shadow it (``import grokgrid.x`` sets the
    # package attribute x to the module): each name must still be the api's after every import.
    code = ("import grokgrid, grokgrid.api, grokgrid.cli, grokgrid.report; from grokgrid import api; "
            "print([n for n in grokgrid._API if getattr(grokgrid, n) is not getattr(api, n)])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_run_whose_toy_split_caps_val_accuracy_says_so_in_its_reason():
    from grokgrid import api, grid
    from grokgrid.spec import spec_from_dict

    def labelled(task: dict, model: str = "toy") -> pd.DataFrame:
        # 28 of 55 pairs: the splits of seeds 0, 1, 2 determine 74%, 81% and 63% of their val pairs.
        spec = spec_from_dict({"name": "t", "task": task, "model": {"name": model},
                               "grid": {"train_fraction": [0.5], "seed": [0, 1, 2]}})
        runs = grid.expand(spec)
        labels = pd.DataFrame({"run_id": [r.run_id for r in runs], "phase": ["memorization", "grokking", "confusion"],
                               "reason": ["plain"] * 3})
        return api._with_capped_splits(labels, spec, 0.9)

    reasons = labelled({"name": "toy_addition"})["reason"].tolist()
    assert reasons[0] == ("plain; its split determines 74% of the validation pairs (Liu's ideal accuracy), below 0.9: "
                          "by Liu's effective theory no learning rate generalises it")
    assert reasons[1] == "plain"  # it generalised: nothing to explain
    assert reasons[2].startswith("plain; its split determines") and "below 0.9" in reasons[2]
    assert labelled({"name": "toy_addition", "split": "determined"})["reason"].tolist() == ["plain"] * 3
    assert labelled({"name": "modular", "p": 7}, "mlp")["reason"].tolist() == ["plain"] * 3  # a task that cannot tell
    # An MLP sees the operands apart, not as E_i + E_j: an undetermined pair is not out of its reach.
    assert labelled({"name": "toy_addition"}, "mlp")["reason"].tolist() == ["plain"] * 3
