"""Progress measures of the grokking papers, per run: every function takes tensors (or a model)
with a leading run axis K and returns a [K] tensor, and run k's value depends only on run k's
slice (no statistic is shared across the runs of a pack).

- :func:`rqi` — Liu et al.'s representation quality index of token embeddings.
- :func:`commutativity_accuracy` — Tan & Huang: how often pred(a, b) == pred(b, a).
- :func:`logit_efficiency` — Varma et al.: mean correct-class logit per unit parameter norm.
- :func:`gram_entropy` / :func:`perturbed_entropy` — Tan & Huang: matrix-based Renyi entropy
  (alpha = 1, i.e. von Neumann) of a hidden layer's features on noise-perturbed inputs.

All are measurements: call them under ``torch.no_grad()`` (perturbed_entropy does it itself).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Iterable

import torch

from grokgrid.metrics import weight_norm

# Liu et al.'s code (toy/train_add.py): a parallelogram holds when the mean over embedding
# dimensions of (E_i + E_j - E_m - E_n)^2 is below threshold_P = 0.01.
RQI_DELTA = 0.01
_CHUNK_ELEMENTS = 1 << 18


@lru_cache(maxsize=16)
def _plan(n: int, modulus: int | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(pairs [P, 2], left [Q], right [Q, 2], quadruples [Q, 4]) for n tokens: every unordered
    pair a <= b (lexicographic), and every permissible quadruple (i, j, m, n) (see
    :func:`_quadruples`) as ``left`` (the index of its pair (i, j) among ``pairs``) and ``right``
    (its tokens m, n)."""
    a, b = torch.triu_indices(n, n)  # every unordered pair a <= b, lexicographic
    sums = a + b if modulus is None else (a + b) % modulus
    lefts, rights = [], []
    for total in sums.unique().tolist():
        members = (sums == total).nonzero().squeeze(1)
        if len(members) < 2:
            continue
        first, second = torch.triu_indices(len(members), len(members), offset=1)
        lefts.append(members[first])
        rights.append(members[second])
    pairs = torch.stack([a, b], dim=1)
    if not lefts:
        empty = torch.zeros(0, dtype=torch.int64)
        return pairs, empty, torch.zeros(0, 2, dtype=torch.int64), torch.zeros(0, 4, dtype=torch.int64)
    left, right_pair = torch.cat(lefts), torch.cat(rights)
    right = pairs[right_pair]
    return pairs, left, right, torch.cat([pairs[left], right], dim=1)


def _quadruples(n: int, modulus: int | None) -> torch.Tensor:
    """[Q, 4] int64 (i, j, m, n): every unordered pair of distinct unordered token pairs
    {i, j} != {m, n} (i <= j, m <= n, (i, j) before (m, n)) with i + j == m + n (mod ``modulus``)."""
    return _plan(n, modulus)[3]


def permissible_quadruples(n_tokens: int, modulus: int | None = None) -> torch.Tensor:
    """[Q, 4] the quadruples (i, j, m, n) over which :func:`rqi` counts parallelograms."""
    return _quadruples(n_tokens, modulus).clone()


def normalize_embeddings(embeddings: torch.Tensor) -> torch.Tensor:
    """Per run and per dimension: subtract the mean over tokens, divide by the (unbiased) std
    over tokens, as Liu et al.'s code does. A dimension constant over tokens stays 0."""
    centered = embeddings - embeddings.mean(dim=1, keepdim=True)
    std = embeddings.std(dim=1, keepdim=True)
    return centered / torch.where(std > 0, std, torch.ones_like(std))


