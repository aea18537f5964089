"""What every model shares: the run axis, per-run init draws, activations, and the interface the
trainer relies on.

Every parameter of a model has a leading run axis K so that a pack of K runs trains as one model.
Run k's slice is initialised from its own seed only (``RunInit``), so a run gets the same initial
weights whichever pack it lands in.
"""

from __future__ import annotations

from typing import Iterator, Protocol, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from grokgrid.models.spec_base import ACTIVATION_NAMES
from grokgrid.seeding import derive_seed

_FUNCTIONS = {"tanh": torch.tanh, "relu": torch.relu, "gelu": F.gelu, "silu": F.silu}
# The names a spec accepts are defined once (spec_base, torch-free); each must have a function here.
ACTIVATIONS = {name: _FUNCTIONS[name] for name in ACTIVATION_NAMES}
# The same functions writing over their input, for a pre-activation that the forward pass owns
# (a matmul's or a gather's fresh output). Autograd allows these in place, as their backward reads
# the output, not the input; each spares a fresh activation-sized buffer per layer, which a pack
# feels (its activations are MiBs, past the core's cache). gelu and silu need their input.
IN_PLACE_ACTIVATIONS = {"tanh": torch.tanh_, "relu": torch.relu_}


class BatchedModel(Protocol):
    """What train.py needs from a model: outputs [K, N, out_dim] for inputs [N, ...] (or run k's
    own [K, N, ...] when the model sets ``per_run_inputs``), and its parameters split into the
    representation and the decoder (each group gets its own learning rate and weight decay)."""

    def __call__(self, inputs: torch.Tensor) -> torch.Tensor: ...

    def parameters(self) -> Iterator[nn.Parameter]: ...

    def representation_parameters(self) -> list[nn.Parameter]: ...

    def decoder_parameters(self) -> list[nn.Parameter]: ...


class RunInit:
    """The draws of one run's init: a generator seeded by ``derive_seed(seed, "init")``, values
    drawn in float64, multiplied by the run's init scale, then cast. Draw in a fixed order."""

    def __init__(self, seed: int, scale: float, dtype: torch.dtype):
        self.generator = torch.Generator().manual_seed(derive_seed(seed, "init"))
        self.scale = scale
        self.dtype = dtype

    def uniform(self, shape: Sequence[int], bound: float) -> torch.Tensor:
        """U[-bound, bound] * alpha (torch.nn.Linear's default for weights and biases)."""
        draw = torch.rand(tuple(shape), generator=self.generator, dtype=torch.float64)
        return ((2 * draw - 1) * bound * self.scale).to(self.dtype)

    def normal(self, shape: Sequence[int], std: float = 1.0) -> torch.Tensor:
        """N(0, std^2) * alpha (torch.nn.Embedding's default with std = 1)."""
        draw = torch.randn(tuple(shape), generator=self.generator, dtype=torch.float64)
        return (draw * std * self.scale).to(self.dtype)

    def constant(self, shape: Sequence[int], value: float) -> torch.Tensor:
        """value * alpha everywhere (LayerNorm's weight 1, a diagonal net's u = v = 1)."""
        return torch.full(tuple(shape), value * self.scale, dtype=torch.float64).to(self.dtype)


def per_run_rows(table: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Rows of ``table`` [K, n_tokens, width] for token ids [N] (every run) or [K, N] (run k's
    own), as [K, N, width]. index_select, not table[:, tokens]: the same rows, but advanced
    indexing and its backward (index_put with accumulate) cost several times more on the CPU."""
    k, n, width = table.shape
    if tokens.dim() == 1:
        return table.index_select(1, tokens)
    offsets = torch.arange(0, k * n, n, device=tokens.device).view(k, 1)
    return table.reshape(k * n, width).index_select(0, (tokens + offsets).reshape(-1)).view(k, tokens.shape[1], width)


def check_runs(seeds: Sequence[int], init_scales: Sequence[float]) -> int:
    """The number of runs K, after checking there is one init scale per seed and at least one run."""
    if len(seeds) != len(init_scales):
        raise ValueError("one seed and one init scale per run")
    if len(seeds) == 0:
        raise ValueError("a model needs at least one run")
    return len(seeds)


def check_activation(activation: str) -> None:
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; choose one of {sorted(ACTIVATIONS)}")
