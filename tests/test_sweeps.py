"""Every spec in sweeps/ loads, validates, and trains at smoke size (a few steps of two runs)."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest

from grokgrid import grid, store, train
from grokgrid.spec import load_spec
from mnist_files import fake_mnist, write_mnist

SWEEP_DIR = Path(__file__).parent.parent / "sweeps"
SWEEPS = sorted(SWEEP_DIR.glob("*.yaml"))
BENCH_SPECS = sorted((Path(__file__).parent.parent / "bench").glob("*.yaml"))


def test_there_is_a_sweep_per_task_family():
    families = {load_spec(path).task.name for path in SWEEPS}
    assert families >= {"toy_addition", "modular", "permutation", "digits", "sparse_linear", "matrix_completion", "mnist",
                        "margin_linear"}


def with_local_files(spec, folder: Path):
    """The sweep with its task's files here: a shipped mnist sweep names the user's copy of
    MNIST, which a test machine lacks, so it reads a fake copy of the same size instead."""
    if spec.task.name != "mnist":
        return spec
    write_mnist(folder, *fake_mnist(spec.task.n_images))
    return dataclasses.replace(spec, task=dataclasses.replace(spec.task, root=str(folder)))


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.stem)
def test_sweep_file_is_valid_and_names_are_unique(path):
    spec = load_spec(path)
    assert spec.grid.size() >= 1
    assert [load_spec(p).name for p in SWEEPS].count(spec.name) == 1


@pytest.mark.parametrize("path", BENCH_SPECS, ids=lambda p: p.stem)
def test_bench_spec_is_valid_and_named_apart_from_the_sweeps(path):
    # bench/ holds the runs the README's numbers come from: each must still load, and under a
    # name of its own, so that its results folder never takes a shipped sweep's.
    spec = load_spec(path)
    assert spec.grid.size() >= 1
    assert spec.name not in {load_spec(p).name for p in SWEEPS + [b for b in BENCH_SPECS if b != path]}


@pytest.mark.slow
@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.stem)
def test_sweep_trains_at_smoke_size(path, tmp_path):
    spec = with_local_files(load_spec(path), tmp_path)
    # Two steps per stage: a staged sweep's later stages (30,000 steps in varma_ungrokking) shrink too.
    spec = dataclasses.replace(spec, training=dataclasses.replace(spec.training, steps=2, eval_every=1),
                               stages=tuple(dataclasses.replace(stage, steps=2) for stage in spec.stages))
    runs = grid.expand(spec)[:2]
    rows = [row for step_rows in train.run_pack(spec, runs) for row in step_rows]
    steps = range(spec.total_steps + 1)
    assert sorted((r["run_id"], r["step"]) for r in rows) == sorted((run.run_id, s) for run in runs for s in steps)
    assert {r["stage"] for r in rows} == set(range(len(spec.stages) + 1))
    for row in rows:
        assert set(row) == set(store.METRIC_COLUMNS)
        assert math.isfinite(row["train_loss"]) and 0 <= row["val_acc"] <= 1


CLAIMED = [p for p in SWEEPS if load_spec(p).expect]


def _contradicting_table(spec, claim):
    """Labelled runs of the sweep's grid (and per-step metrics, for the checks that read them)
    built to contradict ``claim``: a claim that cannot fail on them would be no claim."""
    import numpy as np
    import pandas as pd

    from grokgrid import expectations as ex

    runs = pd.DataFrame([{"run_id": r.run_id, **r.hyperparameters()} for r in grid.expand(spec)])
    c = claim.check
    phase, detail = "confusion", None
    if isinstance(c, ex.PhasesCheck):
        phase = c.absent[0] if c.absent else next(p for p in ("diverged", "confusion", "memorization") if p not in c.present)
    elif isinstance(c, ex.ShareCheck):
        phase = c.phases[0] if c.at_most is not None else next(p for p in ex.PHASE_NAMES[:5] if p not in c.phases)
    table = runs.assign(phase=phase, detail=detail, t_train=100.0, t_val=np.nan)
    if isinstance(c, ex.LeadsCheck):  # the metric comes after the one it should lead
        return table, pd.DataFrame({"run_id": np.repeat(runs["run_id"].to_numpy(), 2), "step": np.tile([0, 100], len(runs)),
                                    c.metric: np.tile([0.0, 1.0], len(runs)), c.ahead_of: 1.0})
    if isinstance(c, ex.TrendCheck):  # the quantity moves against the claimed direction
        ranks = table[c.along].rank(method="dense").to_numpy()
        table[c.quantity] = -ranks if c.direction == "increasing" else ranks
    if isinstance(c, ex.ReachesCheck):  # the metric never crosses the value
        return table, pd.DataFrame({"run_id": runs["run_id"], "step": 0, c.metric: c.below * 10 if c.below is not None else c.above / 10})
    if isinstance(c, ex.FitCheck):
        table = table.assign(**{q: np.random.default_rng(0).uniform(1, 100, len(table)) for q in c.names() if q in ex.QUANTITIES})
    if isinstance(c, ex.SpeedupCheck):  # the treated runs get there later than the baseline
        from grokgrid import verdicts

        slower = table["run_id"].isin(verdicts.select(table, c.of)["run_id"])
        table[c.quantity] = np.where(slower, 200.0, 100.0)
    return table, None


@pytest.mark.parametrize("path", CLAIMED, ids=lambda p: p.stem)
def test_every_shipped_claim_fails_on_runs_that_contradict_it(path):
    from grokgrid import verdicts

    spec = load_spec(path)
    for claim in spec.expect:
        (verdict,) = verdicts.verdicts((claim,), *_contradicting_table(spec, claim))
        assert not verdict.passed, f"{path.name}: {claim.claim!r} passed on contradicting runs: {verdict.measured}"


# Each seed paper's CPU-size reproduction and its paper size (issue 16: "each in two sizes").
PAPER_SIZES = {
    "liu_lr": "liu_lr_paper",
    "liu_decoder_wd": "liu_decoder_wd_paper",
    "liu_fraction": "liu_fraction_paper",
    "nanda_fraction": "nanda_fraction_paper",
    "omnigrok_digits": "omnigrok_mnist",
    "lyu_sparse": "lyu_sparse_paper",
    "lyu_misgrokking": "lyu_misgrokking_paper",
    "varma_semigrokking": "varma_semigrokking_paper",
    "varma_ungrokking_mlp": "varma_ungrokking",
    "grokfast_transformer": "grokfast_transformer_paper",
}
# A CPU-size claim on an arm the paper size does not train.
ONLY_AT_CPU_SIZE = {("grokfast_transformer", "the input perturbation makes the baseline reach 95% val accuracy sooner")}


def test_every_paper_size_is_paired_with_a_cpu_size():
    papers = {p.stem for p in SWEEPS if "paper size" in load_spec(p).description or "paper's size" in load_spec(p).description}
    assert papers <= set(PAPER_SIZES.values())  # varma_ungrokking says "cluster" in its header instead
    for cpu in PAPER_SIZES:
        assert "(CPU size)" in load_spec(SWEEP_DIR / f"{cpu}.yaml").description


@pytest.mark.parametrize("cpu, paper", sorted(PAPER_SIZES.items()))
def test_a_paper_size_checks_its_cpu_size_s_claims(cpu, paper):
    # The same words and the same check (its bars and phases); only the runs a claim selects
    # (`where`: the grids differ) and the source's detail may differ between the sizes.
    def checks(name):
        return {c.claim: (c.kind, c.to_data()[c.kind]) for c in load_spec(SWEEP_DIR / f"{name}.yaml").expect}

    at_paper = checks(paper)
    for claim, check in checks(cpu).items():
        if (cpu, claim) not in ONLY_AT_CPU_SIZE:
            assert at_paper.get(claim) == check, f"{paper}.yaml: {claim!r}"
