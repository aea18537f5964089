"""Boundary refinement (issue 18): the ``refine:`` section, where a round adds points (refine.py,
pure), and rounds run on a real local Ray: recorded in the folder's spec, resumed after a stop,
the same points from the same labels."""

from __future__ import annotations

import copy
import dataclasses
import math

import pytest
import yaml

from grokgrid import grid, refine
from grokgrid.spec import SpecError, dump_spec, spec_from_dict

BASE = {
    "name": "refined",
    "model": {"hidden": [16, 16]},
    "training": {"steps": 200, "eval_every": 20},
    "grid": {"repr_lr": [1e-3, 1e-2, 1e-1], "decoder_lr": [0.1, 0.2, 0.3], "seed": [0, 1]},
    "phases": {"gap": 100},
    "refine": {"axes": ["repr_lr", "decoder_lr"], "rounds": 2},
}


def spec_with(**refine_changes):
    data = copy.deepcopy(BASE)
    data["refine"].update(refine_changes)
    return spec_from_dict(data)


def labels_by(spec, phase_of) -> dict[str, str]:
    """Each run's phase from a function of its (repr_lr, decoder_lr)."""
    return {r.run_id: phase_of(r.repr_lr, r.decoder_lr) for r in grid.expand(spec)}


# ----------------------------------------------------------------------------- the section


def test_the_section_round_trips_and_records_rounds():
    spec = spec_with()
    assert spec.refine.axes == ("repr_lr", "decoder_lr") and spec.refine.rounds == 2 and spec.refine.points == ()
    recorded = spec.with_round([{"repr_lr": 3.16227766017e-3, "decoder_lr": 0.15}])
    assert recorded.refine.rounds_done == 1
    assert spec_from_dict(yaml.safe_load(dump_spec(recorded))) == recorded
    assert "refine" not in yaml.safe_load(dump_spec(spec_from_dict({"name": "plain"})))
    # The refined runs are the spec's: each point with every seed, ids as any run's.
    added = grid.expand(recorded)[9 * 2:]
    assert [(r.repr_lr, r.decoder_lr, r.seed) for r in added] == [(3.16227766017e-3, 0.15, 0), (3.16227766017e-3, 0.15, 1)]
    assert grid.count(recorded) == 20 and all(grid.run_id(recorded, r.hyperparameters()) == r.run_id for r in added)
    # Refinement is no part of a run's recipe: the grid's ids are those of the spec without it.
    plain = copy.deepcopy(BASE)
    del plain["refine"]
    assert [r.run_id for r in grid.expand(spec_from_dict(plain))] == [r.run_id for r in grid.expand(spec)]


@pytest.mark.parametrize("change, message", [
    ({"axes": ["repr_lr", "lr"]}, "refine.axes[1]: 'lr' cannot be refined"),
    ({"axes": ["repr_wd"]}, "refine.axes[0]: grid.repr_wd has one value"),
    ({"axes": ["seed"]}, "refine.axes[0]: 'seed' cannot be refined"),
    ({"axes": ["repr_lr", "decoder_lr", "repr_wd"]}, "refine.axes: expected one or two axis names"),
    ({"axes": ["repr_lr", "repr_lr"]}, "refine.axes: repr_lr named twice"),
    ({"rounds": 0}, "refine.rounds: must be >= 1"),
    ({"rounds": 50}, "refine.rounds: 50 rounds"),
    ({"max_runs": 0}, "refine.max_runs: must be >= 1"),
    ({"speed": 1}, "refine.speed: unknown key"),
    ({"points": [[{"repr_lr": 0.005}]]}, "refine.points[0][0]: no value for decoder_lr"),
    ({"points": [[{"repr_lr": -1, "decoder_lr": 0.1}]]}, "refine.points[0][0].repr_lr: must be > 0"),
    ({"points": [[], [], []]}, "refine.points: 3 rounds recorded, more than rounds 2"),
])
def test_bad_refine_sections_are_one_line_errors(change, message):
    with pytest.raises(SpecError) as caught:
        spec_with(**change)
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)


def test_field_and_tied_axes_cannot_be_refined():
    data = copy.deepcopy(BASE)
    data["task"], data["model"] = {"name": "modular", "op": "add"}, {"name": "mlp"}
    data["grid"]["task.p"] = [7, 11]
    data["refine"]["axes"] = ["task.p"]
    with pytest.raises(SpecError, match=r"^refine.axes\[0\]: 'task.p' cannot be refined"):
        spec_from_dict(data)
    data = copy.deepcopy(BASE)
    data["grid"].update({"repr_wd": [0, 1, 2], "tie": [["repr_lr", "repr_wd"]]})
    with pytest.raises(SpecError, match=r"^refine.axes\[0\]: 'repr_lr' cannot be refined"):
        spec_from_dict(data)


