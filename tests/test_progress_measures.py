"""Progress measures: known values, and one value per run independent of the pack."""

from __future__ import annotations

import math

import pytest
import torch

from grokgrid import metrics
from grokgrid import progress_measures as pm
from grokgrid.models.diagonal import DiagonalLinearNet
from grokgrid.models.mlp import MLP
from grokgrid.models.transformer import Transformer
from grokgrid.tasks.modular import ModularArithmetic

F64 = torch.float64


def _randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=F64)


def test_quadruples_match_liu_et_al_enumeration():
    p = 10
    liu = [(i, n, j, m) for i in range(p) for j in range(i + 1, p) for m in range(j, p) for n in range(m + 1, p) if i + n == j + m]
    quads = pm.permissible_quadruples(p)
    assert len(quads) == len(liu) == 70
    as_sets = {frozenset([(i, j), (m, n)]) for i, j, m, n in quads.tolist()}
    assert as_sets == {frozenset([(i, n), (j, m)]) for i, n, j, m in liu}
    assert bool((quads[:, 0] + quads[:, 1] == quads[:, 2] + quads[:, 3]).all())
    modular = pm.permissible_quadruples(7, modulus=7)
    assert bool(((modular[:, 0] + modular[:, 1] - modular[:, 2] - modular[:, 3]) % 7 == 0).all())
    assert len(modular) > len(pm.permissible_quadruples(7))


@pytest.mark.parametrize("dim", [1, 3])
def test_rqi_of_a_linear_embedding_is_one_and_of_a_random_one_is_low(dim):
    k = torch.arange(10, dtype=F64).view(10, 1)
    linear = _randn(1, dim, seed=1) + k * _randn(1, dim, seed=2)  # E_k = a + k b
    random = _randn(10, dim, seed=3)
    values = pm.rqi(torch.stack([linear, random]))
    assert values.shape == (2,)
    assert values[0].item() == 1.0
    assert values[1].item() < 0.5
    # Scale and shift of the embedding do not matter (normalised first).
    assert pm.rqi((5 * linear + 2).unsqueeze(0)).item() == 1.0


def test_rqi_is_per_run_and_delta_is_configurable():
    embeddings = _randn(3, 12, 2, seed=4)
    together = pm.rqi(embeddings, delta=0.5)
    for k in range(3):
        assert pm.rqi(embeddings[k : k + 1], delta=0.5).item() == together[k].item()
    assert bool((pm.rqi(embeddings, delta=1e9) == 1).all())
    assert bool((pm.rqi(embeddings, delta=0.0) == 0).all())


def test_commutativity_accuracy():
    p = 5
    task = ModularArithmetic(p, "sub")
    inputs = task.inputs()
    a, b = inputs[:, 0], inputs[:, 1]
    symmetric = (a + b) % p
    antisymmetric = (a - b) % p  # pred(a,b) == pred(b,a) only when 2(a-b) == 0 mod 5: a == b
    predictions = torch.stack([symmetric, antisymmetric])
    assert pm.commutativity_accuracy(predictions, inputs).tolist() == [1.0, 0.0]
    with_diagonal = pm.commutativity_accuracy(predictions, inputs, include_diagonal=True)
    assert with_diagonal.tolist() == [1.0, pytest.approx(p / p**2)]
    # A mask restricts the counted examples, per run.
    mask = torch.stack([a < b, a > b])
    assert pm.commutativity_accuracy(predictions, inputs, mask=mask).tolist() == [1.0, 0.0]
    # Run by run equals the pack.
    assert pm.commutativity_accuracy(predictions[1:], inputs).tolist() == [0.0]
    # Division has no (a, 0): its swap (0, a) is not counted.
    div = ModularArithmetic(p, "div")
    pairs = div.inputs()
    ones = torch.zeros(1, len(pairs), dtype=torch.int64)
    assert pm.commutativity_accuracy(ones, pairs).item() == 1.0


def test_logit_efficiency():
    outputs = torch.tensor([[[2.0, 0.0], [0.0, 4.0]], [[1.0, 0.0], [0.0, 1.0]]], dtype=F64)
    targets = torch.tensor([0, 1])
    params = [torch.tensor([[3.0, 4.0], [0.0, 1.0]], dtype=F64)]  # norms 5 and 1
    assert pm.logit_efficiency(outputs, targets, params).tolist() == [3.0 / 5.0, 1.0]
    mask = torch.tensor([True, False])
    assert pm.logit_efficiency(outputs, targets, params, mask=mask).tolist() == [2.0 / 5.0, 1.0]


