"""A decoder-only transformer batched over runs (Power et al.; Nanda et al.).

Input: token sequences [N, L] (e.g. ``[x, op, y, =]`` or ``[x, y, =]`` from a task's
``sequences()``); output: the logits read at the last position, [K, N, out_dim]. Every
parameter has a leading run axis K and all runs go through one set of batched matmuls.

Architecture (pre-LN GPT block; with ``layer_norm=False`` it is Nanda et al.'s model):
token embedding + learned positional embedding; per layer, x += Attn(LN(x)) with causal
multi-head attention (no biases in q, k, v, o), then x += MLP(LN(x)) (W_in, b_in, activation,
W_out, b_out); a final LN; an unembedding without bias. No dropout.

Init: alpha times one of two schemes, per run from its own seed (``derive_seed(seed, "init")``,
float64 draws then cast). ``init="torch"`` (the default, so that alpha means what it means in
Omnigrok): PyTorch's defaults, embeddings N(0, 1) (nn.Embedding), every linear weight and bias
U[-1/sqrt(fan_in), 1/sqrt(fan_in)] (nn.Linear), LayerNorm weight 1 and bias 0. ``init="nanda"``:
Nanda et al.'s reference code (progress-measures-paper, transformers.py): every matrix,
embeddings included, N(0, 1/d_model) (W_out too: the reference uses d_model, not d_mlp), the
unembedding N(0, 1/n_vocab), biases 0. The torch init's embeddings are 11x larger, and a large
init delays grokking (issue 21).

The token and positional embeddings are the representation; everything else is the decoder.
``embed(tokens)`` -> [K, N, L, d_model] and ``features(embedded, layer)`` -> [K, N, d_model]
(the residual stream at the last position after block ``layer``; after the last block it is
the final-LN output fed to the unembedding) let progress measures perturb the embeddings.
The last block runs for the last position only (its queries, MLP and residual): exact, since
under the causal mask no position's output but the last is ever read, and it cuts that block's
MLP cost by the sequence length.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from grokgrid.models.base import ACTIVATIONS, RunInit, check_activation, check_runs, per_run_rows

LN_EPS = 1e-5
INITS = ("torch", "nanda")  # transformer_spec.TransformerSpec.init names the same schemes


def _matmul(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """[K, ..., a] @ [K, a, b] -> [K, ..., b], one bmm over the run axis."""
    k = x.shape[0]
    out = torch.bmm(x.reshape(k, -1, x.shape[-1]), weight)
    return out.view(*x.shape[:-1], weight.shape[-1])


def _per_run(vector: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """[K, d] -> [K, 1, ..., 1, d] broadcasting over ``like``'s middle axes."""
    return vector.view(vector.shape[0], *([1] * (like.dim() - 2)), vector.shape[-1])