# ----------------------------------------------------------------------------- where rounds add points


def boundary(repr_lr, decoder_lr):
    """Grokking below repr_lr 0.01 (exclusive), memorization from it on."""
    return "grokking" if repr_lr < 0.01 else "memorization"


def test_a_round_splits_the_cells_whose_corners_disagree_at_log_and_linear_midpoints():
    spec = spec_with()
    points = refine.propose(spec, grid.expand(spec), labels_by(spec, boundary))
    a = refine.midpoint(1e-3, 1e-2, log=True)
    assert math.isclose(a, math.sqrt(1e-5)) and refine.is_log_axis([1e-3, 1e-2, 1e-1]) and not refine.is_log_axis([0.1, 0.2, 0.3])
    # Two mixed cells (repr_lr 1e-3..1e-2 by decoder_lr 0.1..0.2 and 0.2..0.3): their centres, and
    # the midpoints of the edges the boundary crosses (along repr_lr), the shared one once; the
    # edges along decoder_lr have agreeing ends, so no run goes on them.
    assert points == [
        {"repr_lr": a, "decoder_lr": 0.15}, {"repr_lr": a, "decoder_lr": 0.1}, {"repr_lr": a, "decoder_lr": 0.2},
        {"repr_lr": a, "decoder_lr": 0.25}, {"repr_lr": a, "decoder_lr": 0.3},
    ]
    assert refine.propose(spec, grid.expand(spec), labels_by(spec, boundary)) == points  # deterministic
    uniform = refine.propose(spec, grid.expand(spec), labels_by(spec, lambda *_: "confusion"))
    assert uniform == []


def test_the_next_round_splits_only_the_new_cells_that_still_disagree():
    spec = spec_with()
    first = refine.propose(spec, grid.expand(spec), labels_by(spec, boundary))
    spec = spec.with_round(first)
    second = refine.propose(spec, grid.expand(spec), labels_by(spec, boundary))
    a = refine.midpoint(1e-3, 1e-2, log=True)
    # The boundary (repr_lr 0.01) lies between a and 1e-2: only the four sub-cells on that side split.
    assert second and all(a < p["repr_lr"] < 1e-2 or p["repr_lr"] in (a, 1e-2) for p in second)
    assert {p["decoder_lr"] for p in second} == {0.1, 0.125, 0.15, 0.175, 0.2, 0.225, 0.25, 0.275, 0.3}
    assert not any(p in first for p in second)


def test_a_point_takes_its_seeds_majority_and_unlabelled_points_leave_their_cells_alone():
    spec = spec_with()
    runs = grid.expand(spec)
    phases = labels_by(spec, boundary)
    seed1 = [r.run_id for r in runs if r.seed == 1]
    split = {**phases, **{r: "confusion" for r in seed1}}  # 1 vote each: the first in PHASES order wins
    assert refine.point_labels(runs, split, ["repr_lr", "decoder_lr"])[(1e-3, 0.1)] == "grokking"
    missing = {k: v for k, v in phases.items() if k != runs[0].run_id and k != runs[1].run_id}  # (1e-3, 0.1): no label
    points = refine.propose(spec, runs, missing)
    assert {"repr_lr": refine.midpoint(1e-3, 1e-2, True), "decoder_lr": 0.15} not in points  # its cell waits


def test_the_run_budget_keeps_the_first_points_and_counts_seeds():
    spec = spec_with(max_runs=5)
    points = refine.propose(spec, grid.expand(spec), labels_by(spec, boundary))
    assert len(points) == 2  # 2 seeds a point: 4 runs fit in 5
    spent = spec.with_round(points)
    assert refine.propose(spent, grid.expand(spent), labels_by(spent, boundary)) == []


def test_other_swept_axes_are_held_at_each_value_and_one_axis_refines_intervals():
    data = copy.deepcopy(BASE)
    data["grid"]["decoder_wd"] = [0.0, 1.0]
    data["refine"]["axes"] = ["repr_lr"]
    spec = spec_from_dict(data)
    points = refine.propose(spec, grid.expand(spec), labels_by(spec, boundary))
    a = refine.midpoint(1e-3, 1e-2, log=True)
    assert points == [{"repr_lr": a, "decoder_lr": d, "decoder_wd": wd} for d in (0.1, 0.2, 0.3) for wd in (0.0, 1.0)]
    assert spec_from_dict(yaml.safe_load(dump_spec(spec.with_round(points)))).refine.points[0][0] == \
        (("repr_lr", a), ("decoder_lr", 0.1), ("decoder_wd", 0.0))


