"""A multilayer perceptron batched over runs (Omnigrok's MNIST MLP, Lyu et al.'s 2-layer ReLU
net on modular arithmetic).

Every parameter has a leading run axis K; ``forward`` returns [K, N, out_dim]. Run k's slice is
initialised from its own seed only (``base.RunInit``: drawn in float64 then cast),
times its init scale alpha: alpha multiplies PyTorch's default init (Omnigrok), so a run gets
the same initial weights whichever pack it lands in.

Three input modes (exactly one of ``in_features`` / ``n_tokens``):

- float features [N, in_features] (digits, sparse classification);
- token ids [N, n_positions] with ``embed_dim``: one learned embedding table shared by the
  positions, the positions' vectors concatenated ([N, n_positions * embed_dim]);
- token ids with ``embed_dim=None``: one-hot inputs, concatenated ([N, n_positions * n_tokens])
  and fed to the first linear layer (Lyu et al.'s modular-addition net).

The forward pass is split so that progress measures can perturb the continuous input:
``embed(inputs)`` -> [K, N, d_in], ``features(embedded, layer)`` -> a hidden layer's
activations [K, N, width]; ``from_embedded(embedded)`` -> [K, N, out_dim] (the perturbation
intervention's forward: interventions.py).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from grokgrid.models.base import ACTIVATIONS, IN_PLACE_ACTIVATIONS, RunInit, check_activation, check_runs, per_run_rows

class MLP(nn.Module):
    def __init__(
        self,
        *,
        hidden: Sequence[int],
        out_dim: int,
        seeds: Sequence[int],
        init_scales: Sequence[float],
        activation: str = "relu",
        in_features: int | None = None,
        n_tokens: int | None = None,
        n_positions: int = 2,
        embed_dim: int | None = None,
        bias: bool = True,
        dtype: torch.dtype = torch.float32,
    ):
        super().__init__()
        self.n_runs = k = check_runs(seeds, init_scales)
        if (in_features is None) == (n_tokens is None):
            raise ValueError("give exactly one of in_features (float inputs) and n_tokens (token inputs)")
        check_activation(activation)
        self.activation = ACTIVATIONS[activation]
        self.activate_owned = IN_PLACE_ACTIVATIONS.get(activation, self.activation)
        self.n_tokens, self.n_positions, self.embed_dim = n_tokens, n_positions, embed_dim
        self.embedding: nn.Parameter | None = None
        if in_features is not None:
            d_in = in_features
        elif embed_dim is not None:
            self.embedding = nn.Parameter(torch.empty(k, n_tokens, embed_dim, dtype=dtype))
            d_in = n_positions * embed_dim
        else:
            d_in = n_positions * n_tokens
        self.in_dim = d_in
        dims = [d_in, *hidden, out_dim]
        self.weights = nn.ParameterList(
            nn.Parameter(torch.empty(k, a, b, dtype=dtype)) for a, b in zip(dims, dims[1:])
        )
        self.biases = nn.ParameterList(
            nn.Parameter(torch.empty(k, 1, b, dtype=dtype)) for b in dims[1:] if bias
        )
        with torch.no_grad():
            for run, (seed, scale) in enumerate(zip(seeds, init_scales)):
                draws = RunInit(seed, scale, dtype)
                if self.embedding is not None:
                    self.embedding[run] = draws.normal(self.embedding.shape[1:])
                for layer, weight in enumerate(self.weights):
                    bound = 1 / math.sqrt(weight.shape[1])
                    weight[run] = draws.uniform(weight.shape[1:], bound)
                    if bias:
                        self.biases[layer][run] = draws.uniform(self.biases[layer].shape[1:], bound)

    def representation_parameters(self) -> list[nn.Parameter]:
        """The token embedding; empty for float or one-hot inputs."""
        return [] if self.embedding is None else [self.embedding]

    def decoder_parameters(self) -> list[nn.Parameter]:
        return [*self.weights, *self.biases]

    # forward and embed also take per-run inputs [K, N, ...] (run k's own examples): train.py
    # then trains runs whose train sets differ on their own examples only.
    per_run_inputs = True

    def embed(self, inputs: torch.Tensor) -> torch.Tensor:
        """[K, N, in_dim] continuous input of the first linear layer."""
        k = self.n_runs
        per_run = inputs.dim() == 3
        if self.n_tokens is None:
            features = inputs.to(self.weights[0].dtype)
            return features if per_run else features.unsqueeze(0).expand(k, *inputs.shape)
        n_examples = inputs.shape[-2]
        if self.embedding is not None:
            vectors = per_run_rows(self.embedding, inputs.reshape(*inputs.shape[:-2], -1))  # [K, N * P, E]
            return vectors.reshape(k, n_examples, -1)
        one_hot = F.one_hot(inputs, self.n_tokens).to(self.weights[0].dtype)  # [(K,) N, P, n_tokens]
        if per_run:
            return one_hot.reshape(k, n_examples, -1)
        return one_hot.reshape(n_examples, -1).unsqueeze(0).expand(k, -1, -1)

    def _layer(self, index: int, x: torch.Tensor) -> torch.Tensor:
        if self.biases:
            return torch.baddbmm(self.biases[index], x, self.weights[index])
        return torch.bmm(x, self.weights[index])

    def features(self, embedded: torch.Tensor, layer: int = -1) -> torch.Tensor:
        """Activations [K, N, width] of hidden layer ``layer`` (0-based; -1: the last hidden)."""
        n_hidden = len(self.weights) - 1
        if n_hidden == 0:
            raise ValueError("this MLP has no hidden layer")
        if not -n_hidden <= layer < n_hidden:
            raise ValueError(f"layer {layer} out of range for {n_hidden} hidden layers")
        stop = layer % n_hidden
        x = embedded
        for index in range(stop + 1):
            x = self.activation(self._layer(index, x))
        return x

    def _first_layer_from_tokens(self, inputs: torch.Tensor) -> torch.Tensor:
        """The first linear layer's output [K, N, width] for token ids, without its [N, d_in] input.

        The input is a concatenation of one row per position (an embedding row, or a one-hot
        row), so x @ W + b = sum over positions of (that row's table @ W's block for the
        position)[token], plus b: precompute each position's table [K, n_tokens, width]
        (n_tokens << N: a tiny matmul; for one-hot the table is W's block itself; the bias goes
        into the first table) and gather its rows. Same sums, in another order, at a fraction of
        the work: the [N, d_in] x [d_in, width] matmul and its two backward matmuls, the largest
        of a modular-arithmetic step, become row gathers and their backward index_adds
        (index_select is the fast gather on the CPU; advanced indexing is several times slower).
        """
        weight = self.weights[0]
        block = weight.shape[1] // self.n_positions
        out = None
        for position in range(self.n_positions):
            rows = weight[:, position * block : (position + 1) * block]  # [K, block, width]
            bias = self.biases[0] if self.biases and position == 0 else None
            if self.embedding is None:
                table = rows if bias is None else rows + bias
            else:
                table = torch.bmm(self.embedding, rows) if bias is None else torch.baddbmm(bias, self.embedding, rows)
            gathered = per_run_rows(table, inputs[..., position])  # [K, N, width]
            # In place: no [K, N, width] temporary per position (neither add needs its inputs
            # for the backward pass).
            out = gathered if out is None else out.add_(gathered)
        return out

    def from_embedded(self, embedded: torch.Tensor) -> torch.Tensor:
        """[K, N, out_dim] for a continuous input [K, N, in_dim] (``embed``'s output, perhaps
        perturbed: interventions.Perturbation)."""
        last = len(self.weights) - 1
        x = embedded
        for index in range(last):
            x = self.activate_owned(self._layer(index, x))  # _layer's fresh output
        return self._layer(last, x)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """[K, N, out_dim] for token ids [N, n_positions] or features [N, in_features] (shared by
        the runs), or [K, N, ...] (run k's own examples)."""
        last = len(self.weights) - 1
        if self.n_tokens is not None and inputs.shape[-2] >= self.n_tokens:
            x = self._first_layer_from_tokens(inputs)
            if last == 0:
                return x
            x = self.activate_owned(x)
            start = 1
        else:
            x = self.embed(inputs)
            start = 0
        for index in range(start, last):
            x = self.activate_owned(self._layer(index, x))
        return self._layer(last, x)
