"""The mnist task on fake local copies (real idx files, random pixels): every layout, plain or
gzipped, read to the right values; every problem with the files a one-line SpecError naming
task.root or task.n_images; a sweep checks the files before it writes anything, while reading
a finished sweep needs none; and a tiny sweep trains on them."""

from __future__ import annotations

import dataclasses
import gzip
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import grokgrid
from grokgrid import driver, folder, grid, store, train
from grokgrid.location import as_location
from grokgrid.refusal import Refused
from grokgrid.spec import SpecError, dump_spec, load_spec, spec_from_dict
from grokgrid.tasks import mnist
from grokgrid.tasks.mnist_spec import MnistSpec
from mnist_files import IMAGES, LABELS, LAYOUTS, fake_mnist, idx_bytes, write_mnist
from results_folders import make_results


def task(root, n_images: int = 40, **more) -> MnistSpec:
    return MnistSpec.from_data({"root": str(root), "n_images": n_images, **more})


def one_line_error(call, where: str, *words: str) -> SpecError:
    with pytest.raises(SpecError) as caught:
        call()
    error = caught.value
    assert error.where == where and "\n" not in str(error)
    for word in words:
        assert word in str(error), str(error)
    return error


# ----------------------------------------------------------------------------- reading the files


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gz"])
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_every_layout_reads_the_first_images_as_torchvision_would(tmp_path, layout, gz):
    pixels, labels = fake_mnist(40)
    write_mnist(tmp_path, pixels, labels, layout=layout, gz=gz)
    spec = task(tmp_path, n_images=30)
    data = spec.load(dtype=torch.float64)
    assert spec.n_examples == len(data.targets) == len(data.inputs) == 30
    assert data.inputs.shape == (30, 784) and data.inputs.dtype == torch.float64
    # ToTensor (pixels / 255) then a flatten, on the first 30 images of the file.
    assert torch.equal(data.inputs, torch.from_numpy(pixels[:30].reshape(30, 784).astype(np.float64)) / 255)
    assert float(data.inputs.min()) == 0.0 and float(data.inputs.max()) == 1.0
    assert data.targets.dtype == torch.int64 and data.targets.tolist() == labels[:30].tolist()
    assert data.n_classes == 10 and data.n_tokens is None and data.pairs is None
    assert spec.load(dtype=torch.float32).inputs.dtype == torch.float32


def test_root_may_be_the_raw_folder_itself(tmp_path):
    pixels, labels = fake_mnist(12)
    raw = write_mnist(tmp_path, pixels, labels, layout="torchvision", gz=True)
    assert raw == tmp_path / "MNIST" / "raw"
    assert task(raw, 12).load(dtype=torch.float64).targets.tolist() == labels.tolist()


def test_the_plain_file_is_read_where_torchvision_keeps_both(tmp_path):
    first, second = fake_mnist(10, seed=0), fake_mnist(10, seed=1)
    write_mnist(tmp_path, *first)
    write_mnist(tmp_path, *second, gz=True)
    assert task(tmp_path, 10).load(dtype=torch.float64).targets.tolist() == first[1].tolist()


def test_the_arrays_are_read_once_per_folder_and_size(tmp_path, monkeypatch):
    write_mnist(tmp_path, *fake_mnist(20))
    monkeypatch.chdir(tmp_path)
    mnist.images.cache_clear()
    task(".", 20).load(dtype=torch.float64)
    task(tmp_path, 20).load(dtype=torch.float32)  # the same folder, relative or absolute
    task(tmp_path, 10).load(dtype=torch.float64)
    assert mnist.images.cache_info().misses == 2  # read twice: 20 images, then 10


# ----------------------------------------------------------------------------- problems with the files


def test_a_missing_folder_says_how_to_get_mnist(tmp_path):
    error = one_line_error(task(tmp_path / "nope").check_available, "task.root", "no such folder",
                           "torchvision.datasets.MNIST(", "download=True", "digits task needs no download")
    assert str(tmp_path / "nope") in error.problem
    (tmp_path / "file").write_text("x")
    one_line_error(task(tmp_path / "file").check_available, "task.root", "is not a folder")


def test_missing_files_name_what_was_looked_for_and_where(tmp_path):
    error = one_line_error(task(tmp_path).check_available, "task.root", IMAGES, LABELS, ".gz")
    for place in (tmp_path, tmp_path / "MNIST" / "raw", tmp_path / "raw"):
        assert str(place) in error.problem
    pixels, labels = fake_mnist(5)
    (tmp_path / IMAGES).write_bytes(idx_bytes(pixels))
    one_line_error(task(tmp_path, 5).check_available, "task.root", f"has no {LABELS}", f"beside {IMAGES}")


@pytest.mark.parametrize("which", ["images", "labels"])
def test_a_bad_magic_number_is_refused(tmp_path, which):
    pixels, labels = fake_mnist(5)
    write_mnist(tmp_path, pixels, labels)
    name, array, wrong = (IMAGES, pixels, 2049) if which == "images" else (LABELS, labels, 2051)
    (tmp_path / name).write_bytes(idx_bytes(array, magic=wrong))
    one_line_error(task(tmp_path, 5).check_available, "task.root", f"not an MNIST idx {which} file",
                   f"magic number {wrong}", f"expected {4100 - wrong}")


