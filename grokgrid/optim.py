"""AdamW batched over runs: per-run learning rate and weight decay as tensors.

torch.optim.AdamW takes one scalar lr per parameter group, but a pack trains K runs whose lrs
and weight decays differ, through parameters with a leading run axis. This optimizer does
torch.optim.AdamW's update (decoupled decay, bias-corrected moments) with lr and wd broadcast
along that axis; in float64 it matches torch.optim.AdamW run by run (tests/test_optim.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch


@dataclass
class ParamGroup:
    """Parameters with a leading run axis, and one lr and one weight decay per run."""

    params: Sequence[torch.nn.Parameter]
    lr: Sequence[float]
    weight_decay: Sequence[float]

    def __post_init__(self) -> None:
        # Kept in float64 and cast per parameter at use: a float32 copy of lr=0.3 is not 0.3,
        # which would already break equality with torch.optim.AdamW on float64 runs.
        device = self.params[0].device if self.params else None
        self.lr = torch.as_tensor(self.lr, dtype=torch.float64, device=device)
        self.weight_decay = torch.as_tensor(self.weight_decay, dtype=torch.float64, device=device)


class BatchedAdamW:
    """AdamW (``kind="adamw"``), Adam with L2 weight decay (``"adam"``, torch.optim.Adam) or plain
    gradient descent with L2 weight decay (``"sgd"``, torch.optim.SGD without momentum)."""

    def __init__(
        self,
        groups: Sequence[ParamGroup],
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        kind: str = "adamw",
        warmup_steps: int = 0,
    ):
        if kind not in ("adamw", "adam", "sgd"):
            raise ValueError(f"unknown optimizer {kind!r}")
        self.kind = kind
        self.warmup_steps = warmup_steps
        self.groups = list(groups)
        self.beta1, self.beta2 = betas
        self.eps = eps
        self.step_count = 0
        self.state: dict[torch.nn.Parameter, tuple[torch.Tensor, torch.Tensor]] = {}
        for group in self.groups:
            for p in group.params:
                self.state[p] = (torch.zeros_like(p), torch.zeros_like(p))

    @staticmethod
    def _per_run(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """[runs] -> [runs, 1, 1, ...] so that it broadcasts over a parameter's other axes."""
        return values.to(like.dtype).view(-1, *([1] * (like.dim() - 1)))

    @torch.no_grad()
    def step(self) -> None:
        self.step_count += 1
        bias_correction1 = 1 - self.beta1**self.step_count
        bias_correction2_sqrt = math.sqrt(1 - self.beta2**self.step_count)
        # Linear warm-up: step t (from 1) uses lr * min(1, t / warmup_steps), decay included,
        # as a LambdaLR schedule on torch.optim would.
        warmup = min(1.0, self.step_count / self.warmup_steps) if self.warmup_steps else 1.0
        for group in self.groups:
            for p in group.params:
                if p.grad is None:
                    continue
                lr = self._per_run(group.lr, p) * warmup if warmup != 1.0 else self._per_run(group.lr, p)
                decay = self._per_run(group.weight_decay, p)
                grad = p.grad
                if self.kind == "adamw":
                    p.mul_(1 - lr * decay)
                else:  # L2 penalty through the gradient, as torch.optim.Adam / SGD do
                    grad = grad.add(p * decay)
                if self.kind == "sgd":
                    p.sub_(lr * grad)
                    continue
                exp_avg, exp_avg_sq = self.state[p]
                exp_avg.lerp_(grad, 1 - self.beta1)
                exp_avg_sq.mul_(self.beta2).addcmul_(grad, grad, value=1 - self.beta2)
                # The same arithmetic as torch.optim.AdamW, in one temporary buffer: these tensors
                # are a pack's largest, and allocating four per step cost a third of a step.
                update = exp_avg_sq.sqrt().div_(bias_correction2_sqrt).add_(self.eps)
                torch.div(exp_avg, update, out=update)
                p.sub_(update.mul_(lr / bias_correction1))

    def keep_runs(self, index: torch.Tensor) -> None:
        """Keep only the runs at ``index`` (the pack shrank); the others' state is dropped."""
        for group in self.groups:
            group.lr = group.lr.index_select(0, index.to(group.lr.device))
            group.weight_decay = group.weight_decay.index_select(0, index.to(group.lr.device))
        for p, (exp_avg, exp_avg_sq) in self.state.items():
            self.state[p] = (exp_avg.index_select(0, index), exp_avg_sq.index_select(0, index))

    def zero_grad(self) -> None:
        for group in self.groups:
            for p in group.params:
                p.grad = None

    def state_dict(self) -> dict:
        params = [p for g in self.groups for p in g.params]
        return {
            "step_count": self.step_count,
            "exp_avg": [self.state[p][0].clone() for p in params],
            "exp_avg_sq": [self.state[p][1].clone() for p in params],
        }

    def load_state_dict(self, data: dict) -> None:
        params = [p for g in self.groups for p in g.params]
        self.step_count = int(data["step_count"])
        for p, m, v in zip(params, data["exp_avg"], data["exp_avg_sq"]):
            self.state[p][0].copy_(m)
            self.state[p][1].copy_(v)
