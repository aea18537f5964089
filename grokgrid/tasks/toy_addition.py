"""Liu et al. (2022)'s toy task: non-modular addition of two tokens 0..p-1.

The examples are the unordered pairs (i, j), 0 <= i <= j < p (55 for p = 10), and the answer
is i + j, one of 2p - 1 classes. With the MSE loss the model regresses onto a random template
vector per class (their "regression to random templates"); with CE it predicts the class.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from grokgrid.seeding import derive_seed


@dataclass(frozen=True)
class ToyAddition:
    p: int = 10

    @property
    def n_tokens(self) -> int:
        return self.p

    @property
    def n_classes(self) -> int:
        return 2 * self.p - 1

    def pairs(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Left and right tokens of every example, i <= j, in a fixed order."""
        i, j = torch.triu_indices(self.p, self.p)
        return i, j

    def targets(self) -> torch.Tensor:
        i, j = self.pairs()
        return i + j

    def templates(self, dim: int, seed: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Random target vectors, one per class (standard normal), for the MSE variant."""
        generator = torch.Generator().manual_seed(derive_seed(seed, "templates"))
        return torch.randn(self.n_classes, dim, generator=generator, dtype=torch.float64).to(dtype)

    def ideal_accuracy(self, train_mask: torch.Tensor) -> float:
        """Liu et al.'s ideal validation accuracy of a split (their Acc-bar, Sec. 3; ``acc_ideal_test``
        in their toy/train_add.py): the share of the validation pairs (i, j) whose answer the
        training pairs determine. That is when some training pair (m, n) has the same sum and
        E_i + E_j = E_m + E_n follows linearly from the training set's own parallelograms, so
        that any representation which fits the training set puts (i, j) where (m, n) is.

        By Liu's effective theory a run on a split below the phase threshold (0.9) generalises
        under no learning rate (the undetermined pairs come out right only by luck): about a
        quarter of random 45-of-55 splits at p = 10 (bench/liu_splits.py).
        """
        validation = (~train_mask).nonzero().squeeze(1)
        if len(validation) == 0:
            return 1.0
        return float(self.determined(train_mask)[validation].double().mean())

    def determined(self, train_mask: torch.Tensor) -> torch.Tensor:
        """[examples] whether each pair's answer follows from the training pairs (a training
        pair is its own answer): see ``ideal_accuracy``."""
        i, j = self.pairs()
        sums = i + j
        one_hot = torch.zeros(len(i), self.p, dtype=torch.float64)
        one_hot[torch.arange(len(i)), i] += 1
        one_hot[torch.arange(len(i)), j] += 1  # i == j: 2 E_i
        # A parallelogram E_a + E_b = E_c + E_d per two training pairs with one sum; those of a
        # sum class are spanned by each member against any one training pair of the class (its
        # anchor: which one does not change the span, so duplicate writes may land in any order).
        anchors = torch.full((2 * self.p - 1,), -1, dtype=torch.long)
        train = train_mask.nonzero().squeeze(1)
        anchors[sums[train]] = train
        anchor = anchors[sums]  # [examples] a training pair with each pair's sum, -1: none
        differences = one_hot - one_hot[anchor.clamp(min=0)]
        known = differences[train]
        # The row space of the training parallelograms, then whether each pair's own equation
        # lies in it (its residual off that space is zero up to rounding: small integer rows).
        _, singular, basis = torch.linalg.svd(known, full_matrices=False)
        basis = basis[: int((singular > 1e-9).sum())]
        residual = differences - (differences @ basis.T) @ basis
        return (anchor >= 0) & (residual.norm(dim=1) < 1e-6)