def test_fewer_images_than_n_images_names_n_images(tmp_path):
    write_mnist(tmp_path, *fake_mnist(40))
    spec = task(tmp_path, 41)
    one_line_error(spec.check_available, "task.n_images", "holds 40 images, fewer than n_images 41", "use n_images <= 40")
    one_line_error(lambda: spec.load(dtype=torch.float64), "task.n_images", "fewer than n_images 41")
    pixels, labels = fake_mnist(40)
    (tmp_path / LABELS).write_bytes(idx_bytes(labels[:39]))
    one_line_error(task(tmp_path, 40).check_available, "task.n_images", "holds 39 labels")


def test_damaged_files_are_refused_when_read(tmp_path):
    pixels, labels = fake_mnist(20)
    write_mnist(tmp_path, pixels, labels)
    whole = idx_bytes(pixels)
    (tmp_path / IMAGES).write_bytes(whole[: len(whole) - 100])  # the header still says 20 images
    one_line_error(task(tmp_path, 20).check_available, "task.root", "is truncated", "(15580 of 15680 bytes read)")
    one_line_error(lambda: task(tmp_path, 20).load(dtype=torch.float64), "task.root", "is truncated")
    task(tmp_path, 19).check_available()  # the first 19 images are whole
    (tmp_path / IMAGES).write_bytes(b"\x00\x00")
    one_line_error(task(tmp_path, 20).check_available, "task.root", "is truncated")
    (tmp_path / IMAGES).unlink()
    (tmp_path / f"{IMAGES}.gz").write_bytes(b"not gzip at all, sorry")
    one_line_error(task(tmp_path, 20).check_available, "task.root", "cannot read", "download it again")
    (tmp_path / f"{IMAGES}.gz").write_bytes(gzip.compress(whole))
    (tmp_path / LABELS).write_bytes(idx_bytes(np.full(20, 12, dtype=np.uint8)))
    one_line_error(task(tmp_path, 20).check_available, "task.root", "label 12, not a digit")


# ----------------------------------------------------------------------------- the spec


def test_the_spec_reads_no_files_and_keeps_root_as_written(tmp_path, monkeypatch):
    spec = spec_from_dict({"name": "m", "task": {"name": "mnist", "root": "somewhere/mnist"}, "model": {"name": "mlp"},
                           "grid": {"train_fraction": [1000 / 11000]}})
    assert spec.task.n_examples == 11000 and spec.task.loss == "mse" and spec.task.root == "somewhere/mnist"
    monkeypatch.chdir(tmp_path)
    assert spec.task.located().root == str(tmp_path / "somewhere" / "mnist")
    assert MnistSpec(root="~/m").located().root == str(Path("~/m").expanduser())
    # Where the files are is not what they hold: no part of a run id.
    moved = dataclasses.replace(spec, task=spec.task.located())
    assert [r.run_id for r in grid.expand(moved)] == [r.run_id for r in grid.expand(spec)]
    other = dataclasses.replace(spec, task=dataclasses.replace(spec.task, n_images=12000))
    assert grid.expand(other)[0].run_id != grid.expand(spec)[0].run_id


@pytest.mark.parametrize("value, problem", [(7, "expected a folder path"), ("", "expected a folder path"),
                                            (["a"], "expected a folder path"), ("a\nb", "the path .* holds a control character")])
def test_a_root_that_is_not_a_path_is_a_spec_error(value, problem):
    with pytest.raises(SpecError, match=f"^task.root: {problem}"):
        spec_from_dict({"name": "m", "task": {"name": "mnist", "root": value}, "model": {"name": "mlp"}})


def test_n_images_is_bounded_and_other_tasks_take_no_root():
    with pytest.raises(SpecError, match="^task.n_images: must be >= 2"):
        spec_from_dict({"name": "m", "task": {"name": "mnist", "n_images": 1}, "model": {"name": "mlp"}})
    with pytest.raises(SpecError, match="^task.root: not a parameter of task digits"):
        spec_from_dict({"name": "m", "task": {"name": "digits", "root": "x"}, "model": {"name": "mlp"}})
    with pytest.raises(SpecError, match="^model.name: model transformer does not read task mnist"):
        spec_from_dict({"name": "m", "task": {"name": "mnist"}, "model": {"name": "transformer"}})


# ----------------------------------------------------------------------------- sweeps


MNIST_SWEEP = {
    "name": "mnist-tiny",
    "task": {"name": "mnist", "root": "copy", "n_images": 40},
    "model": {"name": "mlp", "hidden": [16]},
    "training": {"steps": 4, "eval_every": 2, "batch_size": 8},
    "grid": {"decoder_wd": [0.0, 0.01], "train_fraction": [0.5]},
    "resources": {"pack_size": 2},
}


