"""The pure-torch layer: task, model, optimizer, metrics and the pack training loop."""

from __future__ import annotations

import math

import pytest
import torch

from grokgrid import grid, metrics, store, train
from grokgrid.models.toy import ToyModel
from grokgrid.optim import BatchedAdamW, ParamGroup
from grokgrid.spec import spec_from_dict
from grokgrid.seeding import split_mask
from grokgrid.tasks.toy_addition import ToyAddition


def small_spec(**overrides):
    data = {
        "name": "t",
        "model": {"hidden": [16, 16]},
        "training": {"steps": 60, "eval_every": 20, "precision": "float64"},
        "grid": {"repr_lr": [1e-3, 3e-2], "decoder_lr": [1e-3, 1e-2], "seed": [0, 1], "train_fraction": [0.5, 0.8]},
    }
    for key, value in overrides.items():
        data[key] = {**data.get(key, {}), **value}
    return spec_from_dict(data)


def test_toy_addition_has_55_pairs_for_p10_and_19_classes():
    task = ToyAddition(10)
    left, right = task.pairs()
    assert len(left) == 55 and bool((left <= right).all())
    assert task.n_classes == 19
    assert task.targets().max().item() == 18


def test_split_is_deterministic_and_sized():
    a, b = split_mask(55, 0.8, seed=3), split_mask(55, 0.8, seed=3)
    assert torch.equal(a, b) and a.sum().item() == 44
    assert not torch.equal(a, split_mask(55, 0.8, seed=4))
    with pytest.raises(ValueError):
        split_mask(55, 0.001, seed=0)


def test_model_init_depends_only_on_the_run_seed_and_scale():
    kwargs = dict(n_tokens=10, embed_dim=1, hidden=[8], out_dim=3, activation="tanh", dtype=torch.float64)
    alone = ToyModel(seeds=[7], init_scales=[2.0], **kwargs)
    packed = ToyModel(seeds=[1, 7], init_scales=[1.0, 2.0], **kwargs)
    for p_alone, p_packed in zip(alone.parameters(), packed.parameters()):
        assert torch.equal(p_alone[0], p_packed[1])
    # Embeddings start in U[-s/2, s/2] (Liu), scaled by alpha.
    assert alone.embedding.abs().max().item() <= 1.0


TORCH_OPTIMIZERS = {
    "adamw": lambda p, lr, wd: torch.optim.AdamW([p], lr=lr, weight_decay=wd, betas=(0.9, 0.98), eps=1e-8),
    "adam": lambda p, lr, wd: torch.optim.Adam([p], lr=lr, weight_decay=wd, betas=(0.9, 0.98), eps=1e-8),
    "sgd": lambda p, lr, wd: torch.optim.SGD([p], lr=lr, weight_decay=wd),
}


@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("kind", sorted(TORCH_OPTIMIZERS))
def test_batched_optimizer_matches_torch_per_run(kind, fused):
    torch.manual_seed(0)
    # Two runs share their rates: the fused way updates them in one call.
    lrs, wds = [1e-3, 5e-2, 3e-1, 5e-2], [0.0, 0.1, 2.0, 0.1]
    if kind == "sgd":
        lrs = [1e-4, 1e-3, 3e-3, 1e-3]
    batched = torch.nn.Parameter(torch.randn(4, 4, 5, dtype=torch.float64))
    singles = [torch.nn.Parameter(batched[k].detach().clone()) for k in range(4)]
    ours = BatchedAdamW([ParamGroup([batched], lrs, wds)], betas=(0.9, 0.98), eps=1e-8, kind=kind, fused=fused)
    theirs = [TORCH_OPTIMIZERS[kind](p, lr, wd) for p, lr, wd in zip(singles, lrs, wds)]
    targets = torch.randn(4, 4, 5, dtype=torch.float64)
    for _ in range(50):
        ours.zero_grad()
        ((batched - targets) ** 3).abs().sum().backward()
        ours.step()
        for k, (p, opt) in enumerate(zip(singles, theirs)):
            opt.zero_grad()
            ((p - targets[k]) ** 3).abs().sum().backward()
            opt.step()
    for k in range(4):
        torch.testing.assert_close(batched[k].detach(), singles[k].detach(), rtol=1e-12, atol=1e-14)


def test_accuracy_uses_the_nearest_template():
    templates = torch.eye(3, dtype=torch.float64).unsqueeze(0)  # one run, 3 classes in 3-D
    outputs = torch.tensor([[[0.9, 0.1, 0.0], [0.0, 0.2, 0.7]]], dtype=torch.float64)
    assert metrics.predictions(outputs, templates).tolist() == [[0, 2]]
    losses = metrics.per_example_loss(outputs, torch.tensor([0, 1]), templates)
    assert losses[0, 0].item() == pytest.approx((0.01 + 0.01) / 3)


def test_weight_norm_is_per_run():
    a = torch.tensor([[3.0], [0.0]])
    b = torch.tensor([[4.0, 0.0], [1.0, 0.0]])
    assert metrics.weight_norm([a, b]).tolist() == [5.0, 1.0]


def rows_by_run(spec, runs) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for step_rows in train.run_pack(spec, runs):
        for row in step_rows:
            out.setdefault(row["run_id"], []).append(row)
    return out


CORE_COLUMNS = ("train_loss", "val_loss", "train_acc", "val_acc", "weight_norm")


