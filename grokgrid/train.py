"""The training loop for a pack of runs, batched over a leading run axis (pure torch, no Ray).

``run_pack`` trains every run of a pack together, full batch, and yields the metric rows of
each logged step as it goes; the caller (trainable.py, or a test) decides where rows go. A run
whose loss turns NaN/inf, or whose phase is decided (early stop), leaves the pack: its slices are
cut out of the batched parameters, so the pack gets cheaper as its runs finish.

Stages (spec ``stages:``, stages.py): at a stage's first update each run's training set is cut
to its subset of the previous stage's and its learning rates and weight decays change (the
optimizer's moments and step count, hence the warm-up, carry on). The validation set stays the
examples outside the first stage's training set. A run's masks and rates in a stage are a pure
function of the run and the stage, so a restored pack recomputes them from its step.

Interventions (interventions.py: Grokfast, input perturbation, StableMax, orthogonal gradients)
hook into a training step: the perturbed forward, the loss, and the gradients between the
backward pass and the update; their per-run state goes into the checkpoint.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import math
import sys
import time
from dataclasses import dataclass
from typing import Iterator, Sequence

import torch

from grokgrid import metrics, stages
from grokgrid.interventions import Interventions, stablemax_cross_entropy
from grokgrid.grid import RunConfig
from grokgrid import progress_measures
from grokgrid.models import token_embedding
from grokgrid.models.base import BatchedModel
from grokgrid.optim import BatchedAdamW, ParamGroup
from grokgrid.schedule import eval_steps, logged_steps  # noqa: F401 - eval_steps: part of train's API
from grokgrid.spec import SweepSpec
from grokgrid.seeding import derive_seed, subset_mask
from grokgrid.tasks import TaskData

DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass
class PackState:
    """Everything a pack's training needs, built once from the spec and its runs."""

    runs: tuple[RunConfig, ...]
    model: BatchedModel
    optimizer: BatchedAdamW
    data: TaskData
    inputs: torch.Tensor
    targets: torch.Tensor
    train_mask: torch.Tensor  # [runs, examples]: the current stage's training examples
    val_mask: torch.Tensor  # [runs, examples]: outside the first stage's training set, in every stage
    templates: torch.Tensor | None  # [runs, classes, dim] for mse, else None
    ce: bool  # classification by logits (cross-entropy) rather than template regression
    batch_size: int | None = None  # None: full batch
    batch_generators: list[torch.Generator] | None = None  # one per run: its batches depend on it alone
    step_cache: tuple | None = None  # (train_mask, inputs, targets, mask) of the full-batch step (step_examples)
    spec: SweepSpec | None = None  # for the stages' masks and rates (enter_stage)
    stage: int = 0  # the stage whose training set and rates are in place
    group_kinds: tuple[str, ...] = ()  # "repr" / "decoder" per optimizer group, for a stage's rates
    interventions: Interventions | None = None  # Grokfast, perturbation, ⊥Grad, StableMax (none: plain training)
    params: tuple[torch.nn.Parameter, ...] = ()  # the model's parameters, in a fixed order (the filters' state follows it)


# Perturbed entropy looks at this many examples (a fixed subset): its Gram matrix is n x n.
ENTROPY_EXAMPLES = 256


