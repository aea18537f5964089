"""The spec of the small-MNIST task (digits.py): scikit-learn's 1797 8x8 digits."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from grokgrid.spec_kinds import parameter, tag
from grokgrid.tasks.spec_base import LOSSES, TaskData, TaskSpec

if TYPE_CHECKING:
    import torch

N_DIGITS = 1797  # len(sklearn.datasets.load_digits().target), known without importing sklearn


@dataclass(frozen=True)
class DigitsSpec(TaskSpec):
    """loss mse regresses onto one-hot templates (Omnigrok)."""

    name: str = tag("digits")
    loss: str = parameter("mse", choices=LOSSES)

    models: ClassVar[tuple[str, ...]] = ("mlp",)

    @property
    def n_examples(self) -> int:
        return N_DIGITS

    def load(self, *, dtype: torch.dtype, sequences: bool = False, with_op: bool = False) -> TaskData:
        from grokgrid.tasks.digits import Digits

        digits = Digits()
        return TaskData(digits.inputs(dtype), digits.targets(), digits.n_classes, None, None, None, False, False)