def assert_same_rows(alone: list[dict], packed: list[dict], columns=CORE_COLUMNS, label=None, nan_matches=False) -> None:
    """Row by row, float64 equal to rel 1e-9; with ``nan_matches``, NaN on both sides (a progress
    measure that does not apply) counts as equal."""
    for a, b in zip(alone, packed, strict=True):
        for key in columns:
            same_nan = nan_matches and math.isnan(a[key]) and math.isnan(b[key])
            assert same_nan or math.isclose(a[key], b[key], rel_tol=1e-9, abs_tol=1e-12), (label, a["step"], key)


def rows_across_a_restart(spec, runs, stop_after: int):
    """Train, save after the ``stop_after``-th logged step, restore into a new trainer, finish:
    returns every row yielded and the second trainer."""
    first = train.PackTrainer(spec, runs)
    rows_seen = []
    for i, rows in enumerate(first.rows()):
        rows_seen.extend(rows)
        if i == stop_after:
            saved = first.state_dict()
            break
    second = train.PackTrainer(spec, runs)
    second.load_state_dict(saved)
    for rows in second.rows():
        rows_seen.extend(rows)
    return rows_seen, second


def assert_restart_continues_exactly(spec, runs, stop_after, columns):
    """A pack saved after ``stop_after`` logged steps and restored gives every row of a straight
    run once, equal in ``columns``."""
    straight = [row for rows in train.run_pack(spec, runs) for row in rows]
    resumed_rows, second = rows_across_a_restart(spec, runs, stop_after)
    assert second.finished
    key = lambda r: (r["run_id"], r["step"])  # noqa: E731
    assert sorted(map(key, resumed_rows)) == sorted(map(key, straight))
    by_key = {key(r): r for r in straight}
    for row in resumed_rows:
        for column in columns:
            assert row[column] == by_key[key(row)][column], (key(row), column)


def test_logged_steps_and_columns():
    spec = small_spec(training={"steps": 50, "eval_every": 20})
    run = grid.expand(spec)[0]
    rows = rows_by_run(spec, [run])[run.run_id]
    assert [r["step"] for r in rows] == [0, 20, 40, 50]
    assert set(rows[0]) == set(store.METRIC_COLUMNS)


@pytest.mark.parametrize("loss", ["mse", "ce"])
def test_a_run_trained_in_a_pack_equals_it_trained_alone(loss):
    spec = small_spec(task={"loss": loss})
    runs = grid.expand(spec)
    packed = rows_by_run(spec, runs)
    for run in runs[::3]:
        assert_same_rows(rows_by_run(spec, [run])[run.run_id], packed[run.run_id], label=run)


def test_training_learns_the_train_set():
    spec = small_spec(model={"hidden": [64, 64]}, training={"steps": 400, "eval_every": 100},
                      grid={"repr_lr": [1e-2], "decoder_lr": [1e-2], "seed": [0], "train_fraction": [0.8]})
    rows = rows_by_run(spec, grid.expand(spec))
    (only,) = rows.values()
    assert only[0]["train_acc"] < 0.5 < 0.95 <= only[-1]["train_acc"]
    assert only[-1]["train_loss"] < only[0]["train_loss"] / 10


def test_a_diverging_run_stops_and_the_rest_of_the_pack_goes_on():
    spec = small_spec(training={"steps": 100, "eval_every": 10, "precision": "float32"},
                      grid={"repr_lr": [1e-3], "decoder_lr": [1e-3, 1e30], "seed": [0], "train_fraction": [0.8]})
    calm, wild = grid.expand(spec)
    rows = rows_by_run(spec, [calm, wild])
    assert rows[calm.run_id][-1]["step"] == 100
    last_wild = rows[wild.run_id][-1]
    assert last_wild["step"] < 100
    assert not math.isfinite(last_wild["train_loss"])
    assert all(math.isfinite(r["train_loss"]) for r in rows[wild.run_id][:-1])


@pytest.mark.parametrize("model", [{"name": "mlp", "embed_dim": 8, "hidden": [16]}, {"name": "mlp", "hidden": [16]}])
@pytest.mark.parametrize("ending", ["diverged", "early stop"])
def test_a_pack_whose_every_run_leaves_before_the_last_step_ends_there(model, ending):
    # Found on the MLP: the last runs of a pack left it at a logged step, and the trainer then
    # stepped the empty pack (a reshape of 0 elements failed: the trial crashed).
    training = {"steps": 300, "eval_every": 10, "precision": "float32"}  # float32 overflows to inf
    if ending == "early stop":
        training["early_stop"] = {"threshold": 0.01, "patience": 1}
    lr = 1e30 if ending == "diverged" else 1e-3
    spec = small_spec(task={"name": "modular", "p": 11, "op": "add"}, model=model, training=training,
                      grid={"repr_lr": [lr], "decoder_lr": [lr], "seed": [0], "train_fraction": [0.8]},
                      phases={"threshold": 0.01})  # an early stop below the phase threshold is refused
    trainer = train.PackTrainer(spec, grid.expand(spec))
    logged = [rows for rows in trainer.rows()]
    assert logged and not trainer.state.runs and logged[-1][0]["step"] < 300
    if ending == "diverged":
        assert not math.isfinite(logged[-1][0]["train_loss"])


def test_eval_steps_always_include_the_last():
    assert train.eval_steps(10, 4) == [0, 4, 8, 10]
    assert train.eval_steps(8, 4) == [0, 4, 8]


