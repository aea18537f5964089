"""The Ray Tune adapter on a real local Ray: packs as trials, the same numbers whatever the packing."""

from __future__ import annotations

import math

import pytest

from grokgrid import grid, store
from grokgrid.spec import ResourcesSpec, spec_from_dict

pytestmark = pytest.mark.slow

SPEC = {
    "name": "packing",
    "model": {"hidden": [16, 16]},
    "training": {"steps": 150, "eval_every": 10, "precision": "float64"},
    "grid": {"repr_lr": [1e-3, 3e-2], "decoder_lr": [1e-3, 1e-2], "seed": [0, 1]},
    "resources": {"flush_every": 40},
}


def run_sweep(tmp_path, pack_size: int):
    from grokgrid import sweep

    spec = spec_from_dict(SPEC)
    sweep_dir = tmp_path / f"k{pack_size}"
    packs = grid.pack(grid.expand(spec), pack_size)
    progress: list[tuple[str, int]] = []
    done = []
    outcomes = sweep.launch(spec, sweep_dir, packs, on_progress=lambda p, s: progress.append((p, s)), on_pack_done=done.append)
    return packs, outcomes, progress, done, store.read_metrics(sweep_dir)


def test_packed_and_one_run_per_trial_write_the_same_rows(tmp_path, ray_local):
    packs1, outcomes1, _, _, alone = run_sweep(tmp_path, 1)
    packs4, outcomes4, progress, done, packed = run_sweep(tmp_path, 4)
    assert len(packs1) == len(outcomes1) == 8 and len(packs4) == len(outcomes4) == 2
    assert all(o.ok for o in outcomes1 + outcomes4)
    assert sorted(o.pack_id for o in done) == sorted(p.pack_id for p in packs4)
    assert {p for p, _ in progress} == {p.pack_id for p in packs4}
    assert max(s for _, s in progress) == 150
    assert list(alone[["run_id", "step"]].itertuples(index=False)) == list(packed[["run_id", "step"]].itertuples(index=False))
    assert len(alone) == 8 * 16
    for column in ("train_loss", "val_loss", "train_acc", "val_acc", "weight_norm"):
        for a, b in zip(alone[column], packed[column]):
            assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12), column


def test_a_failing_pack_is_reported_and_the_others_finish(tmp_path, ray_local):
    from grokgrid import sweep

    spec = spec_from_dict(SPEC)
    good, bad = grid.pack(grid.expand(spec), 4)
    # A run whose data split is impossible fails inside its trial (the spec check is bypassed).
    broken_run = bad.runs[0].__class__(**{**bad.runs[0].__dict__, "train_fraction": 1e-6})
    bad = grid.Pack(pack_id=bad.pack_id, runs=(broken_run, *bad.runs[1:]))
    outcomes = {o.pack_id: o for o in sweep.launch(spec, tmp_path / "f", [good, bad])}
    assert outcomes[good.pack_id].ok
    assert not outcomes[bad.pack_id].ok and "empty split" in outcomes[bad.pack_id].error
    finished = set(store.read_metrics(tmp_path / "f")["run_id"])
    assert {r.run_id for r in good.runs} <= finished


def test_parallel_slots_follow_the_per_trial_resources(ray_local):
    from grokgrid import sweep

    assert sweep.parallel_slots(ResourcesSpec(cpus_per_trial=1)) == 2
    assert sweep.parallel_slots(ResourcesSpec(cpus_per_trial=2)) == 1
    assert sweep.parallel_slots(ResourcesSpec(cpus_per_trial=1, max_concurrent=1)) == 1
