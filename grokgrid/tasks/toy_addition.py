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
