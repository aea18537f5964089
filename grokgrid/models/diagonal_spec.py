"""The specs of Lyu et al.'s models (diagonal.py): the diagonal linear net w = u*u - v*v (or
u*v), and the factorized matrix U V^T of matrix completion."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

from grokgrid.models.spec_base import ModelSpec
from grokgrid.spec_kinds import parameter, tag

if TYPE_CHECKING:
    import torch

    from grokgrid.tasks import TaskData

PARAMETRIZATIONS = ("squares", "product")  # diagonal.PARAMETRIZATIONS, here without torch
SPEC_INITS = ("constant", "norm")  # the diagonal.INITS a spec may name


@dataclass(frozen=True)
class DiagonalSpec(ModelSpec):
    """``init``: "constant" starts u = v = init_scale (the first runs' init); "norm" starts
    u = v = init_scale / sqrt(2 dim), so init_scale is the parameters' initial l2 norm, the
    alpha of Lyu et al.'s code (grokking-dichotomy models.py) and of their (1/lambda) log(alpha)."""

    name: str = tag("diagonal")
    parametrization: str = parameter("squares", choices=PARAMETRIZATIONS)
    init: str = parameter("constant", choices=SPEC_INITS, added_later=True)

    def build(self, data: TaskData, out_dim: int, seeds: Sequence[int], init_scales: Sequence[float], dtype: torch.dtype):
        from grokgrid.models.diagonal import DiagonalLinearNet

        return DiagonalLinearNet(dim=data.inputs.shape[1], parametrization=self.parametrization, init=self.init, output="binary",
                                 seeds=seeds, init_scales=init_scales, dtype=dtype)


@dataclass(frozen=True)
class FactorizedSpec(ModelSpec):
    """``width``: the inner dimension of U and V."""

    name: str = tag("factorized")
    width: int = parameter(97, minimum=1)

    def build(self, data: TaskData, out_dim: int, seeds: Sequence[int], init_scales: Sequence[float], dtype: torch.dtype):
        from grokgrid.models.diagonal import FactorizedMatrix

        return FactorizedMatrix(rows=data.n_tokens, cols=data.n_tokens, width=self.width,
                                seeds=seeds, init_scales=init_scales, dtype=dtype)
