"""Grid expansion: counts, stable ids, packs."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from grokgrid import grid
from grokgrid.spec import SpecError, dump_spec, spec_from_dict


def make(grid_section: dict, **other) -> object:
    return spec_from_dict({"name": "t", "grid": grid_section, **other})


def test_expansion_is_the_cartesian_product():
    spec = make({"repr_lr": [1e-4, 1e-3, 1e-2], "decoder_lr": [1e-4, 1e-3], "seed": [0, 1]})
    runs = grid.expand(spec)
    assert len(runs) == 12
    assert len({r.run_id for r in runs}) == 12
    assert {(r.repr_lr, r.decoder_lr, r.seed) for r in runs} == {
        (a, b, s) for a in (1e-4, 1e-3, 1e-2) for b in (1e-4, 1e-3) for s in (0, 1)
    }
    assert [r.seed for r in runs[:2]] == [0, 1], "seed varies fastest"


def test_ids_are_stable_across_processes_and_sweep_names():
    a = grid.expand(make({"repr_lr": [1e-3, 1e-2]}))
    b = grid.expand(spec_from_dict({"name": "other-name", "grid": {"repr_lr": [1e-2, 1e-3]}}))
    assert {r.run_id: r.repr_lr for r in a} == {r.run_id: r.repr_lr for r in b}
    assert len(a[0].run_id) == grid.RUN_ID_LENGTH


def test_id_recipe_is_pinned():
    # A literal id pins the hash recipe: changing it silently would orphan every stored result.
    assert grid.expand(make({}))[0].run_id == "0db8fb049989"


def test_ids_change_with_anything_that_changes_training():
    base = grid.expand(make({}))[0].run_id
    assert grid.expand(make({}, training={"steps": 10}))[0].run_id != base
    assert grid.expand(make({}, model={"hidden": [10]}))[0].run_id != base
    assert grid.expand(make({"seed": [1]}))[0].run_id != base
    # ...and not with what only changes how results are read.
    assert grid.expand(make({}, phases={"gap": 5}))[0].run_id == base


def test_packs_cover_every_run_once():
    runs = grid.expand(make({"repr_lr": [1e-4, 1e-3, 1e-2], "seed": [0, 1, 2]}))
    for size in (1, 2, 4, 9, 20):
        packs = grid.pack(runs, size)
        flat = [r for p in packs for r in p.runs]
        assert flat == runs
        assert all(1 <= len(p.runs) <= size for p in packs)
        assert len({p.pack_id for p in packs}) == len(packs)


def test_pack_round_trips_through_a_dict():
    pack = grid.pack(grid.expand(make({"seed": [0, 1]})), 2)[0]
    assert grid.Pack.from_dict(pack.to_dict()) == pack


@settings(max_examples=40, deadline=None)
@given(
    n_lr=st.integers(1, 4),
    n_wd=st.integers(1, 3),
    n_seed=st.integers(1, 3),
)
def test_run_count_is_the_product_of_axis_lengths(n_lr, n_wd, n_seed):
    spec = make({
        "repr_lr": [10.0 ** -(i + 1) for i in range(n_lr)],
        "decoder_wd": [float(i) for i in range(n_wd)],
        "seed": list(range(n_seed)),
    })
    runs = grid.expand(spec)
    assert len(runs) == spec.grid.size() == n_lr * n_wd * n_seed
    assert len({r.run_id for r in runs}) == len(runs)


def test_auto_pack_size_fills_every_slot_within_the_device_cap():
    # 16 runs on 2 CPU slots: two packs of 8; 9 runs: packs of 5 so that both slots work.
    assert grid.auto_pack_size(16, 2, False, 50_000) == 8
    assert grid.auto_pack_size(9, 2, False, 50_000) == 5
    assert grid.auto_pack_size(64, 2, False, 50_000) == grid.CPU_PACK_CAP
    assert grid.auto_pack_size(1024, 1, True, 50_000) == grid.GPU_PACK_CAP
    # Balanced: 1000 runs in 4 packs of 250 rather than 3 of 256 and one of 232; 24 runs on 2
    # slots in 4 packs of 6 (two full waves) rather than 3 of 8 (the third alone in a wave).
    assert grid.auto_pack_size(1000, 1, True, 50_000) == 250
    assert grid.auto_pack_size(24, 2, False, 50_000) == 6
    assert grid.auto_pack_size(3, 8, True, 50_000) == 1
    # A big model gets smaller packs: the pack's parameters stay within the budget.
    assert grid.auto_pack_size(64, 1, False, grid.CPU_PACK_PARAMETERS // 2) == 2
    assert grid.auto_pack_size(64, 1, False, grid.CPU_PACK_PARAMETERS * 2) == 1


def test_optional_training_features_left_off_do_not_enter_the_id():
    base = grid.expand(make({}))[0].run_id
    assert grid.expand(make({}, training={"warmup_steps": 0, "batch_size": None}))[0].run_id == base
    assert grid.expand(make({}, training={"warmup_steps": 10}))[0].run_id != base
    assert grid.expand(make({}, training={"batch_size": 8}))[0].run_id != base


def test_fast_expansion_gives_the_ids_of_run_id_for_every_shipped_sweep():
    from pathlib import Path

    from grokgrid.spec import load_spec

    for path in sorted(Path(__file__).parent.parent.glob("sweeps/*.yaml")):
        spec = load_spec(path)
        runs = grid.expand(spec)
        assert [r.run_id for r in runs] == [grid.run_id(spec, r.hyperparameters()) for r in runs], path.name
        assert len(runs) == grid.count(spec)
    # pinned: ids never change for an existing spec (results folders would stop resuming)
    quickstart = grid.expand(load_spec(Path(__file__).parent.parent / "sweeps" / "quickstart.yaml"))
    assert quickstart[0].run_id == "de0af5663fab"


def test_extra_axes_expand_with_ids_equal_to_run_id_and_packs_round_trip_through_json():
    import json

    spec = spec_from_dict({"name": "s", "stages": [{"name": "shrink", "steps": 5}],
                           "grid": {"seed": [0, 1], "decoder_lr": [1e-3, 1e-2], "shrink.train_subset": [0.25, 0.5, 1.0]}})
    runs = grid.expand(spec)
    assert len(runs) == 12 == spec.grid.size() and len({r.run_id for r in runs}) == 12
    for r in runs:
        assert grid.run_id(spec, r.hyperparameters()) == r.run_id
        assert r.hyperparameters()["shrink.train_subset"] == r.value("shrink.train_subset")
    assert [r.seed for r in runs[:2]] == [0, 1]  # the seed still varies fastest
    pack = grid.pack(runs, 5)[0]
    assert grid.Pack.from_dict(json.loads(json.dumps(pack.to_dict()))) == pack
    # a pack recorded before extra axes existed (no "extra" key) still reads
    old = {"pack_id": "p", "runs": [{k: v for k, v in dataclasses.asdict(runs[0]).items() if k != "extra"}]}
    assert grid.Pack.from_dict(old).runs[0].extra == ()


def test_stages_change_run_ids_only_when_present():
    base = {"name": "s", "grid": {"seed": [0]}}
    plain = grid.expand(spec_from_dict(base))[0].run_id
    staged = grid.expand(spec_from_dict({**base, "stages": [{"name": "more", "steps": 5}]}))[0].run_id
    assert plain != staged


# ----------------------------------------------------------------------------- tied axes

TIED = {"name": "tied", "grid": {"repr_wd": [0.0, 0.005], "decoder_wd": [0.0, 0.005], "decoder_lr": [1e-3, 1e-2],
                                 "seed": [0, 1], "tie": [["repr_wd", "decoder_wd"]]}}


def test_tied_axes_move_together_and_their_runs_keep_the_full_products_ids():
    spec = spec_from_dict(TIED)
    runs = grid.expand(spec)
    assert spec.grid.size() == grid.count(spec) == len(runs) == 8
    assert all(r.repr_wd == r.decoder_wd for r in runs)
    assert [(r.decoder_lr, r.repr_wd, r.seed) for r in runs[:4]] == [(1e-3, 0.0, 0), (1e-3, 0.0, 1), (1e-3, 0.005, 0), (1e-3, 0.005, 1)]
    untied = spec_from_dict({**TIED, "grid": {k: v for k, v in TIED["grid"].items() if k != "tie"}})
    full = {r.run_id: r for r in grid.expand(untied)}
    assert all(full[r.run_id] == r for r in runs)  # a subset of the product, the same ids
    assert spec_from_dict(yaml.safe_load(dump_spec(spec))) == spec
    assert "tie" not in yaml.safe_load(dump_spec(untied))["grid"]  # untied specs dump as before


def test_a_tie_may_join_extra_and_field_axes():
    spec = spec_from_dict({"name": "t", "task": {"name": "modular", "op": "add"}, "model": {"name": "mlp"},
                           "training": {"grokfast": {"filter": "ema"}},
                           "grid": {"training.grokfast.lamb": [0, 2], "decoder_wd": [0, 0.01], "task.p": [7, 11],
                                    "tie": [["training.grokfast.lamb", "decoder_wd", "task.p"]]}})
    runs = grid.expand(spec)
    assert [(r.value("training.grokfast.lamb"), r.decoder_wd, r.value("task.p")) for r in runs] == [(0, 0, 7), (2, 0.01, 11)]


@pytest.mark.parametrize("tie, message", [
    ([["repr_wd"]], "grid.tie[0]: expected a list of at least two axis names"),
    ([["repr_wd", "seed"]], "grid.tie[0]: 'seed' is not an axis of the grid one can tie"),
    ([["repr_wd", "lr"]], "grid.tie[0]: 'lr' is not an axis"),
    ([["repr_wd", "decoder_lr"], ["decoder_wd", "decoder_lr"]], "grid.tie[1]: decoder_lr is tied twice"),
    ("repr_wd", "grid.tie: expected a list of axis lists"),
])
def test_bad_ties_are_one_line_errors(tie, message):
    with pytest.raises(SpecError) as caught:
        spec_from_dict({**TIED, "grid": {**TIED["grid"], "tie": tie}})
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)


def test_tied_axes_of_unequal_length_are_refused():
    with pytest.raises(SpecError, match=r"^grid.tie\[0\]: the tied axes have different numbers of values \(repr_wd: 2, decoder_wd: 3\)"):
        spec_from_dict({**TIED, "grid": {**TIED["grid"], "decoder_wd": [0, 0.005, 0.01]}})


def test_the_report_does_not_draw_two_tied_axes_against_each_other():
    from grokgrid.report.axes import resolve_axes

    runs = pd.DataFrame([{"run_id": r.run_id, **r.columns()} for r in grid.expand(spec_from_dict(TIED))])
    assert resolve_axes(runs) == ("decoder_lr", "repr_wd")
