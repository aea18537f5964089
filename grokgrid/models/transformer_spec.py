"""The spec of the decoder-only transformer (transformer.py; Power et al., Nanda et al.)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

from grokgrid.models.spec_base import ACTIVATION_NAMES, ModelSpec
from grokgrid.spec_checks import SpecError
from grokgrid.spec_kinds import parameter, tag

if TYPE_CHECKING:
    import torch

    from grokgrid.tasks import TaskData


@dataclass(frozen=True)
class TransformerSpec(ModelSpec):
    """``with_op``: inputs [x, op, y, =] (Power) rather than [x, y, =] (Nanda)."""

    name: str = tag("transformer")
    activation: str = parameter("relu", choices=ACTIVATION_NAMES)
    n_layers: int = parameter(1, minimum=1)
    d_model: int = parameter(128, minimum=1)
    n_heads: int = parameter(4, minimum=1)
    d_mlp: int = parameter(512, minimum=1)
    layer_norm: bool = parameter(False)
    with_op: bool = parameter(False)
    # "torch": PyTorch's defaults (what alpha multiplies in Omnigrok); "nanda": Nanda et al.'s
    # reference init (every matrix N(0, 1/d_model), unembedding N(0, 1/n_vocab), zero biases).
    init: str = parameter("torch", choices=("torch", "nanda"), added_later=True)

    def check(self) -> None:
        if self.d_model % self.n_heads:
            raise SpecError("model.n_heads", f"d_model {self.d_model} is not a multiple of n_heads {self.n_heads}", "pick a divisor of d_model")

    def task_inputs(self) -> dict[str, bool]:
        return {"sequences": True, "with_op": self.with_op}

    def build(self, data: TaskData, out_dim: int, seeds: Sequence[int], init_scales: Sequence[float], dtype: torch.dtype):
        from grokgrid.models.transformer import Transformer

        return Transformer(n_vocab=data.n_vocab, n_ctx=data.inputs.shape[1], out_dim=out_dim, n_layers=self.n_layers,
                           d_model=self.d_model, n_heads=self.n_heads, d_mlp=self.d_mlp, layer_norm=self.layer_norm,
                           activation=self.activation, seeds=seeds, init_scales=init_scales, dtype=dtype, init=self.init)