def test_a_pack_trains_on_the_files(tmp_path):
    write_mnist(tmp_path, *fake_mnist(40))
    spec = spec_from_dict({**MNIST_SWEEP, "task": {**MNIST_SWEEP["task"], "root": str(tmp_path)}})
    runs = grid.expand(spec)
    rows = [row for step_rows in train.run_pack(spec, runs) for row in step_rows]
    assert sorted((r["run_id"], r["step"]) for r in rows) == sorted((run.run_id, s) for run in runs for s in (0, 2, 4))
    assert all(math.isfinite(r["train_loss"]) and 0 <= r["val_acc"] <= 1 for r in rows)


def test_a_sweep_is_refused_before_writing_when_the_files_are_missing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(Refused, match=r"^task.root: .*copy: no such folder; download MNIST"):
        grokgrid.run_sweep(MNIST_SWEEP, results=tmp_path / "results", reporter=driver.Quiet())
    assert not (tmp_path / "results").exists()


def test_a_finished_sweep_reads_without_the_files_and_reruns_from_a_new_copy(tmp_path, monkeypatch):
    # The folder as a sweep leaves it (the frozen spec's root made absolute), on a machine
    # without that copy of MNIST: everything that reads it works.
    monkeypatch.chdir(tmp_path)
    trained_at = {**MNIST_SWEEP, "task": {**MNIST_SWEEP["task"], "root": "/elsewhere/mnist"}}
    _, sweep_dir = make_results(tmp_path, trained_at)
    s = grokgrid.open(sweep_dir)
    assert s.spec.task.root == "/elsewhere/mnist" and len(s.runs) == 2
    assert s.status().counts["done"] == 2
    assert len(s.classify()) == 2 and Path(s.report()).exists()
    # Resuming trains, so it needs the files: refused, one line, before anything is written.
    before = sorted(p.name for p in sweep_dir.iterdir())
    with pytest.raises(Refused, match="^task.root: /elsewhere/mnist: no such folder"):
        grokgrid.resume_sweep(sweep_dir, reporter=driver.Quiet())
    assert sorted(p.name for p in sweep_dir.iterdir()) == before
    # The same sweep pointed at a copy here is the same runs (nothing to retrain): the new
    # root is recorded, absolute; another n_images would be another sweep.
    write_mnist(tmp_path / "copy", *fake_mnist(40))
    again = grokgrid.run_sweep(MNIST_SWEEP, results=tmp_path / "results", reporter=driver.Quiet())
    assert again.spec.task.root == str(tmp_path / "copy") and again.status().counts["done"] == 2
    bigger = {**MNIST_SWEEP, "task": {**MNIST_SWEEP["task"], "n_images": 30}}
    with pytest.raises(Refused, match=r"differs in task.n_images"):
        folder.check_new_sweep(spec_from_dict(bigger), as_location(str(sweep_dir)), overwrite=False)


@pytest.mark.slow
def test_a_tiny_sweep_on_ray_trains_from_a_relative_root(tmp_path, monkeypatch, ray_local):
    monkeypatch.chdir(tmp_path)
    write_mnist(tmp_path / "copy", *fake_mnist(40), layout="torchvision", gz=True)
    s = grokgrid.run_sweep(MNIST_SWEEP, results="results", reporter=driver.Quiet())
    assert s.spec.task.root == str(tmp_path / "copy")  # what the trials read, wherever they ran
    assert "root: " + str(tmp_path / "copy") in (s.path / store.SPEC_FILE).read_text()
    assert s.status().counts["done"] == 2 and len(s.runs.pack_id.unique()) == 1
    metrics = s.metrics()
    assert sorted(set(metrics.step)) == [0, 2, 4] and metrics.run_id.nunique() == 2
    assert metrics.train_loss.map(math.isfinite).all()
    assert list(s.runs.sort_values("run_id").run_id) == sorted(r.run_id for r in grid.expand(spec_from_dict(MNIST_SWEEP)))
    shutil.rmtree(tmp_path / "copy")  # a finished sweep reads without the files
    assert isinstance(grokgrid.open(s.path).labels, pd.DataFrame)


def test_the_shipped_mnist_sweep_is_omnigroks_setup():
    spec = load_spec(Path(__file__).parent.parent / "sweeps" / "omnigrok_mnist.yaml")
    assert (spec.task.name, spec.task.loss, spec.task.n_images) == ("mnist", "mse", 11000)
    assert round(spec.grid.train_fraction[0] * spec.task.n_examples) == 1000  # Omnigrok's 1000 points
    assert spec.model.hidden == (200, 200) and spec.model.activation == "relu"  # depth 3, width 200
    assert (spec.training.steps, spec.training.batch_size, spec.training.optimizer) == (100_000, 200, "adamw")
    assert 8.0 in spec.grid.init_scale and 0.01 in spec.grid.decoder_wd  # the notebook's grokking point
    assert "root: data/mnist" in dump_spec(spec)  # relative, as written: resolved when a sweep starts
