"""Models batched over a leading run axis: parameters are [runs, ...] and one forward trains all.

``MODELS`` is the registry of the model kinds a spec may name: each model's spec class (in
``<model>_spec.py``, torch-free) knows its parameters and builds the model from the
implementation beside it (``<model>.py``). Adding a model is its two modules and one line here.
This package's top level imports no torch (spec.py reads the registry).
"""

from __future__ import annotations

from grokgrid.models.diagonal_spec import DiagonalSpec, FactorizedSpec
from grokgrid.models.mlp_spec import MLPSpec
from grokgrid.models.spec_base import ModelSpec
from grokgrid.models.toy_spec import ToySpec
from grokgrid.models.transformer_spec import TransformerSpec

__all__ = ["MODELS", "ModelSpec", "token_embedding"]

# In the order a spec error lists them.
MODELS: dict[str, type[ModelSpec]] = {
    spec.name: spec for spec in (ToySpec, MLPSpec, TransformerSpec, DiagonalSpec, FactorizedSpec)
}


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
