"""The spec of the permutation-group tasks (permutations.py): S_n composition or conjugation."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from grokgrid.spec_checks import SpecError
from grokgrid.spec_kinds import parameter, tag
from grokgrid.tasks.modular_spec import binary_operation_data
from grokgrid.tasks.spec_base import LOSSES, TaskData, TaskSpec

if TYPE_CHECKING:
    import torch

PERMUTATION_OPS = ("compose", "conjugate")
OFFERED_N = (3, 4, 5)  # S5 has 120 elements, 14400 pairs; S6's 518400 pairs are not offered


@dataclass(frozen=True)
class PermutationSpec(TaskSpec):
    name: str = tag("permutation")
    op: str = parameter("compose", choices=PERMUTATION_OPS)
    n: int = parameter(5)
    loss: str = parameter("ce", choices=LOSSES)

    models: ClassVar[tuple[str, ...]] = ("mlp", "transformer")

    def check(self) -> None:
        if self.n not in OFFERED_N:
            raise SpecError("task.n", f"S_{self.n} is not offered", "use 3, 4 or 5 (S5 has 120 elements)")

    @property
    def n_examples(self) -> int:
        return math.factorial(self.n) ** 2

    def load(self, *, dtype: torch.dtype, sequences: bool = False, with_op: bool = False) -> TaskData:
        from grokgrid.tasks.permutations import PermutationGroup

        return binary_operation_data(PermutationGroup(self.n, self.op), sequences, with_op, modulus=False)