def test_early_stop_shrinks_the_pack_and_every_run_still_equals_it_alone():
    spec = small_spec(
        model={"hidden": [32, 32]},
        training={"steps": 300, "eval_every": 10, "early_stop": {"threshold": 0.5, "patience": 3}},
        phases={"threshold": 0.5},
        grid={"repr_lr": [1e-3, 3e-2], "decoder_lr": [1e-4, 1e-2], "seed": [0], "train_fraction": [0.8]},
    )
    runs = grid.expand(spec)
    sizes = [len(rows) for rows in train.run_pack(spec, runs)]
    assert sizes[0] == 4 and min(sizes) < 4, "some run must leave the pack early"
    assert sizes == sorted(sizes, reverse=True)
    packed = rows_by_run(spec, runs)
    stopped = [r for r in runs if packed[r.run_id][-1]["step"] < 300]
    assert stopped
    for run in runs:
        alone = rows_by_run(spec, [run])[run.run_id]
        assert [r["step"] for r in alone] == [r["step"] for r in packed[run.run_id]]
        assert_same_rows(alone, packed[run.run_id], label=run)
    for run in stopped:
        last = packed[run.run_id][-3:]
        assert all(r["train_acc"] >= 0.5 and r["val_acc"] >= 0.5 for r in last)


def test_keep_runs_cuts_parameters_and_optimizer_state():
    spec = small_spec()
    runs = grid.expand(spec)[:3]
    state = train.build_pack(spec, runs)
    train.train_step(state)
    before = [p.detach().clone() for p in state.model.parameters()]
    train.keep_runs(state, [True, False, True])
    assert [r.run_id for r in state.runs] == [runs[0].run_id, runs[2].run_id]
    for old, new in zip(before, state.model.parameters()):
        assert torch.equal(new, old[[0, 2]])
    assert state.optimizer.groups[0].lr.tolist() == [runs[0].repr_lr, runs[2].repr_lr]
    train.train_step(state)  # still trains after the cut


# The interventions whose state a checkpoint must carry: Grokfast's filters, the noise generators.
RESTORED_INTERVENTIONS = {
    "none": ({}, {}),
    "grokfast-ema": ({"grokfast": {"filter": "ema", "alpha": 0.9}}, {"training.grokfast.lamb": [0.0, 2.0]}),
    "grokfast-ma": ({"grokfast": {"filter": "ma", "window": 7}}, {}),
    "perturbation": ({"perturbation": {}}, {"training.perturbation.sigma": [0.0, 0.2]}),
}


@pytest.mark.parametrize("intervention", sorted(RESTORED_INTERVENTIONS))
@pytest.mark.parametrize("stop_after", [1, 4, 9])
def test_a_restored_trainer_continues_exactly(stop_after, intervention):
    training, axes = RESTORED_INTERVENTIONS[intervention]
    if intervention == "perturbation":  # a model with a continuous input to perturb
        spec = spec_from_dict({"name": "p", **FAMILIES["modular-mlp"],
                               "training": {"steps": 100, "eval_every": 10, "precision": "float64", **training},
                               "grid": {"decoder_lr": [1e-2], "seed": [0, 1], **axes}})
    else:
        spec = small_spec(training={"steps": 100, "eval_every": 10, "early_stop": {"threshold": 0.5, "patience": 2}, **training},
                          phases={"threshold": 0.5},
                          grid={"repr_lr": [1e-3, 3e-2], "decoder_lr": [1e-3, 1e-2], "seed": [0, 1], "train_fraction": [0.5, 0.8], **axes})
    assert_restart_continues_exactly(spec, grid.expand(spec)[:4], stop_after, CORE_COLUMNS)


FAMILIES = {
    "modular-mlp": {"task": {"name": "modular", "p": 11, "op": "add"}, "model": {"name": "mlp", "embed_dim": 8, "hidden": [16]}},
    "modular-onehot": {"task": {"name": "modular", "p": 7, "op": "mul"}, "model": {"name": "mlp", "hidden": [16], "bias": False}},
    "transformer": {"task": {"name": "modular", "p": 7, "op": "sub"},
                    "model": {"name": "transformer", "n_layers": 1, "d_model": 8, "n_heads": 2, "d_mlp": 16, "layer_norm": True}},
    "s3": {"task": {"name": "permutation", "n": 3}, "model": {"name": "transformer", "d_model": 8, "n_heads": 2, "d_mlp": 16}},
    "digits": {"task": {"name": "digits", "loss": "mse"}, "model": {"name": "mlp", "hidden": [16]}},
    "sparse": {"task": {"name": "sparse_linear", "n_samples": 40, "dim": 20, "sparsity": 2}, "model": {"name": "diagonal"}},
    "sparse-logistic": {"task": {"name": "sparse_linear", "n_samples": 40, "dim": 20, "sparsity": 2, "loss": "ce"},
                        "model": {"name": "diagonal", "init": "norm"}},
    "matrix": {"task": {"name": "matrix_completion", "dim": 9, "rank": 2}, "model": {"name": "factorized", "width": 4}},
}


SPLITS = {
    "shared": {"train_fraction": [0.5]},  # one train set for the whole pack
    "per-run": {"seed": [0, 1], "train_fraction": [0.5, 0.7]},  # each run its own (step_examples)
}


@pytest.mark.parametrize("splits", sorted(SPLITS))
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_task_and_model_family_trains_packed_exactly_as_alone(family, splits):
    data = {
        "name": "f",
        **FAMILIES[family],
        "training": {"steps": 6, "eval_every": 2, "precision": "float64",
                     "optimizer": "sgd" if family in ("sparse", "sparse-logistic", "matrix") else "adamw"},
        "grid": {"decoder_lr": [1e-3, 1e-2], "init_scale": [1.0, 2.0], **SPLITS[splits]},
    }
    spec = spec_from_dict(data)
    runs = grid.expand(spec)
    packed = rows_by_run(spec, runs)
    for run in runs[::2]:
        columns = [c for c in store.METRIC_COLUMNS if c not in ("run_id", "elapsed_s")]
        assert_same_rows(rows_by_run(spec, [run])[run.run_id], packed[run.run_id], columns, label=family, nan_matches=True)


