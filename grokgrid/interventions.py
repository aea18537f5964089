"""Grokking interventions, batched over runs (pure torch, no Ray): Grokfast's gradient filters,
Tan & Huang's input perturbation, Prieto et al.'s StableMax loss and orthogonal gradients.

Every tensor here carries the pack's run axis first, and every per-run quantity (a filter's
state, a noise draw, a projection) is computed from run k's slice alone, so a run trains the
same in any pack. Each follows its authors' reference code:

- **Grokfast** (Lee et al. 2024, github ironjr/grokfast ``grokfast.py``): after the backward pass
  and before the optimizer, g <- g + lamb * filtered. ``gradfilter_ema``: the EMA starts at the
  first gradient, then ema = ema * alpha + g * (1 - alpha). ``gradfilter_ma``: the mean of the
  last ``window`` gradients (the current one included), applied only once the window is full
  (``warmup=True``, their default) or from the first step (``warmup=False``). lamb (and alpha)
  are per run: lamb 0 leaves a run's gradients as they were.
- **Perturbation** (Tan & Huang, input/embedding noise): in a training step, the model's
  continuous input x = model.embed(inputs) becomes x + sigma * N(0, 1), then
  model.from_embedded(x); evaluation sees no noise. Run k's noise comes from its own generator
  (``derive_seed(seed, "perturbation")``), one draw per example it trains on in that step, in
  example order, so the draws do not depend on the pack (its padding or its other runs).
- **StableMax** (Prieto et al. 2025, github LucasPrietoAl/grokking-at-the-edge-of-numerical-
  stability ``utils.py``): s(x) = x + 1 for x >= 0, 1 / (1 - x + 1e-30) for x < 0,
  log p = log(s(x) / sum s(x)), computed in float64 as the reference does.
- **Orthogonal gradients** (same paper, ``orthograd.py``): per parameter tensor (per run here),
  g <- g - (w.g / (w.w + 1e-30)) w, then rescaled to g's norm (``g_norm / (|g_orth| + 1e-30)``).
"""

from __future__ import annotations

from typing import Sequence

import torch

from grokgrid.grid import RunConfig
from grokgrid.seeding import derive_seed
from grokgrid.spec import GrokfastSpec, SweepSpec

STABLEMAX_EPS = 1e-30  # the reference's epsilon in s(x) for x < 0
ORTHOGONAL_EPS = 1e-30  # the reference's epsilon in w.w and |g_orth|


