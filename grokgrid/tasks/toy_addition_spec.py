"""The spec of Liu et al.'s toy task (toy_addition.py): pairs i <= j < p, answer i + j."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Sequence

from grokgrid.spec_kinds import parameter, tag
from grokgrid.tasks.spec_base import LOSSES, TaskData, TaskSpec

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class ToyAdditionSpec(TaskSpec):
    """loss mse regresses onto a random ``template_dim``-d template per class, as Liu."""

    name: str = tag("toy_addition")
    p: int = parameter(10, minimum=2)
    loss: str = parameter("mse", choices=LOSSES)
    template_dim: int = parameter(30, minimum=1)

    models: ClassVar[tuple[str, ...]] = ("toy", "mlp")

    @property
    def n_examples(self) -> int:
        return self.p * (self.p + 1) // 2

    def load(self, *, dtype: torch.dtype, sequences: bool = False, with_op: bool = False) -> TaskData:
        import torch

        from grokgrid.tasks.toy_addition import ToyAddition

        toy = ToyAddition(self.p)
        pairs = torch.stack(toy.pairs(), dim=1)
        # Only i <= j is an example (and E_i + E_j is symmetric anyway): commutativity is n/a.
        return TaskData(pairs, toy.targets(), toy.n_classes, toy.n_tokens, None, pairs, False, None)

    def templates(self, data: TaskData, seeds: Sequence[int], dtype: torch.dtype) -> torch.Tensor | None:
        """Liu's random templates, one set per run (drawn from the run's seed)."""
        if self.loss != "mse":
            return None
        import torch

        from grokgrid.tasks.toy_addition import ToyAddition

        toy = ToyAddition(self.p)
        return torch.stack([toy.templates(self.template_dim, seed, dtype) for seed in seeds])