def test_progress_measures_apply_where_they_should():
    toy = small_spec(grid={"seed": [0]})
    row = next(iter(train.run_pack(toy, grid.expand(toy)[:1])))[0]
    assert 0 <= row["rqi"] <= 1
    # mse: no logits; the toy model has no features(); only pairs i <= j exist, so no swaps.
    assert all(math.isnan(row[k]) for k in ("logit_efficiency", "perturbed_entropy", "commutativity_acc"))
    mod = spec_from_dict({"name": "m", **FAMILIES["modular-mlp"], "training": {"steps": 1}})
    row = next(iter(train.run_pack(mod, grid.expand(mod))))[0]
    assert all(math.isfinite(row[k]) for k in ("rqi", "commutativity_acc", "logit_efficiency", "perturbed_entropy"))
    sub = spec_from_dict({"name": "s", **FAMILIES["transformer"], "training": {"steps": 1}})
    row = next(iter(train.run_pack(sub, grid.expand(sub))))[0]
    assert math.isnan(row["rqi"]) and math.isnan(row["commutativity_acc"])  # x - y: neither sums nor symmetric


def test_sparse_linear_with_loss_ce_trains_lyu_et_al_s_logistic_loss():
    spec = spec_from_dict({"name": "l", **FAMILIES["sparse-logistic"], "training": {"steps": 1, "optimizer": "sgd"},
                           "grid": {"init_scale": [2.0], "decoder_lr": [0.1], "train_fraction": [0.5]}})
    run = grid.expand(spec)[0]
    state = train.build_pack(spec, [run])
    with torch.no_grad():
        f = state.model.effective_weights() @ state.inputs.T.to(state.model.u.dtype)  # [1, N]
    y = 2 * state.targets.to(f.dtype) - 1  # classes 0/1 -> labels -1/+1
    logistic = torch.nn.functional.softplus(-y * f)[state.train_mask].mean()
    rows = list(train.run_pack(spec, [run]))
    assert state.templates is None and state.ce
    assert math.isclose(rows[0][0]["train_loss"], float(logistic), rel_tol=1e-6)  # log 2 at w = 0
    assert math.isclose(rows[0][0]["train_loss"], math.log(2), rel_tol=1e-6)


def test_accuracies_are_exact_ratios_in_float32_training():
    # Liu et al.'s 45/10 split: 9 of 10 validation pairs right must read 0.9 exactly (>= 0.9 holds),
    # not float32's 0.8999999762.
    spec = small_spec(training={"precision": "float32", "steps": 200, "eval_every": 10},
                      grid={"repr_lr": [1e-2], "decoder_lr": [1e-2], "seed": [0], "train_fraction": [0.82]})
    rows = [row for step in train.run_pack(spec, grid.expand(spec)) for row in step]
    assert all(row["val_acc"] == round(row["val_acc"] * 10) / 10 for row in rows)  # k / 10, to the last bit
    assert all(row["train_acc"] == round(row["train_acc"] * 45) / 45 for row in rows)


def test_log_schedule_is_dense_then_geometric():
    steps = train.eval_steps(100_000, 10, dense_until=1000, per_decade=10)
    assert steps[:3] == [0, 10, 20] and 1000 in steps and steps[-1] == 100_000
    late = [s for s in steps if s > 1000]
    assert 15 <= len(late) <= 21  # two decades at 10 per decade
    ratios = [b / a for a, b in zip(late, late[1:])]
    assert all(1.1 < r < 1.4 for r in ratios[:-1])
    spec = small_spec(training={"steps": 5000, "eval_every": 100, "log_schedule": {"dense_until": 500, "per_decade": 4}})
    assert train.logged_steps(spec) == [0, 100, 200, 300, 400, 500, 889, 1581, 2812, 5000]


@pytest.mark.parametrize("fused", [False, True])
def test_warmup_matches_torch_adamw_with_a_linear_lambda_schedule(fused):
    torch.manual_seed(1)
    batched = torch.nn.Parameter(torch.randn(2, 3, dtype=torch.float64))
    single = torch.nn.Parameter(batched[1].detach().clone())
    ours = BatchedAdamW([ParamGroup([batched], [1e-2, 5e-2], [0.0, 1.0])], betas=(0.9, 0.98), warmup_steps=10, fused=fused)
    theirs = torch.optim.AdamW([single], lr=5e-2, weight_decay=1.0, betas=(0.9, 0.98))
    schedule = torch.optim.lr_scheduler.LambdaLR(theirs, lambda e: min(1.0, (e + 1) / 10))
    for _ in range(25):
        ours.zero_grad()
        (batched**2).sum().backward()
        ours.step()
        theirs.zero_grad()
        (single**2).sum().backward()
        theirs.step()
        schedule.step()
    torch.testing.assert_close(batched[1].detach(), single.detach(), rtol=1e-12, atol=1e-14)


