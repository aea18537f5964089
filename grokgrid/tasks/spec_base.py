"""The task section of a spec, torch-free: the base of every task's spec class, and TaskData.

Each task's spec (a frozen dataclass tagged by ``name``, see spec_kinds.Kind) lives in
``<family>_spec.py`` beside the task's implementation and is listed in ``grokgrid.tasks.TASKS``.
It knows its parameters and their defaults and checks, how many examples it has, which models
read its inputs, and how to build its tensors (``load``, which imports torch only when called).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Sequence

from grokgrid.spec_kinds import Kind

if TYPE_CHECKING:
    import torch

# "stablemax": cross-entropy through StableMax instead of softmax (Prieto et al. 2025; interventions.py).
LOSSES = ("mse", "ce", "stablemax")


@dataclass(frozen=True)
class TaskData:
    """A task's tensors, and the facts the progress measures need."""

    inputs: torch.Tensor  # what the model reads: [N, 2] tokens, [N, L] sequences or [N, F] features
    targets: torch.Tensor  # [N] int64 classes, or float targets for regression
    n_classes: int | None  # None: regression (matrix completion)
    n_tokens: int | None  # operand vocabulary (token tasks)
    n_vocab: int | None  # sequence vocabulary (transformer inputs)
    pairs: torch.Tensor | None  # [N, 2] operands, for commutativity
    commutative: bool
    addition_modulus: int | None | bool  # RQI: None = plain sums, int = sums mod p, False = n/a
    tolerance: float | None = None  # regression: |prediction - target| below this counts as correct


@dataclass(frozen=True)
class TaskSpec(Kind):
    """The dataset of a sweep. Subclasses: one per task (``grokgrid.tasks.TASKS``)."""

    section: ClassVar[str] = "task"
    models: ClassVar[tuple[str, ...]] = ()  # the models that read this task's inputs
    # A task without a loss parameter is trained as "mse": plain regression (matrix_completion).
    # sparse_linear's loss defaults to "mse" too (onto one-hot templates) for its older runs.
    loss = "mse"

    @property
    def n_examples(self) -> int:
        """How many examples (train + validation) the task has, without building them."""
        raise NotImplementedError

    def located(self) -> TaskSpec:
        """This task as a sweep started here trains it: a task that reads files fixes where they
        are (mnist: a relative root made absolute). Called when a sweep starts, never when a
        finished one is read; the tasks that build their data return themselves."""
        return self

    def check_available(self) -> None:
        """Raise a SpecError when the task's files are missing or unreadable on this machine:
        called before a sweep writes anything (folder.ready_to_train), never when a finished
        sweep is read, so its results open on a machine without the files. Most tasks have none."""

    def split_mask(self, n_examples: int, fraction: float, seed: int) -> torch.Tensor:
        """A run's training examples (boolean mask): round(fraction * n) of them, by its seed."""
        from grokgrid.seeding import split_mask

        return split_mask(n_examples, fraction, seed)

    def check_splits(self, fractions: Sequence[float], seeds: Sequence[int]) -> None:
        """Raise a SpecError when some (training fraction, seed) of the grid has no split this
        task accepts; called while a spec is read. Every split is accepted unless a task says."""

    def ideal_accuracy(self, fraction: float, seed: int) -> float | None:
        """The share of the validation examples that the (fraction, seed) split's training
        examples determine: above it a run gets only by luck. None where the task cannot tell,
        as most cannot (toy_addition can: Liu et al.'s ideal accuracy)."""
        return None

    def capped_splits(self, fractions: Sequence[float], seeds: Sequence[int], threshold: float) -> int | None:
        """How many of the grid's (training fraction, seed) splits determine fewer than
        ``threshold`` of their validation examples (so their runs cannot reach that val accuracy
        but by luck); None where the task cannot tell."""
        ideal = [self.ideal_accuracy(f, s) for f in fractions for s in seeds]
        return None if None in ideal else sum(a < threshold for a in ideal)

    def load(self, *, dtype: torch.dtype, sequences: bool = False, with_op: bool = False) -> TaskData:
        """The task's tensors; ``sequences``: transformer token sequences (``with_op``: with the
        op token). Float inputs and regression targets are in ``dtype``."""
        raise NotImplementedError

    def templates(self, data: TaskData, seeds: Sequence[int], dtype: torch.dtype) -> torch.Tensor | None:
        """Regression targets per class, [runs, classes, dim]: one-hot (Omnigrok's MSE on MNIST)
        for an mse task with classes; None for cross-entropy or plain regression."""
        if self.loss != "mse" or data.n_classes is None:
            return None
        import torch

        return torch.eye(data.n_classes, dtype=dtype).expand(len(seeds), -1, -1).clone()
