"""The interventions (interventions.py) against plain reference implementations, run by run."""

from __future__ import annotations

import math
from collections import deque

import pytest
import torch

from grokgrid import interventions
from grokgrid.spec import GrokfastSpec


# The reference filters (ironjr/grokfast grokfast.py), on one run's plain parameters.
def reference_ema(params, grads, alpha, lamb):
    if grads is None:
        grads = [p.grad.detach() for p in params]
    for i, p in enumerate(params):
        grads[i] = grads[i] * alpha + p.grad.detach() * (1 - alpha)
        p.grad = p.grad + grads[i] * lamb
    return grads


def reference_ma(params, grads, window, lamb, warmup):
    if grads is None:
        grads = [deque(maxlen=window) for _ in params]
    for i, p in enumerate(params):
        grads[i].append(p.grad.detach())
        if not warmup or len(grads[i]) == window:
            avg = sum(grads[i]) / len(grads[i])
            p.grad = p.grad + avg * lamb
    return grads


def gradients(step: int, shapes, runs: int):
    """A reproducible sequence of gradients, [runs, ...] per parameter."""
    generator = torch.Generator().manual_seed(step)
    return [torch.randn((runs, *shape), generator=generator, dtype=torch.float64) for shape in shapes]


SHAPES = [(4, 3), (5,)]


def filtered_packed_and_alone(spec, lambs, alphas, steps):
    runs = len(lambs)
    packed = [torch.zeros((runs, *shape), dtype=torch.float64, requires_grad=True) for shape in SHAPES]
    grad_filter = interventions.GradFilter(spec, lambs, alphas)
    states = [None] * runs
    for step in range(steps):
        raw = gradients(step, SHAPES, runs)
        for p, g in zip(packed, raw):
            p.grad = g.clone()
        grad_filter.apply(packed)
        for run in range(runs):
            alone = [torch.zeros(shape, dtype=torch.float64) for shape in SHAPES]
            for p, g in zip(alone, raw):
                p.grad = g[run].clone()
            if spec.filter == "ema":
                states[run] = reference_ema(alone, states[run], alphas[run], lambs[run])
            else:
                states[run] = reference_ma(alone, states[run], spec.window, lambs[run], spec.warmup)
            for p_packed, p_alone in zip(packed, alone):
                torch.testing.assert_close(p_packed.grad[run], p_alone.grad, rtol=1e-13, atol=1e-15)
    return grad_filter


def test_the_ema_filter_is_grokfasts_per_run():
    spec = GrokfastSpec(filter="ema", alpha=0.98, lamb=2.0)
    filtered_packed_and_alone(spec, lambs=[2.0, 0.0, 5.0], alphas=[0.98, 0.9, 0.5], steps=8)


@pytest.mark.parametrize("warmup", [True, False])
def test_the_moving_average_filter_is_grokfasts_per_run(warmup):
    # window 3 over 8 steps: unfiltered (warmup) or a growing window, then a full, sliding one.
    spec = GrokfastSpec(filter="ma", alpha=None, lamb=5.0, window=3, warmup=warmup)
    filtered_packed_and_alone(spec, lambs=[5.0, 0.0], alphas=None, steps=8)


def test_lamb_zero_leaves_the_gradient_as_it_was():
    grad_filter = interventions.GradFilter(GrokfastSpec(lamb=0.0), [0.0], [0.98])
    p = torch.zeros(1, 3, dtype=torch.float64)
    for step in range(4):
        g = gradients(step, [(3,)], 1)[0]
        p.grad = g.clone()
        grad_filter.apply([p])
        assert torch.equal(p.grad, g)


