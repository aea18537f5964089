"""grokgrid track / --log-to: a sweep's runs sent to real local tracker backends and read back
with the trackers' own readers: an MLflow file store (MlflowClient), TensorBoard event files
(TensorBoard's EventAccumulator), W&B offline run files (wandb's protobuf records). One tracker
run per grokgrid run, grouped by sweep; a second export duplicates nothing; a tracker whose
package is missing is a one-line error.

The slow tests export the real quickstart (conftest.quickstart_results: 16 runs trained in packs
of 8 on local Ray); the fast ones a quickstart-shaped folder built without Ray."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

import grokgrid
from grokgrid import store
from grokgrid.cli import app
from grokgrid.tracking.to_wandb import wandb_id
from results_folders import make_results
from wandb_files import read_offline_run

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()
AXES = ("repr_lr", "decoder_lr", "repr_wd", "decoder_wd", "init_scale", "train_fraction", "seed")


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def quickstart_spec(steps: int = 200) -> dict:
    data = yaml.safe_load((ROOT / "sweeps" / "quickstart.yaml").read_text())
    data["training"] = {**data["training"], "steps": steps}
    return data


@pytest.fixture
def shaped(tmp_path) -> Path:
    """A labelled quickstart-shaped folder (16 runs) built without Ray, fresh per test."""
    (tmp_path / "made").mkdir()
    _, sweep_dir = make_results(tmp_path / "made", quickstart_spec())
    grokgrid.classify(sweep_dir, reporter=grokgrid.Quiet())
    return sweep_dir


def expected(sweep_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The runs with their labels, and the per-step rows: what every tracker must hold."""
    s = grokgrid.open(sweep_dir)
    return s.runs.merge(s.labels, on="run_id"), s.metrics()


# ----------------------------------------------------------------------------- MLflow


def mlflow_runs(uri: str, experiment: str) -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"no experiment {experiment}"
    return client, client.search_runs([found.experiment_id], max_results=1000)


def check_mlflow(uri: str, sweep_dir: Path, monkeypatch) -> list:
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # for reading; the export opts in itself
    table, metrics = expected(sweep_dir)
    client, runs = mlflow_runs(uri, grokgrid.open(sweep_dir).name)
    assert len(runs) == len(table)
    by_id = {r.data.tags["grokgrid.run_id"]: r for r in runs}
    assert set(by_id) == set(table["run_id"])  # one MLflow run per grokgrid run, none twice
    for _, row in table.iterrows():
        run = by_id[row["run_id"]]
        assert run.info.run_name == row["run_id"] and run.info.status == "FINISHED"
        assert run.data.tags["grokgrid.sweep"] == grokgrid.open(sweep_dir).name
        assert run.data.tags["grokgrid.pack_id"] == row["pack_id"]
        assert run.data.tags["phase"] == row["phase"] and run.data.tags["reason"] == row["reason"]
        for axis in AXES:
            assert float(run.data.params[axis]) == pytest.approx(float(row[axis]))
        assert run.data.params["task.name"] == "toy_addition" and run.data.params["model.hidden"] == "[200, 200]"
        assert run.data.params["training.steps"] == str(grokgrid.open(sweep_dir).spec.training.steps)
        rows = metrics[metrics["run_id"] == row["run_id"]]
        for name in ("val_acc", "train_loss"):
            history = sorted(client.get_metric_history(run.info.run_id, name), key=lambda m: m.step)
            assert [m.step for m in history] == rows["step"].tolist()
            assert [m.value for m in history] == pytest.approx(rows[name].tolist())
        if pd.notna(row["t_val"]):
            assert run.data.metrics["t_val"] == row["t_val"]
        assert "t_val" in run.data.metrics or pd.isna(row["t_val"])
    return runs