def rqi(embeddings: torch.Tensor, delta: float = RQI_DELTA, modulus: int | None = None) -> torch.Tensor:
    """Representation quality index (Liu et al. 2022), [K].

    ``embeddings`` [K, n, D]: token t's vector stands for the number t (pass only the operand
    tokens, e.g. ``transformer.token_embedding[:, :p]``). After :func:`normalize_embeddings`,
    RQI = (number of permissible quadruples whose parallelogram holds) / (number of permissible
    quadruples), where a quadruple (i, j, m, n) is permissible when i + j == m + n (mod
    ``modulus`` when given: modular addition) and {i, j} != {m, n}, and its parallelogram holds
    when mean_d (E_i + E_j - E_m - E_n)_d^2 < ``delta``.
    """
    k, n, d = embeddings.shape
    pairs, left, right, _ = (t.to(embeddings.device) for t in _plan(n, modulus))
    if len(left) == 0:
        raise ValueError(f"{n} tokens have no permissible quadruple")
    e = normalize_embeddings(embeddings.detach())
    # E_i + E_j once per pair (there are far fewer pairs than quadruples), then per quadruple
    # (E_i + E_j) - E_m - E_n: the same float operations, in the same order, as summing the four
    # gathered rows, with one gather and one add fewer. index_select, not e[:, q]: the same rows,
    # several times faster on the CPU. Chunks of ~1 MiB stay in cache.
    pair_sums = e.index_select(1, pairs[:, 0]) + e.index_select(1, pairs[:, 1])  # [K, P, D]
    held = torch.zeros(k, dtype=torch.int64, device=embeddings.device)
    chunk = max(1, _CHUNK_ELEMENTS // (k * d))
    for start in range(0, len(left), chunk):
        stop = start + chunk
        residual = pair_sums.index_select(1, left[start:stop])
        residual.sub_(e.index_select(1, right[start:stop, 0])).sub_(e.index_select(1, right[start:stop, 1]))
        held += (residual.pow_(2).mean(dim=-1) < delta).sum(dim=1)
    return held.to(embeddings.dtype) / len(left)


def commutativity_accuracy(
    predictions: torch.Tensor,
    inputs: torch.Tensor,
    mask: torch.Tensor | None = None,
    include_diagonal: bool = False,
) -> torch.Tensor:
    """Fraction of examples (a, b) whose predicted class equals that of (b, a) (Tan & Huang), [K].

    ``predictions`` [K, N] predicted classes of the examples whose operands are ``inputs``
    [N, 2]. Counted: every example (a, b) whose swap (b, a) is also an example, a != b unless
    ``include_diagonal`` (a pair with itself always agrees), and ``mask`` ([N] or [K, N]) true
    when given. NaN for a run with nothing to count.
    """
    a, b = inputs[:, 0], inputs[:, 1]
    size = int(inputs.max()) + 1
    index = torch.full((size, size), -1, dtype=torch.int64, device=inputs.device)
    index[a, b] = torch.arange(len(a), device=inputs.device)
    swapped = index[b, a]
    counted = swapped >= 0
    if not include_diagonal:
        counted &= a != b
    counted = counted.unsqueeze(0).expand_as(predictions)
    if mask is not None:
        counted = counted & mask.to(torch.bool).expand_as(predictions)
    agree = predictions == predictions[:, swapped.clamp(min=0)]
    weights = counted.to(torch.float64)
    return (agree.to(torch.float64) * weights).sum(dim=1) / weights.sum(dim=1)


def logit_efficiency(
    outputs: torch.Tensor,
    targets: torch.Tensor,
    parameters: Iterable[torch.Tensor],
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Varma et al.'s efficiency, [K]: the mean over examples (those where ``mask`` [N] or
    [K, N] is true, default all) of the correct-class logit ``outputs[k, n, targets[n]]``,
    divided by the l2 norm of all of run k's ``parameters``."""
    k, n, _ = outputs.shape
    correct = outputs.detach().gather(2, targets.view(1, n, 1).expand(k, n, 1)).squeeze(-1)
    weights = torch.ones_like(correct) if mask is None else mask.to(correct.dtype).expand(k, n)
    mean_logit = (correct * weights).sum(dim=1) / weights.sum(dim=1)
    return mean_logit / weight_norm(parameters, k).to(mean_logit)


def gram_entropy(features: torch.Tensor, center: bool = False) -> torch.Tensor:
    """Matrix-based Renyi entropy of order 1 (von Neumann entropy, natural log), [K].

    For run k with features F [N, D] (centred over the N examples first if ``center``):
    G = F F^T (the linear-kernel Gram matrix), A = G / tr(G), and the entropy is
    -sum_i lambda_i log lambda_i over A's eigenvalues (0 log 0 = 0). It lies in
    [0, log(min(N, D))]. Computed in float64 from the smaller of F F^T and F^T F (same
    nonzero spectrum). NaN for a run whose features are all zero or not finite.
    """
    f = features.detach().to(torch.float64)
    if center:
        f = f - f.mean(dim=1, keepdim=True)
    gram = f @ f.transpose(1, 2) if f.shape[1] <= f.shape[2] else f.transpose(1, 2) @ f
    trace = gram.diagonal(dim1=1, dim2=2).sum(dim=1)
    valid = torch.isfinite(gram).flatten(1).all(dim=1) & (trace > 0)
    # eigvalsh fails on NaN input: measure a placeholder (the identity) for the invalid runs.
    placeholder = torch.eye(gram.shape[1], dtype=gram.dtype, device=gram.device).expand_as(gram)
    normalized = torch.where(valid.view(-1, 1, 1), gram / torch.where(valid, trace, 1.0).view(-1, 1, 1), placeholder)
    eigenvalues = torch.linalg.eigvalsh(normalized).clamp(min=0)
    terms = torch.where(eigenvalues > 0, eigenvalues * eigenvalues.log(), torch.zeros_like(eigenvalues))
    return torch.where(valid, -terms.sum(dim=1), torch.full_like(trace, float("nan")))


@torch.no_grad()
def perturbed_entropy(
    model: torch.nn.Module,
    inputs: torch.Tensor,
    sigma: float = 0.1,
    seed: int = 0,
    layer: int = -1,
    center: bool = False,
) -> torch.Tensor:
    """Tan & Huang's perturbed entropy, [K]: :func:`gram_entropy` of hidden layer ``layer``'s
    features on inputs perturbed with Gaussian noise.

    Exactly: x = model.embed(inputs) (the continuous input: concatenated embeddings or one-hot
    or float features for the MLP, token + positional embeddings for the transformer); noise
    ~ N(0, sigma^2) of x's per-run shape, drawn in float64 on the CPU from a generator seeded
    with ``seed`` (a constant of the measurement, not a run seed) and shared by all runs, so a
    run's value does not depend on its pack; h = model.features(x + noise, layer) [K, N, width];
    return gram_entropy(h, center). ``model`` is anything with ``embed`` and ``features`` (MLP,
    Transformer). Pass a subset of the inputs when N is large (the cost is min(N, width)^3).
    """
    embedded = model.embed(inputs)
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(tuple(embedded.shape[1:]), generator=generator, dtype=torch.float64)
    perturbed = embedded + (sigma * noise).to(embedded.dtype).to(embedded.device)
    return gram_entropy(model.features(perturbed, layer), center=center)
