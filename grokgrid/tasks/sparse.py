"""Lyu et al. (2023)'s settings where grokking is provable: sparse linear classification (for
diagonal linear nets) and low-rank matrix completion. Same interface as tasks/modular.py.

Both datasets are random, but drawn from the task's own ``data_seed`` (a task field, default 0),
never from a run's seed: every run of a pack sees the same examples, and runs differ only in
their split (``split_mask(task.n_examples, fraction, run_seed)``) and init.

**SparseLinearClassification**: ``n_samples`` points x in R^dim, either uniform on the
hypercube {-1, +1}^dim ("rademacher", default) or standard normal ("gaussian"); the teacher w*
is 1 on the first ``sparsity`` coordinates and 0 elsewhere; the label is sign(<w*, x>), with a
tie (possible only for rademacher inputs and an even ``sparsity``) counted as +1. The train
fraction of the caller's split decides n_train; the rest is the test set. ``targets()`` are
class ids (1 for +1, 0 for -1) so that a two-logit output [-f/2, f/2] under cross-entropy is
exactly the logistic loss log(1 + exp(-y f)); ``signs()`` are the +-1 labels.

**MarginLinearClassification** (Lyu et al.'s misgrokking data, their
``gen_l2_separated_linear_classification``): a dense unit teacher w (standard normal, normalised),
``n_samples`` points g ~ N(0, I_dim), label y = sign(<g, w>) (a tie, of probability zero, counts as
-1 as in their code), then x = g + y (margin / 2) w: the classes are separated by an l2 margin of
``margin`` along w, while each coordinate carries only ~margin / (2 sqrt(dim)) of it. A kernel
(l2) predictor generalises; a sparse (max l1-margin) one, which the late phase of a diagonal net
prefers, does not: val accuracy first high, then falling.

**MatrixCompletion**: a dim x dim matrix M = U V^T / sqrt(rank), U and V [dim, rank] standard
normal (entries have unit variance). Every entry is an example: ``inputs()`` are the (i, j)
index pairs [dim^2, 2] (row-major) and ``targets()`` the real values M[i, j]; the observed
entries are the caller's train split (Lyu et al.: dim 97, 5% observed).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from grokgrid.seeding import derive_seed

DISTRIBUTIONS = ("rademacher", "gaussian")


def _generator(seed: int, purpose: str) -> torch.Generator:
    return torch.Generator().manual_seed(derive_seed(seed, purpose))


class _LinearClassification:
    """What the two linear classification datasets share: ``n_samples`` points of ``dim``
    features, two classes, class ids from the +-1 labels of ``signs()``."""

    n_tokens = None
    n_classes = 2

    @property
    def n_features(self) -> int:
        return self.dim

    @property
    def n_examples(self) -> int:
        return self.n_samples

    def targets(self) -> torch.Tensor:
        """[n_samples] int64 class ids: 1 for label +1, 0 for -1."""
        return (self.signs() > 0).to(torch.int64)


@dataclass(frozen=True)
class SparseLinearClassification(_LinearClassification):
    n_samples: int = 1000
    dim: int = 1000
    sparsity: int = 3
    distribution: str = "rademacher"
    data_seed: int = 0

    def __post_init__(self) -> None:
        if self.distribution not in DISTRIBUTIONS:
            raise ValueError(f"unknown distribution {self.distribution!r}; choose one of {list(DISTRIBUTIONS)}")
        if not 1 <= self.sparsity <= self.dim:
            raise ValueError(f"sparsity must be in [1, dim={self.dim}], got {self.sparsity}")
        if self.n_samples < 2:
            raise ValueError(f"n_samples must be at least 2, got {self.n_samples}")

    def teacher(self) -> torch.Tensor:
        """[dim] float64 w*: ones on the first ``sparsity`` coordinates."""
        w = torch.zeros(self.dim, dtype=torch.float64)
        w[: self.sparsity] = 1.0
        return w

    def inputs(self, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """[n_samples, dim] points (drawn in float64, then cast)."""
        generator = _generator(self.data_seed, "sparse_linear_inputs")
        shape = (self.n_samples, self.dim)
        if self.distribution == "rademacher":
            x = torch.randint(0, 2, shape, generator=generator).to(torch.float64) * 2 - 1
        else:
            x = torch.randn(shape, generator=generator, dtype=torch.float64)
        return x.to(dtype)

    def signs(self) -> torch.Tensor:
        """[n_samples] float64 labels in {-1, +1}."""
        margin = self.inputs() @ self.teacher()
        return torch.where(margin >= 0, 1.0, -1.0).to(torch.float64)



@dataclass(frozen=True)
class MarginLinearClassification(_LinearClassification):
    n_samples: int = 1000
    dim: int = 1000
    margin: float = 25.0
    data_seed: int = 0

    def __post_init__(self) -> None:
        if self.n_samples < 2:
            raise ValueError(f"n_samples must be at least 2, got {self.n_samples}")
        if not self.margin >= 0:
            raise ValueError(f"margin must be >= 0, got {self.margin}")

    def teacher(self) -> torch.Tensor:
        """[dim] float64 unit vector w (standard normal, normalised)."""
        w = torch.randn(self.dim, generator=_generator(self.data_seed, "margin_linear_teacher"), dtype=torch.float64)
        return w / w.norm()

    def _draw(self) -> tuple[torch.Tensor, torch.Tensor]:
        w = self.teacher()
        g = torch.randn(self.n_samples, self.dim, generator=_generator(self.data_seed, "margin_linear_inputs"), dtype=torch.float64)
        y = torch.where(g @ w > 0, 1.0, -1.0).to(torch.float64)
        return g.add_(y.unsqueeze(1) * (self.margin / 2) * w), y

    def inputs(self, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """[n_samples, dim] points, shifted by +-margin/2 along w (drawn in float64, then cast)."""
        return self._draw()[0].to(dtype)

    def signs(self) -> torch.Tensor:
        """[n_samples] float64 labels in {-1, +1}."""
        return self._draw()[1]



@dataclass(frozen=True)
class MatrixCompletion:
    dim: int = 97
    rank: int = 1
    data_seed: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.rank <= self.dim:
            raise ValueError(f"rank must be in [1, dim={self.dim}], got {self.rank}")

    n_features = None
    n_classes = None

    @property
    def n_tokens(self) -> int:
        """Row and column indices both range over [0, dim)."""
        return self.dim

    @property
    def n_examples(self) -> int:
        return self.dim * self.dim

    def matrix(self) -> torch.Tensor:
        """[dim, dim] float64 ground truth of rank ``rank``."""
        generator = _generator(self.data_seed, "matrix_completion")
        u = torch.randn(self.dim, self.rank, generator=generator, dtype=torch.float64)
        v = torch.randn(self.dim, self.rank, generator=generator, dtype=torch.float64)
        return u @ v.T / self.rank**0.5

    def inputs(self) -> torch.Tensor:
        """[dim^2, 2] int64 (row, column) of every entry, row-major."""
        i, j = torch.meshgrid(torch.arange(self.dim), torch.arange(self.dim), indexing="ij")
        return torch.stack([i.reshape(-1), j.reshape(-1)], dim=1)

    def targets(self) -> torch.Tensor:
        """[dim^2] float64 M[i, j], in the order of :meth:`inputs`."""
        return self.matrix().reshape(-1)