def test_minibatches_are_per_run_draws_from_the_train_set():
    spec = small_spec(training={"steps": 30, "eval_every": 10, "precision": "float64", "batch_size": 7})
    runs = grid.expand(spec)[:4]
    state = train.build_pack(spec, runs)
    masks = [train.batch_mask(state) for _ in range(3)]
    for mask in masks:
        assert mask.sum(dim=1).tolist() == [7] * 4
        assert not (mask & ~state.train_mask).any()
    assert not torch.equal(masks[0], masks[1])
    packed = rows_by_run(spec, runs)
    for run in runs:
        alone = rows_by_run(spec, [run])[run.run_id]
        for a, b in zip(alone, packed[run.run_id], strict=True):
            assert math.isclose(a["train_loss"], b["train_loss"], rel_tol=1e-9), run
    # A larger batch than a run's train set is that run's full batch.
    big = small_spec(training={"steps": 5, "eval_every": 5, "precision": "float64", "batch_size": 10_000})
    full = small_spec(training={"steps": 5, "eval_every": 5, "precision": "float64"})
    run_big, run_full = grid.expand(big)[0], grid.expand(full)[0]
    last_big = rows_by_run(big, [run_big])[run_big.run_id][-1]
    last_full = rows_by_run(full, [run_full])[run_full.run_id][-1]
    assert math.isclose(last_big["train_loss"], last_full["train_loss"], rel_tol=1e-12)


def test_a_restored_minibatch_trainer_continues_exactly():
    spec = small_spec(training={"steps": 60, "eval_every": 10, "batch_size": 5, "warmup_steps": 7})
    runs = grid.expand(spec)[:3]
    straight = [row for rows in train.run_pack(spec, runs) for row in rows]
    seen, _ = rows_across_a_restart(spec, runs, stop_after=2)
    key = lambda r: (r["run_id"], r["step"])  # noqa: E731
    expected = {key(r): r["train_loss"] for r in straight}
    assert {key(r): r["train_loss"] for r in seen} == expected


def test_matrix_completion_accuracy_is_the_share_within_tolerance():
    outputs = torch.tensor([[[0.05], [1.0], [-0.3]]], dtype=torch.float64)
    targets = torch.tensor([0.0, 1.2, -0.31], dtype=torch.float64)
    assert metrics.within_tolerance(outputs, targets, 0.1).tolist() == [[True, False, True]]
    spec = spec_from_dict({"name": "m", **FAMILIES["matrix"], "training": {"steps": 400, "eval_every": 100, "optimizer": "sgd"},
                           "grid": {"repr_lr": [0.05], "decoder_lr": [0.05], "train_fraction": [0.6]}})
    rows = rows_by_run(spec, grid.expand(spec))
    (curve,) = rows.values()
    assert curve[-1]["train_loss"] < curve[0]["train_loss"] / 5
    assert curve[-1]["train_acc"] > curve[0]["train_acc"]


def test_a_step_computes_only_the_examples_that_enter_a_loss():
    def build(spec):
        return train.PackTrainer(spec, grid.expand(spec), "cpu").state

    # Shared train set: only its examples, once for all runs.
    shared = build(small_spec(grid={"seed": [0], "train_fraction": [0.5]}))
    inputs, targets, mask = train.step_examples(shared, shared.train_mask)
    rows = shared.train_mask[0].nonzero().squeeze(1)
    assert torch.equal(inputs, shared.inputs[rows]) and torch.equal(targets, shared.targets[rows]) and bool(mask.all())
    assert train.step_examples(shared, shared.train_mask)[0] is inputs  # cached for full-batch steps

    # Different train sets (seeds 0/1, fractions 0.5/0.8) and a model that takes per-run inputs:
    # each run its own examples in order, then weight-0 padding up to the largest set.
    state = build(small_spec())
    inputs, targets, mask = train.step_examples(state, state.train_mask)
    largest = int(state.train_mask.sum(dim=1).max())
    assert inputs.shape[:2] == (state.train_mask.shape[0], largest)
    for run in range(state.train_mask.shape[0]):
        own = state.train_mask[run].nonzero().squeeze(1)
        assert int(mask[run].sum()) == len(own) and bool(mask[run, : len(own)].all())
        assert torch.equal(inputs[run, : len(own)], state.inputs[own]) and torch.equal(targets[run, : len(own)], state.targets[own])


def test_a_transformer_pack_with_minibatches_computes_each_run_s_batch_only():
    # Two runs drawing their own batches of 16 from different train sets: each computes its 16
    # examples (not the union of the pack's), and trains as it does alone, perturbation included.
    spec = spec_from_dict({
        "name": "tb", **FAMILIES["transformer"],
        "training": {"steps": 6, "eval_every": 2, "precision": "float64", "batch_size": 16, "perturbation": {}},
        "grid": {"seed": [0, 1], "train_fraction": [0.5, 0.7], "training.perturbation.sigma": [0.1]},
    })
    runs = grid.expand(spec)
    state = train.PackTrainer(spec, runs, "cpu").state
    assert state.model.per_run_inputs
    inputs, _, mask = train.step_examples(state, train.batch_mask(state))
    assert inputs.shape[:2] == (len(runs), 16) and bool(mask.all())
    packed = rows_by_run(spec, runs)
    columns = [c for c in store.METRIC_COLUMNS if c not in ("run_id", "elapsed_s")]
    for run in runs:
        assert_same_rows(rows_by_run(spec, [run])[run.run_id], packed[run.run_id], columns, label=run, nan_matches=True)


# ----------------------------------------------------------------------------- stages


