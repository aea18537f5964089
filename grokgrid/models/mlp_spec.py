"""The spec of the run-batched MLP (mlp.py): learned or one-hot token inputs, or raw features."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

from grokgrid.models.spec_base import ACTIVATION_NAMES, ModelSpec, layer_widths
from grokgrid.spec_kinds import parameter, tag

if TYPE_CHECKING:
    import torch

    from grokgrid.tasks import TaskData


@dataclass(frozen=True)
class MLPSpec(ModelSpec):
    """Token tasks: embeddings of ``embed_dim`` (0: one-hot inputs) concatenated; feature tasks:
    the features. Then the hidden layers."""

    name: str = tag("mlp")
    embed_dim: int = parameter(0, minimum=0)
    hidden: tuple[int, ...] = parameter((200, 200), parse=layer_widths)
    activation: str = parameter("relu", choices=ACTIVATION_NAMES)
    bias: bool = parameter(True)

    def build(self, data: TaskData, out_dim: int, seeds: Sequence[int], init_scales: Sequence[float], dtype: torch.dtype):
        from grokgrid.models.mlp import MLP

        shared = dict(hidden=self.hidden, out_dim=out_dim, activation=self.activation, bias=self.bias,
                      seeds=seeds, init_scales=init_scales, dtype=dtype)
        if data.n_tokens is None:
            return MLP(in_features=data.inputs.shape[1], **shared)
        return MLP(n_tokens=data.n_tokens, n_positions=data.inputs.shape[1], embed_dim=self.embed_dim or None, **shared)
