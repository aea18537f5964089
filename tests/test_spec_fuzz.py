"""Fuzzing the spec loader through the CLI: every bad spec Hypothesis makes up (wrong types,
unknown keys at every level, zero or negative values, empty grids, broken YAML, not a mapping)
gives exit code 2, one line on stderr starting with "error: ", no traceback, and no results
folder. Validation fails before Ray would start; Ray is stubbed out so that a spec that wrongly
passed validation fails the test at once instead of starting a sweep.
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from grokgrid import cli, driver
from grokgrid.spec import (
    ACTIVATIONS,
    HYPERPARAMETERS,
    LOSSES,
    MODELS,
    NAME_PATTERN,
    OPTIMIZERS,
    PRECISIONS,
    TASKS,
    EarlyStopSpec,
    GridSpec,
    MODEL_KEYS,
    PhasesSpec,
    ResourcesSpec,
    SweepSpec,
    TASK_KEYS,
    SpecError,
    TrainingSpec,
    load_spec,
    parse_yaml,
    spec_from_dict,
)

runner = CliRunner()

BASE = {
    "name": "fuzz",
    "task": {"name": "toy_addition", "p": 10, "loss": "mse", "template_dim": 30},
    "model": {"name": "toy", "embed_dim": 1, "hidden": [16, 16], "activation": "tanh"},
    "training": {"steps": 100, "eval_every": 10, "betas": [0.9, 0.999], "eps": 1e-8, "precision": "float32",
                 "early_stop": {"threshold": 0.99, "patience": 3}},
    "grid": {"repr_lr": [1e-3, 1e-2], "decoder_lr": [1e-3], "repr_wd": [0.0], "decoder_wd": [0.0],
             "init_scale": [1.0], "train_fraction": [0.8], "seed": [0, 1]},
    "phases": {"threshold": 0.9, "gap": 10, "budget": None},
    "resources": {"cpus_per_trial": 1, "gpus_per_trial": 0, "max_concurrent": None, "pack_size": 2,
                  "flush_every": 50, "checkpoint_every": 50, "max_failures": 2},
}
# The keys a level knows (a key a task or model kind does not take is refused too).
LEVELS = {
    (): [f.name for f in SweepSpec.__dataclass_fields__.values()],
    ("task",): list(TASK_KEYS),  # every task kind's parameters (one a kind does not take is refused too)
    ("model",): list(MODEL_KEYS),
    ("training",): list(TrainingSpec.__dataclass_fields__),
    ("training", "early_stop"): list(EarlyStopSpec.__dataclass_fields__),
    ("grid",): list(GridSpec.__dataclass_fields__),
    ("phases",): list(PhasesSpec.__dataclass_fields__),
    ("resources",): list(ResourcesSpec.__dataclass_fields__),
}


def _not_a_number(text: str) -> bool:
    try:
        return not math.isfinite(float(text))
    except ValueError:
        return True


not_numeric_text = st.text(max_size=8).filter(_not_a_number)
containers = st.one_of(st.lists(st.integers(), min_size=1, max_size=3), st.dictionaries(st.text(max_size=3), st.integers(), min_size=1, max_size=2))
not_a_number = st.one_of(not_numeric_text, st.booleans(), containers)
not_an_integer = st.one_of(not_a_number, st.floats(allow_nan=False, allow_infinity=False).filter(lambda x: x != int(x)))
non_positive = st.one_of(st.integers(max_value=0), st.floats(max_value=0, allow_nan=False, allow_infinity=False))
negative = st.one_of(st.integers(max_value=-1), st.floats(max_value=-1e-9, allow_nan=False, allow_infinity=False, min_value=-1e12))
not_finite = st.sampled_from([float("nan"), float("inf"), float("-inf"), ".nan", ".inf"])


def bad_choice(valid: tuple[str, ...]):
    return st.one_of(st.text(max_size=10).filter(lambda s: s not in valid), st.integers(), st.booleans(), containers)


# (path, strategy of values that make that field invalid)
BAD_VALUES = [
    (("task", "name"), bad_choice(TASKS)),
    (("task", "p"), st.one_of(not_an_integer, st.integers(max_value=1))),
    (("task", "loss"), bad_choice(LOSSES)),
    (("task", "template_dim"), st.one_of(not_an_integer, non_positive)),
    (("model", "name"), bad_choice(MODELS)),
    (("model", "embed_dim"), st.one_of(not_an_integer, non_positive)),
    (("model", "hidden"), st.one_of(not_numeric_text, st.booleans(), st.lists(st.one_of(non_positive, not_numeric_text), min_size=1, max_size=3))),
    (("model", "activation"), bad_choice(ACTIVATIONS)),
    (("training", "steps"), st.one_of(not_an_integer, non_positive)),
    (("training", "eval_every"), st.one_of(not_an_integer, non_positive, st.integers(min_value=101))),  # BASE: 100 steps
    (("training", "optimizer"), bad_choice(OPTIMIZERS)),
    (("training", "betas"), st.one_of(not_a_number, st.lists(st.floats(0, 0.9), max_size=1), st.lists(st.floats(min_value=1.0, max_value=5.0), min_size=2, max_size=2))),
    (("training", "eps"), st.one_of(not_a_number, non_positive, not_finite)),
    (("training", "precision"), bad_choice(PRECISIONS)),
    (("training", "early_stop"), st.one_of(st.integers(), st.text(min_size=1, max_size=5), st.lists(st.integers(), min_size=1, max_size=2))),
    (("training", "early_stop", "threshold"), st.one_of(not_a_number, non_positive, st.floats(min_value=1.001, max_value=1e6))),
    (("training", "early_stop", "patience"), st.one_of(not_an_integer, non_positive)),
    *[(("grid", h), st.one_of(not_numeric_text.filter(bool), st.just([]), st.lists(not_a_number, min_size=1, max_size=2), not_finite))
      for h in HYPERPARAMETERS],
    (("grid", "repr_lr"), st.lists(non_positive, min_size=1, max_size=3)),
    (("grid", "decoder_lr"), st.builds(lambda n: {"logspace": [1e-5, 1e-2, n]}, st.integers(max_value=0))),
    (("grid", "repr_wd"), st.lists(negative, min_size=1, max_size=3)),
    (("grid", "decoder_wd"), st.lists(negative, min_size=1, max_size=3)),
    (("grid", "init_scale"), st.lists(non_positive, min_size=1, max_size=3)),
    (("grid", "train_fraction"), st.lists(st.one_of(non_positive, st.floats(min_value=1, max_value=100)), min_size=1, max_size=3)),
    (("grid", "seed"), st.lists(st.one_of(st.integers(max_value=-1), st.floats(0.1, 0.9)), min_size=1, max_size=3)),
    (("grid", "seed"), st.lists(st.integers(0, 3), min_size=2, max_size=4).filter(lambda v: len(set(v)) < len(v))),  # repeats
    (("phases", "threshold"), st.one_of(not_a_number, non_positive, st.floats(min_value=1.001, max_value=1e6))),
    (("phases", "gap"), st.one_of(not_an_integer, negative.map(lambda x: int(x) - 1))),
    (("phases", "budget"), st.one_of(not_an_integer, non_positive.map(lambda x: int(x)), st.integers(min_value=101))),
    (("resources", "cpus_per_trial"), st.one_of(not_a_number, non_positive)),
    (("resources", "gpus_per_trial"), st.one_of(not_a_number, negative)),
    (("resources", "max_concurrent"), st.one_of(not_an_integer, non_positive.map(int))),
    (("resources", "pack_size"), st.one_of(not_an_integer.filter(lambda v: v != "auto"), non_positive.map(int))),
    (("resources", "flush_every"), st.one_of(not_an_integer, non_positive)),
    (("resources", "checkpoint_every"), st.one_of(not_an_integer, non_positive)),
    (("resources", "max_failures"), st.one_of(not_an_integer, st.integers(max_value=-2))),
    (("name",), st.one_of(st.just(""), st.integers(), st.text(min_size=1, max_size=70).filter(lambda s: not NAME_PATTERN.match(s)))),
    (("description",), st.one_of(st.integers(), st.lists(st.text(max_size=3), min_size=1, max_size=2))),
]


def _set(data: dict, path: tuple, value) -> dict:
    out = yaml.safe_load(yaml.safe_dump(data))  # a deep copy
    node = out
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return out


@st.composite
def wrong_value(draw):
    index = draw(st.integers(0, len(BAD_VALUES) - 1))
    path, strategy = BAD_VALUES[index]
    return _set(BASE, path, draw(strategy))


unknown_key_text = st.one_of(st.text(min_size=1, max_size=20), st.integers(), st.booleans())


@st.composite
def unknown_key(draw):
    level = draw(st.sampled_from(sorted(LEVELS)))
    key = draw(unknown_key_text.filter(lambda k: k not in LEVELS[level]))
    data = yaml.safe_load(yaml.safe_dump(BASE))
    node = data
    for part in level:
        node = node[part]
    node[key] = draw(st.one_of(st.integers(), st.text(max_size=5), st.none()))
    return data


@st.composite
def not_a_mapping(draw):
    return draw(st.one_of(st.none(), st.integers(), st.text(max_size=10), st.lists(st.integers(), max_size=3)))


def _without_name() -> dict:
    data = yaml.safe_load(yaml.safe_dump(BASE))
    del data["name"]
    return data


missing_name = st.builds(_without_name)


@st.composite
def empty_grid(draw):
    h = draw(st.sampled_from(HYPERPARAMETERS))
    form = draw(st.sampled_from(["list", "logspace", "linspace"]))
    value = [] if form == "list" else {form: [1e-4 if form == "logspace" else 0.1, 1e-2 if form == "logspace" else 0.5, 0]}
    return _set(BASE, ("grid", h), value)


bad_specs = st.one_of(wrong_value(), unknown_key(), not_a_mapping(), missing_name, empty_grid())


def _expect_refused(text: str | bytes) -> None:
    with tempfile.TemporaryDirectory() as folder, pytest.MonkeyPatch.context() as patch:
        def no_ray(*args, **kwargs):
            raise AssertionError("the spec passed validation: a sweep would have started")

        patch.setattr(driver, "connect", no_ray)
        spec_path = Path(folder) / "bad.yaml"
        if isinstance(text, bytes):
            spec_path.write_bytes(text)
        else:
            spec_path.write_text(text, encoding="utf-8")
        results = Path(folder) / "results"
        result = runner.invoke(cli.app, ["sweep", str(spec_path), "--results", str(results), "--no-report"])
        detail = f"spec:\n{text!r}\nstdout: {result.stdout!r}\nstderr: {result.stderr!r}\nexception: {result.exception!r}"
        assert result.exit_code == 2, detail
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), detail
        assert "Traceback" not in result.stdout + result.stderr, detail
        assert not results.exists(), detail


def test_the_base_spec_is_valid():
    spec_from_dict(BASE)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(data=bad_specs)
def test_every_bad_spec_is_exit_2_one_line_and_no_results_folder(data):
    _expect_refused(yaml.safe_dump(data, allow_unicode=True))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(text=st.one_of(st.text(max_size=60), st.binary(max_size=60)))
def test_garbage_files_are_exit_2_one_line_and_no_results_folder(text):
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    try:
        spec_from_dict(yaml.safe_load(raw.decode("utf-8")))
    except Exception:  # noqa: BLE001 - what we want: not a valid spec
        pass
    else:
        return  # by chance a valid spec (e.g. "name: a"): not a bad spec
    _expect_refused(text)


# ----------------------------------------------------------------------------- keys given twice

field_name = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12)
plain_value = st.one_of(st.integers(-5, 10**6), st.floats(-1e6, 1e6), st.booleans(), st.none(), st.text(max_size=6),
                        st.lists(st.integers(0, 9), max_size=3))


def _emit(node: dict, path: tuple, target: tuple, items: list, key, lines: list[str], hits: list[int], indent: int = 0) -> None:
    """Block YAML of ``node``, whose mapping at ``target`` has ``items`` (``key`` twice); the
    lines of that key's two occurrences go into ``hits``."""
    for k, v in items if path == target else list(node.items()):
        pad = " " * indent
        if path == target and k == key:
            hits.append(len(lines) + 1)
        if isinstance(v, dict):
            lines.append(f"{pad}{json.dumps(k)}:")
            _emit(v, path + (k,), target, items, key, lines, hits, indent + 2)
        else:
            lines.append(f"{pad}{json.dumps(k)}: {json.dumps(v)}")