# ----------------------------------------------------------------------------- rounds on Ray


@pytest.mark.slow
def test_rounds_train_record_resume_and_repeat_exactly(tmp_path, ray_local):
    from grokgrid import api, folder, store

    data = copy.deepcopy(BASE)
    data["grid"]["repr_lr"] = [1e-3, 3e-2, 1.0]  # the toy model memorizes at 1e-3 and is confused at 1.0
    sweep = api.run_sweep(data, tmp_path / "a", num_cpus=2)
    spec = sweep.spec
    assert spec.refine.rounds_done == 2
    added = spec.refine.runs_added(2)
    assert added > 0 and len(sweep.runs) == 18 + added and (sweep.runs["status"] == "done").all()
    assert len(sweep.labels) == 18 + added
    # The same spec elsewhere: the same points, so the same runs.
    again = api.run_sweep(data, tmp_path / "b", num_cpus=2)
    assert again.spec.refine.points == spec.refine.points
    assert list(again.runs["run_id"]) == list(sweep.runs["run_id"])
    # Stopped after round 2 was recorded but before its runs trained (a kill there): resume trains them.
    stopped = api.run_sweep({**data, "refine": {**data["refine"], "rounds": 1}}, tmp_path / "c", num_cpus=2, report=False)
    assert stopped.spec.refine.points == spec.refine.points[:1]
    recorded = dataclasses.replace(stopped.spec, refine=dataclasses.replace(stopped.spec.refine, rounds=2))
    recorded = recorded.with_round([dict(point) for point in spec.refine.points[1]])
    store.atomic_write_text(stopped.path / store.SPEC_FILE, dump_spec(recorded))
    assert len(folder.survey(recorded, stopped.path).finished) < grid.count(recorded)
    resumed = api.resume_sweep(stopped.path, num_cpus=2)
    assert resumed.spec.refine.points == spec.refine.points and (resumed.runs["status"] == "done").all()
    # A refine command adds a round to a finished sweep; --dry-run's plan is that round.
    plan = api.refine_plan(sweep.path)
    more = api.refine_sweep(sweep.path, rounds=1, num_cpus=2)
    assert more.spec.refine.rounds_done == 3 and [dict(p) for p in more.spec.refine.points[2]] == plan


# ----------------------------------------------------------------------------- the command


def refinable_results(root, done=None):
    """A results folder (no Ray) over repr_lr x decoder_lr whose runs at repr_lr 1e-3 generalize
    (val accuracy 1) and the others memorize (0.5)."""
    from results_folders import make_results

    from grokgrid import store

    data = {**copy.deepcopy(BASE), "refine": None, "training": {"steps": 40, "eval_every": 10}}
    data["grid"] = {"repr_lr": [1e-3, 1e-2], "decoder_lr": [0.1, 0.2]}
    _, sweep_dir = make_results(root, data, done=done)
    spec = spec_from_dict(data)
    for run in grid.expand(spec):
        if run.repr_lr == 1e-3 and (done is None):
            rows = store.read_metrics(sweep_dir, [run.run_id])
            store.write_metrics_part(sweep_dir, run.run_id, rows.assign(val_acc=1.0).to_dict("records"))
    return sweep_dir