def build_pack(spec: SweepSpec, runs: Sequence[RunConfig], device: str | torch.device = "cpu") -> PackState:
    dtype = DTYPES[spec.training.precision]
    data = spec.task.load(dtype=dtype, **spec.model.task_inputs())
    seeds = [r.seed for r in runs]
    templates = spec.task.templates(data, seeds, dtype)  # None: cross-entropy, or plain regression
    out_dim = templates.shape[-1] if templates is not None else (data.n_classes or 1)
    model = spec.model.build(data, out_dim, seeds, [r.init_scale for r in runs], dtype).to(device)

    def per_run(name: str) -> list[float]:
        return [getattr(r, name) for r in runs]

    groups = {
        "repr": ParamGroup(model.representation_parameters(), per_run("repr_lr"), per_run("repr_wd")),
        "decoder": ParamGroup(model.decoder_parameters(), per_run("decoder_lr"), per_run("decoder_wd")),
    }
    kinds = tuple(kind for kind, g in groups.items() if g.params)
    optimizer = BatchedAdamW(
        [groups[kind] for kind in kinds],
        betas=spec.training.betas,
        eps=spec.training.eps,
        kind=spec.training.optimizer,
        warmup_steps=spec.training.warmup_steps,
        fused=spec.training.fused_optimizer,
    )
    n = len(data.targets)
    train_mask = torch.stack([spec.task.split_mask(n, r.train_fraction, r.seed) for r in runs]).to(device)
    return PackState(
        runs=tuple(runs),
        model=model,
        optimizer=optimizer,
        data=data,
        inputs=data.inputs.to(device),
        targets=data.targets.to(device),
        train_mask=train_mask,
        val_mask=~train_mask,
        templates=None if templates is None else templates.to(device),
        ce=templates is None and data.n_classes is not None,
        batch_size=spec.training.batch_size,
        batch_generators=None if spec.training.batch_size is None else [
            torch.Generator().manual_seed(derive_seed(r.seed, "batches")) for r in runs
        ],
        spec=spec,
        group_kinds=kinds,
        interventions=Interventions(spec, runs),
        params=tuple(model.parameters()),
    )


def stage_train_mask(spec: SweepSpec, run: RunConfig, n_examples: int, stage: int) -> torch.Tensor:
    """A run's training examples in ``stage``: its split, then each later stage's subset of the
    stage before (drawn by a seed of the run's seed and that stage's name)."""
    mask = spec.task.split_mask(n_examples, run.train_fraction, run.seed)
    subsets = stages.run_values(spec, run, stage).subsets
    for spec_stage, subset in zip(spec.stages, subsets):
        mask = subset_mask(mask, subset, run.seed, spec_stage.name)
    return mask


def enter_stage(state: PackState, stage: int) -> None:
    """Put ``stage``'s training sets and rates in place for every run still in the pack (a no-op
    when they are). The optimizer's moments and step count stay: only lr and weight decay change."""
    if stage == state.stage:
        return
    spec, n = state.spec, state.train_mask.shape[1]
    device = state.train_mask.device
    state.train_mask = torch.stack([stage_train_mask(spec, r, n, stage) for r in state.runs]).to(device)
    values = [stages.run_values(spec, r, stage) for r in state.runs]
    for kind, group in zip(state.group_kinds, state.optimizer.groups):
        # New tensors (not in-place): the optimizer's rate cache keys on the tensors themselves.
        group.lr = torch.tensor([getattr(v, f"{kind}_lr") for v in values], dtype=torch.float64, device=group.lr.device)
        group.weight_decay = torch.tensor([getattr(v, f"{kind}_wd") for v in values], dtype=torch.float64,
                                          device=group.weight_decay.device)
    state.stage = stage


def batch_mask(state: PackState) -> torch.Tensor:
    """[runs, examples]: this step's examples of each run. Full batch: its whole train set; else
    ``batch_size`` of its train examples drawn without replacement from its own generator.

    Every run still computes on all examples (the pack shares one forward); the mask decides what
    enters its loss, so a run's batches, like its results, depend only on its own seed.
    """
    if state.batch_size is None:
        return state.train_mask
    mask = torch.zeros_like(state.train_mask)
    for run, generator in enumerate(state.batch_generators):
        members = state.train_mask[run].nonzero().squeeze(1)
        chosen = torch.randperm(len(members), generator=generator)[: state.batch_size]
        mask[run, members[chosen.to(members.device)]] = True
    return mask