@st.composite
def duplicated_key(draw):
    """BASE as YAML text with one key of one mapping given twice (a known key, one BASE has at
    that level, or any name), at random places in that mapping, with any values."""
    level = draw(st.sampled_from(sorted(LEVELS)))
    node = yaml.safe_load(yaml.safe_dump(BASE))
    for part in level:
        node = node[part]
    key = draw(st.one_of(st.sampled_from(sorted(node)), st.sampled_from(LEVELS[level]), field_name))
    items = [(k, v) for k, v in node.items() if k != key]
    first = node.get(key, draw(plain_value))
    second = draw(st.one_of(plain_value, st.just(first)))
    i = draw(st.integers(0, len(items)))
    items.insert(i, (key, first))
    items.insert(draw(st.integers(i + 1, len(items))), (key, second))
    lines: list[str] = []
    hits: list[int] = []
    _emit(yaml.safe_load(yaml.safe_dump(BASE)), (), level, items, key, lines, hits)
    return "\n".join(lines) + "\n", ".".join(level + (key,)), hits


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=duplicated_key())
def test_a_key_given_twice_anywhere_is_refused_naming_its_field_and_lines(case):
    text, field, (first, second) = case
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "dup.yaml"
        path.write_text(text, encoding="utf-8")
        try:
            load_spec(path)
        except SpecError as err:
            assert err.where == field, text
            assert str(err) == f"{field}: given twice (lines {first} and {second}); keep one", text
        else:
            raise AssertionError(f"a key given twice was accepted:\n{text}")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=duplicated_key())
def test_a_key_given_twice_is_exit_2_one_line_through_the_cli(case):
    _expect_refused(case[0])


yaml_data = st.recursive(
    plain_value,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.one_of(st.text(max_size=4), st.integers()), inner, max_size=3)),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(data=yaml_data, flow=st.booleans())
def test_without_repeated_keys_the_spec_loader_reads_as_safe_load(data, flow):
    text = yaml.safe_dump(data, default_flow_style=flow, allow_unicode=True)
    assert parse_yaml(text) == yaml.safe_load(text)
