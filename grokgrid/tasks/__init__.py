"""Datasets of the grokking literature, built deterministically from (fraction, seed)."""

from grokgrid.tasks.toy_addition import ToyAddition, derive_seed, split_mask

__all__ = ["ToyAddition", "derive_seed", "split_mask"]
