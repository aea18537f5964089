"""Per-run randomness: independent seeds per purpose, and a run's train/validation split.

Every task and model draws from here, so that a run's split, init, templates and batches depend
only on its own seed (and never on the pack it lands in, or on each other).
"""

from __future__ import annotations

import hashlib

import torch


def derive_seed(seed: int, purpose: str) -> int:
    """An independent 63-bit seed per (run seed, purpose): split, init and templates must not
    share a random stream, or changing one would silently change the others."""
    digest = hashlib.sha256(f"{seed}:{purpose}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def split_mask(n_examples: int, fraction: float, seed: int, attempt: int = 0) -> torch.Tensor:
    """Boolean train mask over the examples: round(fraction * n) of them, chosen by ``seed``.
    ``attempt`` > 0 draws another split of the same seed (a task that refuses some splits, such
    as toy_addition's ``split: determined``, takes the first it accepts)."""
    n_train = round(fraction * n_examples)
    if not 0 < n_train < n_examples:
        raise ValueError(f"train fraction {fraction} of {n_examples} examples leaves an empty split")
    purpose = "split" if attempt == 0 else f"split:{attempt}"
    generator = torch.Generator().manual_seed(derive_seed(seed, purpose))
    order = torch.randperm(n_examples, generator=generator)
    mask = torch.zeros(n_examples, dtype=torch.bool)
    mask[order[:n_train]] = True
    return mask


def subset_mask(mask: torch.Tensor, fraction: float, seed: int, stage: str) -> torch.Tensor:
    """A stage's training examples: round(fraction * |mask|) of ``mask``'s, chosen by a seed of
    the run's seed and the stage's name (so D' is a subset of D, and each stage draws its own)."""
    members = mask.nonzero().squeeze(1)
    n_keep = round(fraction * len(members))
    if not 0 < n_keep <= len(members):
        raise ValueError(f"train subset {fraction} of {len(members)} examples keeps none")
    generator = torch.Generator().manual_seed(derive_seed(seed, f"stage:{stage}"))
    order = torch.randperm(len(members), generator=generator)
    subset = torch.zeros_like(mask)
    subset[members[order[:n_keep]]] = True
    return subset
