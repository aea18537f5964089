"""The specs of Lyu et al.'s provable-grokking tasks (sparse.py): sparse linear classification,
linear classification with a large l2 margin (misgrokking) and low-rank matrix completion. Their data come from the task's ``data_seed``, not a run's."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from grokgrid.spec_checks import SpecError
from grokgrid.spec_kinds import parameter, tag
from grokgrid.tasks.spec_base import LOSSES, TaskData, TaskSpec

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class SparseLinearSpec(TaskSpec):
    """``n_samples`` points in R^dim labelled by a ``sparsity``-sparse linear teacher.

    ``loss``: "ce" is Lyu et al.'s logistic loss log(1 + exp(-y f)) (their code trains it; the
    diagonal net's two logits [-f/2, f/2] make cross-entropy exactly that); "mse", the default
    for the runs made before the choice existed, regresses the two logits onto one-hot
    templates, i.e. (f - y)^2 / 4 + 1/4: a squared loss, not the paper's classification one."""

    name: str = tag("sparse_linear")
    n_samples: int = parameter(1000, minimum=2)
    dim: int = parameter(1000, minimum=1)
    sparsity: int = parameter(3, minimum=1)
    data_seed: int = parameter(0, minimum=0)
    loss: str = parameter("mse", choices=LOSSES, added_later=True)

    models: ClassVar[tuple[str, ...]] = ("diagonal", "mlp")

    def check(self) -> None:
        if self.sparsity > self.dim:
            raise SpecError("task.sparsity", f"{self.sparsity} exceeds dim {self.dim}", "use at most dim non-zeros")

    @property
    def n_examples(self) -> int:
        return self.n_samples

    def load(self, *, dtype: torch.dtype, sequences: bool = False, with_op: bool = False) -> TaskData:
        from grokgrid.tasks.sparse import SparseLinearClassification

        data = SparseLinearClassification(self.n_samples, self.dim, self.sparsity, data_seed=self.data_seed)
        return TaskData(data.inputs(dtype), data.targets(), data.n_classes, None, None, None, False, False)


@dataclass(frozen=True)
class MarginLinearSpec(TaskSpec):
    """``n_samples`` Gaussian points in R^dim whose classes a dense unit teacher separates by an
    l2 margin ``margin`` (Lyu et al.'s misgrokking data). ``loss`` "ce" (the default) is their
    logistic loss through the diagonal net's two logits."""

    name: str = tag("margin_linear")
    n_samples: int = parameter(1000, minimum=2)
    dim: int = parameter(1000, minimum=1)
    margin: float = parameter(25.0, minimum=0)
    data_seed: int = parameter(0, minimum=0)
    loss: str = parameter("ce", choices=LOSSES)

    models: ClassVar[tuple[str, ...]] = ("diagonal", "mlp")

    @property
    def n_examples(self) -> int:
        return self.n_samples

    def load(self, *, dtype: torch.dtype, sequences: bool = False, with_op: bool = False) -> TaskData:
        import torch

        from grokgrid.tasks.sparse import MarginLinearClassification

        data = MarginLinearClassification(self.n_samples, self.dim, self.margin, data_seed=self.data_seed)
        inputs, signs = data._draw()
        return TaskData(inputs.to(dtype), (signs > 0).to(torch.int64), data.n_classes, None, None, None, False, False)


@dataclass(frozen=True)
class MatrixCompletionSpec(TaskSpec):
    """A dim x dim matrix of rank ``rank``; a prediction within ``tolerance`` counts as correct."""

    name: str = tag("matrix_completion")
    dim: int = parameter(97, minimum=1)
    data_seed: int = parameter(0, minimum=0)
    rank: int = parameter(1, minimum=1)
    tolerance: float = parameter(0.1, above=0)

    models: ClassVar[tuple[str, ...]] = ("factorized",)

    def check(self) -> None:
        if self.rank > self.dim:
            raise SpecError("task.rank", f"{self.rank} exceeds dim {self.dim}", "use a rank <= dim")

    @property
    def n_examples(self) -> int:
        return self.dim * self.dim

    def load(self, *, dtype: torch.dtype, sequences: bool = False, with_op: bool = False) -> TaskData:
        from grokgrid.tasks.sparse import MatrixCompletion

        matrix = MatrixCompletion(self.dim, self.rank, self.data_seed)
        return TaskData(matrix.inputs(), matrix.targets().to(dtype), None, matrix.n_tokens, None, None, False, False,
                        tolerance=self.tolerance)
