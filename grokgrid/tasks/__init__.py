"""Datasets of the grokking literature, built deterministically; the split is (fraction, seed).

``TASKS`` is the registry of the task kinds a spec may name: each task's spec class (in
``<family>_spec.py``, torch-free) knows its parameters, its size and which models read it, and
its ``load`` builds the :class:`TaskData` from the implementation beside it (``<family>.py``).
Adding a task is its two modules and one line here. This package's top level imports no torch.
"""

from __future__ import annotations

from grokgrid.tasks.digits_spec import DigitsSpec
from grokgrid.tasks.mnist_spec import MnistSpec
from grokgrid.tasks.modular_spec import ModularSpec
from grokgrid.tasks.permutations_spec import PermutationSpec
from grokgrid.tasks.sparse_spec import MarginLinearSpec, MatrixCompletionSpec, SparseLinearSpec
from grokgrid.tasks.spec_base import TaskData, TaskSpec
from grokgrid.tasks.toy_addition_spec import ToyAdditionSpec

__all__ = ["TASKS", "TaskData", "TaskSpec"]

# In the order a spec error lists them; a new task goes at the end.
TASKS: dict[str, type[TaskSpec]] = {
    spec.name: spec
    for spec in (ToyAdditionSpec, ModularSpec, PermutationSpec, DigitsSpec, SparseLinearSpec, MatrixCompletionSpec,
                 MnistSpec, MarginLinearSpec)
}