def staged_spec(stages=None, grid_extra=None, training=None, **sections):
    """small_spec's recipe with stages: 60 steps, then 'shrink' (40 steps) by default."""
    data = {
        "name": "st",
        "model": {"hidden": [16, 16]},
        "training": {"steps": 60, "eval_every": 20, "precision": "float64", **(training or {})},
        "stages": stages if stages is not None else [{"name": "shrink", "steps": 40, "decoder_wd": 0.5, "repr_lr": 2e-2}],
        "grid": {"repr_lr": [1e-3, 3e-2], "decoder_lr": [1e-2], "seed": [0, 1], "train_fraction": [0.6, 0.8],
                 **(grid_extra if grid_extra is not None else {"shrink.train_subset": [0.3, 1.0]})},
        **sections,
    }
    return spec_from_dict(data)


@pytest.mark.parametrize("loss", ["mse", "ce"])
def test_a_staged_run_trained_in_a_pack_equals_it_trained_alone(loss):
    spec = staged_spec(task={"loss": loss})
    runs = grid.expand(spec)
    packed = rows_by_run(spec, runs)
    columns = ("stage", *CORE_COLUMNS)
    for run in runs[::3]:
        assert_same_rows(rows_by_run(spec, [run])[run.run_id], packed[run.run_id], columns, label=run)


@pytest.mark.parametrize("family", ["modular-mlp", "transformer"])
def test_staged_families_train_packed_exactly_as_alone(family):
    spec = spec_from_dict({
        "name": "f", **FAMILIES[family],
        "training": {"steps": 4, "eval_every": 2, "precision": "float64", "warmup_steps": 3},
        "stages": [{"name": "cut", "steps": 4, "decoder_lr": 3e-3}, {"name": "again", "steps": 2, "train_subset": 0.5}],
        "grid": {"decoder_wd": [0.0, 1.0], "seed": [0, 1], "cut.train_subset": [0.5, 0.9]},
    })
    runs = grid.expand(spec)
    packed = rows_by_run(spec, runs)
    columns = [c for c in store.METRIC_COLUMNS if c not in ("run_id", "elapsed_s")]
    for run in runs[::3]:
        assert_same_rows(rows_by_run(spec, [run])[run.run_id], packed[run.run_id], columns, label=run, nan_matches=True)


def test_a_stage_that_changes_nothing_equals_training_on():
    # 60 steps then a 40-step stage that keeps everything == 100 steps in one stage.
    staged = staged_spec(stages=[{"name": "more", "steps": 40}], grid_extra={})
    plain = small_spec(training={"steps": 100, "eval_every": 20},
                       grid={"repr_lr": [1e-3, 3e-2], "decoder_lr": [1e-2], "seed": [0, 1], "train_fraction": [0.6, 0.8]})
    a, b = rows_by_run(staged, grid.expand(staged)), rows_by_run(plain, grid.expand(plain))
    for run_a, run_b in zip(grid.expand(staged), grid.expand(plain), strict=True):
        assert [r["stage"] for r in a[run_a.run_id]] == [0, 0, 0, 0, 1, 1]
        assert_same_rows(b[run_b.run_id], a[run_a.run_id])


def test_stage_rows_steps_and_logged_boundaries():
    spec = staged_spec(stages=[{"name": "shrink", "steps": 35}, {"name": "last", "steps": 7}], grid_extra={})
    run = grid.expand(spec)[0]
    rows = rows_by_run(spec, [run])[run.run_id]
    # Stage ends (60, 95, 102) are logged; a stage's end row is that stage's.
    assert [(r["step"], r["stage"]) for r in rows] == [
        (0, 0), (20, 0), (40, 0), (60, 0), (80, 1), (95, 1), (100, 2), (102, 2)]
    assert spec.total_steps == 102


def test_stage_subsets_are_nested_per_run_and_the_val_set_stays():
    spec = staged_spec(stages=[{"name": "a", "steps": 5, "train_subset": 0.5}, {"name": "b", "steps": 5, "train_subset": 0.5}],
                       grid_extra={})
    run = grid.expand(spec)[0]
    masks = [train.stage_train_mask(spec, run, 55, k) for k in range(3)]
    assert [int(m.sum()) for m in masks] == [33, 16, 8]  # round(0.6 * 55), then halves, rounded
    assert bool((masks[1] <= masks[0]).all()) and bool((masks[2] <= masks[1]).all())
    other = next(r for r in grid.expand(spec) if r.seed != run.seed and r.train_fraction == run.train_fraction)
    assert not torch.equal(masks[1], train.stage_train_mask(spec, other, 55, 1))  # each run draws its own
    state = train.build_pack(spec, [run])
    val = state.val_mask.clone()
    train.enter_stage(state, 2)
    assert torch.equal(state.train_mask[0], masks[2]) and torch.equal(state.val_mask, val)
    assert torch.equal(val[0], ~masks[0])


def test_entering_a_stage_changes_rates_and_keeps_moments():
    spec = staged_spec()
    runs = grid.expand(spec)[:3]
    state = train.build_pack(spec, runs)
    train.train_step(state)
    moments = [m.clone() for pair in state.optimizer.state.values() for m in pair]
    train.enter_stage(state, 1)
    repr_group, decoder_group = state.optimizer.groups
    assert repr_group.lr.tolist() == [2e-2] * 3 and decoder_group.weight_decay.tolist() == [0.5] * 3
    assert repr_group.weight_decay.tolist() == [r.repr_wd for r in runs]
    assert decoder_group.lr.tolist() == [r.decoder_lr for r in runs]
    assert state.optimizer.step_count == 1  # the warm-up does not restart
    after = [m for pair in state.optimizer.state.values() for m in pair]
    assert all(torch.equal(a, b) for a, b in zip(moments, after, strict=True))


