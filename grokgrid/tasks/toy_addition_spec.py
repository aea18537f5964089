"""The spec of Liu et al.'s toy task (toy_addition.py): pairs i <= j < p, answer i + j."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Sequence

from grokgrid.spec_checks import SpecError
from grokgrid.spec_kinds import parameter, tag
from grokgrid.tasks.spec_base import LOSSES, TaskData, TaskSpec

if TYPE_CHECKING:
    import torch


SPLITS = ("random", "determined")
# toy_addition's split: determined looks at most this many splits of a seed. Reading a spec,
# one seed per training fraction must find one within CHECKED_ATTEMPTS (so a fraction where
# such splits are rare is refused then, not in a trial); a run then can take up to
# MAX_ATTEMPTS, which never runs out where one in CHECKED_ATTEMPTS splits qualifies.
CHECKED_ATTEMPTS = 1_000
MAX_ATTEMPTS = 100_000


@dataclass(frozen=True)
class ToyAdditionSpec(TaskSpec):
    """loss mse regresses onto a random ``template_dim``-d template per class, as Liu.

    ``split: determined`` trains each run on a split whose training pairs determine every
    validation pair (Liu's ideal accuracy 1, ``ToyAddition.ideal_accuracy``), as the split of
    their Fig. 6 runs does: the seed's first such split (its random split when that one is).
    With ``random`` (the default) a split may cap val accuracy below the phase threshold, and
    then by Liu's effective theory no learning rate generalises it (bench/liu_splits.py).
    """

    name: str = tag("toy_addition")
    p: int = parameter(10, minimum=2)
    loss: str = parameter("mse", choices=LOSSES)
    template_dim: int = parameter(30, minimum=1)
    split: str = parameter("random", choices=SPLITS, added_later=True)

    models: ClassVar[tuple[str, ...]] = ("toy", "mlp")

    @property
    def n_examples(self) -> int:
        return self.p * (self.p + 1) // 2

    def split_mask(self, n_examples: int, fraction: float, seed: int) -> torch.Tensor:
        if self.split == "random":
            return super().split_mask(n_examples, fraction, seed)
        mask = self._determined_split(fraction, seed, MAX_ATTEMPTS)
        if mask is None:
            raise ValueError(f"no split of seed {seed} at train fraction {fraction:g} determines every validation pair "
                             f"in {MAX_ATTEMPTS:,} draws")
        return mask

    def check_splits(self, fractions: Sequence[float], seeds: Sequence[int]) -> None:
        if self.split == "random":
            return
        for i, fraction in enumerate(fractions):
            if self._determined_split(fraction, seeds[0], CHECKED_ATTEMPTS) is None:
                n_train = round(fraction * self.n_examples)
                raise SpecError(f"grid.train_fraction[{i}]",
                                f"split: determined, but no split of {n_train} of the {self.n_examples} pairs (seed {seeds[0]}) "
                                f"determines every validation pair in {CHECKED_ATTEMPTS:,} draws",
                                "use a larger training fraction, or task.split: random")

    def ideal_accuracy(self, fraction: float, seed: int) -> float:
        from grokgrid.tasks.toy_addition import ToyAddition

        return ToyAddition(self.p).ideal_accuracy(self.split_mask(self.n_examples, fraction, seed))

    def _determined_split(self, fraction: float, seed: int, attempts: int) -> torch.Tensor | None:
        from grokgrid.seeding import split_mask
        from grokgrid.tasks.toy_addition import ToyAddition

        toy = ToyAddition(self.p)
        for attempt in range(attempts):
            mask = split_mask(self.n_examples, fraction, seed, attempt)
            if bool(toy.determined(mask)[~mask].all()):
                return mask
        return None

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
