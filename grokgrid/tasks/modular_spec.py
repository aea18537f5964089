"""The spec of Power et al.'s binary operations modulo p (modular.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from grokgrid.spec_checks import SpecError
from grokgrid.spec_kinds import parameter, tag
from grokgrid.tasks.spec_base import LOSSES, TaskData, TaskSpec

if TYPE_CHECKING:
    import torch

# modular.OPERATIONS' names (checked equal by tests/test_tasks.py), here without numpy.
MODULAR_OPS = ("add", "sub", "mul", "div", "quad1", "quad2", "quad3", "cube1", "cube2", "mix1")
NEEDS_PRIME = ("div", "mix1")  # a modular inverse (div), or kept prime as Power et al. (mix1)


@dataclass(frozen=True)
class ModularSpec(TaskSpec):
    """x op y mod p (Power et al.: p 97; Nanda et al.: p 113, add)."""

    name: str = tag("modular")
    p: int = parameter(97, minimum=2)
    op: str = parameter("add", choices=MODULAR_OPS)
    loss: str = parameter("ce", choices=LOSSES)

    models: ClassVar[tuple[str, ...]] = ("mlp", "transformer")

    def check(self) -> None:
        if self.op in NEEDS_PRIME and any(self.p % k == 0 for k in range(2, int(self.p**0.5) + 1)):
            raise SpecError("task.p", f"op {self.op} needs a prime p (a modular inverse), got {self.p}", "use e.g. 97 or 113")

    @property
    def n_examples(self) -> int:
        return self.p * (self.p - 1) if self.op == "div" else self.p * self.p

    def load(self, *, dtype: torch.dtype, sequences: bool = False, with_op: bool = False) -> TaskData:
        from grokgrid.tasks.modular import ModularArithmetic

        # RQI's structure: the embeddings of x + y mod p (only addition has it).
        modulus = self.p if self.op == "add" else False
        return binary_operation_data(ModularArithmetic(self.p, self.op), sequences, with_op, modulus)


def binary_operation_data(source, sequences: bool, with_op: bool, modulus: int | bool) -> TaskData:
    """TaskData of a binary-operation table (modular.ModularArithmetic, permutations.PermutationGroup)."""
    pairs = source.inputs()
    inputs = source.sequences(with_op) if sequences else pairs
    n_vocab = source.n_vocab(with_op) if sequences else None
    return TaskData(inputs, source.targets(), source.n_classes, source.n_tokens, n_vocab, pairs, source.commutative, modulus)
