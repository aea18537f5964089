"""Field axes (spec_fields.py): task, model and training fields on the grid. Parsing and its
errors, ids, packing by variant, training equal to a spec that fixes the field, and a real Ray
sweep whose report and claims use the new axes."""

from __future__ import annotations

import copy
import pandas as pd
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from grokgrid import grid, train
from grokgrid.spec import SpecError, dump_spec, spec_from_dict

BASE = {
    "name": "fields",
    "task": {"name": "modular", "op": "add"},
    "model": {"name": "mlp", "embed_dim": 8},
    "training": {"steps": 60, "eval_every": 20, "precision": "float64"},
    "grid": {"decoder_lr": [1e-3, 3e-3], "decoder_wd": [1.0], "train_fraction": [0.5], "seed": [0, 1],
             "task.p": [7, 11], "model.hidden": [[16], [8, 8]]},
}


def spec_with(**grid_changes):
    data = copy.deepcopy(BASE)
    data["grid"].update(grid_changes)
    return spec_from_dict(data)


def error_of(data) -> str:
    with pytest.raises(SpecError) as info:
        spec_from_dict(data)
    message = str(info.value)
    assert "\n" not in message
    return message


# ----------------------------------------------------------------------------- parsing


def test_field_axes_are_grid_axes_with_parsed_values_and_round_trip():
    spec = spec_with()
    assert spec.grid.fields() == (("task.p", (7, 11)), ("model.hidden", ((16,), (8, 8))))
    assert spec.grid.size() == 2 * 2 * 2 * 2
    # The dumped spec writes them on the grid only, and reads back as the same spec.
    dumped = yaml.safe_load(dump_spec(spec))
    assert "p" not in dumped["task"] and "hidden" not in dumped["model"]
    assert dumped["grid"]["model.hidden"] == [[16], [8, 8]]
    assert spec_from_dict(dumped) == spec
    assert [(v.task.p, v.model.hidden) for v in spec.variants()] == [(7, (16,)), (7, (8, 8)), (11, (16,)), (11, (8, 8))]
    assert all(v.grid.fields() == () for v in spec.variants())


def test_a_value_is_read_as_a_fixed_field_would_be_so_spellings_share_an_id():
    as_text = spec_with(**{"training.eps": ["1e-8", 1e-7]})
    as_number = spec_with(**{"training.eps": [1e-8, 1e-7]})
    assert as_text.grid.values("training.eps") == (1e-8, 1e-7)
    assert [r.run_id for r in grid.expand(as_text)] == [r.run_id for r in grid.expand(as_number)]


def test_ids_hash_the_field_values_and_match_run_id():
    spec = spec_with()
    runs = grid.expand(spec)
    assert len({r.run_id for r in runs}) == len(runs)
    assert all(grid.run_id(spec, r.hyperparameters()) == r.run_id for r in runs)
    assert runs[0].columns()["model.hidden"] == "[16]" and runs[0].hyperparameters()["model.hidden"] == (16,)


@pytest.mark.parametrize("key, values, expected", [
    ("task.p", [7, 8], "grid.task.p[1]: 8"),  # the axis value at fault, with the task's own check
    ("model.hidden", [[16], [0]], "grid.model.hidden[1]: [0]"),
    ("task.q", [3], "grid.task.q: 'q' is not a parameter of task modular; sweep one of p, op, loss"),
    ("task.name", ["modular"], "grid.task.name: the task kind cannot be an axis"),
    ("training.steps", [10, 20], "grid.training.steps: training.steps cannot be a grid axis"),
    ("training.batch_size", [None, 8], "grid.training.batch_size[0]: null is not an axis value"),
    ("task.p", [7, 7], "grid.task.p: repeated values [7, 7]"),
    ("task.p", [], "grid.task.p: empty list"),
])
def test_bad_field_axes_are_one_line_errors_naming_the_axis(key, values, expected):
    data = copy.deepcopy(BASE)
    data["grid"][key] = values
    data["task"]["op"] = "div" if key == "task.p" and values == [7, 8] else "add"
    assert error_of(data).startswith(expected)


def test_a_field_set_in_its_section_and_on_the_grid_is_refused():
    data = copy.deepcopy(BASE)
    data["task"]["p"] = 7
    assert error_of(data).startswith("grid.task.p: task.p is also set; set it in one place")


def test_an_error_of_a_combination_names_the_field_and_the_values():
    data = copy.deepcopy(BASE)
    data["grid"]["train_fraction"] = [0.01]  # no training example at p = 7 (49 pairs), one at p = 11
    assert error_of(data).startswith("grid.train_fraction[0]:") and "(with task.p = 7" in error_of(data)


def test_too_many_combinations_are_refused_before_any_is_built():
    data = copy.deepcopy(BASE)
    data["grid"]["training.eps"] = {"logspace": [1e-9, 1e-6, 1001]}
    assert error_of(data).startswith("grid.task.p: the field axes make 4,004 combinations")


