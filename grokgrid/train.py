"""The training loop for a pack of runs, batched over a leading run axis (pure torch, no Ray).

``run_pack`` trains every run of a pack together, full batch, and yields the metric rows of
each logged step as it goes; the caller (trainable.py, or a test) decides where rows go. A run
whose loss turns NaN/inf is logged once more and then leaves the pack's active set: the rest of
the pack goes on.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Iterator, Sequence

import torch

from grokgrid import metrics
from grokgrid.grid import RunConfig
from grokgrid.models import ToyModel
from grokgrid.optim import BatchedAdamW, ParamGroup
from grokgrid.spec import SweepSpec
from grokgrid.tasks import ToyAddition, split_mask

DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass
class PackState:
    """Everything a pack's training needs, built once from the spec and its runs."""

    runs: tuple[RunConfig, ...]
    model: ToyModel
    optimizer: BatchedAdamW
    left: torch.Tensor
    right: torch.Tensor
    targets: torch.Tensor
    train_mask: torch.Tensor  # [runs, examples]
    templates: torch.Tensor | None  # [runs, classes, dim] for mse, else None


def build_pack(spec: SweepSpec, runs: Sequence[RunConfig], device: str | torch.device = "cpu") -> PackState:
    dtype = DTYPES[spec.training.precision]
    task = ToyAddition(p=spec.task.p)
    left, right = task.pairs()
    targets = task.targets()
    out_dim = spec.task.template_dim if spec.task.loss == "mse" else task.n_classes
    model = ToyModel(
        n_tokens=task.n_tokens,
        embed_dim=spec.model.embed_dim,
        hidden=spec.model.hidden,
        out_dim=out_dim,
        activation=spec.model.activation,
        seeds=[r.seed for r in runs],
        init_scales=[r.init_scale for r in runs],
        dtype=dtype,
    ).to(device)

    def per_run(name: str) -> list[float]:
        return [getattr(r, name) for r in runs]

    optimizer = BatchedAdamW(
        [
            ParamGroup(model.representation_parameters(), per_run("repr_lr"), per_run("repr_wd")),
            ParamGroup(model.decoder_parameters(), per_run("decoder_lr"), per_run("decoder_wd")),
        ],
        betas=spec.training.betas,
        eps=spec.training.eps,
    )
    n = len(targets)
    train_mask = torch.stack([split_mask(n, r.train_fraction, r.seed) for r in runs]).to(device)
    templates = None
    if spec.task.loss == "mse":
        templates = torch.stack([task.templates(spec.task.template_dim, r.seed, dtype) for r in runs]).to(device)
    return PackState(
        runs=tuple(runs),
        model=model,
        optimizer=optimizer,
        left=left.to(device),
        right=right.to(device),
        targets=targets.to(device),
        train_mask=train_mask,
        templates=templates,
    )


def train_step(state: PackState, active: torch.Tensor) -> None:
    """One full-batch update of every active run (inactive runs get no gradient)."""
    state.optimizer.zero_grad()
    outputs = state.model(state.left, state.right)
    train_loss = metrics.masked_mean(metrics.per_example_loss(outputs, state.targets, state.templates), state.train_mask)
    # Runs share no parameters, so summing their losses gives each run its own gradient.
    # where(), not multiplication: a diverged run's NaN * 0 would still be NaN.
    torch.where(active, train_loss, torch.zeros_like(train_loss)).sum().backward()
    state.optimizer.step()


@torch.no_grad()
def evaluate(state: PackState) -> dict[str, torch.Tensor]:
    """Per-run train/val loss and accuracy and the weight norm at the current parameters."""
    outputs = state.model(state.left, state.right)
    losses = metrics.per_example_loss(outputs, state.targets, state.templates)
    correct = (metrics.predictions(outputs, state.templates) == state.targets).to(losses.dtype)
    val_mask = ~state.train_mask
    return {
        "train_loss": metrics.masked_mean(losses, state.train_mask),
        "val_loss": metrics.masked_mean(losses, val_mask),
        "train_acc": metrics.masked_mean(correct, state.train_mask),
        "val_acc": metrics.masked_mean(correct, val_mask),
        "weight_norm": metrics.weight_norm(state.model.parameters()),
    }


def eval_steps(total_steps: int, every: int) -> list[int]:
    """Logged steps: 0, every, 2*every, ... and always the last step."""
    steps = list(range(0, total_steps + 1, every))
    if steps[-1] != total_steps:
        steps.append(total_steps)
    return steps


def run_pack(spec: SweepSpec, runs: Sequence[RunConfig], device: str | torch.device = "cpu") -> Iterator[list[dict]]:
    """Train the pack; yield the rows (one dict per active run) of every logged step.

    Step s's row describes the parameters after s updates (step 0: at initialisation).
    """
    state = build_pack(spec, runs, device)
    logged = set(eval_steps(spec.training.steps, spec.training.eval_every))
    active = torch.ones(len(runs), dtype=torch.bool, device=device)
    started = time.perf_counter()
    for step in range(spec.training.steps + 1):
        if step in logged:
            values = {k: v.tolist() for k, v in evaluate(state).items()}
            elapsed = time.perf_counter() - started
            rows = [
                {"run_id": run.run_id, "step": step, **{k: v[i] for k, v in values.items()}, "elapsed_s": elapsed}
                for i, run in enumerate(runs)
                if active[i]
            ]
            yield rows
            finite = torch.isfinite(torch.tensor(values["train_loss"])) & torch.isfinite(torch.tensor(values["val_loss"]))
            active &= finite.to(device)
            if not active.any():
                return
        if step < spec.training.steps:
            train_step(state, active)


def configure_worker(threads: int) -> torch.device:
    """Set torch's CPU threads (one per CPU of the trial: more would oversubscribe the node) and
    pick the device: the trial's GPU when Ray assigned one, else the CPU."""
    torch.set_num_threads(max(1, threads))
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