def test_gram_entropy_known_values():
    n = 4
    orthogonal = torch.eye(n, dtype=F64).unsqueeze(0) * 3.0  # equal-norm orthogonal features
    rank_one = torch.ones(1, n, 6, dtype=F64) * torch.arange(1, n + 1, dtype=F64).view(1, n, 1)
    values = pm.gram_entropy(torch.cat([orthogonal[:, :, :4], rank_one[:, :, :4]]))
    torch.testing.assert_close(values, torch.tensor([math.log(n), 0.0], dtype=F64), atol=1e-12, rtol=0)
    features = _randn(3, 20, 5, seed=5)
    entropy = pm.gram_entropy(features)
    assert bool((entropy > 0).all()) and bool((entropy <= math.log(5) + 1e-12).all())
    torch.testing.assert_close(pm.gram_entropy(7.0 * features), entropy)  # trace-normalised
    # Wide features use the N x N side: the nonzero spectrum is the same.
    torch.testing.assert_close(pm.gram_entropy(features.transpose(1, 2)), entropy)
    for k in range(3):
        torch.testing.assert_close(pm.gram_entropy(features[k : k + 1])[0], entropy[k], rtol=1e-12, atol=0)
    # A dead or diverged run gives NaN without breaking the others.
    broken = features.clone()
    broken[0] = 0.0
    broken[1, 0, 0] = float("nan")
    values = pm.gram_entropy(broken)
    assert math.isnan(values[0]) and math.isnan(values[1]) and values[2].item() == entropy[2].item()


MODELS = {
    "mlp": (
        lambda s, a: MLP(n_tokens=7, embed_dim=4, hidden=[16, 12], out_dim=7, seeds=s, init_scales=a, dtype=F64),
        ModularArithmetic(7, "add").inputs(),
    ),
    "transformer": (
        lambda s, a: Transformer(n_vocab=9, n_ctx=4, out_dim=7, d_model=8, n_heads=2, d_mlp=16, seeds=s, init_scales=a, dtype=F64),
        ModularArithmetic(7, "add").sequences(),
    ),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_perturbed_entropy_is_per_run_and_deterministic(name):
    factory, inputs = MODELS[name]
    seeds, scales = [0, 1, 2], [1.0, 0.5, 2.0]
    packed = factory(seeds, scales)
    values = pm.perturbed_entropy(packed, inputs, sigma=0.1, seed=3)
    assert values.shape == (3,) and bool(torch.isfinite(values).all())
    assert torch.equal(values, pm.perturbed_entropy(packed, inputs, sigma=0.1, seed=3))
    for k in range(3):
        alone = pm.perturbed_entropy(factory([seeds[k]], [scales[k]]), inputs, sigma=0.1, seed=3)
        torch.testing.assert_close(alone[0], values[k], rtol=1e-9, atol=1e-12)
    with torch.no_grad():
        clean = pm.gram_entropy(packed.features(packed.embed(inputs)))
    torch.testing.assert_close(pm.perturbed_entropy(packed, inputs, sigma=0.0), clean)
    assert not torch.equal(pm.perturbed_entropy(packed, inputs, sigma=0.5, seed=3), clean)


def test_weight_norms_of_a_models_groups_are_per_run():
    # What training logs as weight_norm, repr_norm and decoder_norm (metrics.weight_norm).
    model = MODELS["mlp"][0]([0, 1], [1.0, 3.0])
    representation, decoder = model.representation_parameters(), model.decoder_parameters()
    total = metrics.weight_norm(model.parameters())
    torch.testing.assert_close(total ** 2, metrics.weight_norm(representation) ** 2 + metrics.weight_norm(decoder) ** 2)
    torch.testing.assert_close(metrics.weight_norm(representation)[1], model.embedding[1].norm().to(F64))
    same_seed = MODELS["mlp"][0]([0, 0], [1.0, 3.0])
    scaled = metrics.weight_norm(same_seed.parameters())
    torch.testing.assert_close(scaled[1], 3.0 * scaled[0])  # alpha scales the norm
    diagonal = DiagonalLinearNet(dim=4, seeds=[0, 1], init_scales=[1.0, 2.0], dtype=F64)
    assert diagonal.representation_parameters() == []
    empty = metrics.weight_norm(diagonal.representation_parameters(), runs=2, dtype=F64)
    assert empty.tolist() == [0.0, 0.0] and empty.dtype == F64
    torch.testing.assert_close(metrics.weight_norm(diagonal.decoder_parameters()), torch.tensor([math.sqrt(8.0), math.sqrt(32.0)], dtype=F64))
    assert metrics.weight_norm([diagonal.u]).tolist() == [2.0, 4.0]
