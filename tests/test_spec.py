"""Spec loading and validation: good specs round-trip, bad ones fail with one line naming the field."""

from __future__ import annotations

import math

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from grokgrid.spec import (
    HYPERPARAMETERS,
    SpecError,
    SweepSpec,
    dump_spec,
    load_spec,
    spec_from_dict,
)

MINIMAL = {"name": "t"}


def spec_with(**sections) -> dict:
    data = {"name": "t"}
    data.update(sections)
    return data


def error_of(data) -> SpecError:
    with pytest.raises(SpecError) as info:
        spec_from_dict(data)
    return info.value


def test_minimal_spec_gets_defaults():
    spec = spec_from_dict(MINIMAL)
    assert isinstance(spec, SweepSpec)
    assert spec.task.p == 10 and spec.model.hidden == (200, 200)
    assert spec.grid.size() == 1


def test_dump_and_reload_is_identity(tmp_path):
    spec = spec_from_dict(spec_with(grid={"repr_lr": [1e-4, 1e-3], "seed": [0, 1]}))
    path = tmp_path / "s.yaml"
    path.write_text(dump_spec(spec))
    assert load_spec(path) == spec


def test_yaml_scientific_notation_without_dot_is_a_number(tmp_path):
    # PyYAML reads 1e-3 as the string "1e-3"; researchers write it that way.
    path = tmp_path / "s.yaml"
    path.write_text("name: t\ngrid:\n  repr_lr: [1e-3, 1e-2]\n")
    assert load_spec(path).grid.repr_lr == (1e-3, 1e-2)


def test_logspace_and_linspace_ranges():
    spec = spec_from_dict(spec_with(grid={"repr_lr": {"logspace": [1e-5, 1e-2, 4]}, "decoder_wd": {"linspace": [0, 1, 3]}}))
    assert spec.grid.repr_lr == (1e-5, 1e-4, 1e-3, 1e-2)
    assert spec.grid.decoder_wd == (0.0, 0.5, 1.0)


def test_scalar_grid_value_is_one_point():
    assert spec_from_dict(spec_with(grid={"seed": 3})).grid.seed == (3,)


def test_swept_axes_exclude_seed():
    spec = spec_from_dict(spec_with(grid={"repr_lr": [1e-3, 1e-2], "seed": [0, 1], "decoder_wd": [0, 1]}))
    assert spec.grid.swept() == ("repr_lr", "decoder_wd")


