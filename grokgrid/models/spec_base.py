"""The model section of a spec, torch-free: the base of every model's spec class.

Each model's spec (a frozen dataclass tagged by ``name``, see spec_kinds.Kind) lives in
``<model>_spec.py`` beside the model's implementation and is listed in
``grokgrid.models.MODELS``. It knows its parameters, defaults and checks, the form of the task's
inputs it reads, and how to build the model (``build``, which imports torch only when called).
Only the standard library is imported here: spec.py, and so status/classify/report, load it
without torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Sequence

from grokgrid import spec_checks as check
from grokgrid.spec_kinds import Kind

if TYPE_CHECKING:
    import torch

    from grokgrid.models.base import BatchedModel
    from grokgrid.tasks import TaskData

# The activations a spec may name; models/base.py maps each to its torch function.
ACTIVATION_NAMES = ("tanh", "relu", "gelu", "silu")


def layer_widths(where: str, value: Any) -> tuple[int, ...]:
    """A list of hidden-layer widths, each >= 1 (``model.hidden``)."""
    if not isinstance(value, (list, tuple)):
        raise check.SpecError(where, f"expected a list of layer widths, got {value!r}", "write e.g. [200, 200]")
    widths = tuple(check.integer(f"{where}[{i}]", w) for i, w in enumerate(value))
    for i, w in enumerate(widths):
        check.at_least(f"{where}[{i}]", w, 1)
    return widths


@dataclass(frozen=True)
class ModelSpec(Kind):
    """The network of a sweep. Subclasses: one per model (``grokgrid.models.MODELS``)."""

    section: ClassVar[str] = "model"
    # Whether the network sees two operands only through the sum of their embeddings (Liu's toy
    # model): then a pair the training pairs do not determine (TaskSpec.ideal_accuracy) can be
    # right only by luck, and grokgrid says so (driver.split_note, api._with_capped_splits).
    sums_operands: ClassVar[bool] = False

    def task_inputs(self) -> dict[str, bool]:
        """How the model reads the task (the keywords of TaskSpec.load): operand pairs or features
        by default; a transformer reads token sequences."""
        return {"sequences": False, "with_op": False}

    def build(self, data: TaskData, out_dim: int, seeds: Sequence[int], init_scales: Sequence[float],
              dtype: torch.dtype) -> BatchedModel:
        """The model for the runs ``seeds`` / ``init_scales`` (a leading run axis), reading ``data``."""
        raise NotImplementedError