def test_runs_logged_to_an_mlflow_file_store_read_back(shaped, tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    result = invoke("track", shaped, "--to", "mlflow")  # default: ./mlruns, a file store
    assert result.exit_code == 0, result.output + result.stderr
    uri = (tmp_path / "mlruns").as_uri()
    assert result.stdout.splitlines() == [f"tracked: mlflow: 16 run(s) at {uri} (16 new, 0 replaced, 0 unchanged)"]
    check_mlflow(uri, shaped, monkeypatch)


def test_exporting_again_duplicates_nothing_and_a_relabel_replaces_what_changed(shaped, tmp_path, monkeypatch):
    uri = (tmp_path / "store").as_uri()
    targets = ["--to", f"mlflow={uri}", "--to", f"tensorboard={tmp_path / 'tb'}"]
    assert invoke("track", shaped, *targets).exit_code == 0
    events = sorted((tmp_path / "tb").rglob("events.out.tfevents.*"))
    again = invoke("track", shaped, *targets)
    assert again.exit_code == 0
    assert again.stdout.splitlines() == [f"tracked: mlflow: 16 run(s) at {uri} (0 new, 0 replaced, 16 unchanged)",
                                         f"tracked: tensorboard: 16 run(s) at {tmp_path / 'tb'} (0 new, 0 replaced, 16 unchanged)"]
    assert sorted((tmp_path / "tb").rglob("events.out.tfevents.*")) == events  # not rewritten
    # Relabel with a lower threshold (these fake rows sit at val acc 0.5): every label changes.
    assert invoke("classify", shaped, "--threshold", "0.4").exit_code == 0
    relabelled = invoke("track", shaped, *targets)
    assert relabelled.exit_code == 0
    assert "(0 new, 16 replaced, 0 unchanged)" in relabelled.stdout.splitlines()[0]
    runs = check_mlflow(uri, shaped, monkeypatch)  # 16 active runs, each with the new label
    assert {r.data.tags["phase"] for r in runs} == {"comprehension"}
    assert len(list((tmp_path / "tb" / "quickstart").iterdir())) == 16  # no hidden leftovers either
    assert len(sorted((tmp_path / "tb").rglob("events.out.tfevents.*"))) == 16


# ----------------------------------------------------------------------------- TensorBoard


def check_tensorboard(folder: Path, sweep_dir: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    table, metrics = expected(sweep_dir)
    sweep = grokgrid.open(sweep_dir).name
    assert sorted(p.name for p in (folder / sweep).iterdir()) == sorted(table["run_id"])
    for _, row in table.iterrows():
        events = EventAccumulator(str(folder / sweep / row["run_id"]), size_guidance={"scalars": 0, "tensors": 0})
        events.Reload()
        rows = metrics[metrics["run_id"] == row["run_id"]]
        for name in ("train_acc", "val_acc", "val_loss"):
            scalars = events.Scalars(name)
            assert [s.step for s in scalars] == rows["step"].tolist()
            assert [s.value for s in scalars] == pytest.approx(rows[name].tolist(), rel=1e-6)  # float32 in the files
        assert "label/last_step" in events.Tags()["scalars"]
        text = events.Tensors("label/text_summary")[0].tensor_proto.string_val[0].decode()
        assert f"**phase**: {row['phase']}" in text
        start = events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
        hparams = plugin_data_pb2.HParamsPluginData.FromString(start).session_start_info.hparams
        assert hparams["repr_lr"].number_value == pytest.approx(row["repr_lr"])
        assert hparams["phase"].string_value == row["phase"]


def test_runs_logged_to_tensorboard_read_back_with_tensorboards_reader(shaped, tmp_path):
    result = invoke("track", shaped, "--to", f"tensorboard={tmp_path / 'tb'}")
    assert result.exit_code == 0, result.output + result.stderr
    check_tensorboard(tmp_path / "tb", shaped)


# ----------------------------------------------------------------------------- W&B


def test_runs_logged_to_wandb_offline_are_one_offline_run_each_with_their_metrics(shaped, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.delenv("WANDB_PROJECT", raising=False)
    result = invoke("track", shaped, "--to", "wandb=papers")
    assert result.exit_code == 0, result.output + result.stderr
    assert result.stdout.strip() == "tracked: wandb: 16 run(s) at papers (16 new, 0 replaced, 0 unchanged)"
    table, metrics = expected(shaped)
    files = sorted((tmp_path / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(files) == 16
    read = {r.name: r for r in map(read_offline_run, files)}
    assert set(read) == set(table["run_id"])
    for _, row in table.iterrows():
        run = read[row["run_id"]]
        assert (run.project, run.group, run.run_id) == ("papers", "quickstart", wandb_id("quickstart", row["run_id"]))
        assert run.config["repr_lr"] == pytest.approx(row["repr_lr"]) and run.config["grokgrid.run_id"] == row["run_id"]
        assert run.tags == [row["phase"]] and run.summary["phase"] == row["phase"]
        rows = metrics[metrics["run_id"] == row["run_id"]]
        assert [h["_step"] for h in run.history] == rows["step"].tolist()
        assert [h["val_acc"] for h in run.history] == pytest.approx(rows["val_acc"].tolist())
    again = invoke("track", shaped, "--to", "wandb=papers")
    assert "(0 new, 0 replaced, 16 unchanged)" in again.stdout
    assert len(list((tmp_path / "wandb").glob("offline-run-*"))) == 16  # nothing sent twice


# ----------------------------------------------------------------------------- what is sent


def test_unfinished_runs_are_not_sent_and_the_command_says_so(tmp_path, monkeypatch):
    _, sweep_dir = make_results(tmp_path, quickstart_spec(), done=10)
    grokgrid.classify(sweep_dir, reporter=grokgrid.Quiet())
    result = invoke("track", sweep_dir, "--to", f"tensorboard={tmp_path / 'tb'}")
    assert result.exit_code == 0
    assert "(10 new, 0 replaced, 0 unchanged)" in result.stdout
    assert result.stderr.strip() == (f"warning: 6 unfinished or damaged run(s) not sent; `grokgrid resume {sweep_dir}` "
                                     f"finishes them, then `grokgrid track {sweep_dir} --to tensorboard={tmp_path / 'tb'}` "
                                     "sends them")
    assert len(list((tmp_path / "tb" / "quickstart").iterdir())) == 10


def test_the_library_call_returns_what_each_export_did(shaped, tmp_path):
    done = grokgrid.track(shaped, [f"tensorboard={tmp_path / 'tb'}"], reporter=grokgrid.Quiet())
    assert [(d.target.tracker, d.created, d.replaced, d.unchanged) for d in done] == [("tensorboard", 16, 0, 0)]
    again = grokgrid.open(shaped).track(f"tensorboard={tmp_path / 'tb'}")
    assert again[0].unchanged == 16


# ----------------------------------------------------------------------------- bad input


BAD = [
    (("--to", "neptune"), "error: --to 'neptune': unknown tracker; use one of mlflow, tensorboard, wandb"),
    (("--to", "mlflow="), "error: --to 'mlflow=': nothing after '='"),
    (("--to", "tensorboard=s3://bucket/tb"), "error: --to tensorboard=s3://bucket/tb: TensorBoard logs go to a local folder here"),
    (("--to", "wandb=a/b/c"), "error: --to wandb=a/b/c: give the W&B project as PROJECT or ENTITY/PROJECT"),
    ((), "error: Missing option '--to'"),
]


@pytest.mark.parametrize("args, message", BAD)
def test_a_bad_target_is_one_line_exit_2(shaped, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    result = invoke("track", shaped, *args)
    assert result.exit_code == 2 and result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith(message), result.stderr
    assert list(tmp_path.iterdir()) == [tmp_path / "made"]  # nothing written here


def test_an_unlabelled_folder_is_refused(tmp_path):
    _, sweep_dir = make_results(tmp_path, quickstart_spec())
    result = invoke("track", sweep_dir, "--to", f"tensorboard={tmp_path / 'tb'}")
    assert result.exit_code == 2 and result.stderr.strip() == (
        f"error: {sweep_dir}: no {store.LABELS_FILE} yet; run `grokgrid classify {sweep_dir}` first")
    assert not (tmp_path / "tb").exists()


def test_log_to_without_the_labels_it_sends_is_refused_before_anything_starts(tmp_path):
    spec = tmp_path / "quickstart.yaml"
    spec.write_text(yaml.safe_dump(quickstart_spec()))
    result = invoke("sweep", spec, "--results", tmp_path / "results", "--log-to", "tensorboard", "--no-report")
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.startswith("error: --log-to sends the labelled runs, and --no-report skips the labels")
    assert not (tmp_path / "results").exists()


def test_refine_checks_its_log_to_before_it_plans_or_trains(shaped):
    before = sorted(p.relative_to(shaped) for p in shaped.rglob("*"))
    result = invoke("refine", shaped, "--log-to", "tensorboard", "--no-report")
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.startswith("error: --log-to sends the labelled runs, and --no-report skips the labels")
    result = invoke("refine", shaped, "--log-to", "neptune")
    assert result.exit_code == 2 and result.stderr.startswith("error: --log-to 'neptune': unknown tracker")
    assert sorted(p.relative_to(shaped) for p in shaped.rglob("*")) == before


@pytest.mark.parametrize("tracker, module", [("mlflow", "mlflow"), ("tensorboard", "tensorboardX"), ("wandb", "wandb")])
def test_a_tracker_whose_package_is_missing_is_one_line_naming_the_extra(shaped, tmp_path, tracker, module):
    # sys.modules[name] = None makes `import name` fail as if the package were not installed.
    spec = tmp_path / "quickstart.yaml"
    spec.write_text(yaml.safe_dump(quickstart_spec()))
    line = f"the {module} package is not installed; pip install 'grokgrid[{tracker}]'"
    for args, option in ((["track", str(shaped), "--to", tracker], "--to"),
                         (["sweep", str(spec), "--results", str(tmp_path / "results"), "--log-to", tracker], "--log-to"),
                         (["refine", str(shaped), "--log-to", tracker], "--log-to")):
        code = (f"import sys; sys.modules[{module!r}] = None; sys.argv = ['grokgrid', *{args!r}]; "
                "from grokgrid.cli import run; run()")
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
        assert proc.returncode == 2 and proc.stdout == "" and "Traceback" not in proc.stderr
        assert proc.stderr.strip().splitlines() == [f"error: {option} {tracker}: {line}"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["made", "quickstart.yaml"]  # no results, no log folder


def test_without_the_option_no_tracker_package_is_imported(shaped, tmp_path):
    code = (f"import sys, grokgrid; grokgrid.figure({str(shaped)!r}, out={str(tmp_path / 'p.png')!r}, "
            "reporter=grokgrid.Quiet()); grokgrid.classify("
            f"{str(shaped)!r}, reporter=grokgrid.Quiet()); import grokgrid.cli; "
            "print([m for m in ('mlflow', 'tensorboardX', 'tensorboard', 'wandb') if m in sys.modules])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


# ----------------------------------------------------------------------------- the quickstart


@pytest.mark.slow
def test_the_quickstart_logged_to_mlflow_and_tensorboard_at_the_end_of_its_sweep_reads_back(
        quickstart_results, tmp_path, monkeypatch):
    # `grokgrid sweep sweeps/quickstart.yaml --log-to ...` on a copy of the trained folder: every
    # run is done, so nothing retrains; the sweep labels, reports and sends the 16 runs.
    root = tmp_path / "results"
    shutil.copytree(quickstart_results, root / "quickstart")
    before = grokgrid.open(root / "quickstart").metrics()
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    uri = (tmp_path / "mlruns").as_uri()
    result = invoke("sweep", ROOT / "sweeps" / "quickstart.yaml", "--results", root,
                    "--log-to", f"mlflow={uri}", "--log-to", f"tensorboard={tmp_path / 'tb'}")
    assert result.exit_code == 0, result.output + result.stderr
    assert f"tracked: mlflow: 16 run(s) at {uri} (16 new, 0 replaced, 0 unchanged)" in result.stdout
    assert f"tracked: tensorboard: 16 run(s) at {tmp_path / 'tb'} (16 new, 0 replaced, 0 unchanged)" in result.stdout
    pd.testing.assert_frame_equal(grokgrid.open(root / "quickstart").metrics(), before)  # nothing retrained
    runs = check_mlflow(uri, root / "quickstart", monkeypatch)
    check_tensorboard(tmp_path / "tb", root / "quickstart")
    # The quickstart trains in packs (several runs per Ray trial): each run is still its own.
    packs = pd.Series([r.data.tags["grokgrid.pack_id"] for r in runs])
    assert packs.nunique() < len(runs) and packs.value_counts().max() > 1
    phases = {r.data.tags["phase"] for r in runs}
    assert {"grokking", "memorization", "confusion"} <= phases  # the real quickstart's labels, not fake ones
    grokking = [r for r in runs if r.data.tags["phase"] == "grokking"]
    assert all(r.data.metrics["t_val"] - r.data.metrics["t_train"] >= 1000 for r in grokking)


@pytest.mark.slow
def test_the_quickstart_to_wandb_offline(quickstart_results, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    result = invoke("track", quickstart_results, "--to", "wandb")
    assert result.exit_code == 0, result.output + result.stderr
    files = sorted((tmp_path / "wandb").glob("offline-run-*/run-*.wandb"))
    read = [read_offline_run(f) for f in files]
    table, metrics = expected(quickstart_results)
    assert sorted(r.name for r in read) == sorted(table["run_id"]) and {r.group for r in read} == {"quickstart"}
    for run in read:
        rows = metrics[metrics["run_id"] == run.name]
        assert np.allclose([h["train_acc"] for h in run.history], rows["train_acc"])
