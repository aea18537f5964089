"""Microbenchmark (no Ray): what one training step and one evaluation cost per run, alone vs packed.

    .venv/bin/python bench/step.py                                   # bench/modular_mlp_bench.yaml, K = 8
    .venv/bin/python bench/step.py --spec sweeps/quickstart.yaml --k 16 --steps 100

Builds the spec's pack the way a trial does (grid.expand, train.PackTrainer on the CPU, after
train.configure_worker with one torch thread, as for a one-CPU trial), once with the grid's first
run alone (K = 1) and once with its first K runs (cycled when the grid has fewer), and times,
in the same process, interleaved (alone, packed, alone, packed, ...; the best of --repeats
blocks, so load from other processes inflates nothing but the worse blocks), in the main
thread's CPU time by default (--clock wall for elapsed time; with one torch thread every op
runs in the calling thread, and time while another process holds the core is not counted):

- ``forward``: ``zero_grad``, selecting the step's examples (train.step_examples), the
  forward pass and the masked-mean loss;
- ``backward``: ``loss.backward()``;
- ``optimizer``: ``BatchedAdamW.step()``;
- ``step``: the three together, i.e. what ``train.train_step`` does;
- ``eval``: one ``train.evaluate`` (every metric and progress measure of a logged row).

Each is printed in ms per run (the pack's time / K), then the throughput of a trial in
run-steps per second with evaluation amortised (one eval per ``training.eval_every`` steps),
and the packed / alone ratio. This is the training cost only: Ray's per-trial start-up and
reporting (what bench/packs.py also counts) come on top, and favour packs further. On a
shared 2-core machine repeat a measurement: ratios from single invocations varied by +-0.1.
Run with PYTHONPATH pointing at an older checkout to measure it (before step_examples existed,
the step's forward covers every example).

``--profile N`` then runs N more training steps of the pack under ``torch.profiler`` and prints
where they spent their time: the share in matrix products (mm, bmm, baddbmm, addmm, ...), the
share in every other op, and the ops with the most self CPU time with their call counts per step
(what a lever has to remove: per-op overhead shows as many calls of a few microseconds each).

``--fused`` measures with ``training.fused_optimizer: true``; ``--compile`` wraps the step's
forward and loss in ``torch.compile`` (inductor's C++ kernels; grokgrid itself does not compile:
this measures what that lever would give, compile time printed apart).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import itertools
import time

from grokgrid import grid, metrics, train
from grokgrid.spec import load_spec

PHASES = ("forward", "backward", "optimizer", "step", "eval")
CLOCKS = {"cpu": time.thread_time, "wall": time.perf_counter}
CLOCK = time.thread_time


def make_state(spec, runs, k: int) -> train.PackState:
    chosen = list(itertools.islice(itertools.cycle(runs), k))
    chosen = [dataclasses.replace(r, run_id=f"{r.run_id}-{i}") for i, r in enumerate(chosen)]
    return train.PackTrainer(spec, chosen, "cpu").state


def step_loss(state: train.PackState, inputs, targets, mask):
    """The training step's forward: its examples' outputs and the pack's summed loss."""
    return metrics.masked_mean(train.per_example_loss(state, state.model(inputs), targets), mask).sum()


# The forward (and so its backward) of each timed pack, compiled with --compile.
COMPILED: dict[int, object] = {}


def time_steps(state: train.PackState, steps: int) -> dict[str, float]:
    """Seconds per step of each phase, over ``steps`` training steps."""
    totals = dict.fromkeys(PHASES, 0.0)
    for _ in range(steps):
        t0 = CLOCK()
        state.optimizer.zero_grad()
        if hasattr(train, "step_examples"):
            inputs, targets, mask = train.step_examples(state, train.batch_mask(state))
            compiled = COMPILED.get(id(state))
            loss = step_loss(state, inputs, targets, mask) if compiled is None else compiled(inputs, targets, mask)
        else:  # a tree from before step_examples (for before/after comparisons): all examples
            outputs = state.model(state.inputs)
            loss = metrics.masked_mean(train.per_example_loss(state, outputs), train.batch_mask(state)).sum()
        t1 = CLOCK()
        loss.backward()
        t2 = CLOCK()
        state.optimizer.step()
        t3 = CLOCK()
        totals["forward"] += t1 - t0
        totals["backward"] += t2 - t1
        totals["optimizer"] += t3 - t2
    totals["step"] = totals["forward"] + totals["backward"] + totals["optimizer"]
    return {name: value / steps for name, value in totals.items()}


def time_eval(state: train.PackState, evals: int) -> float:
    started = CLOCK()
    for _ in range(evals):
        train.evaluate(state)
    return (CLOCK() - started) / evals


MATMULS = ("aten::mm", "aten::bmm", "aten::baddbmm", "aten::addmm", "aten::addbmm", "aten::matmul", "aten::linear")