@pytest.mark.parametrize("stop_after", [2, 3, 4, 5])  # inside stage 0, at its end row, inside stage 1
def test_a_restored_staged_trainer_continues_exactly(stop_after):
    spec = staged_spec(training={"steps": 60, "eval_every": 10, "batch_size": 8})
    assert_restart_continues_exactly(spec, grid.expand(spec)[:4], stop_after, ("stage", *CORE_COLUMNS))


def test_early_stop_waits_for_the_last_stage():
    # Threshold 0.01 and patience 1: every run is "decided" at step 0, yet each must live
    # through stage 0 and stop at the last stage's first logged row.
    spec = staged_spec(training={"early_stop": {"threshold": 0.01, "patience": 1}}, phases={"threshold": 0.01})
    runs = grid.expand(spec)
    rows = rows_by_run(spec, runs)
    stopped = 0
    for run in runs:
        own = rows[run.run_id]
        assert [r["step"] for r in own[:4]] == [0, 20, 40, 60] and own[-1]["stage"] == 1
        first = own[4]  # the last stage's first row: decided there, or the run goes on
        decided = first["train_acc"] >= 0.01 and first["val_acc"] >= 0.01
        assert (own[-1]["step"] == 80) == decided
        stopped += decided
    assert stopped


# ----------------------------------------------------------------------------- interventions


INTERVENTIONS = {
    "grokfast-ema": ({"grokfast": {"filter": "ema"}}, {"training.grokfast.lamb": [0.0, 2.0], "training.grokfast.alpha": [0.5, 0.98]}),
    "grokfast-ma": ({"grokfast": {"filter": "ma", "window": 3}}, {"training.grokfast.lamb": [0.0, 5.0]}),
    "perturbation": ({"perturbation": {}}, {"training.perturbation.sigma": [0.0, 0.1]}),
    "orthogonal": ({"orthogonal_gradients": True}, {}),
    "stablemax": ({}, {}),
    "all": ({"grokfast": {"filter": "ema", "lamb": 2.0}, "perturbation": {"sigma": 0.05}, "orthogonal_gradients": True}, {}),
}


@pytest.mark.parametrize("splits", sorted(SPLITS))
@pytest.mark.parametrize("family", ["modular-mlp", "modular-onehot", "transformer", "digits"])
@pytest.mark.parametrize("intervention", sorted(INTERVENTIONS))
def test_every_intervention_trains_packed_exactly_as_alone(intervention, family, splits):
    training, axes = INTERVENTIONS[intervention]
    task = dict(FAMILIES[family]["task"])
    if intervention in ("stablemax", "all"):
        task["loss"] = "stablemax"
    spec = spec_from_dict({
        "name": "i", "task": task, "model": FAMILIES[family]["model"],
        "training": {"steps": 6, "eval_every": 2, "precision": "float64", **training},
        "grid": {"decoder_lr": [1e-2], "decoder_wd": [0.0, 1.0], **SPLITS[splits], **axes},
    })
    runs = grid.expand(spec)
    packed = rows_by_run(spec, runs)
    columns = [c for c in store.METRIC_COLUMNS if c not in ("run_id", "elapsed_s")]
    for run in runs[::3]:
        assert_same_rows(rows_by_run(spec, [run])[run.run_id], packed[run.run_id], columns, label=run, nan_matches=True)


@pytest.mark.parametrize("axis, off", [("training.grokfast.lamb", 0.0), ("training.perturbation.sigma", 0.0)])
def test_an_intervention_at_strength_zero_trains_as_without_it(axis, off):
    section = axis.split(".")[1]
    base = {"name": "z", **FAMILIES["modular-mlp"], "training": {"steps": 30, "eval_every": 10, "precision": "float64"},
            "grid": {"decoder_lr": [1e-2], "seed": [0]}}
    plain = spec_from_dict(base)
    zero = spec_from_dict({**base, "training": {**base["training"], section: {}}, "grid": {**base["grid"], axis: [off]}})
    (a,), (b,) = rows_by_run(plain, grid.expand(plain)).values(), rows_by_run(zero, grid.expand(zero)).values()
    # The perturbed forward sums the first layer in another order than the plain one (rounding only).
    assert_same_rows(a, b)


def test_perturbation_noises_training_steps_only():
    spec = spec_from_dict({"name": "n", **FAMILIES["modular-mlp"], "training": {"steps": 1, "perturbation": {"sigma": 1.0}}})
    state = train.build_pack(spec, grid.expand(spec))
    before = train.evaluate(state)
    again = train.evaluate(state)
    assert all(torch.equal(before[k], again[k]) or torch.isnan(before[k]).all() for k in before)  # no noise in evaluation
    inputs, targets, mask = train.step_examples(state, state.train_mask)
    noisy = state.interventions.forward(state.model, inputs, mask)
    clean = state.model(inputs)
    assert not torch.allclose(noisy, clean)


def test_orthogonal_gradients_in_a_pack_are_orthogonal_to_each_parameter():
    spec = spec_from_dict({"name": "o", **FAMILIES["modular-mlp"], "training": {"steps": 1, "optimizer": "sgd", "orthogonal_gradients": True},
                           "grid": {"repr_lr": [1e-3], "decoder_lr": [1e-3]}})
    state = train.build_pack(spec, grid.expand(spec))
    state.optimizer.zero_grad()
    inputs, targets, mask = train.step_examples(state, state.train_mask)
    metrics.masked_mean(train.per_example_loss(state, state.model(inputs), targets), mask).sum().backward()
    state.interventions.before_step(state.params)
    for p in state.params:
        w, g = p.detach(), p.grad
        assert abs(float((w * g).sum())) < 1e-4 * float(w.norm() * g.norm())


