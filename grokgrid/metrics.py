"""Per-run measurements of a batched model's outputs: loss, accuracy, weight norm.

Every function takes tensors with a leading run axis and returns one value per run, so a pack
of K runs is measured in one call and run k's numbers never depend on the other runs.
"""

from __future__ import annotations

from typing import Iterable

import torch
import torch.nn.functional as F


def per_example_loss(outputs: torch.Tensor, targets: torch.Tensor, templates: torch.Tensor | None) -> torch.Tensor:
    """[runs, examples] losses for ``targets`` [examples] (shared by the runs) or [runs, examples]
    (each run's own examples). With ``templates`` [runs, classes, dim] (Liu's regression): the
    squared error to the target class's template, averaged over its dimensions; without:
    cross-entropy over the output logits."""
    if templates is not None:
        if targets.dim() == 2:  # per-run targets [runs, examples]
            index = targets.unsqueeze(-1).expand(*targets.shape, templates.shape[-1])
            target_vectors = templates.gather(1, index)
        else:
            target_vectors = templates[:, targets]  # [runs, examples, dim]
        return ((outputs - target_vectors) ** 2).mean(dim=-1)
    runs, examples, classes = outputs.shape
    flat_targets = targets.reshape(-1) if targets.dim() == 2 else targets.repeat(runs)
    flat = F.cross_entropy(outputs.reshape(runs * examples, classes), flat_targets, reduction="none")
    return flat.view(runs, examples)


def regression_loss(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """[runs, examples] squared errors of scalar outputs [runs, examples, 1] (matrix completion)."""
    return (outputs[..., 0] - targets) ** 2


def within_tolerance(outputs: torch.Tensor, targets: torch.Tensor, tolerance: float) -> torch.Tensor:
    """[runs, examples] whether a scalar prediction is within ``tolerance`` of its target: the
    accuracy of a regression task, so that the phase rules apply to it too."""
    return (outputs[..., 0] - targets).abs() < tolerance


def predictions(outputs: torch.Tensor, templates: torch.Tensor | None) -> torch.Tensor:
    """[runs, examples] predicted classes: the nearest template, or the largest logit."""
    if templates is not None:
        # One class at a time ([runs, examples, dim] each, then [runs, examples, classes]): the
        # same numbers as broadcasting all classes at once, without a [runs, examples, classes,
        # dim] temporary (hundreds of MB for a pack of 8 at p = 59, far out of cache).
        distances = torch.stack(
            [((outputs - templates[:, c].unsqueeze(1)) ** 2).sum(dim=-1) for c in range(templates.shape[1])], dim=-1
        )
        return distances.argmin(dim=-1)
    return outputs.argmax(dim=-1)


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the examples where ``mask`` [runs, examples] is true, per run."""
    weights = mask.to(values.dtype)
    return (values * weights).sum(dim=-1) / weights.sum(dim=-1)


def weight_norm(parameters: Iterable[torch.Tensor], runs: int | None = None,
                dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu") -> torch.Tensor:
    """[K] l2 norm of all of a run's parameters together, per run (the parameters carry the
    run axis first). An empty group of ``runs`` runs (a model without embeddings has no
    representation parameters) has norm 0: zeros of ``dtype`` on ``device``."""
    squares = [p.detach().pow(2).flatten(start_dim=1).sum(dim=1) for p in parameters]
    if not squares:
        return torch.zeros(runs or 0, dtype=dtype, device=device)
    return torch.stack(squares).sum(dim=0).sqrt()
