"""A sweep's size before anything runs: runs, packs, run-steps and a rough time estimate.

Counted arithmetically from the spec (a 10^6-run grid is known at once, before its run ids
are hashed), so the CLI can say what a sweep will cost, ask before a very large one, and
print the whole plan for ``--dry-run`` without starting Ray or writing a file.

The time estimate is a FLOP count over an assumed throughput, and says so: a run-step costs
about 6 x parameters x examples in its step (forward and backward of a dense net), plus an
evaluation forward pass over every example each ``eval_every`` steps. The throughput per CPU
trial slot is an assumption taken from the development box (README "Performance":
~10-60 GFLOP/s per slot depending on the model); GPUs are not estimated (not measured yet).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from grokgrid import grid
from grokgrid.spec import SweepSpec

ASSUMED_CPU_GFLOPS_PER_SLOT = 15.0
# Above either, a sweep starts only after a yes (a prompt, or --yes where there is no terminal).
CONFIRM_RUNS = 10_000
CONFIRM_HOURS = 4.0


@dataclass(frozen=True)
class Plan:
    runs: int
    runs_left: int
    steps: int
    packs: int | None  # None where the pack size depends on a cluster not reached yet
    pack_size: int | None
    slots: int | None
    flops_per_run_step: float | None
    hours: float | None  # None: no estimate (GPU trials, or slots unknown)

    @property
    def run_steps(self) -> int:
        return self.runs_left * self.steps

    def needs_confirmation(self) -> bool:
        return self.runs_left >= CONFIRM_RUNS or (self.hours is not None and self.hours >= CONFIRM_HOURS)

    def describe(self) -> str:
        """One line: runs, packs, run-steps, estimate."""
        parts = [f"{self.runs_left:,} runs" + (f" (of {self.runs:,})" if self.runs_left != self.runs else "")]
        if self.packs is not None:
            parts.append(f"{self.packs:,} packs of up to {self.pack_size}")
        parts.append(f"{self.run_steps:,} run-steps")
        parts.append(estimate_text(self))
        return ", ".join(parts)


def estimate_text(plan: Plan) -> str:
    if plan.hours is None:
        return "time not estimated" + (" (GPU trials)" if plan.flops_per_run_step is not None else "")
    minutes = plan.hours * 60
    shown = "under a minute" if minutes < 1 else f"{minutes:.0f} min" if minutes < 120 else f"{plan.hours:.1f} h" if plan.hours < 48 else f"{plan.hours / 24:.1f} days"
    return (f"roughly {shown} on {plan.slots} trial slot{'s' if plan.slots != 1 else ''} "
            f"(assuming {ASSUMED_CPU_GFLOPS_PER_SLOT:g} GFLOP/s per CPU slot)")


def flops_per_run_step(spec: SweepSpec, parameters_per_run: int) -> float:
    """Rough FLOPs of one run-step (see the module docstring); with task or training fields on
    the grid, of the largest variant's examples and batch."""
    variants = spec.variants()
    examples = max(v.task.n_examples for v in variants)
    in_step = max(v.training.batch_size or math.ceil(max(v.grid.train_fraction) * v.task.n_examples) for v in variants)
    evaluation = 2.0 * parameters_per_run * examples / spec.training.eval_every
    return 6.0 * parameters_per_run * in_step + evaluation


def make_plan(spec: SweepSpec, *, runs_left: int | None = None, slots: int | None = None,
              pack_size: int | None = None, parameters_per_run: int | None = None, packs: int | None = None) -> Plan:
    """The plan of a sweep; ``slots``/``pack_size``/``parameters_per_run`` unknown leave the
    packs or the estimate out. ``packs``: the count when the packs are made already; else
    estimated (runs with different field-axis values never share one: a pack count per variant)."""
    runs = grid.count(spec)
    left = runs if runs_left is None else runs_left
    on_gpu = spec.resources.gpus_per_trial > 0
    if pack_size is None and slots is not None and parameters_per_run is not None:
        pack_size = (spec.resources.pack_size if spec.resources.pack_size != "auto"
                     else grid.auto_pack_size(left, slots, on_gpu, parameters_per_run))
    if packs is None and pack_size is not None:
        variants = math.prod(len(values) for _, values in spec.grid.fields())
        per_variant = math.ceil(left / variants)
        pack_size = max(1, min(pack_size, per_variant))
        packs = variants * math.ceil(per_variant / pack_size) if left >= variants else left
    flops = None if parameters_per_run is None else flops_per_run_step(spec, parameters_per_run)
    hours = None
    if slots is not None and packs:
        slots = max(1, min(slots, packs))  # fewer packs than slots leave slots idle
    if flops is not None and slots and not on_gpu:
        hours = left * spec.total_steps * flops / (slots * ASSUMED_CPU_GFLOPS_PER_SLOT * 1e9) / 3600
    return Plan(runs, left, spec.total_steps, packs, pack_size, slots, flops, hours)