def test_a_swept_intervention_strength_sizes_packs():
    # The size probe (pack planning, --dry-run) must give a swept strength a value: it has none in
    # the spec itself once it is a grid axis.
    spec = spec_from_dict({"name": "g", **FAMILIES["modular-mlp"], "training": {"steps": 2, "grokfast": {"filter": "ema"}},
                           "grid": {"training.grokfast.lamb": [0.0, 2.0]}})
    plain = spec_from_dict({"name": "g", **FAMILIES["modular-mlp"], "training": {"steps": 2}})
    assert train.parameters_per_run(spec) == train.parameters_per_run(plain) > 0


def test_a_trainer_flushes_subnormal_floats_while_it_computes_and_never_for_its_caller(monkeypatch):
    # Weights that weight decay drives towards zero end subnormal, where CPU arithmetic is many
    # times slower (lyu_misgrokking's last steps): the trainer's steps and evaluations treat them
    # as zero, while the caller's code between rows keeps its own setting.
    torch.set_flush_denormal(False)
    if train.flushing_subnormals():
        pytest.skip("this CPU has no subnormal floats to flush")
    seen = []
    step, evaluate = train.train_step, train.evaluate
    monkeypatch.setattr(train, "train_step", lambda state: (seen.append(train.flushing_subnormals()), step(state)))
    monkeypatch.setattr(train, "evaluate", lambda state: (seen.append(train.flushing_subnormals()), evaluate(state))[1])
    spec = spec_from_dict({"name": "flush", "training": {"steps": 6, "eval_every": 2}})
    at_rows = [train.flushing_subnormals() for _ in train.run_pack(spec, grid.expand(spec)[:1])]
    assert at_rows == [False] * 4 and not train.flushing_subnormals()
    assert len(seen) == 6 + 4 and all(seen)
    pairs = train.run_pack(spec, grid.expand(spec)[:1])
    next(pairs)
    pairs.close()  # a caller that stops early gets its setting back too
    assert not train.flushing_subnormals()


# ----------------------------------------------------------------------------- fused optimizer


FUSED_CASES = {
    # A staged toy pack with warm-up and runs that leave early (the optimizer's rates change at
    # the stage, its state shrinks with the pack).
    "toy-staged-early-stop": lambda: staged_spec(
        training={"warmup_steps": 5, "early_stop": {"threshold": 0.01, "patience": 1}}, phases={"threshold": 0.01}),
    "transformer-adam-l2": lambda: spec_from_dict({
        "name": "f", **FAMILIES["transformer"],
        "training": {"steps": 6, "eval_every": 2, "precision": "float64", "optimizer": "adam", "warmup_steps": 3},
        "grid": {"decoder_wd": [0.0, 1.0], "repr_wd": [0.5], "seed": [0, 1], "train_fraction": [0.5, 0.7]},
    }),
    "mlp-grokfast": lambda: spec_from_dict({
        "name": "f", **FAMILIES["modular-mlp"],
        "training": {"steps": 6, "eval_every": 2, "precision": "float64", "grokfast": {"filter": "ema"}},
        "grid": {"decoder_lr": [1e-2], "decoder_wd": [0.0, 1.0], "training.grokfast.lamb": [0.0, 2.0], "seed": [0, 1]},
    }),
}


def with_fused(spec):
    return spec_from_dict({**spec.to_dict(), "training": {**spec.to_dict()["training"], "fused_optimizer": True}})


@pytest.mark.parametrize("case", sorted(FUSED_CASES))
def test_the_fused_optimizer_trains_packed_exactly_as_alone_and_as_the_default(case):
    default = FUSED_CASES[case]()
    fused = with_fused(default)
    assert fused.training.fused_optimizer and not default.training.fused_optimizer
    runs, default_runs = grid.expand(fused), grid.expand(default)
    assert {r.run_id for r in runs}.isdisjoint(r.run_id for r in default_runs)  # its numbers differ in float32
    packed, packed_default = rows_by_run(fused, runs), rows_by_run(default, default_runs)
    columns = [c for c in store.METRIC_COLUMNS if c not in ("run_id", "elapsed_s")]
    for run, run_default in zip(runs, default_runs, strict=True):
        # The same maths: float64 rows equal the default optimizer's, packed or alone.
        assert_same_rows(packed_default[run_default.run_id], packed[run.run_id], columns, label=run, nan_matches=True)
    for run in runs[::3]:
        assert_same_rows(rows_by_run(fused, [run])[run.run_id], packed[run.run_id], columns, label=run, nan_matches=True)
    if fused.training.early_stop is not None:
        assert any(rows[-1]["step"] < fused.total_steps for rows in packed.values()), "the pack must shrink"


@pytest.mark.parametrize("stop_after", [1, 4])
def test_a_restored_fused_trainer_continues_exactly(stop_after):
    spec = with_fused(staged_spec(training={"warmup_steps": 5}))
    assert_restart_continues_exactly(spec, grid.expand(spec)[:4], stop_after, ("stage", *CORE_COLUMNS))


def test_the_fused_optimizer_runs_in_float32_close_to_the_default():
    spec = small_spec(training={"precision": "float32", "steps": 40})
    runs = grid.expand(spec)[:4]
    fused = with_fused(spec)
    a, b = rows_by_run(spec, runs), rows_by_run(fused, grid.expand(fused)[:4])
    for run_a, run_b in zip(a.values(), b.values(), strict=True):
        for x, y in zip(run_a, run_b, strict=True):
            assert math.isclose(x["train_loss"], y["train_loss"], rel_tol=1e-3, abs_tol=1e-5)
