"""Run ids are sha256 hashes of the spec's ``to_dict``: a refactor of the spec classes must not
change them, or every existing results folder would retrain from scratch. These values were
computed from the flat TaskSpec/ModelSpec code (before the typed spec) and are pinned here.

Per shipped sweep: (number of runs, sha256 of its sorted run ids joined by newlines, sha256 of
its ``dump_spec`` text). Per task/model pair with every parameter left out: the ``dump_spec``
hash, which pins each kind's defaults too.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from grokgrid import grid
from grokgrid.spec import dump_spec, load_spec, parse_yaml, spec_from_dict

SWEEPS = Path(__file__).parent.parent / "sweeps"

SWEEP_PINS = {
    # Sweeps added later are pinned as they were first shipped.
    "liu_decoder_wd": (90, "456b396526bfa6813a74fc6b065430cd2dcb21f37df4075db06e2364c7031f08", "c3c52b471e07c5e7667e51c543265f3c04e3d88d5a5694b4aadfa8bb02764e37"),
    "nanda_fidelity": (2, "fd206ab0eede03fbe5f25590668bf4619d3455d31b6807568a933ea87efa8eba", "e6dafb883b1ac2e9879540fc4c5520081137eb77611a4adf13e472b037797782"),
    "liu_fraction": (40, "99d3b865462a2a834c38cf97e8ac6d4321bbb5c0bcddd0e205c1504c8f24be60", "7e74cef0dd81748d90bb0f47444bc8552844a0165e84f368cb62047295e968b8"),
    # grokfast_mlp then decayed its embeddings too, then took Grokfast's algorithmic recipe
    # (new recipes, so new run ids)
    "grokfast_mlp": (6, "92946d1644ffd9c490b32c3269bb758fa7eb086e4d5b8eb9a18424a37c9f23bb", "f000945523fe7ef25bb74a7ad60da6bf1645f4cc8a92bd182a4d362c7159690a"),
    # Grokfast's own setup (issue 17 4b), the first sweeps with tied axes: pinned as first shipped;
    # the CPU size then moved to width 32 and 60,000 steps (a new recipe, so new run ids)
    "grokfast_transformer": (8, "b6a21ccc3260ce65fa888cd37ccd4e3e0a96514053d10d77ec6d639da7cfd7e8", "57fae2c6ac7659fbd18bd6d66979002c71381700e6bba5e3ec7c6f386632e4a2"),
    "grokfast_transformer_paper": (6, "2f6472eab070d49aa00668fdfdfaa0479c43cd0cb011b08d0824fb793096fe8b", "354e6e822d282687c42f90b6a7efec381e147975719a3a2db74c01b8b434ccc7"),
    # liu_lr then trained on splits that determine every validation pair (task.split: determined,
    # a new recipe, so new run ids)
    "liu_lr": (147, "5b146be2b26eb74225bca2b8b2f245cfe4a37f55b91d630bdfa9c5a4140e7656", "d01e04db91aac68e6b7552cdb173cd60d3dbdf36c6a97f3f76b26f8f4d18ad06"),
    # + Tan & Huang's perturbed-entropy claim (issue 16): the same runs, a new dump
    "nanda_fraction": (12, "3470bcc40b3f9534ae1f9306d3c1da09bfcba823915f79c3c4a57ef7625185d8", "590339fcb0cbf5a52829fff424b6dc4a7d42633777b8ca10b5968f11d4853116"),
    "nanda_fraction_paper": (21, "4a8fbd7be714f6fa1917a1a183d6889b2dcbb7848cff262d702279a38244d920", "7bca7145f2a5384fe380d83ea7c921882b8821d2dbc8417efbf622f39801e244"),
    "lyu_matrix": (8, "d656ed00edd3127b897e8f730402c7403b2718bc927497ac4445ae510df7cb72", "c79b712a4732a75a09581230cac5bb71b9787a206feab8769755b25087de6599"),
    # Lyu et al.'s setup (logistic loss, alpha = initial norm): a new recipe, so new run ids; the
    # first grid's ids still hold (test_lyu_sparse_first_grid_keeps_its_run_ids)
    "lyu_sparse": (15, "bfe514ba7d602ef2948d8a7514845f58be30110ac8924445a480cca7fe67dffb", "a37b7ccaedd70e423b13fd75925e8018163b1f6634fc3cc2eec71cd8a6091d79"),
    # replaced by a grid that shows phases (issue 16; the first grid is bench/modular_mlp_bench.yaml), then
    # by the decoder lr x weight decay diagram the issue asks for, then moved to training fraction 0.7
    # with early stop (at 0.5 it showed two phases; the sweep's comment has the history)
    "modular_mlp": (32, "f1fb1c17b073c350028ba6a65456a6e122e24dba1a64f482c89d28121bde5c25", "fd9c3dce76163becfeff2b7c471db98be25fdd39b38f657a075122277da8ffc4"),
    # Nanda's own init and warm-up, wd 1 only (issue 21): a new recipe, so new run ids
    "nanda_transformer": (3, "0c8bc5cad9d4eee272dc74fe9ab3aeae3c00b48051df24d069c81aba30b1a916", "64e11e943e0d8747dd0cc6e2d5c87b9ece470e79a448da21cec3e0aeb3acc726"),
    # real MNIST from a local copy (issue 16); task.root is no part of a run id, so these hold wherever it points
    "omnigrok_mnist": (60, "0c95505a42bdfb474bb66b92c362125d80a2babedf1e82c8546267a0e8fd5057", "e2ba6a87ef3f06620d4624d0b869ede474d6efec8c1e3e19b73476af3a7a56a2"),
    # the CPU-size Omnigrok reproduction (batch 200, wd 0.03/0.1) replaced the creeping full-batch grid
    "omnigrok_digits": (12, "ac717cde79f3fce3deaec021041dc6dfd35fb93d48d5d68de6f7fdcb6de3cda0", "cb2514844df9bf6924722aea153708ee310bc055799ad089c50587aff2c8acf0"),
    # one run per trial on CPU workers: the same run ids, a new dump
    "power_transformer": (18, "849fb51af17f7329b18c9635da161ab02cea4c2fa2e58845acb6fef2b1389c24", "8b92d5fbd7cbb540f2fef8e9703745a39f09490324e6acc01af8ff91c5db5993"),
    "quickstart": (16, "b2847fd817807de6f631361be3747e981f0566dc82506db7411a3a8017cfcbd1", "73b1d13791319f597be9aa2aef1b34a433823331c80ba5ef6506478bf31cd451"),
    # the first spec with stages (issue 17): pinned as first shipped
    "varma_ungrokking_mlp": (24, "c330e4168bbabe741da59797bab76e4d0b0ef5b4478f81ba22ad03225fbd6a99", "bf126e0ce3fda44333f9156e6475191e183b1f9e7f391785c404f21b77d449ec"),
    # Varma et al.'s semi-grokking (issue 16): pinned as first shipped; then a finer grid around
    # D_crit for 50,000 steps (a new recipe, so new run ids)
    "varma_semigrokking_mlp": (12, "304def9c8e8a3d8be3170e77788e298a1a554d87fd73d4882322c98b9f5b32f4", "f4ef8c0d58e2c79185b495812846782374896f0f44a374fecfc0abf431b55a69"),
    # Grokfast on its own MLP setup, Omnigrok's digits at alpha 8 (issue 16): pinned as first shipped
    "grokfast_digits": (4, "a471cd0cff1184c8ac7e8b00b68993cb9a05155ec36d0c70a232d7532b830d0b", "b0d38f3a6254bc7bb45a38bb51fa74c7a7ab22f2cd967c7f629c588cbb4113dd"),
    # Lyu et al.'s misgrokking (issue 16): pinned as first shipped
    "lyu_misgrokking": (8, "35594429a9a86135b16c85978d3483b8b9e46006edc000bb6923b4cacde178e4", "bcff08415ac91a1afd7f144429b85a790eb0ee623ff99e1935c1497687135d7f"),
    # Varma et al.'s semi-grokking on their transformer (issue 16): pinned as first shipped
    "varma_semigrokking": (8, "6dff88e9a3e178b24863cf114564197323b968e09b6f097a980135ecfbe395ce", "432478593726830f447924bb68eaf840429b7fb5b191c4f73448ff38e11428c3"),
    "varma_semigrokking_paper": (18, "ee9b20012b47526f514e3f421674d55910849900dd7072162f89060c667edcad", "e4616a17d9e4203a3d5f8639c8be9c6f676c3618b16c4de0bc7b5a74222a8b72"),
    "varma_ungrokking": (18, "bdbc349ff04762ff5f6142416e091d7d5e92e6d6777de2687f588dab83680a4f", "d223273b970f43f5a7b723803bacf3656b67f06288259e2112e6f293e7847d6e"),
    "s5_transformer": (6, "d264178dc398c8e942f686dafe930e24f4c2e754a20b54c4d84e01598a4de225", "e6ce80813a9a6b705d9d3ee4c1c125dd76b7d102320661a4b36d60bbe9db7534"),
    # The paper sizes of the Liu and Lyu reproductions (issue 16): pinned as first shipped.
    # omnigrok_mnist and nanda_fraction_paper then took their CPU sizes' claims (the dump
    # changed, the run ids did not).
    "liu_lr_paper": (300, "176e31a0de1a53c4a7b6e661d066862615211e54ad7445858cce49374b662230", "c953ad0b82d2fecd7f5bf9ed591afdd246ca9f992a515124e8ec9ae7ac633996"),
    "liu_decoder_wd_paper": (330, "645304e30ffeb99231e160c657eebbf7d54c206f212d3d5f6de3fcc11a4cfebd", "c61e9a1fd46cf5b83a6e80bc7469e8f74723e87b7d5fc95e5075a246219e052d"),
    "liu_fraction_paper": (33, "9a5af26b33e1976c3bf49311b065175d79a1072f8c5f015dc5286957133e5aca", "fe8d17c58b83ae249f1d3ae31be4a563e60abbbc8b435c48dd40a0fee749922f"),
    "lyu_sparse_paper": (15, "35ef9c466b82260198777db9a5c84db7c7d03697a33eea60ad352e2855dc5609", "9e0ebbc866628a2a4503c7efff375fc4878119470d99332c5ede0e5c605c8416"),
    "lyu_misgrokking_paper": (8, "9cf9396003748191153cc433079d0a4a93cc3c0510c1ac252a96574ab040e341", "cbc1b3fea310e803a13db442507adbf5d668be8744e0283ef58dacbd27efccde"),
}

DEFAULT_PINS = {
    ("toy_addition", "toy"): "d900f127d60054e0d38b86f11b884d170e467b802e7ff2e727fe5e99270fb359",
    ("toy_addition", "mlp"): "79d1a1ad561dea410b1cf7ebd8871985b78d90527b1da59aaa057c6a6cc36142",
    ("modular", "mlp"): "8ae2bfaf0497515b45c41259265a583fef960ec037b3035d0516d87d6c04f43b",
    ("modular", "transformer"): "8de2b429c7da21ae37e71c3a79622550a7f9338ed20aec82d712d07094a3383c",
    ("permutation", "mlp"): "c44f5cc521214c8030542140a6ab547ae399aa3977a0836373b7fd5cb326ea96",
    ("permutation", "transformer"): "bf4bae8149973dbb55a9ba77a2473ca4d36a83c024d3840e43c441451b3b152b",
    ("digits", "mlp"): "bcbb796d74c101a1a4a5972a3e302c87cbb29502a273b3b3e8bf3a00531ffd1b",
    ("sparse_linear", "diagonal"): "6350484baed015047c4684d7e3ffb3411260efc80eb0aca13209f11680d0fcf0",
    ("sparse_linear", "mlp"): "3702b21cda030fe3b026ccd5fc342d85cf78c881c059193604d7ba8ee1b46cff",
    ("matrix_completion", "factorized"): "4e19ac048f76dc6e2c8aeddd2af54058c44e419b74430c34efe12165b26034c4",
    ("mnist", "mlp"): "13be2a9a947d4edea2a68662d3b70d1c1176c042a21c775ba6f79762f4248686",
    ("margin_linear", "diagonal"): "734655247b4298d1be1189c1b72e5a663b7a2d3124e1e73904848b7e45f7ddb4",
    ("margin_linear", "mlp"): "f7d1a479007efe5d050d84d451c2cc923b90eeb55ef1f02b5f6a751c7746808f",
}


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_every_shipped_sweep_is_pinned():
    assert sorted(p.stem for p in SWEEPS.glob("*.yaml")) == sorted(SWEEP_PINS)


@pytest.mark.parametrize("name", sorted(SWEEP_PINS))
def test_shipped_sweep_run_ids_and_dump_are_unchanged(name):
    spec = load_spec(SWEEPS / f"{name}.yaml")
    ids = sorted(run.run_id for run in grid.expand(spec))
    count, ids_hash, dump_hash = SWEEP_PINS[name]
    assert (len(ids), _sha("\n".join(ids)), _sha(dump_spec(spec))) == (count, ids_hash, dump_hash)


@pytest.mark.parametrize("task, model", sorted(DEFAULT_PINS))
def test_each_kinds_defaults_dump_unchanged(task, model):
    spec = spec_from_dict({"name": "pin", "task": {"name": task}, "model": {"name": model}})
    assert _sha(dump_spec(spec)) == DEFAULT_PINS[task, model]


@pytest.mark.parametrize("name", sorted(SWEEP_PINS))
def test_dumped_spec_round_trips(name):
    # results/<sweep>/spec.yaml is read back with spec_from_dict(parse_yaml(...)) (folder.frozen_spec).
    spec = load_spec(SWEEPS / f"{name}.yaml")
    text = dump_spec(spec)
    again = spec_from_dict(parse_yaml(text))
    assert again == spec and dump_spec(again) == text


def test_where_the_mnist_files_are_changes_no_run_id():
    # A sweep freezes its root made absolute (MnistSpec.located); the ids stay the pinned ones.
    import dataclasses

    spec = load_spec(SWEEPS / "omnigrok_mnist.yaml")
    moved = dataclasses.replace(spec, task=dataclasses.replace(spec.task, root="/mnt/shared/mnist"))
    assert _sha("\n".join(sorted(run.run_id for run in grid.expand(moved)))) == SWEEP_PINS["omnigrok_mnist"][1]


def test_the_benchmark_grid_keeps_the_old_modular_mlp_run_ids():
    # bench/modular_mlp_bench.yaml is the old sweeps/modular_mlp.yaml (renamed; a name is not
    # part of a run id): the ids pinned from the flat spec code still hold for it.
    spec = load_spec(SWEEPS.parent / "bench" / "modular_mlp_bench.yaml")
    ids = sorted(run.run_id for run in grid.expand(spec))
    assert (len(ids), _sha("\n".join(ids))) == (9, "e362ab49a8e96c8ef6ffa88dd7241e3ce08ddee9415b0cbf7c4388ef7bed4173")


def test_lyu_sparse_first_grid_keeps_its_run_ids():
    # The first sweeps/lyu_sparse.yaml (squared loss, u = v = init_scale) as shipped: the task's
    # loss and the diagonal net's init came later, so leaving them out gives the same ids.
    spec = spec_from_dict(parse_yaml("""
name: lyu-sparse
task: {name: sparse_linear, n_samples: 1000, dim: 1000, sparsity: 3, data_seed: 0}
model: {name: diagonal, parametrization: squares}
training: {steps: 20000, eval_every: 100, optimizer: sgd, precision: float32}
grid:
  repr_lr: [0.01]
  decoder_lr: [0.01]
  decoder_wd: [1e-4, 1e-3, 1e-2]
  init_scale: [1.0, 10.0, 100.0]
  train_fraction: [0.1]
  seed: [0]
"""))
    ids = sorted(run.run_id for run in grid.expand(spec))
    assert (len(ids), _sha("\n".join(ids))) == (9, "78a8f96010829af1f3cf93a097ca0f8bb2ac392c81c3e7d56bd01cbc6491aeab")
