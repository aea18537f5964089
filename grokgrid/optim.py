"""AdamW batched over runs: per-run learning rate and weight decay as tensors.

torch.optim.AdamW takes one scalar lr per parameter group, but a pack trains K runs whose lrs
and weight decays differ, through parameters with a leading run axis. This optimizer does
torch.optim.AdamW's update (decoupled decay, bias-corrected moments) with lr and wd broadcast
along that axis; in float64 it matches torch.optim.AdamW run by run (tests/test_train.py).

Two ways to compute the same update (``fused``): by default as foreach passes over whole pack
tensors, each run's lr broadcast along the run axis (about ten passes over a pack's parameters
and moments a step); fused, as torch's fused Adam(W) kernels (one pass reading the parameter,
gradient and moments and writing them back), called once per distinct (lr, weight decay) with
each run's slices, since those kernels take one scalar lr. On a CPU the fused way takes about
half the optimizer's time (bench/step.py); its float32 results differ from the default's in the
last bits (the kernels order their arithmetic differently), so it is a spec option
(``training.fused_optimizer``) and off by default: sweeps made before it keep their numbers.
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
        fused: bool = False,
    ):
        if kind not in ("adamw", "adam", "sgd"):
            raise ValueError(f"unknown optimizer {kind!r}")
        self.kind = kind
        # SGD has a single pass already (p -= lr * (grad + wd * p)); only Adam(W) has a fused way.
        self.fused = fused and kind != "sgd"
        self.warmup_steps = warmup_steps
        self.groups = list(groups)
        self.beta1, self.beta2 = betas
        self.eps = eps
        self.step_count = 0
        self.state: dict[torch.nn.Parameter, tuple[torch.Tensor, torch.Tensor]] = {}
        self._rate_cache: dict[tuple, tuple[torch.Tensor, ...]] = {}
        self._runs_by_rate_cache: dict[int, tuple] = {}
        for group in self.groups:
            for p in group.params:
                self.state[p] = (torch.zeros_like(p), torch.zeros_like(p))

    @staticmethod
    def _per_run(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """[runs] -> [runs, 1, 1, ...] so that it broadcasts over a parameter's other axes."""
        return values.to(like.dtype).view(-1, *([1] * (like.dim() - 1)))

    def _rates(self, group: ParamGroup, p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(lr, decay, 1 - lr * decay) cast and shaped for ``p``, without warm-up: computed once
        per group, dtype and rank (the same values as computing them every step, without the
        casts and small ops that cost a tiny model's step more than its arithmetic)."""
        key = (id(group), p.dtype, p.device, p.dim())
        cached = self._rate_cache.get(key)
        if cached is None or cached[0] is not group.lr or cached[1] is not group.weight_decay:
            lr, decay = self._per_run(group.lr, p), self._per_run(group.weight_decay, p)
            cached = (group.lr, group.weight_decay, lr, decay, 1 - lr * decay)
            self._rate_cache[key] = cached
        return cached[2:]

    @torch.no_grad()
    def step(self) -> None:
        self.step_count += 1
        bias_correction1 = 1 - self.beta1**self.step_count
        bias_correction2_sqrt = math.sqrt(1 - self.beta2**self.step_count)
        # Linear warm-up: step t (from 1) uses lr * min(1, t / warmup_steps), decay included,
        # as a LambdaLR schedule on torch.optim would.
        warmup = min(1.0, self.step_count / self.warmup_steps) if self.warmup_steps else 1.0
        if self.fused:
            self._fused_step(warmup)
            return
        params, grads, lrs = [], [], []
        for group in self.groups:
            for p in group.params:
                if p.grad is None:
                    continue
                lr, decay, shrink = self._rates(group, p)
                if warmup != 1.0:
                    lr = lr * warmup
                    shrink = 1 - lr * decay
                grad = p.grad
                if self.kind == "adamw":
                    p.mul_(shrink)
                else:  # L2 penalty through the gradient, as torch.optim.Adam / SGD do
                    grad = grad.add(p * decay)
                if self.kind == "sgd":
                    p.sub_(lr * grad)
                    continue
                params.append(p)
                grads.append(grad)
                lrs.append(lr)
        if not params:
            return
        # The same arithmetic as torch.optim.AdamW, tensor by tensor, as foreach calls (one call
        # for all of a pack's parameters instead of one per tensor), in one temporary buffer
        # per tensor: these tensors are a pack's largest, and allocating four per step cost a
        # third of a step.
        exp_avgs = [self.state[p][0] for p in params]
        exp_avg_sqs = [self.state[p][1] for p in params]
        torch._foreach_lerp_(exp_avgs, grads, 1 - self.beta1)
        torch._foreach_mul_(exp_avg_sqs, self.beta2)
        torch._foreach_addcmul_(exp_avg_sqs, grads, grads, value=1 - self.beta2)
        updates = torch._foreach_sqrt(exp_avg_sqs)
        torch._foreach_div_(updates, bias_correction2_sqrt)
        torch._foreach_add_(updates, self.eps)
        for exp_avg, update in zip(exp_avgs, updates):
            torch.div(exp_avg, update, out=update)
        torch._foreach_mul_(updates, [lr / bias_correction1 for lr in lrs])
        torch._foreach_sub_(params, updates)

    def _runs_by_rate(self, group: ParamGroup) -> list[tuple[float, float, list[int]]]:
        """The group's runs gathered by their (lr, weight decay): one fused call each. Cached
        until the group's rates are replaced (a stage's rates, a shrinking pack)."""
        cached = self._runs_by_rate_cache.get(id(group))
        if cached is None or cached[0] is not group.lr or cached[1] is not group.weight_decay:
            runs: dict[tuple[float, float], list[int]] = {}
            for k, rate in enumerate(zip(group.lr.tolist(), group.weight_decay.tolist())):
                runs.setdefault(rate, []).append(k)
            cached = (group.lr, group.weight_decay, [(lr, wd, ks) for (lr, wd), ks in runs.items()])
            self._runs_by_rate_cache[id(group)] = cached
        return cached[2]

    def _fused_step(self, warmup: float) -> None:
        """The update through torch's fused kernels, on each run's slices (``fused``)."""
        kernel = torch._fused_adamw_ if self.kind == "adamw" else torch._fused_adam_
        for group in self.groups:
            params = [p for p in group.params if p.grad is not None]
            if not params:
                continue
            # The kernels read the step (for the bias corrections) from a tensor per parameter,
            # on its device; one serves every slice, as it only counts this optimizer's steps.
            step = torch.tensor(float(self.step_count), dtype=torch.float32, device=params[0].device)
            # One view per run of each tensor: unbind is one call per tensor, not one per slice.
            per_run = [
                (p.unbind(0), p.grad.contiguous().unbind(0), self.state[p][0].unbind(0), self.state[p][1].unbind(0))
                for p in params
            ]
            for lr, decay, runs in self._runs_by_rate(group):
                slices = [[views[i][k] for views in per_run for k in runs] for i in range(4)]
                kernel(*slices, [], [step] * len(slices[0]), lr=lr * warmup, beta1=self.beta1, beta2=self.beta2,
                       weight_decay=decay, eps=self.eps, amsgrad=False, maximize=False)

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
