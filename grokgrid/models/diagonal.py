"""Lyu et al. (2023)'s models for provable grokking, batched over runs: the diagonal linear net
(sparse linear classification) and a factorised matrix (low-rank matrix completion).

**DiagonalLinearNet**: f(x) = <w, x> with w = u*u - v*v ("squares", the usual diagonal net) or
w = u*v ("product"), u, v [K, dim]. Init, times alpha: "constant" is u = v = 1 for "squares"
(so w = 0 at init and every run with the same alpha starts alike; the seed is unused) and
u = 1, v = 0 for "product"; "norm" is "constant" divided by sqrt(2 dim) ("squares") or
sqrt(dim) ("product"), so that alpha is the initial l2 norm of (u, v), as in Lyu et al.'s code
(grokking-dichotomy models.py: u = v = alpha / sqrt(2 dim)); "normal" draws u, v ~ N(0, 1)
per run from its seed. With
``output="binary"`` the forward returns the two logits [-f/2, f/2] ([K, N, 2]), so the usual
cross-entropy on class ids (SparseLinearClassification.targets()) is exactly the logistic loss
log(1 + exp(-y f)) and argmax is sign(f); ``output="scalar"`` returns f as [K, N, 1].
There are no embeddings: representation_parameters() is empty, decoder_parameters() is [u, v].

**FactorizedMatrix**: M = U V (U [K, rows, width], V [K, width, cols]), an nn.Embedding(rows,
width) followed by an nn.Linear(width, cols, bias=False) at PyTorch's default init times alpha
(U ~ N(0, 1), V ~ U[-1/sqrt(width), 1/sqrt(width)]). The input is index pairs (i, j) [N, 2]
(MatrixCompletion.inputs()); the output is M[i, j] as [K, N, 1]. U is the representation (row
embeddings), V the decoder.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from grokgrid.models.base import RunInit, check_runs

PARAMETRIZATIONS = ("squares", "product")
INITS = ("constant", "norm", "normal")
OUTPUTS = ("binary", "scalar")


class DiagonalLinearNet(nn.Module):
    def __init__(
        self,
        *,
        dim: int,
        seeds: Sequence[int],
        init_scales: Sequence[float],
        parametrization: str = "squares",
        init: str = "constant",
        output: str = "binary",
        dtype: torch.dtype = torch.float32,
    ):
        super().__init__()
        self.n_runs = k = check_runs(seeds, init_scales)
        for name, value, allowed in (("parametrization", parametrization, PARAMETRIZATIONS), ("init", init, INITS), ("output", output, OUTPUTS)):
            if value not in allowed:
                raise ValueError(f"unknown {name} {value!r}; choose one of {list(allowed)}")
        self.parametrization, self.output = parametrization, output
        self.u = nn.Parameter(torch.empty(k, dim, dtype=dtype))
        self.v = nn.Parameter(torch.empty(k, dim, dtype=dtype))
        with torch.no_grad():
            for run, (seed, scale) in enumerate(zip(seeds, init_scales)):
                draws = RunInit(seed, scale, dtype)
                if init == "normal":
                    self.u[run] = draws.normal((dim,))
                    self.v[run] = draws.normal((dim,))
                else:
                    squares = parametrization == "squares"
                    # "norm": ||(u, v)|| = alpha, with u = v on the 2 dim squares entries, u alone for "product".
                    value = 1.0 if init == "constant" else 1 / math.sqrt(2 * dim if squares else dim)
                    self.u[run] = draws.constant((dim,), value)
                    self.v[run] = draws.constant((dim,), value if squares else 0.0)

    def representation_parameters(self) -> list[nn.Parameter]:
        return []

    def decoder_parameters(self) -> list[nn.Parameter]:
        return [self.u, self.v]

    def effective_weights(self) -> torch.Tensor:
        """[K, dim] the linear predictor w of every run."""
        if self.parametrization == "squares":
            return self.u * self.u - self.v * self.v
        return self.u * self.v

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """[K, N, 2] logits [-f/2, f/2] (output="binary") or [K, N, 1] f, for inputs [N, dim]."""
        w = self.effective_weights()
        f = torch.matmul(inputs.to(w.dtype), w.T).T.unsqueeze(-1)  # [K, N, 1]
        if self.output == "scalar":
            return f
        return torch.cat([-f / 2, f / 2], dim=-1)


class FactorizedMatrix(nn.Module):
    def __init__(
        self,
        *,
        rows: int,
        cols: int,
        width: int,
        seeds: Sequence[int],
        init_scales: Sequence[float],
        dtype: torch.dtype = torch.float32,
    ):
        super().__init__()
        self.n_runs = k = check_runs(seeds, init_scales)
        self.left = nn.Parameter(torch.empty(k, rows, width, dtype=dtype))
        self.right = nn.Parameter(torch.empty(k, width, cols, dtype=dtype))
        with torch.no_grad():
            for run, (seed, scale) in enumerate(zip(seeds, init_scales)):
                draws = RunInit(seed, scale, dtype)
                self.left[run] = draws.normal((rows, width))
                self.right[run] = draws.uniform((width, cols), 1 / math.sqrt(width))

    def representation_parameters(self) -> list[nn.Parameter]:
        return [self.left]

    def decoder_parameters(self) -> list[nn.Parameter]:
        return [self.right]

    def matrix(self) -> torch.Tensor:
        """[K, rows, cols] the full predicted matrix of every run."""
        return torch.bmm(self.left, self.right)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """[K, N, 1]: M[i, j] for index pairs [N, 2]."""
        rows = self.left[:, inputs[:, 0]]  # [K, N, width]
        cols = self.right[:, :, inputs[:, 1]].transpose(1, 2)  # [K, N, width]
        return (rows * cols).sum(dim=-1, keepdim=True)