def per_example_loss(state: PackState, outputs: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
    targets = state.targets if targets is None else targets
    if state.data.n_classes is None:
        return metrics.regression_loss(outputs, targets)
    if state.interventions is not None and state.interventions.stablemax:
        return stablemax_cross_entropy(outputs, targets)
    return metrics.per_example_loss(outputs, targets, state.templates)


def step_examples(state: PackState, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(inputs, targets, mask) of this step's forward pass: only the examples that enter a loss.

    The others get weight 0 in every run's mean, so leaving them out changes no gradient, only
    the cost: with a 40% train fraction a full-batch step did 2.5x the work it needs.

    - Every run uses the same examples (one seed and train fraction, the usual full-batch pack):
      those examples, shared ([M, ...] inputs, [M] targets, mask [K, M]).
    - Runs differ and the model takes per-run inputs (``per_run_inputs``: MLP, toy model, transformer): each
      run's own examples, in order, padded to the largest count with weight-0 examples
      ([K, M, ...] inputs, [K, M] targets), so a pack costs what its runs cost alone.
    - Otherwise: every example some run uses (shared).

    A full-batch selection is cached until the pack's train mask changes.
    """
    cached = state.step_cache
    if cached is not None and cached[0] is mask:
        return cached[1:]
    if bool((mask == mask[:1]).all()) or not getattr(state.model, "per_run_inputs", False):
        rows = mask.any(dim=0).nonzero().squeeze(1)
        if len(rows) == mask.shape[1]:
            selected = (state.inputs, state.targets, mask)
        else:
            selected = (state.inputs.index_select(0, rows), state.targets.index_select(0, rows), mask.index_select(1, rows))
    else:
        largest = int(mask.sum(dim=1).max())
        # A stable sort puts each run's examples first, in their order, then the others (padding).
        order = torch.argsort((~mask).to(torch.uint8), dim=1, stable=True)[:, :largest]  # [K, M]
        flat = order.reshape(-1)
        selected = (
            state.inputs.index_select(0, flat).view(*order.shape, *state.inputs.shape[1:]),
            state.targets.index_select(0, flat).view(order.shape),
            mask.gather(1, order),
        )
    if mask is state.train_mask:
        state.step_cache = (mask, *selected)
    return selected


def train_step(state: PackState) -> None:
    """One update of every run in the pack (full batch or one minibatch each)."""
    state.optimizer.zero_grad()
    inputs, targets, mask = step_examples(state, batch_mask(state))
    interventions = state.interventions
    outputs = state.model(inputs) if interventions is None else interventions.forward(state.model, inputs, mask)
    train_loss = metrics.masked_mean(per_example_loss(state, outputs, targets), mask)
    # Runs share no parameters, so summing their losses gives each run its own gradient.
    train_loss.sum().backward()
    if interventions is not None:
        interventions.before_step(state.params)
    state.optimizer.step()


@torch.no_grad()
def evaluate(state: PackState) -> dict[str, torch.Tensor]:
    """Every per-step metric of every run at the current parameters (store.METRICS_SCHEMA);
    a progress measure that does not apply to this task or model is NaN."""
    outputs = state.model(state.inputs)
    losses = per_example_loss(state, outputs)
    # Accuracies are counts over counts, taken in float64 whatever the training precision: in
    # float32, 9 of 10 is 0.8999999762 and would miss Liu et al.'s ">= 0.9" (their code compares
    # numpy's float64 mean), which a 10-example validation set (their 45/10 split) hits often.
    if state.data.n_classes is None:
        predicted = None
        correct = metrics.within_tolerance(outputs, state.targets, state.data.tolerance).to(torch.float64)
    else:
        predicted = metrics.predictions(outputs, state.templates)
        correct = (predicted == state.targets).to(torch.float64)
    val_mask = state.val_mask
    model, data = state.model, state.data
    runs = len(state.runs)
    nan = torch.full((runs,), float("nan"), dtype=torch.float64, device=losses.device)
    values = {
        "train_loss": metrics.masked_mean(losses, state.train_mask),
        "val_loss": metrics.masked_mean(losses, val_mask),
        "train_acc": metrics.masked_mean(correct, state.train_mask),
        "val_acc": metrics.masked_mean(correct, val_mask),
        "weight_norm": metrics.weight_norm(model.parameters()),
        "repr_norm": metrics.weight_norm(model.representation_parameters(), runs),
        "decoder_norm": metrics.weight_norm(model.decoder_parameters(), runs),
        "rqi": nan,
        "commutativity_acc": nan,
        "logit_efficiency": nan,
        "perturbed_entropy": nan,
    }
    embedding = token_embedding(model, data.n_tokens) if data.n_tokens else None
    if embedding is not None and data.addition_modulus is not False:
        values["rqi"] = progress_measures.rqi(embedding.detach(), modulus=data.addition_modulus)
    if data.pairs is not None and data.commutative:
        values["commutativity_acc"] = progress_measures.commutativity_accuracy(predicted, data.pairs.to(predicted.device))
    if state.ce:
        values["logit_efficiency"] = progress_measures.logit_efficiency(outputs, state.targets, model.parameters(), state.train_mask)
    if hasattr(model, "features") and hasattr(model, "embed"):
        subset = state.inputs[:ENTROPY_EXAMPLES]
        values["perturbed_entropy"] = progress_measures.perturbed_entropy(model, subset)
    return {k: v.to(torch.float64) for k, v in values.items()}


def keep_runs(state: PackState, keep: Sequence[bool]) -> None:
    """Drop the runs whose ``keep`` is false from the pack: parameters, optimizer state, masks.

    Slicing copies each run's values unchanged, so the runs that stay train exactly as before,
    while every later step costs only what the remaining runs need (a shrinking pack).
    """
    index = torch.tensor([i for i, k in enumerate(keep) if k], dtype=torch.long, device=state.train_mask.device)
    with torch.no_grad():
        for p in state.model.parameters():
            p.grad = None
            p.data = p.data.index_select(0, index)
    state.optimizer.keep_runs(index)
    if state.interventions is not None:
        state.interventions.keep_runs(keep, index)
    state.train_mask = state.train_mask.index_select(0, index)
    state.val_mask = state.val_mask.index_select(0, index)
    if state.templates is not None:
        state.templates = state.templates.index_select(0, index)
    if state.batch_generators is not None:
        state.batch_generators = [g for g, k in zip(state.batch_generators, keep) if k]
    state.runs = tuple(run for run, k in zip(state.runs, keep) if k)
    if hasattr(state.model, "n_runs"):
        state.model.n_runs = len(state.runs)


class _EarlyStop:
    """Counts, per run, the consecutive logged steps with both accuracies >= threshold.

    With stages, only rows of the last stage count: a run decided in an earlier stage must still
    live through the later ones (a generalised run is what ungrokking starts from), so its streak
    starts at the last stage's first logged row (completion.py judges the same way)."""

    def __init__(self, spec: SweepSpec):
        self.rule = spec.training.early_stop
        self.last_stage = len(spec.stages)
        self.streak: dict[str, int] = {}

    def decided(self, row: dict) -> bool:
        if self.rule is None or row["stage"] < self.last_stage:
            return False
        both = row["train_acc"] >= self.rule.threshold and row["val_acc"] >= self.rule.threshold
        self.streak[row["run_id"]] = self.streak.get(row["run_id"], 0) + 1 if both else 0
        return self.streak[row["run_id"]] >= self.rule.patience


def _diverged(row: dict) -> bool:
    return not (math.isfinite(row["train_loss"]) and math.isfinite(row["val_loss"]))


class PackTrainer:
    """Trains a pack step by step; can be saved and restored between logged steps.

    ``rows()`` yields the rows (one dict per run still in the pack) of every logged step; step
    s's row describes the parameters after s updates (step 0: at initialisation). A run leaves
    the pack after the row where its loss is NaN/inf (diverged) or where the early-stop rule says
    its phase is decided; the others go on. While ``rows()`` is paused at a yield,
    ``state_dict()`` captures everything needed to continue exactly from there.
    """

    def __init__(self, spec: SweepSpec, runs: Sequence[RunConfig], device: str | torch.device = "cpu"):
        spec = variant_of(spec, runs)
        self.spec = spec
        self.state = build_pack(spec, runs, device)
        self.all_run_ids = [r.run_id for r in runs]
        self.logged = set(logged_steps(spec))
        self.stage_ends = stages.ends(spec)
        self.early_stop = _EarlyStop(spec)
        self.step = 0
        self.step_logged = False  # has the row of self.step been yielded already?
        self.elapsed_before = 0.0  # training seconds of earlier attempts (restored checkpoints)

    @property
    def finished(self) -> bool:
        return not self.state.runs or (self.step >= self.spec.total_steps and self.step_logged)

    def rows(self) -> Iterator[list[dict]]:
        with SubnormalsFlushed() as flushed:  # only while it computes: the caller's setting at each yield
            yield from self._rows(flushed)

    def _rows(self, flushed: SubnormalsFlushed) -> Iterator[list[dict]]:
        started = time.perf_counter() - self.elapsed_before
        total = self.spec.total_steps
        while self.state.runs:
            if self.step in self.logged and not self.step_logged:
                # A row is measured on the training set of the stage that produced it.
                stage = stages.stage_of_row(self.stage_ends, self.step)
                enter_stage(self.state, stage)
                values = {k: v.tolist() for k, v in evaluate(self.state).items()}
                self.elapsed_before = time.perf_counter() - started
                rows = [
                    {"run_id": run.run_id, "step": self.step, "stage": stage, **{k: v[i] for k, v in values.items()},
                     "elapsed_s": self.elapsed_before}
                    for i, run in enumerate(self.state.runs)
                ]
                self.step_logged = True
                keep = [not (_diverged(row) or self.early_stop.decided(row)) for row in rows]
                if not all(keep):
                    keep_runs(self.state, keep)
                with flushed.paused():
                    yield rows
            if self.step >= total or not self.state.runs:  # done, or every run left the pack here
                return
            enter_stage(self.state, stages.stage_of_update(self.stage_ends, self.step))
            train_step(self.state)
            self.step += 1
            self.step_logged = False

    def state_dict(self) -> dict:
        """Parameters, optimizer moments, step, runs still in the pack, early-stop streaks,
        each run's batch generator (minibatch training; full batch draws nothing after init) and
        the interventions' state (Grokfast's filter, the perturbation's generators), so
        a restored pack continues bit for bit on the same device and thread count.
        """
        return {
            "step": self.step,
            "step_logged": self.step_logged,
            "elapsed_s": self.elapsed_before,
            "run_ids": [r.run_id for r in self.state.runs],
            "parameters": [p.detach().clone() for p in self.state.model.parameters()],
            "optimizer": self.state.optimizer.state_dict(),
            "streaks": dict(self.early_stop.streak),
            "batch_rng": [g.get_state() for g in self.state.batch_generators or []],
            "interventions": self.state.interventions.state_dict(),  # Grokfast's filter, the noise generators
        }

    def load_state_dict(self, data: dict) -> None:
        present = set(data["run_ids"])
        keep_runs(self.state, [r.run_id in present for r in self.state.runs])
        if [r.run_id for r in self.state.runs] != list(data["run_ids"]):
            raise ValueError("checkpoint does not belong to this pack (its runs differ)")
        with torch.no_grad():
            for p, saved in zip(self.state.model.parameters(), data["parameters"], strict=True):
                p.copy_(saved)
        self.state.optimizer.load_state_dict(data["optimizer"])
        self.step = int(data["step"])
        self.step_logged = bool(data["step_logged"])
        self.elapsed_before = float(data["elapsed_s"])
        self.early_stop.streak = dict(data["streaks"])
        for generator, saved in zip(self.state.batch_generators or [], data.get("batch_rng", []), strict=True):
            generator.set_state(saved)
        # A checkpoint from before the interventions holds none (nor does its spec use any).
        self.state.interventions.load_state_dict(data.get("interventions", {}), self.state.params)


def run_pack(spec: SweepSpec, runs: Sequence[RunConfig], device: str | torch.device = "cpu") -> Iterator[list[dict]]:
    """Train the pack from scratch; yield the rows of every logged step (see PackTrainer)."""
    return PackTrainer(spec, runs, device).rows()


def variant_of(spec: SweepSpec, runs: Sequence[RunConfig]) -> SweepSpec:
    """The spec a pack trains under: the variant of its runs' field-axis values (the spec itself
    when the grid sweeps no task, model or training field). A pack's runs share those values
    (grid.pack); a pack mixing them is a bug, refused."""
    values = {run.field_values() for run in runs}
    if len(values) > 1:
        raise ValueError(f"a pack mixes runs of different task/model/training values: {sorted(values)[:2]}")
    return spec.for_values(dict(runs[0].field_values())) if runs else spec


@functools.lru_cache(maxsize=8)  # the driver asks for it while planning, packing and estimating
def parameters_per_run(spec: SweepSpec) -> int:
    """How many parameters one run of this spec trains (sizes packs): the largest variant's
    when the grid sweeps model or task fields."""
    return max(_parameters(variant) for variant in spec.variants())


def _parameters(spec: SweepSpec) -> int:
    # The extra axes' first values: a swept intervention strength has no value in the spec itself.
    run = RunConfig(run_id="size", repr_lr=1e-3, decoder_lr=1e-3, repr_wd=0.0, decoder_wd=0.0,
                    init_scale=1.0, train_fraction=spec.grid.train_fraction[0], seed=0,
                    extra=tuple((name, values[0]) for name, values in spec.grid.extra))
    return sum(p.numel() for p in build_pack(spec, [run]).model.parameters())


# glibc's malloc options (malloc.h): the heap's free top above this is handed back to the OS;
# blocks at least this large get their own mmap (freed with munmap).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD = 32 << 20  # glibc's largest (DEFAULT_MMAP_THRESHOLD_MAX on 64-bit)
_TRIM_THRESHOLD = 1 << 30


def keep_freed_memory() -> bool:
    """Make glibc's malloc keep freed memory for reuse instead of returning it to the OS.

    A step allocates and frees the same activation-sized blocks (a pack's are MiBs) every time;
    with glibc's default trimming they went back to the OS and came back as fresh pages, a page
    fault per 4 KiB each step: thousands per step for a pack of 8 at p = 59, a sixth or more of
    the step. A training process's peak memory is reached in its first step anyway. No-op
    (False) where the C library is not glibc.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # glibc only: musl & co. have no mallopt tunables like these
    except (OSError, AttributeError):
        return False
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))


def flushing_subnormals() -> bool:
    """Does this thread's CPU arithmetic flush subnormal floats to zero now? (torch can set the
    flag but not read it: a product that can only be subnormal tells.)"""
    return torch.tensor([1e-30], dtype=torch.float32).mul_(1e-10).item() == 0.0


class SubnormalsFlushed:
    """While a trainer computes, its thread treats subnormal floats as zero; the setting it
    found is back whenever control returns to the caller (``paused``, the end).

    Weight decay drives the weights a solution does not use towards zero for as long as a run
    trains, and once they are subnormal (below 1.2e-38 in float32) every operation on them is
    many times slower: the misgrokking sweep's last 2,000 of 10,000 steps took longer than the
    8,000 before them. Flushing changes values only below that bound, the same packed or alone.
    It is a thread-wide CPU flag, so it is never left on for the caller's code (a notebook's own
    arithmetic, or a test library that checks subnormals exist).
    """

    def __enter__(self) -> "SubnormalsFlushed":
        self.before = flushing_subnormals()
        torch.set_flush_denormal(True)
        return self

    def __exit__(self, *exc) -> None:
        torch.set_flush_denormal(self.before)

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        torch.set_flush_denormal(self.before)
        try:
            yield
        finally:
            torch.set_flush_denormal(True)


def configure_worker(threads: int) -> torch.device:
    """Set torch's CPU threads (one per CPU of the trial: more would oversubscribe the node),
    keep freed memory for reuse (``keep_freed_memory``) and pick the device: the trial's GPU
    when Ray assigned one, else the CPU."""
    torch.set_num_threads(max(1, threads))
    keep_freed_memory()
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