def test_claims_trend_along_numeric_field_axes_and_select_categorical_ones_by_value():
    data = copy.deepcopy(BASE)
    data["grid"]["task.loss"] = ["ce", "stablemax"]
    data["grid"]["training.orthogonal_gradients"] = [False, True]
    data["expect"] = [
        {"claim": "bigger p groks later", "trend": {"quantity": "t_val", "along": "task.p", "direction": "increasing"}},
        {"claim": "a", "where": {"model.hidden": [[8, 8]], "task.loss": "stablemax", "training.orthogonal_gradients": True},
         "phases": {"present": ["grokking"]}},
    ]
    spec = spec_from_dict(data)
    assert spec.expect[0].check.along == "task.p"
    assert dict(spec.expect[1].where)["model.hidden"].values == ((8, 8),)
    assert spec_from_dict(yaml.safe_load(dump_spec(spec))) == spec
    for where, message in [
        ({"model.hidden": [[16], [32]]}, "expect[0].where.model.hidden: [32] is not a value of grid.model.hidden; use one of [16], [8, 8]"),
        ({"task.loss": {"min": 1}}, "expect[0].where.task.loss: grid.task.loss is not numeric: a min/max range"),
        ({"task.p": "seven"}, "expect[0].where.task.p: seven is not a value of grid.task.p"),
    ]:
        data["expect"] = [{"claim": "x", "where": where, "phases": {"present": ["grokking"]}}]
        assert error_of(data).startswith(message)
    data["expect"] = [{"claim": "x", "trend": {"quantity": "t_val", "along": "task.loss", "direction": "increasing"}}]
    assert error_of(data).startswith("expect[0].trend.along: grid.task.loss is not numeric (ce, stablemax)")


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(["task.p", "model.hidden", "model.embed_dim", "training.optimizer", "training.betas", "task.loss"]),
       st.lists(st.one_of(st.integers(-3, 40), st.floats(allow_nan=True), st.text(max_size=4), st.none(),
                          st.lists(st.integers(-2, 20), max_size=3)), max_size=3))
def test_any_field_axis_value_is_read_or_refused_in_one_line(key, values):
    data = copy.deepcopy(BASE)
    data["grid"][key] = values
    try:
        spec = spec_from_dict(data)
    except SpecError as exc:
        assert "\n" not in str(exc) and str(exc).startswith(("grid.", "training.", "model.", "task"))
        return
    assert spec_from_dict(yaml.safe_load(dump_spec(spec))) == spec


def test_specs_without_field_axes_keep_their_grid_and_variants():
    spec = spec_from_dict({"name": "plain"})
    assert spec.grid.fields() == () and spec.variants() == [spec] and spec.for_values({}) is spec


# ----------------------------------------------------------------------------- packs and training


def test_packs_never_mix_variants_and_keep_per_run_axes_together():
    spec = spec_with()
    packs = grid.pack(grid.expand(spec), 8)
    assert len(packs) == 4 and all(len(p.runs) == 4 for p in packs)
    for p in packs:
        assert len({r.field_values() for r in p.runs}) == 1
        assert len({r.decoder_lr for r in p.runs}) == 2  # the per-run lr still shares the pack
    assert grid.Pack.from_dict(packs[0].to_dict()) == packs[0]  # a list value comes back as its tuple


def test_a_pack_mixing_variants_is_refused():
    runs = grid.expand(spec_with())
    with pytest.raises(ValueError, match="mixes runs"):
        train.PackTrainer(spec_with(), [runs[0], runs[-1]])


def test_a_swept_field_trains_exactly_as_a_spec_that_fixes_it():
    spec = spec_with()
    pack = next(p for p in grid.pack(grid.expand(spec), 8) if p.runs[0].field_values() == (("task.p", 11), ("model.hidden", (8, 8))))
    swept = [row for rows in train.run_pack(spec, pack.runs) for row in rows]
    fixed_data = copy.deepcopy(BASE)
    for key in ("task.p", "model.hidden"):
        del fixed_data["grid"][key]
    fixed_data["task"]["p"], fixed_data["model"]["hidden"] = 11, [8, 8]
    fixed = spec_from_dict(fixed_data)
    alone = {r.decoder_lr * 10 + r.seed: r for r in grid.expand(fixed)}
    fixed_rows = [row for rows in train.run_pack(fixed, [alone[r.decoder_lr * 10 + r.seed] for r in pack.runs]) for row in rows]
    assert len(swept) == len(fixed_rows) == 4 * 4
    for a, b in zip(swept, fixed_rows):
        for column in ("step", "train_loss", "val_loss", "train_acc", "val_acc", "weight_norm"):
            assert a[column] == b[column], column


def test_pack_sizes_and_estimates_use_the_largest_variant():
    spec = spec_with(**{"model.hidden": [[4], [64, 64]]})
    big = spec.for_values({"task.p": 11, "model.hidden": (64, 64)})
    assert train.parameters_per_run(spec) == train.parameters_per_run(big) > train.parameters_per_run(spec.variants()[0])


# ----------------------------------------------------------------------------- a real sweep


@pytest.mark.slow
def test_a_sweep_over_p_and_width_trains_labels_reports_and_resumes(tmp_path, ray_local):
    from grokgrid import api

    data = copy.deepcopy(BASE)
    data["expect"] = [{"claim": "no p = 11 run diverges", "where": {"task.p": [11]}, "phases": {"absent": ["diverged"]}},
                      {"claim": "the [8, 8] runs do not grok in 60 steps", "where": {"model.hidden": [[8, 8]]},
                       "phases": {"absent": ["grokking"]}}]
    sweep = api.run_sweep(data, tmp_path, num_cpus=2)
    runs = sweep.runs
    assert sorted(set(runs["task.p"])) == [7, 11] and set(runs["model.hidden"]) == {"[16]", "[8, 8]"}
    assert (runs["status"] == "done").all()
    assert runs.groupby("pack_id")[["task.p", "model.hidden"]].nunique().max().max() == 1
    metrics = sweep.metrics()
    assert len(metrics) == 16 * 4
    html = sweep.report(axes=("task.p", "model.hidden"), facet="decoder_lr").read_text()
    assert "task: p" in html and "model: hidden" in html
    verification = api.verify(sweep.path)
    assert verification.passed and [v.runs for v in verification.verdicts] == [8, 8]
    again = api.resume_sweep(sweep.path, num_cpus=2)
    assert again.metrics().equals(metrics)  # a finished sweep resumes to the same rows
