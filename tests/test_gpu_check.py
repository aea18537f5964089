"""bench/gpu.py, the GPU check of issue 19: its no-CUDA path (this machine's), and its
packed-equals-alone comparison on the CPU (the code a GPU runs, on another device)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from bench_modules import load

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is here: the check would train")
def test_without_cuda_the_check_says_so_in_one_line_and_exits_0():
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu.py")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines() == ["gpu-check: no CUDA device here (torch.cuda.is_available() is False); nothing trained"]


def test_the_checks_packed_equals_alone_comparison_holds_on_the_cpu():
    from grokgrid.spec import load_spec

    check = load("gpu")
    base = load_spec(ROOT / "sweeps" / "nanda_transformer.yaml")
    assert check.packed_equals_alone(torch, base, "cpu", n=2, steps=3)
    runs = check.many_runs(base, 5)
    assert [r.seed for r in runs] == [0, 1, 2, 3, 4] and len({r.run_id for r in runs}) == 5
