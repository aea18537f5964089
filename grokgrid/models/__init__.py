"""Models batched over a leading run axis: parameters are [runs, ...] and one forward trains all.

``build_model`` turns a spec's model section, the task's shapes and the pack's runs into a model.
This package's top level imports no torch (spec.py reads the registry of model specs from here);
the implementations are imported when a model is built.
"""

from __future__ import annotations

from typing import Sequence


def build_model(model, data, out_dim: int, seeds: Sequence[int], init_scales: Sequence[float], dtype):
    """``model``: a spec.ModelSpec; ``data``: the task's tasks.TaskData."""
    from grokgrid.models.diagonal import DiagonalLinearNet, FactorizedMatrix
    from grokgrid.models.mlp import MLP
    from grokgrid.models.toy import ToyModel
    from grokgrid.models.transformer import Transformer

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


def token_embedding(model, n_tokens: int):
    """[runs, n_tokens, d] operand embeddings for RQI, or None when the model has none."""
    from grokgrid.models.mlp import MLP
    from grokgrid.models.toy import ToyModel
    from grokgrid.models.transformer import Transformer

    if isinstance(model, ToyModel):
        return model.embedding
    if isinstance(model, MLP) and model.embedding is not None:
        return model.embedding
    if isinstance(model, Transformer):
        return model.token_embedding[:, :n_tokens]
    return None