def profile_steps(state: train.PackState, steps: int, rows: int = 15) -> None:
    """Where ``steps`` training steps of ``state`` spend their CPU time, op by op."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        time_steps(state, steps)
    events = [e for e in prof.key_averages() if e.key.startswith("aten::")]
    total = sum(e.self_cpu_time_total for e in events)
    in_matmul = sum(e.self_cpu_time_total for e in events if e.key in MATMULS)
    calls = sum(e.count for e in events)
    print(f"profile of {steps} steps, K = {len(state.runs)}: {total / steps / 1e3:.3f} ms per step in aten ops, "
          f"{100 * in_matmul / total:.1f}% of it in matrix products; {calls / steps:.0f} op calls per step "
          f"({total / calls:.1f} us each on average)")
    print(f"{'op':<28}{'share':>8}{'calls/step':>12}{'us/call':>10}")
    for e in sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:rows]:
        print(f"{e.key:<28}{100 * e.self_cpu_time_total / total:7.1f}%{e.count / steps:12.1f}{e.self_cpu_time_total / e.count:10.1f}")
    flops = step_flops(state)
    seconds = in_matmul / steps / 1e6
    print(f"matrix products: {1e3 * seconds:.3f} ms a step for {flops / 1e6:.1f} MFLOP, {flops / seconds / 1e9:.1f} GFLOP/s "
          f"(the most the step could reach if every other op were free)")


def step_flops(state: train.PackState) -> float:
    """FLOPs of one training step of the pack (torch's FlopCounterMode: matmuls forward and
    backward, as bench/efficiency.py counts them)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        time_steps(state, 1)
    return float(counter.get_total_flops())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spec", default="bench/modular_mlp_bench.yaml")
    parser.add_argument("--k", type=int, default=8, help="pack size to compare with one run alone")
    parser.add_argument("--steps", type=int, default=200, help="training steps per timed block")
    parser.add_argument("--evals", type=int, default=5, help="evaluations per timed block")
    parser.add_argument("--repeats", type=int, default=3, help="timed blocks per configuration (best kept)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (a trial uses one per CPU)")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="cpu",
                        help="cpu: this thread's CPU time (robust to other processes; --threads 1 only); wall: elapsed")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="then profile N training steps of the pack (torch.profiler): where the time goes, op by op")
    parser.add_argument("--fused", action="store_true", help="with training.fused_optimizer: true")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the step's forward and loss (a lever measured, not one grokgrid uses)")
    args = parser.parse_args()
    global CLOCK
    CLOCK = CLOCKS["wall" if args.threads > 1 else args.clock]

    train.configure_worker(args.threads)  # as a trial does: its torch threads, and malloc
    spec = load_spec(args.spec)
    if args.fused:
        spec = dataclasses.replace(spec, training=dataclasses.replace(spec.training, fused_optimizer=True))
    runs = grid.expand(spec)
    sizes = (1, args.k)
    states = {k: make_state(spec, runs, k) for k in sizes}
    if args.compile:
        import torch

        for k, state in states.items():
            COMPILED[id(state)] = torch.compile(functools.partial(step_loss, state))
            started = time.perf_counter()
            time_steps(state, 1)  # compiles
            print(f"K = {k}: torch.compile of the forward and loss took {time.perf_counter() - started:.1f} s")
    for state in states.values():  # warm-up: allocator, lazily built index sets, caches
        time_steps(state, 3)
        time_eval(state, 1)
    best: dict[int, dict[str, float]] = {k: dict.fromkeys(PHASES, float("inf")) for k in sizes}
    for _ in range(args.repeats):
        for k in sizes:
            # A fresh copy of the initial state per block would be fairer to the optimizer's
            # trajectory, but a step's cost does not depend on the parameters' values.
            times = time_steps(states[k], args.steps)
            times["eval"] = time_eval(states[k], args.evals)
            for name, value in times.items():
                best[k][name] = min(best[k][name], value)

    every = spec.training.eval_every
    print(f"{spec.name}: {len(runs)} runs in the grid, {args.threads} torch thread(s), {args.clock} clock, "
          f"{'fused' if spec.training.fused_optimizer else 'foreach'} optimizer, "
          f"{'compiled' if args.compile else 'eager'} forward, "
          f"best of {args.repeats} x {args.steps} steps / {args.evals} evals; ms per run")
    print(f"{'':>10}" + "".join(f"{name:>11}" for name in PHASES) + f"{'run-steps/s':>14}")
    throughput = {}
    for k in sizes:
        per_run = {name: 1e3 * value / k for name, value in best[k].items()}
        amortised = per_run["step"] + per_run["eval"] / every
        throughput[k] = 1e3 / amortised
        print(f"{'K = ' + str(k):>10}" + "".join(f"{per_run[name]:11.3f}" for name in PHASES) + f"{throughput[k]:14.1f}")
    print(f"packed / alone (train step + one eval per {every} steps): {throughput[args.k] / throughput[1]:.2f}x")
    if args.profile:
        profile_steps(states[args.k], args.profile)


if __name__ == "__main__":
    main()
