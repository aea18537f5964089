"""Datasets of the grokking literature, built deterministically; the split is (fraction, seed).

``load_task`` turns a spec's task section into a :class:`TaskData`: the tensors a model reads
and the facts the progress measures need (operand pairs, commutativity, RQI structure).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from grokgrid.tasks.digits import Digits
from grokgrid.tasks.modular import ModularArithmetic
from grokgrid.tasks.permutations import PermutationGroup
from grokgrid.tasks.sparse import MatrixCompletion, SparseLinearClassification
from grokgrid.seeding import derive_seed, split_mask
from grokgrid.tasks.toy_addition import ToyAddition

__all__ = ["TaskData", "ToyAddition", "derive_seed", "load_task", "split_mask"]


@dataclass(frozen=True)
class TaskData:
    inputs: torch.Tensor  # what the model reads: [N, 2] tokens, [N, L] sequences or [N, F] features
    targets: torch.Tensor  # [N] int64 classes, or float targets for regression
    n_classes: int | None  # None: regression (matrix completion)
    n_tokens: int | None  # operand vocabulary (token tasks)
    n_vocab: int | None  # sequence vocabulary (transformer inputs)
    pairs: torch.Tensor | None  # [N, 2] operands, for commutativity
    commutative: bool
    addition_modulus: int | None | bool  # RQI: None = plain sums, int = sums mod p, False = n/a
    tolerance: float | None = None  # regression: |prediction - target| below this counts as correct


def load_task(task, *, sequences: bool = False, with_op: bool = False, dtype: torch.dtype = torch.float32) -> TaskData:
    """The tensors of ``task`` (a spec.TaskSpec). ``sequences``: transformer token sequences."""
    if task.name == "toy_addition":
        toy = ToyAddition(task.p)
        i, j = toy.pairs()
        pairs = torch.stack([i, j], dim=1)
        # Only i <= j is an example (and E_i + E_j is symmetric anyway): commutativity is n/a.
        return TaskData(pairs, toy.targets(), toy.n_classes, toy.n_tokens, None, pairs, False, None)
    if task.name in ("modular", "permutation"):
        source = ModularArithmetic(task.p, task.op) if task.name == "modular" else PermutationGroup(task.n, task.op)
        pairs = source.inputs()
        inputs = source.sequences(with_op) if sequences else pairs
        modulus = task.p if task.name == "modular" and task.op == "add" else False
        return TaskData(
            inputs, source.targets(), source.n_classes, source.n_tokens,
            source.n_vocab(with_op) if sequences else None, pairs, source.commutative, modulus,
        )
    if task.name == "digits":
        digits = Digits()
        return TaskData(digits.inputs(dtype), digits.targets(), 10, None, None, None, False, False)
    if task.name == "sparse_linear":
        data = SparseLinearClassification(task.n_samples, task.dim, task.sparsity, data_seed=task.data_seed)
        return TaskData(data.inputs(dtype), data.targets(), 2, None, None, None, False, False)
    if task.name == "matrix_completion":
        matrix = MatrixCompletion(task.dim, task.rank, task.data_seed)
        return TaskData(matrix.inputs(), matrix.targets().to(dtype), None, matrix.n_tokens, None, None, False, False,
                        tolerance=task.tolerance)
    raise ValueError(f"unknown task {task.name!r}")