class _LayerNorm(nn.Module):
    def __init__(self, k: int, d: int, dtype: torch.dtype):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(k, d, dtype=dtype))
        self.bias = nn.Parameter(torch.empty(k, d, dtype=dtype))

    def init_run(self, run: int, draws: RunInit) -> None:
        self.weight[run] = draws.constant(self.weight.shape[1:], 1.0)
        self.bias[run] = draws.constant(self.bias.shape[1:], 0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        normed = F.layer_norm(x, x.shape[-1:], eps=LN_EPS)
        return normed * _per_run(self.weight, x) + _per_run(self.bias, x)


class _Block(nn.Module):
    def __init__(self, k: int, d_model: int, n_heads: int, d_mlp: int, layer_norm: bool, activation, dtype):
        super().__init__()
        self.n_heads = n_heads
        self.activation = activation
        self.ln1 = _LayerNorm(k, d_model, dtype) if layer_norm else None
        self.ln2 = _LayerNorm(k, d_model, dtype) if layer_norm else None

        def param(*shape: int) -> nn.Parameter:
            return nn.Parameter(torch.empty(k, *shape, dtype=dtype))

        self.w_q, self.w_k, self.w_v, self.w_o = (param(d_model, d_model) for _ in range(4))
        self.w_in, self.b_in = param(d_model, d_mlp), param(d_mlp)
        self.w_out, self.b_out = param(d_mlp, d_model), param(d_model)

    def init_run(self, run: int, draws: RunInit, init: str = "torch") -> None:
        d_model, d_mlp = self.w_in.shape[1:]
        if init == "nanda":  # the reference's draws, in its order: W_K, W_Q, W_V, W_O, W_in, b_in, W_out, b_out
            for weight in (self.w_k, self.w_q, self.w_v, self.w_o, self.w_in):
                weight[run] = draws.normal(weight.shape[1:], 1 / math.sqrt(d_model))
            self.b_in[run] = draws.constant(self.b_in.shape[1:], 0.0)
            self.w_out[run] = draws.normal(self.w_out.shape[1:], 1 / math.sqrt(d_model))  # 1/sqrt(d_model), as the reference
            self.b_out[run] = draws.constant(self.b_out.shape[1:], 0.0)
            for norm in (self.ln1, self.ln2):
                if norm is not None:
                    norm.init_run(run, draws)
            return
        if self.ln1 is not None:
            self.ln1.init_run(run, draws)
        for weight in (self.w_q, self.w_k, self.w_v, self.w_o):
            weight[run] = draws.uniform(weight.shape[1:], 1 / math.sqrt(d_model))
        if self.ln2 is not None:
            self.ln2.init_run(run, draws)
        self.w_in[run] = draws.uniform(self.w_in.shape[1:], 1 / math.sqrt(d_model))
        self.b_in[run] = draws.uniform(self.b_in.shape[1:], 1 / math.sqrt(d_model))
        self.w_out[run] = draws.uniform(self.w_out.shape[1:], 1 / math.sqrt(d_mlp))
        self.b_out[run] = draws.uniform(self.b_out.shape[1:], 1 / math.sqrt(d_mlp))

    def attention(self, x: torch.Tensor, last_only: bool = False) -> torch.Tensor:
        """Causal multi-head attention of every position, or (``last_only``) of the last
        position alone, which attends to the whole sequence: [K, N, L or 1, d]."""
        k, n, length, d = x.shape
        heads, d_head = self.n_heads, d // self.n_heads

        def split(inputs: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:  # [K, N, H, l, d_head]
            return _matmul(inputs, weight).view(k, n, inputs.shape[2], heads, d_head).transpose(2, 3)

        queries = x[:, :, -1:] if last_only else x
        q, key, v = split(queries, self.w_q), split(x, self.w_k), split(x, self.w_v)
        scores = q @ key.transpose(-1, -2) / math.sqrt(d_head)  # [K, N, H, l, L]
        if not last_only:
            future = torch.ones(length, length, dtype=torch.bool, device=x.device).triu(1)
            scores = scores.masked_fill(future, float("-inf"))
        z = (scores.softmax(dim=-1) @ v).transpose(2, 3).reshape(k, n, queries.shape[2], d)
        return _matmul(z, self.w_o)

    def forward(self, x: torch.Tensor, last_only: bool = False) -> torch.Tensor:
        """The block's output residual stream: [K, N, L, d], or [K, N, 1, d] at the last
        position only (exact: a causal block's last position depends on nothing after it)."""
        attended = self.attention(self.ln1(x) if self.ln1 is not None else x, last_only)
        x = (x[:, :, -1:] if last_only else x) + attended
        h = self.ln2(x) if self.ln2 is not None else x
        hidden = self.activation(_matmul(h, self.w_in) + _per_run(self.b_in, h))
        return x + _matmul(hidden, self.w_out) + _per_run(self.b_out, x)


class Transformer(nn.Module):
    def __init__(
        self,
        *,
        n_vocab: int,
        n_ctx: int,
        out_dim: int,
        seeds: Sequence[int],
        init_scales: Sequence[float],
        n_layers: int = 1,
        d_model: int = 128,
        n_heads: int = 4,
        d_mlp: int = 512,
        layer_norm: bool = False,
        activation: str = "relu",
        dtype: torch.dtype = torch.float32,
        init: str = "torch",
    ):
        super().__init__()
        self.n_runs = k = check_runs(seeds, init_scales)
        if init not in INITS:
            raise ValueError(f"init must be one of {', '.join(INITS)}, got {init!r}")
        if n_layers < 1:
            raise ValueError(f"n_layers must be at least 1, got {n_layers}")
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} is not a multiple of n_heads={n_heads}")
        check_activation(activation)
        self.n_ctx = n_ctx
        self.token_embedding = nn.Parameter(torch.empty(k, n_vocab, d_model, dtype=dtype))
        self.pos_embedding = nn.Parameter(torch.empty(k, n_ctx, d_model, dtype=dtype))
        self.blocks = nn.ModuleList(
            _Block(k, d_model, n_heads, d_mlp, layer_norm, ACTIVATIONS[activation], dtype) for _ in range(n_layers)
        )
        self.ln_final = _LayerNorm(k, d_model, dtype) if layer_norm else None
        self.unembed = nn.Parameter(torch.empty(k, d_model, out_dim, dtype=dtype))
        with torch.no_grad():
            for run, (seed, scale) in enumerate(zip(seeds, init_scales)):
                draws = RunInit(seed, scale, dtype)
                embedding_std = 1 / math.sqrt(d_model) if init == "nanda" else 1.0
                self.token_embedding[run] = draws.normal(self.token_embedding.shape[1:], embedding_std)
                self.pos_embedding[run] = draws.normal(self.pos_embedding.shape[1:], embedding_std)
                for block in self.blocks:
                    block.init_run(run, draws, init)
                if self.ln_final is not None:
                    self.ln_final.init_run(run, draws)
                if init == "nanda":  # the reference unembeds to its whole vocabulary: N(0, 1/d_vocab)
                    self.unembed[run] = draws.normal(self.unembed.shape[1:], 1 / math.sqrt(n_vocab))
                else:
                    self.unembed[run] = draws.uniform(self.unembed.shape[1:], 1 / math.sqrt(d_model))

    def representation_parameters(self) -> list[nn.Parameter]:
        return [self.token_embedding, self.pos_embedding]

    def decoder_parameters(self) -> list[nn.Parameter]:
        skip = {id(p) for p in self.representation_parameters()}
        return [p for p in self.parameters() if id(p) not in skip]

    # forward and embed also take per-run token ids [K, N, L] (run k's own examples): train.py
    # then trains runs whose batches or train sets differ on their own examples only, where shared
    # inputs would make every run compute the union of the pack's examples (a pack of 2 runs with
    # their own batches of 512 out of 1,740 pairs: 870 examples a run, 1.7x the work).
    per_run_inputs = True

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        """[K, N, L, d_model]: token plus positional embeddings of token ids [N, L] (every run's)
        or [K, N, L] (run k's own)."""
        length = tokens.shape[-1]
        if length > self.n_ctx:
            raise ValueError(f"sequence length {length} exceeds n_ctx={self.n_ctx}")
        positions = self.pos_embedding[:, :length].unsqueeze(1)
        if tokens.dim() == 3:
            k, n = tokens.shape[:2]
            return per_run_rows(self.token_embedding, tokens.reshape(k, n * length)).view(k, n, length, -1) + positions
        # Shared tokens keep the advanced indexing they always had: its backward sums an embedding's
        # gradient in the order earlier results were computed in.
        return self.token_embedding[:, tokens] + positions

    def features(self, embedded: torch.Tensor, layer: int = -1) -> torch.Tensor:
        """[K, N, d_model]: the residual stream at the last position after block ``layer``
        (-1: the last block, followed by the final LayerNorm when there is one)."""
        n_layers = len(self.blocks)
        if not -n_layers <= layer < n_layers:
            raise ValueError(f"layer {layer} out of range for {n_layers} blocks")
        stop = layer % n_layers
        x = embedded
        for block in self.blocks[:stop]:
            x = block(x)
        x = self.blocks[stop](x, last_only=True)[:, :, 0]  # later positions are never read
        if stop == n_layers - 1 and self.ln_final is not None:
            x = self.ln_final(x)
        return x

    def from_embedded(self, embedded: torch.Tensor) -> torch.Tensor:
        """[K, N, out_dim]: logits for embeddings [K, N, L, d_model] (``embed``'s output, perhaps
        perturbed: interventions.Perturbation)."""
        return torch.bmm(self.features(embedded), self.unembed)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """[K, N, out_dim]: logits at the last position of token ids [N, L] or [K, N, L]."""
        return self.from_embedded(self.embed(tokens))