def _per_run(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """[K] -> [K, 1, ...] in ``like``'s dtype and device, broadcasting over its other axes."""
    return values.to(dtype=like.dtype, device=like.device).view(-1, *([1] * (like.dim() - 1)))


# ----------------------------------------------------------------------------- StableMax


def stablemax(x: torch.Tensor) -> torch.Tensor:
    """s(x): x + 1 for x >= 0, 1 / (1 - x) for x < 0 (the reference's ``s``, epsilon included)."""
    return torch.where(x < 0, 1 / (1 - x + STABLEMAX_EPS), x + 1)


def log_stablemax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    s = stablemax(x)
    return torch.log(s / torch.sum(s, dim=dim, keepdim=True))


def stablemax_cross_entropy(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """[runs, examples] -log p_target under StableMax, for logits ``outputs`` [runs, examples,
    classes] and ``targets`` [examples] (shared) or [runs, examples]; in float64, as the
    reference (``stablemax_cross_entropy`` casts the logits to float64)."""
    runs, examples, _ = outputs.shape
    index = targets.expand(runs, examples) if targets.dim() == 1 else targets
    logprobs = log_stablemax(outputs.to(torch.float64), dim=-1)
    return -logprobs.gather(-1, index.unsqueeze(-1).to(torch.int64)).squeeze(-1)


# ----------------------------------------------------------------------------- orthogonal gradients


@torch.no_grad()
def orthogonalize_gradients(params: Sequence[torch.Tensor]) -> None:
    """Replace each run's gradient of each parameter tensor by its component orthogonal to that
    run's parameter tensor, rescaled to the gradient's norm (OrthoGrad._orthogonalize_gradients,
    one run's slice taken as the reference's whole tensor)."""
    for p in params:
        if p.grad is None:
            continue
        w = p.reshape(p.shape[0], -1)
        g = p.grad.reshape(p.shape[0], -1)
        w_norm_sq = (w * w).sum(dim=1, keepdim=True) + ORTHOGONAL_EPS
        proj = (w * g).sum(dim=1, keepdim=True) / w_norm_sq
        g_orth = g - proj * w
        g_norm = g.norm(dim=1, keepdim=True)
        g_orth_norm = g_orth.norm(dim=1, keepdim=True) + ORTHOGONAL_EPS
        p.grad.copy_((g_orth * (g_norm / g_orth_norm)).view_as(p.grad))


# ----------------------------------------------------------------------------- Grokfast


class GradFilter:
    """Grokfast's filter state for a pack: per parameter, the EMA [K, ...] or the last ``window``
    gradients [window, K, ...] (a ring), and each run's lamb (and alpha)."""

    def __init__(self, spec: GrokfastSpec, lamb: Sequence[float], alpha: Sequence[float] | None):
        self.kind = spec.filter
        self.window = spec.window
        self.warmup = spec.warmup
        self.lamb = torch.tensor(list(lamb), dtype=torch.float64)
        self.alpha = None if alpha is None else torch.tensor(list(alpha), dtype=torch.float64)
        self.state: list[torch.Tensor | None] = []  # one per parameter, in the order given to apply
        self.filled = 0  # ma: gradients held (at most window); the next goes to filled % window
        self.appended = 0  # ma: gradients seen

    @torch.no_grad()
    def apply(self, params: Sequence[torch.Tensor]) -> None:
        """g <- g + lamb * filtered, for every parameter with a gradient (called once a step)."""
        if not self.state:
            self.state = [None] * len(params)
        if self.kind == "ma":
            self._apply_ma(params)
        else:
            self._apply_ema(params)

    def _apply_ema(self, params: Sequence[torch.Tensor]) -> None:
        for i, p in enumerate(params):
            if p.grad is None:
                continue
            g = p.grad
            # The reference starts the EMA at the first gradient, then updates it: ema_1 = g_1.
            ema = g.clone() if self.state[i] is None else self.state[i]
            alpha = _per_run(self.alpha, g)
            one_minus_alpha = _per_run(1 - self.alpha, g)  # in float64 first, as the reference's Python float
            self.state[i] = ema * alpha + g * one_minus_alpha
            p.grad = g + self.state[i] * _per_run(self.lamb, g)

    def _apply_ma(self, params: Sequence[torch.Tensor]) -> None:
        slot = self.appended % self.window
        self.appended += 1
        self.filled = min(self.filled + 1, self.window)
        for i, p in enumerate(params):
            if p.grad is None:
                continue
            g = p.grad
            if self.state[i] is None:
                self.state[i] = torch.zeros((self.window, *g.shape), dtype=g.dtype, device=g.device)
            self.state[i][slot] = g
            if not self.warmup or self.filled == self.window:
                # Before the ring is full it holds the gradients in slots 0..filled-1.
                avg = self.state[i][: self.filled].sum(dim=0) / self.filled
                p.grad = g + avg * _per_run(self.lamb, g)

    def keep_runs(self, index: torch.Tensor) -> None:
        """Keep the runs at ``index`` (the pack shrank)."""
        axis = 1 if self.kind == "ma" else 0
        self.state = [None if s is None else s.index_select(axis, index.to(s.device)) for s in self.state]
        self.lamb = self.lamb.index_select(0, index.cpu())
        if self.alpha is not None:
            self.alpha = self.alpha.index_select(0, index.cpu())

    def state_dict(self) -> dict:
        return {"state": [None if s is None else s.clone() for s in self.state],
                "filled": self.filled, "appended": self.appended}

    def load_state_dict(self, data: dict, like: Sequence[torch.Tensor]) -> None:
        self.state = [None if s is None else s.to(device=p.device, dtype=p.dtype) for s, p in zip(data["state"], like, strict=True)]
        self.filled, self.appended = int(data["filled"]), int(data["appended"])


# ----------------------------------------------------------------------------- perturbation


class Perturbation:
    """Gaussian noise on the continuous input of training steps, per run: sigma_k and a
    generator seeded by ``derive_seed(seed_k, "perturbation")``."""

    def __init__(self, sigma: Sequence[float], seeds: Sequence[int]):
        self.sigma = torch.tensor(list(sigma), dtype=torch.float64)
        self.generators = [torch.Generator().manual_seed(derive_seed(seed, "perturbation")) for seed in seeds]

    def noise(self, embedded: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """[K, M, ...] noise for ``embedded`` [K, M, ...]: run k draws one N(0, 1) sample of an
        example's shape for each of the examples ``mask[k]`` [M] selects, in order (drawn in
        float64 on the CPU, times sigma_k, then cast); the others (padding, other runs'
        examples) get none, as they enter no loss of run k."""
        shape = tuple(embedded.shape[2:])
        noise = torch.zeros(embedded.shape, dtype=torch.float64)
        cpu_mask = mask.cpu()
        for run, generator in enumerate(self.generators):
            count = int(cpu_mask[run].sum())
            draws = torch.randn((count, *shape), generator=generator, dtype=torch.float64)
            noise[run, cpu_mask[run]] = draws * float(self.sigma[run])
        return noise.to(dtype=embedded.dtype, device=embedded.device)

    def forward(self, model: torch.nn.Module, inputs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The model's outputs on its perturbed continuous input (a training step's forward)."""
        embedded = model.embed(inputs)
        return model.from_embedded(embedded + self.noise(embedded, mask))

    def keep_runs(self, keep: Sequence[bool]) -> None:
        self.sigma = self.sigma[torch.tensor(list(keep), dtype=torch.bool)]
        self.generators = [g for g, k in zip(self.generators, keep) if k]

    def state_dict(self) -> dict:
        return {"rng": [g.get_state() for g in self.generators]}

    def load_state_dict(self, data: dict) -> None:
        for generator, saved in zip(self.generators, data["rng"], strict=True):
            generator.set_state(saved)


# ----------------------------------------------------------------------------- a pack's interventions


class Interventions:
    """What a pack's training step does beyond the plain loss and update, built from the spec
    and its runs: a Grokfast filter, a perturbation, orthogonal gradients, StableMax."""

    def __init__(self, spec: SweepSpec, runs: Sequence[RunConfig]):
        training = spec.training
        self.stablemax = spec.task.loss == "stablemax"
        self.orthogonal = training.orthogonal_gradients
        self.grokfast = None
        if training.grokfast is not None:
            g = training.grokfast
            # A run's strength: its value of the grid axis, else the spec's.
            lamb = [r.value("training.grokfast.lamb", g.lamb) for r in runs]
            alpha = None if g.filter != "ema" else [r.value("training.grokfast.alpha", g.alpha) for r in runs]
            self.grokfast = GradFilter(g, lamb, alpha)
        self.perturbation = None
        if training.perturbation is not None:
            sigma = [r.value("training.perturbation.sigma", training.perturbation.sigma) for r in runs]
            self.perturbation = Perturbation(sigma, [r.seed for r in runs])

    def forward(self, model: torch.nn.Module, inputs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """A training step's outputs (perturbed when the spec has a perturbation)."""
        if self.perturbation is None:
            return model(inputs)
        return self.perturbation.forward(model, inputs, mask)

    def before_step(self, params: Sequence[torch.Tensor]) -> None:
        """Grokfast, then the orthogonal projection (the reference's order: the filter runs
        before optimizer.step, OrthoGrad inside it)."""
        if self.grokfast is not None:
            self.grokfast.apply(params)
        if self.orthogonal:
            orthogonalize_gradients(params)

    def keep_runs(self, keep: Sequence[bool], index: torch.Tensor) -> None:
        if self.grokfast is not None:
            self.grokfast.keep_runs(index)
        if self.perturbation is not None:
            self.perturbation.keep_runs(keep)

    def state_dict(self) -> dict:
        data = {}
        if self.grokfast is not None:
            data["grokfast"] = self.grokfast.state_dict()
        if self.perturbation is not None:
            data["perturbation"] = self.perturbation.state_dict()
        return data

    def load_state_dict(self, data: dict, params: Sequence[torch.Tensor]) -> None:
        if self.grokfast is not None:
            self.grokfast.load_state_dict(data["grokfast"], params)
        if self.perturbation is not None:
            self.perturbation.load_state_dict(data["perturbation"])
