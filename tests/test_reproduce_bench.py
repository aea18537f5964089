"""bench/reproduce.py's choice of sweeps (its runs are bench runs, minutes each)."""

from __future__ import annotations

import bench_modules

from grokgrid.spec import load_spec

reproduce = bench_modules.load("reproduce")


def test_a_plain_rerun_reproduces_the_cpu_sizes_and_all_adds_the_rest():
    chosen = {p.stem for p in reproduce.claimed_sweeps()}
    every = {p.stem for p in reproduce.claimed_sweeps(every=True)}
    assert {"liu_lr", "nanda_fraction", "varma_semigrokking", "varma_semigrokking_mlp"} <= chosen
    # Sized for a GPU or a cluster: a rerun on the 2-core machine would ask for GPUs or hours.
    paper = {"nanda_fraction_paper", "grokfast_transformer_paper", "varma_semigrokking_paper", "varma_ungrokking"}
    assert paper <= every and not paper & chosen
    assert chosen < every
    for path in reproduce.claimed_sweeps(every=True):
        spec = load_spec(path)
        assert spec.expect  # only sweeps with claims
        assert (path.stem in chosen) == (reproduce.CPU_SIZE in spec.description)
        if path.stem in chosen:
            assert spec.resources.gpus_per_trial == 0  # a CPU size never asks for a GPU
