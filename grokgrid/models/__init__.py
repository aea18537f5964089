"""Models batched over a leading run axis: parameters are [runs, ...] and one forward trains all.

``build_model`` turns a spec's model section, the task's shapes and the pack's runs into a model.
"""

from __future__ import annotations

from typing import Sequence

import torch

from grokgrid.models.diagonal import DiagonalLinearNet, FactorizedMatrix
from grokgrid.models.mlp import MLP
from grokgrid.models.toy import ToyModel
from grokgrid.models.transformer import Transformer

__all__ = ["DiagonalLinearNet", "FactorizedMatrix", "MLP", "ToyModel", "Transformer", "build_model"]


def build_model(model, data, out_dim: int, seeds: Sequence[int], init_scales: Sequence[float], dtype: torch.dtype) -> torch.nn.Module:
    """``model``: a spec.ModelSpec; ``data``: the task's tasks.TaskData."""
    runs = dict(seeds=seeds, init_scales=init_scales, dtype=dtype)
    if model.name == "toy":
        return ToyModel(n_tokens=data.n_tokens, embed_dim=model.embed_dim, hidden=model.hidden, out_dim=out_dim,
                        activation=model.activation, **runs)
    if model.name == "mlp":
        if data.n_tokens is not None:
            return MLP(hidden=model.hidden, out_dim=out_dim, activation=model.activation, n_tokens=data.n_tokens,
                       n_positions=data.inputs.shape[1], embed_dim=model.embed_dim or None, bias=model.bias, **runs)
        return MLP(hidden=model.hidden, out_dim=out_dim, activation=model.activation, in_features=data.inputs.shape[1],
                   bias=model.bias, **runs)
    if model.name == "transformer":
        return Transformer(n_vocab=data.n_vocab, n_ctx=data.inputs.shape[1], out_dim=out_dim, n_layers=model.n_layers,
                           d_model=model.d_model, n_heads=model.n_heads, d_mlp=model.d_mlp, layer_norm=model.layer_norm,
                           activation=model.activation, **runs)
    if model.name == "diagonal":
        return DiagonalLinearNet(dim=data.inputs.shape[1], parametrization=model.parametrization, output="binary", **runs)
    if model.name == "factorized":
        return FactorizedMatrix(rows=data.n_tokens, cols=data.n_tokens, width=model.width, **runs)
    raise ValueError(f"unknown model {model.name!r}")


def token_embedding(model: torch.nn.Module, n_tokens: int) -> torch.Tensor | None:
    """[runs, n_tokens, d] operand embeddings for RQI, or None when the model has none."""
    if isinstance(model, ToyModel):
        return model.embedding
    if isinstance(model, MLP) and model.embedding is not None:
        return model.embedding
    if isinstance(model, Transformer):
        return model.token_embedding[:, :n_tokens]
    return None
