"""The spec of Liu et al.'s toy model (toy.py): summed token embeddings, then an MLP decoder."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Sequence

from grokgrid.models.spec_base import ACTIVATION_NAMES, ModelSpec, layer_widths
from grokgrid.spec_kinds import parameter, tag

if TYPE_CHECKING:
    import torch

    from grokgrid.tasks import TaskData


@dataclass(frozen=True)
class ToySpec(ModelSpec):
    sums_operands: ClassVar[bool] = True  # E_i + E_j, then the decoder

    name: str = tag("toy")
    embed_dim: int = parameter(1, minimum=1)
    hidden: tuple[int, ...] = parameter((200, 200), parse=layer_widths)
    activation: str = parameter("tanh", choices=ACTIVATION_NAMES)

    def build(self, data: TaskData, out_dim: int, seeds: Sequence[int], init_scales: Sequence[float], dtype: torch.dtype):
        from grokgrid.models.toy import ToyModel

        return ToyModel(n_tokens=data.n_tokens, embed_dim=self.embed_dim, hidden=self.hidden, out_dim=out_dim,
                        activation=self.activation, seeds=seeds, init_scales=init_scales, dtype=dtype)