@pytest.mark.parametrize(
    "data, field, words",
    [
        (spec_with(grid={"repr_lrr": [1e-3]}), "grid.repr_lrr", "unknown key"),
        (spec_with(bogus=1), "bogus", "unknown key"),
        (spec_with(training={"steps": "many"}), "training.steps", "expected a number"),
        (spec_with(training={"steps": 1.5}), "training.steps", "integer"),
        (spec_with(grid={"repr_lr": []}), "grid.repr_lr", "empty"),
        (spec_with(grid={"decoder_lr": [1e-3, -1e-3]}), "grid.decoder_lr[1]", "> 0"),
        (spec_with(grid={"repr_wd": [-1]}), "grid.repr_wd[0]", ">= 0"),
        (spec_with(grid={"train_fraction": [1.2]}), "grid.train_fraction[0]", "(0, 1)"),
        (spec_with(grid={"seed": [0, 0]}), "grid.seed", "repeated"),
        (spec_with(grid={"seed": [-1]}), "grid.seed[0]", "non-negative"),
        (spec_with(grid={"repr_lr": {"geomspace": [1, 2, 3]}}), "grid.repr_lr", "range form"),
        (spec_with(task={"name": "mnist"}), "task.name", "unknown value"),
        (spec_with(model={"hidden": [200, 0]}), "model.hidden[1]", ">= 1"),
        (spec_with(model={"activation": True}), "model.activation", "unknown value"),
        (spec_with(phases={"threshold": 1.5}), "phases.threshold", "(0, 1]"),
        (spec_with(phases={"budget": 10**9}), "phases.budget", "exceeds"),
        (spec_with(training={"eps": 0}), "training.eps", "> 0"),
        (spec_with(training={"betas": [0.9]}), "training.betas", "two numbers"),
        (spec_with(grid={"init_scale": [math.inf]}), "grid.init_scale[0]", "finite"),
        (spec_with(grid={"repr_lr": [True]}), "grid.repr_lr[0]", "expected a number"),
        (spec_with(grid=[1, 2]), "grid", "mapping"),
        ({"task": {}}, "name", "missing"),
        ({"name": "../escape"}, "name", "invalid sweep name"),
        ([1, 2], "spec", "mapping"),
    ],
)
def test_bad_specs_name_the_field(data, field, words):
    err = error_of(data)
    assert err.where == field
    assert words in str(err)
    assert "\n" not in str(err)


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(SpecError, match="no such file"):
        load_spec(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: t\ngrid: [unclosed\n")
    with pytest.raises(SpecError, match="not valid YAML") as info:
        load_spec(bad)
    assert "\n" not in str(info.value)


# ----------------------------------------------------------------------------- properties

positive = st.floats(min_value=1e-8, max_value=10, allow_nan=False)
values = st.lists(positive, min_size=1, max_size=4, unique=True)


@settings(max_examples=60, deadline=None)
@given(repr_lr=values, decoder_lr=values, seeds=st.lists(st.integers(0, 10**6), min_size=1, max_size=3, unique=True))
def test_valid_grids_round_trip_through_yaml(repr_lr, decoder_lr, seeds):
    spec = spec_from_dict(spec_with(grid={"repr_lr": repr_lr, "decoder_lr": decoder_lr, "seed": seeds}))
    assert spec_from_dict(yaml.safe_load(dump_spec(spec))) == spec
    assert spec.grid.size() == len(repr_lr) * len(decoder_lr) * len(seeds)


junk = st.one_of(st.text(max_size=5), st.booleans(), st.none(), st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))


@settings(max_examples=150, deadline=None)
@given(section=st.sampled_from(["task", "model", "training", "grid", "phases", "resources"]), key=st.text(min_size=1, max_size=12), value=junk)
def test_arbitrary_junk_is_either_valid_or_a_one_line_spec_error(section, key, value):
    try:
        spec_from_dict(spec_with(**{section: {key: value}}))
    except SpecError as err:
        assert err.where.startswith(section) or err.where == section
        assert "\n" not in str(err)


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(HYPERPARAMETERS), value=st.floats(max_value=-1e-12, min_value=-1e6))
def test_negative_hyperparameters_are_refused(name, value):
    err = error_of(spec_with(grid={name: [value]}))
    assert err.where == f"grid.{name}[0]"


@pytest.mark.parametrize(
    "data, field, words",
    [
        (spec_with(task={"name": "toy_addition", "op": "mul"}), "task.op", "not a parameter of task toy_addition"),
        (spec_with(task={"name": "modular", "op": "pow"}), "task.op", "unknown value"),
        (spec_with(task={"name": "modular", "p": 12, "op": "div"}), "task.p", "prime"),
        (spec_with(task={"name": "permutation", "n": 6}, model={"name": "transformer"}), "task.n", "not offered"),
        (spec_with(task={"name": "digits"}, model={"name": "toy"}), "model.name", "does not read"),
        (spec_with(model={"name": "transformer", "d_model": 10, "n_heads": 4}, task={"name": "modular"}), "model.n_heads", "multiple"),
        (spec_with(model={"name": "mlp", "bias": "yes"}), "model.bias", "true or false"),
        (spec_with(training={"optimizer": "lion"}), "training.optimizer", "unknown value"),
        (spec_with(training={"log_schedule": {"per_decade": 0}}), "training.log_schedule.per_decade", ">= 1"),
        (spec_with(training={"early_stop": {"patience": 0}}), "training.early_stop.patience", ">= 1"),
    ],
)
def test_bad_task_and_model_sections_name_the_field(data, field, words):
    err = error_of(data)
    assert err.where == field and words in str(err)


def test_task_defaults_follow_the_task():
    modular = spec_from_dict(spec_with(task={"name": "modular"}, model={"name": "mlp"}))
    assert (modular.task.p, modular.task.loss) == (97, "ce")
    s5 = spec_from_dict(spec_with(task={"name": "permutation"}, model={"name": "transformer"}))
    assert (s5.task.n, s5.task.op) == (5, "compose")
    # Only the kind's own parameters are written back (and hashed into run ids).
    assert set(s5.to_dict()["task"]) == {"name", "n", "op", "loss"}
