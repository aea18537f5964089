"""Permutation-group tasks (Power et al.: S5 composition and conjugation; S3 as a small check).

Same interface as tasks/modular.py (see its docstring). The tokens are the n! permutations of
range(n) in sorted (lexicographic) order: token t is ``elements()[t]``, an array form
(``perm[i]`` is the image of i; token 0 is the identity). Every ordered pair (x, y) is an
example, in row-major order, and the class is the token of the result.

The product follows Power et al.'s code (numpy ``y[x]`` and sympy's left-to-right product):
``x . y`` applies x first, then y, so ``(x . y)[i] = y[x[i]]``.

- ``compose``: x . y (non-abelian for n >= 3);
- ``conjugate``: x . y . x^-1, i.e. ``result[i] = x_inv[y[x[i]]]`` (Power's ``s5conj``,
  ``a * b * ~a`` in sympy).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import torch

from grokgrid.tasks.modular import table_is_commutative, token_sequences

OPERATIONS = ("compose", "conjugate")


@dataclass(frozen=True)
class PermutationGroup:
    n: int = 5
    op: str = "compose"

    def __post_init__(self) -> None:
        if self.op not in OPERATIONS:
            raise ValueError(f"unknown operation {self.op!r}; choose one of {list(OPERATIONS)}")
        if not 2 <= self.n <= 6:
            raise ValueError(f"n must be in [2, 6] (S6 has 720 elements, 518400 pairs), got {self.n}")

    def elements(self) -> np.ndarray:
        """[n!, n] int64: every permutation of range(n), sorted."""
        return np.array(sorted(itertools.permutations(range(self.n))), dtype=np.int64)

    @property
    def n_tokens(self) -> int:
        return len(self.elements())

    @property
    def n_classes(self) -> int:
        return self.n_tokens

    n_features = None

    @property
    def n_examples(self) -> int:
        return self.n_tokens**2

    def index_of(self, perms: np.ndarray) -> np.ndarray:
        """Token ids of array-form permutations [..., n] (rank in lexicographic order)."""
        # Lexicographic rank via the mixed-radix encoding perm -> sum perm[i] * n^(n-1-i):
        # it is monotone in lexicographic order, so searchsorted on the sorted codes is exact.
        weights = self.n ** np.arange(self.n - 1, -1, -1, dtype=np.int64)
        codes = self.elements() @ weights
        return np.searchsorted(codes, perms @ weights)

    def inputs(self) -> torch.Tensor:
        m = self.n_tokens
        x, y = np.meshgrid(np.arange(m), np.arange(m), indexing="ij")
        return torch.from_numpy(np.stack([x.ravel(), y.ravel()], axis=1).astype(np.int64))

    def targets(self) -> torch.Tensor:
        elems = self.elements()
        pairs = self.inputs().numpy()
        x, y = elems[pairs[:, 0]], elems[pairs[:, 1]]
        then_y = np.take_along_axis(y, x, axis=1)  # (x . y)[i] = y[x[i]]
        if self.op == "compose":
            result = then_y
        else:
            x_inv = np.argsort(x, axis=1)
            result = np.take_along_axis(x_inv, then_y, axis=1)
        return torch.from_numpy(self.index_of(result).astype(np.int64))

    @property
    def commutative(self) -> bool:
        return table_is_commutative(self.inputs(), self.targets(), self.n_tokens)

    def sequences(self, with_op: bool = True) -> torch.Tensor:
        return token_sequences(self.inputs(), self.n_tokens, with_op)[0]

    def n_vocab(self, with_op: bool = True) -> int:
        return self.n_tokens + (2 if with_op else 1)