def test_a_filter_restored_from_its_state_dict_continues_exactly():
    spec = GrokfastSpec(filter="ma", alpha=None, lamb=5.0, window=3)
    params = [torch.zeros((2, *shape), dtype=torch.float64) for shape in SHAPES]
    first, second = interventions.GradFilter(spec, [5.0, 1.0], None), interventions.GradFilter(spec, [5.0, 1.0], None)
    for step in range(4):
        for p, g in zip(params, gradients(step, SHAPES, 2)):
            p.grad = g
        first.apply(params)
    second.load_state_dict(first.state_dict(), params)
    for step in range(4, 8):
        raw = gradients(step, SHAPES, 2)
        out = []
        for f in (first, second):
            for p, g in zip(params, raw):
                p.grad = g.clone()
            f.apply(params)
            out.append([p.grad.clone() for p in params])
        assert all(torch.equal(a, b) for a, b in zip(*out))


def test_stablemax_cross_entropy_is_its_definition():
    outputs = torch.tensor([[[2.0, -1.0, 0.0], [-3.0, 0.5, -0.5]], [[0.0, 0.0, 0.0], [10.0, -10.0, 1.0]]],
                           dtype=torch.float64)
    targets = torch.tensor([0, 2])

    def s(x):
        return x + 1 if x >= 0 else 1 / (1 - x)

    losses = interventions.stablemax_cross_entropy(outputs, targets)
    for k in range(2):
        for n in range(2):
            row = outputs[k, n].tolist()
            expected = -math.log(s(row[targets[n]]) / sum(s(x) for x in row))
            assert losses[k, n].item() == pytest.approx(expected, rel=1e-14)
    # Per-run targets [K, N] too, and the loss is float64 whatever the logits' dtype.
    assert torch.equal(interventions.stablemax_cross_entropy(outputs, targets.expand(2, 2)), losses)
    assert interventions.stablemax_cross_entropy(outputs.float(), targets).dtype == torch.float64


def test_stablemax_gradients_are_finite_where_a_logit_is_one():
    # torch.where differentiates both branches: 1 / (1 - x) at x = 1 is why the reference adds 1e-30.
    outputs = torch.tensor([[[1.0, -2.0, 3.0]]], dtype=torch.float64, requires_grad=True)
    interventions.stablemax_cross_entropy(outputs, torch.tensor([1])).sum().backward()
    assert torch.isfinite(outputs.grad).all()


def test_orthogonal_gradients_are_orthogonal_per_run_and_keep_the_norm():
    generator = torch.Generator().manual_seed(0)
    p = torch.randn(3, 4, 5, generator=generator, dtype=torch.float64)
    g = torch.randn(3, 4, 5, generator=generator, dtype=torch.float64)
    p.grad = g.clone()
    interventions.orthogonalize_gradients([p])
    for k in range(3):
        w, new, old = p[k].flatten(), p.grad[k].flatten(), g[k].flatten()
        assert abs(float(torch.dot(w, new))) < 1e-12 * float(w.norm() * new.norm())
        assert float(new.norm()) == pytest.approx(float(old.norm()), rel=1e-13)
        # The reference's formula on run k's tensor alone (orthograd.py).
        orth = old - torch.dot(w, old) / (torch.dot(w, w) + 1e-30) * w
        torch.testing.assert_close(new, orth * (old.norm() / (orth.norm() + 1e-30)), rtol=1e-13, atol=1e-15)


def test_the_perturbation_draws_per_run_from_its_own_seed_and_examples():
    embedded = torch.zeros(2, 5, 3, dtype=torch.float64)
    mask = torch.tensor([[True, False, True, True, False], [False, True, True, False, False]])
    noise = interventions.Perturbation([0.1, 0.0], seeds=[4, 5]).noise(embedded, mask)
    assert bool((noise[0, ~mask[0]] == 0).all()) and bool((noise[1] == 0).all())  # sigma 0: none
    # Alone, run 0 (seed 4) draws the same noise for its examples, wherever they sit in the layout.
    alone = interventions.Perturbation([0.1], seeds=[4]).noise(torch.zeros(1, 3, 3, dtype=torch.float64),
                                                                torch.ones(1, 3, dtype=torch.bool))
    assert torch.equal(alone[0], noise[0, mask[0]])
    assert 0.02 < float(noise[0, mask[0]].std()) < 0.3
