"""The command line end to end: bad input is one line and exit 2 with nothing written; a tiny real
sweep on local Ray writes spec, runs, per-step Parquet, labels and report."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow.dataset as ds
import pytest
import yaml
from typer.testing import CliRunner

from grokgrid import store
from grokgrid.cli import app
from mnist_files import fake_mnist, write_mnist

runner = CliRunner()

TINY = {
    "name": "tiny",
    "model": {"hidden": [16, 16]},
    "training": {"steps": 120, "eval_every": 20},
    "resources": {"flush_every": 50, "pack_size": 2},
    "grid": {"repr_lr": [1e-3, 3e-2], "decoder_lr": [1e-3, 1e-2]},
    "phases": {"gap": 40},
}


def write_spec(folder: Path, data: dict, name: str = "spec.yaml") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(data))
    return path


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


BAD_SPECS = [
    ({**TINY, "grid": {"repr_lrr": [1e-3]}}, "grid.repr_lrr: unknown key"),
    ({**TINY, "training": {"steps": "lots"}}, "training.steps: expected a number"),
    ({**TINY, "grid": {"repr_lr": []}}, "grid.repr_lr: empty list"),
    ({**TINY, "grid": {"decoder_lr": [1e-3, -1e-2]}}, "grid.decoder_lr[1]: must be > 0"),
]


@pytest.mark.parametrize("data, message", BAD_SPECS)
def test_bad_spec_is_one_line_exit_2_and_writes_nothing(tmp_path, data, message):
    spec = write_spec(tmp_path, data)
    results = tmp_path / "results"
    result = invoke("sweep", spec, "--results", results)
    assert result.exit_code == 2
    assert result.stderr.strip().startswith(f"error: {message}")
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output + result.stderr
    assert not results.exists()


def test_bad_spec_in_a_real_process_has_no_traceback(tmp_path):
    spec = write_spec(tmp_path, BAD_SPECS[0][0])
    proc = subprocess.run(
        [sys.executable, "-m", "grokgrid.cli", "sweep", str(spec), "--results", str(tmp_path / "r")],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"error: {BAD_SPECS[0][1]}; valid keys are " + proc.stderr.split("valid keys are ")[1].strip()]
    assert not (tmp_path / "r").exists()


def test_missing_spec_file_and_missing_results_folder(tmp_path):
    result = invoke("sweep", tmp_path / "nope.yaml")
    assert result.exit_code == 2 and "no such file" in result.stderr
    for command in ("classify", "report"):
        result = invoke(command, tmp_path / "absent")
        assert result.exit_code == 2 and "no such folder" in result.stderr
    (tmp_path / "plain").mkdir()
    result = invoke("classify", tmp_path / "plain")
    assert result.exit_code == 2 and "not a grokgrid results folder" in result.stderr


def test_an_mnist_sweep_without_its_files_is_one_line_exit_2_and_writes_nothing(tmp_path):
    missing = tmp_path / "no-mnist"
    data = {**TINY, "task": {"name": "mnist", "root": str(missing)}, "model": {"name": "mlp", "hidden": [16]}}
    spec, results = write_spec(tmp_path, data), tmp_path / "results"
    result = invoke("sweep", spec, "--results", results)
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        f"error: task.root: {missing}: no such folder; download MNIST with torchvision.datasets.MNIST('{missing}', "
        "download=True) or point task.root to the folder of its idx files; the digits task needs no download"]
    assert "Traceback" not in result.output + result.stderr and result.stdout == ""
    assert not results.exists()
    # A dry run too: its plan sizes the model from the data. With the files, it plans.
    planned = invoke("sweep", spec, "--results", results, "--dry-run")
    assert planned.exit_code == 2 and planned.stderr == result.stderr and not results.exists()
    write_mnist(missing, *fake_mnist(20))
    planned = invoke("sweep", write_spec(tmp_path, {**data, "task": {**data["task"], "n_images": 20}}), "--results", results, "--dry-run")
    assert planned.exit_code == 0 and "dry run: nothing started, nothing written" in planned.stdout and not results.exists()


def test_version():
    result = invoke("--version")
    assert result.exit_code == 0 and result.stdout.startswith("grokgrid ")


@pytest.fixture(scope="module")
def tiny_sweep(tmp_path_factory, ray_local):
    """The tiny sweep run once through the CLI on local Ray."""
    folder = tmp_path_factory.mktemp("cli")
    spec = write_spec(folder, TINY)
    result = invoke("sweep", spec, "--results", folder / "results")
    assert result.exit_code == 0, result.output + result.stderr
    return spec, folder / "results" / "tiny", result


@pytest.mark.slow
def test_sweep_writes_the_whole_results_folder(tiny_sweep):
    _, sweep_dir, result = tiny_sweep
    for name in (store.SPEC_FILE, store.RUNS_FILE, store.LABELS_FILE, store.REPORT_FILE):
        assert (sweep_dir / name).is_file(), name
    assert f"report: {sweep_dir / store.REPORT_FILE}" in result.stdout
    runs = pd.read_parquet(sweep_dir / store.RUNS_FILE)
    assert len(runs) == 4 and set(runs["status"]) == {"done"}
    assert sorted(zip(runs.repr_lr, runs.decoder_lr)) == [(1e-3, 1e-3), (1e-3, 1e-2), (3e-2, 1e-3), (3e-2, 1e-2)]


@pytest.mark.slow
def test_sweep_metrics_read_back_with_pandas_and_pyarrow(tiny_sweep):
    _, sweep_dir, _ = tiny_sweep
    metrics_dir = sweep_dir / store.METRICS_DIR
    frame = pd.read_parquet(metrics_dir)
    table = ds.dataset(metrics_dir, format="parquet", partitioning="hive").to_table()
    assert len(frame) == table.num_rows == 4 * 7  # steps 0, 20, ..., 120
    ours = store.read_metrics(sweep_dir)
    assert ours.groupby("run_id")["step"].apply(list).map(tuple).unique().tolist() == [(0, 20, 40, 60, 80, 100, 120)]
    assert not ours.duplicated(["run_id", "step"]).any()
    assert ours["train_acc"].between(0, 1).all() and (ours["weight_norm"] > 0).all()
    # flush_every 50 < steps spread each run's rows over several parts while it trained; once its
    # pack was done they were compacted into one file a run (store.compact_runs).
    assert len(list(metrics_dir.glob("run_id=*/part-*.parquet"))) == 4
    assert not [p for p in sweep_dir.rglob(".*") if p.is_file() and "tune" not in p.parts]


@pytest.mark.slow
def test_labels_and_report(tiny_sweep):
    _, sweep_dir, _ = tiny_sweep
    labels = pd.read_parquet(sweep_dir / store.LABELS_FILE)
    assert len(labels) == 4
    assert set(labels["phase"]) <= {"comprehension", "grokking", "memorization", "confusion", "diverged"}
    html = (sweep_dir / store.REPORT_FILE).read_text()
    assert "Phase diagram" in html and "<script src=\"http" not in html


@pytest.mark.slow
def test_rerun_of_the_same_spec_skips_finished_runs(tiny_sweep):
    spec, sweep_dir, _ = tiny_sweep
    before = store.read_metrics(sweep_dir)
    result = invoke("sweep", spec, "--results", sweep_dir.parent)
    assert result.exit_code == 0, result.output
    assert "nothing left to run" in result.stdout
    pd.testing.assert_frame_equal(store.read_metrics(sweep_dir), before)


@pytest.mark.slow
def test_a_different_spec_under_the_same_name_is_refused(tiny_sweep, tmp_path):
    _, sweep_dir, _ = tiny_sweep
    other = write_spec(tmp_path, {**TINY, "training": {**TINY["training"], "steps": 140}})
    result = invoke("sweep", other, "--results", sweep_dir.parent)
    assert result.exit_code == 2
    assert "different spec (differs in training.steps)" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_classify_overrides_and_report_axes(tiny_sweep):
    _, sweep_dir, _ = tiny_sweep
    result = invoke("classify", sweep_dir, "--budget", "40")
    assert result.exit_code == 0, result.output
    assert "budget 40" in result.stdout
    labels = pd.read_parquet(sweep_dir / store.LABELS_FILE)
    assert (labels["last_step"] == 40).all()
    assert invoke("classify", sweep_dir, "--threshold", "1.5").exit_code == 2
    bad = invoke("report", sweep_dir, "--axes", "repr_lr,bogus")
    assert bad.exit_code == 2 and "bogus" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    good = invoke("report", sweep_dir, "--axes", "decoder_lr,repr_lr")
    assert good.exit_code == 0, good.output
    facet = invoke("report", sweep_dir, "--facet", "bogus")
    assert facet.exit_code == 2 and facet.stderr.startswith("error: --facet") and len(facet.stderr.strip().splitlines()) == 1
    semi = invoke("classify", sweep_dir, "--semi-min", "0.95")
    assert semi.exit_code == 2 and "semi_min" in semi.stderr
    flat = invoke("classify", sweep_dir, "--plateau-rise-max", "2")
    assert flat.exit_code == 2 and "plateau_rise_max must be a number in [0, 1], got 2.0" in flat.stderr
    assert invoke("classify", sweep_dir, "--plateau-rise-max", "0").exit_code == 0
    invoke("classify", sweep_dir)  # leave the spec's labels for the other tests


def test_bad_per_trial_resources_are_one_line_errors(tmp_path):
    spec = write_spec(tmp_path, TINY)
    for flag, value, words in (("--gpus-per-trial", "-1", "must be a finite number >= 0"), ("--cpus-per-trial", "0", "must be a finite number > 0")):
        result = invoke("sweep", spec, "--results", tmp_path / "r", flag, value)
        assert result.exit_code == 2 and result.stderr.startswith(f"error: {flag}: {words}")
        assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_other_resources_on_the_command_line_are_the_same_sweep(tiny_sweep):
    spec, sweep_dir, _ = tiny_sweep
    result = invoke("sweep", spec, "--results", sweep_dir.parent, "--cpus-per-trial", "2", "--no-report")
    assert result.exit_code == 0, result.stderr
    assert "nothing left to run" in result.stdout


def test_an_unusable_storage_uri_is_one_line_exit_2_and_writes_nothing(tmp_path):
    spec = write_spec(tmp_path, TINY)
    result = invoke("sweep", spec, "--storage", "nosuchscheme://bucket/results")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: --storage nosuchscheme://bucket/results: cannot open this storage URI")
    assert len(result.stderr.strip().splitlines()) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["spec.yaml"]
    missing = invoke("status", f"file://{tmp_path}/nope")
    assert missing.exit_code == 2 and "no such folder" in missing.stderr


@pytest.mark.slow
def test_a_sweep_under_a_filesystem_uri_then_status_classify_report(tmp_path, ray_local, monkeypatch):
    # file:// goes through pyarrow's filesystem layer as s3:// and gs:// do. A URI mistaken for
    # a local path anywhere would create a folder named "file:" in the working directory.
    monkeypatch.chdir(tmp_path)
    spec = write_spec(tmp_path, {**TINY, "name": "tiny_uri"})
    storage = f"file://{tmp_path}/bucket/results"
    sweep_uri = f"{storage}/tiny_uri"
    result = invoke("sweep", spec, "--storage", storage)
    assert result.exit_code == 0, result.output + result.stderr
    printed = result.stdout.replace("\n", "")  # rich wraps long lines
    assert f"results in {sweep_uri}" in printed and f"report: {sweep_uri}/report.html" in printed

    folder = tmp_path / "bucket" / "results" / "tiny_uri"
    for name in (store.SPEC_FILE, store.RUNS_FILE, store.LABELS_FILE, store.REPORT_FILE):
        assert (folder / name).is_file(), name
    assert (folder / store.TUNE_DIR).is_dir()  # Tune's experiment state went there too
    assert not (folder / store.CHECKPOINTS_DIR).exists()  # pruned once every run was done
    assert not (tmp_path / "file:").exists()
    runs = store.read_runs(sweep_uri)
    assert set(runs["status"]) == {"done"} and runs["node_id"].str.len().gt(0).all()
    metrics = store.read_metrics(sweep_uri)
    assert len(metrics) == 4 * 7 and not metrics.duplicated(["run_id", "step"]).any()
    pd.testing.assert_frame_equal(metrics, store.read_metrics(folder))

    status = invoke("status", sweep_uri)
    assert status.exit_code == 0 and "4 runs: 4 done" in status.stdout
    assert invoke("classify", sweep_uri, "--budget", "60").exit_code == 0
    assert (store.read_labels(sweep_uri)["last_step"] == 60).all()
    copy = tmp_path / "copy.html"
    report = invoke("report", sweep_uri, "--out", copy)
    assert report.exit_code == 0, report.stderr
    assert "Phase diagram" in copy.read_text() and f"report: {copy}" in report.stdout.replace("\n", "")
    again = invoke("sweep", spec, "--storage", storage, "--no-report")
    assert again.exit_code == 0 and "nothing left to run" in again.stdout


def test_a_sweep_under_a_uri_is_locked_in_the_drivers_cache(tmp_path, monkeypatch):
    # An object store has no flock: a second driver on this machine is stopped by a lock file in
    # the local cache, named after the URI, and the message names the sweep's URI.
    from grokgrid import folder
    from grokgrid.lock import SweepLocked
    from grokgrid.location import as_location

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    where = as_location(f"file://{tmp_path}/bucket/results/tiny")
    held = folder.lock(where)
    try:
        assert held.path.parent.parent == tmp_path / "cache" / "grokgrid" / "locks"
        with pytest.raises(SweepLocked, match=f"^file://{tmp_path}/bucket/results/tiny is in use by grokgrid pid"):
            folder.sweep_lock(where).acquire()
        assert not (tmp_path / "bucket").exists()
    finally:
        held.release()
    folder.sweep_lock(where).acquire().release()  # free again once released


@pytest.mark.slow
def test_resources_no_node_has_are_refused_before_anything_is_written(tmp_path, ray_local):
    spec = write_spec(tmp_path, TINY)
    for flag, value, what in (("--cpus-per-trial", "99", "cpus_per_trial"), ("--gpus-per-trial", "1", "gpus_per_trial")):
        result = invoke("sweep", spec, "--results", tmp_path / "r", flag, value)
        assert result.exit_code == 2, result.output
        line = result.stderr.strip()
        assert len(line.splitlines()) == 1 and line.startswith(f"error: resources.{what}: a trial asks for")
        assert "but the largest node has 2 CPU(s) and 0 GPU(s)" in line and "no trial could ever start" in line
    assert not (tmp_path / "r").exists()


DAMAGE = {**TINY, "name": "damage", "training": {"steps": 120, "eval_every": 20, "precision": "float64"}}


@pytest.mark.slow
def test_resume_retrains_exactly_the_damaged_runs_and_rebuilds_a_torn_runs_table(tmp_path, ray_local):
    spec = write_spec(tmp_path, DAMAGE)
    assert invoke("sweep", spec, "--results", tmp_path / "results", "--no-report").exit_code == 0
    sweep_dir = tmp_path / "results" / "damage"
    before = store.read_metrics(sweep_dir)
    parts = sorted((sweep_dir / store.METRICS_DIR).glob("run_id=*/part-*.parquet"))
    torn = parts[0]
    damaged_run = torn.parent.name.removeprefix("run_id=")
    torn.write_bytes(torn.read_bytes()[:50])
    untouched = {p: p.stat().st_mtime_ns for p in parts if p.parent != torn.parent}
    (sweep_dir / store.RUNS_FILE).write_bytes(b"PAR1 torn")

    resumed = invoke("resume", sweep_dir, "--no-report")
    assert resumed.exit_code == 0, resumed.output + resumed.stderr
    assert "runs.parquet is unreadable" in resumed.stderr and f"run {damaged_run}: " in resumed.stderr
    assert "3 done, 1 to finish" in resumed.stdout
    assert {p: p.stat().st_mtime_ns for p in untouched} == untouched  # the sound runs were not retrained
    runs = store.read_runs(sweep_dir)
    assert len(runs) == 4 and set(runs["status"]) == {"done"}
    after = store.read_metrics(sweep_dir)
    assert not after.duplicated(["run_id", "step"]).any()
    pd.testing.assert_frame_equal(after.drop(columns="elapsed_s"), before.drop(columns="elapsed_s"), check_exact=False, rtol=1e-9)
    assert invoke("classify", sweep_dir).exit_code == 0