def test_the_dry_run_prints_the_next_rounds_runs_and_writes_nothing(tmp_path):
    from typer.testing import CliRunner

    from grokgrid.cli import app

    sweep_dir = refinable_results(tmp_path)
    before = (sweep_dir / "spec.yaml").read_text()
    result = CliRunner().invoke(app, ["refine", str(sweep_dir), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "next refinement round: 3 points x 1 seed(s) = 3 runs" in result.output
    assert "repr_lr 0.003162, decoder_lr 0.15" in result.output and "nothing trained, nothing written" in result.output
    assert (sweep_dir / "spec.yaml").read_text() == before
    one_axis = CliRunner().invoke(app, ["refine", str(sweep_dir), "--dry-run", "--axes", "repr_lr"])
    assert "next refinement round: 2 points x 1 seed(s)" in one_axis.output


@pytest.mark.parametrize("args, message", [
    (["--axes", "seed"], "--axes[0]: 'seed' cannot be refined"),
    (["--axes", "repr_lr,repr_wd"], "--axes[1]: grid.repr_wd has one value"),
    (["--max-runs", "0"], "Invalid value for '--max-runs'"),
])
def test_bad_refine_options_are_one_line_errors_with_exit_2(tmp_path, args, message):
    from typer.testing import CliRunner

    from grokgrid.cli import app

    sweep_dir = refinable_results(tmp_path)
    result = CliRunner().invoke(app, ["refine", str(sweep_dir), "--dry-run", *args])
    assert result.exit_code == 2 and message in result.output, result.output
    assert "Traceback" not in result.output


def test_a_round_is_planned_from_finished_runs_only(tmp_path):
    from typer.testing import CliRunner

    from grokgrid.cli import app

    sweep_dir = refinable_results(tmp_path, done=2)
    result = CliRunner().invoke(app, ["refine", str(sweep_dir), "--dry-run"])
    assert result.exit_code == 2 and "2 run(s) of" in result.output and "grokgrid resume" in result.output


def test_a_sweeps_dry_run_says_refinement_rounds_follow(tmp_path):
    from typer.testing import CliRunner

    from grokgrid.cli import app

    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump({**BASE, "refine": {**BASE["refine"], "max_runs": 40}}))
    result = CliRunner().invoke(app, ["sweep", str(path), "--results", str(tmp_path / "results"), "--dry-run"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "plan: 18 runs" in text and "then up to 2 refinement round(s) along repr_lr, decoder_lr, at most 40 runs in all" in text
    assert not (tmp_path / "results").exists()


def test_a_point_no_run_sits_at_reads_its_agreeing_line_neighbours_label():
    labels = {(0.0, 0.0): "grokking", (0.0, 2.0): "grokking", (2.0, 0.0): "confusion", (2.0, 2.0): "confusion"}
    assert refine._inferred((0.0, 1.0), labels) == "grokking"  # between two grokking corners along the second axis
    assert refine._inferred((1.0, 0.0), labels) is None  # its neighbours disagree, and nothing on its other line
    assert refine._inferred((1.0, 1.0), labels) is None  # no neighbour on either line


def test_a_sweep_run_again_from_its_file_keeps_the_rounds_its_folder_recorded(tmp_path):
    from grokgrid import folder, store
    from grokgrid.refusal import Refused

    sweep_dir = refinable_results(tmp_path)
    frozen = folder.frozen_spec(sweep_dir)
    data = frozen.to_dict()
    data["refine"] = {"axes": ["repr_lr", "decoder_lr"], "rounds": 1, "points": [[{"repr_lr": 3.16227766017e-3, "decoder_lr": 0.15}]]}
    refined = spec_from_dict(data)
    store.atomic_write_text(sweep_dir / store.SPEC_FILE, dump_spec(refined))
    # The spec file knows nothing of the rounds: the folder is still this sweep, and keeps them.
    folder.check_new_sweep(frozen, folder.location("--storage", str(sweep_dir.parent)) / frozen.name, overwrite=False)
    kept = folder.with_recorded_rounds(frozen, folder.location("--storage", str(sweep_dir)))
    assert kept.refine == refined.refine and grid.count(kept) == 5
    other = spec_from_dict({**frozen.to_dict(), "refine": {"axes": ["repr_lr"], "rounds": 2}})
    with pytest.raises(Refused, match="was refined along repr_lr, decoder_lr, the spec refines repr_lr"):
        folder.with_recorded_rounds(other, folder.location("--storage", str(sweep_dir)))


def test_status_says_how_far_refinement_is(tmp_path):
    from typer.testing import CliRunner

    from grokgrid import folder, store
    from grokgrid.cli import app

    sweep_dir = refinable_results(tmp_path)
    data = folder.frozen_spec(sweep_dir).to_dict()
    data["refine"] = {"axes": ["repr_lr", "decoder_lr"], "rounds": 2, "max_runs": 10,
                      "points": [[{"repr_lr": 3.16227766017e-3, "decoder_lr": 0.15}]]}
    store.atomic_write_text(sweep_dir / store.SPEC_FILE, dump_spec(spec_from_dict(data)))
    result = CliRunner().invoke(app, ["status", str(sweep_dir)])
    assert result.exit_code == 0, result.output
    assert "refinement along repr_lr, decoder_lr: 1 of 2 round(s) recorded, 1 runs added (at most 10)" in " ".join(result.output.split())
