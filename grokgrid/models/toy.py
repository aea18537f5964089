"""Liu et al.'s toy model, batched over runs: token embeddings (the representation), summed for
the two operands, then an MLP decoder.

Every parameter has a leading run axis of size K so that a pack of K runs trains as one model
(torch.baddbmm per layer). Run k's slice is initialised from its own seed only (base.RunInit),
so a run gets the same initial weights whichever pack it lands in.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from grokgrid.models.base import ACTIVATIONS, IN_PLACE_ACTIVATIONS, RunInit, check_activation, check_runs, per_run_rows


class ToyModel(nn.Module):
    def __init__(
        self,
        *,
        n_tokens: int,
        embed_dim: int,
        hidden: Sequence[int],
        out_dim: int,
        activation: str,
        seeds: Sequence[int],
        init_scales: Sequence[float],
        dtype: torch.dtype = torch.float32,
    ):
        super().__init__()
        k = check_runs(seeds, init_scales)
        check_activation(activation)
        self.activation = ACTIVATIONS[activation]
        self.activate_owned = IN_PLACE_ACTIVATIONS.get(activation, self.activation)
        dims = [embed_dim, *hidden, out_dim]
        self.embedding = nn.Parameter(torch.empty(k, n_tokens, embed_dim, dtype=dtype))
        self.weights = nn.ParameterList(
            nn.Parameter(torch.empty(k, d_in, d_out, dtype=dtype)) for d_in, d_out in zip(dims, dims[1:])
        )
        self.biases = nn.ParameterList(nn.Parameter(torch.empty(k, 1, d_out, dtype=dtype)) for d_out in dims[1:])
        for run, (seed, scale) in enumerate(zip(seeds, init_scales)):
            self._init_run(run, seed, scale)

    @torch.no_grad()
    def _init_run(self, run: int, seed: int, scale: float) -> None:
        """Embeddings U[-1/2, 1/2] (Liu); layers as torch.nn.Linear's default, U[-1/sqrt(fan_in),
        1/sqrt(fan_in)]; everything times the init scale alpha (Omnigrok)."""
        draws = RunInit(seed, scale, self.embedding.dtype)
        self.embedding[run] = draws.uniform(self.embedding.shape[1:], 0.5)
        for weight, bias in zip(self.weights, self.biases):
            bound = 1 / math.sqrt(weight.shape[1])
            weight[run] = draws.uniform(weight.shape[1:], bound)
            bias[run] = draws.uniform(bias.shape[1:], bound)

    # forward also takes per-run pairs [runs, examples, 2]: train.py then trains runs whose train
    # sets differ on their own examples only.
    per_run_inputs = True

    def representation_parameters(self) -> list[nn.Parameter]:
        return [self.embedding]

    def decoder_parameters(self) -> list[nn.Parameter]:
        return [*self.weights, *self.biases]

    def forward(self, pairs: torch.Tensor) -> torch.Tensor:
        """Outputs [runs, examples, out_dim] for operand tokens ``pairs`` [examples, 2] (shared by
        the runs) or [runs, examples, 2] (run k's own)."""
        x = per_run_rows(self.embedding, pairs[..., 0]) + per_run_rows(self.embedding, pairs[..., 1])
        last = len(self.weights) - 1
        for layer, (weight, bias) in enumerate(zip(self.weights, self.biases)):
            x = torch.baddbmm(bias, x, weight)
            if layer < last:
                x = self.activate_owned(x)  # baddbmm's fresh output
        return x
