"""Batched models: shapes, init conventions and pack equivalence (a run inside a pack of K
computes exactly what it computes alone)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from grokgrid.models.diagonal import DiagonalLinearNet, FactorizedMatrix
from grokgrid.models.mlp import MLP
from grokgrid.models.toy import ToyModel
from grokgrid.models.transformer import Transformer

SEEDS = [3, 11, 5]
SCALES = [1.0, 2.0, 0.5]
F64 = torch.float64


def _tokens(n: int, length: int, vocab: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, vocab, (n, length), generator=torch.Generator().manual_seed(seed))


def _features(n: int, d: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=F64)


# name -> (factory(seeds, scales, dtype), inputs, out_dim)
CASES = {
    "mlp_features": (
        lambda s, a, dt: MLP(in_features=6, hidden=[8, 7], out_dim=4, activation="tanh", seeds=s, init_scales=a, dtype=dt),
        _features(10, 6),
        4,
    ),
    "mlp_embedded_tokens": (
        lambda s, a, dt: MLP(n_tokens=7, n_positions=2, embed_dim=3, hidden=[9], out_dim=7, seeds=s, init_scales=a, dtype=dt),
        _tokens(12, 2, 7),
        7,
    ),
    "mlp_one_hot_no_bias": (
        lambda s, a, dt: MLP(n_tokens=7, n_positions=2, hidden=[16], out_dim=7, activation="relu", bias=False, seeds=s, init_scales=a, dtype=dt),
        _tokens(12, 2, 7),
        7,
    ),
    "transformer_nanda": (
        lambda s, a, dt: Transformer(n_vocab=8, n_ctx=3, out_dim=7, n_layers=1, d_model=8, n_heads=2, d_mlp=16, seeds=s, init_scales=a, dtype=dt),
        _tokens(9, 3, 8),
        7,
    ),
    "transformer_power_ln": (
        lambda s, a, dt: Transformer(n_vocab=9, n_ctx=4, out_dim=7, n_layers=2, d_model=8, n_heads=4, d_mlp=12, layer_norm=True, activation="gelu", seeds=s, init_scales=a, dtype=dt),
        _tokens(9, 4, 9),
        7,
    ),
    "diagonal_squares": (
        lambda s, a, dt: DiagonalLinearNet(dim=6, seeds=s, init_scales=a, dtype=dt),
        _features(10, 6),
        2,
    ),
    "diagonal_product_normal_scalar": (
        lambda s, a, dt: DiagonalLinearNet(dim=6, parametrization="product", init="normal", output="scalar", seeds=s, init_scales=a, dtype=dt),
        _features(10, 6),
        1,
    ),
    "factorized_matrix": (
        lambda s, a, dt: FactorizedMatrix(rows=5, cols=6, width=4, seeds=s, init_scales=a, dtype=dt),
        torch.stack([torch.arange(10) % 5, torch.arange(10) % 6], dim=1),
        1,
    ),
}


@pytest.fixture(params=sorted(CASES))
def case(request):
    return CASES[request.param]


def _loss(outputs: torch.Tensor) -> torch.Tensor:
    # A per-run scalar, summed: runs share no parameter, so each gets its own gradient.
    return (outputs.sin() + outputs**2).mean(dim=(1, 2)).sum()


def test_output_shape_is_runs_examples_out(case):
    factory, inputs, out_dim = case
    model = factory(SEEDS, SCALES, F64)
    assert model(inputs).shape == (len(SEEDS), len(inputs), out_dim)
    for p in model.parameters():
        assert p.shape[0] == len(SEEDS)


def test_a_run_in_a_pack_equals_the_run_alone(case):
    factory, inputs, _ = case
    packed = factory(SEEDS, SCALES, F64)
    outputs = packed(inputs)
    _loss(outputs).backward()
    for k, (seed, scale) in enumerate(zip(SEEDS, SCALES)):
        alone = factory([seed], [scale], F64)
        for p_alone, p_packed in zip(alone.parameters(), packed.parameters(), strict=True):
            assert torch.equal(p_alone[0], p_packed[k])  # init from the run's own seed only
        single = alone(inputs)
        _loss(single).backward()
        torch.testing.assert_close(single[0], outputs[k].detach(), rtol=1e-9, atol=1e-12)
        for p_alone, p_packed in zip(alone.parameters(), packed.parameters()):
            torch.testing.assert_close(p_alone.grad[0], p_packed.grad[k], rtol=1e-9, atol=1e-12)


def test_init_scale_multiplies_the_default_init(case):
    factory, inputs, _ = case
    base, scaled = factory([7], [1.0], F64), factory([7], [3.0], F64)
    for p_base, p_scaled in zip(base.parameters(), scaled.parameters(), strict=True):
        torch.testing.assert_close(p_scaled, 3.0 * p_base, rtol=1e-15, atol=0.0)
    assert any(p.abs().sum() > 0 for p in base.parameters())


def test_float32_starts_from_the_float64_point(case):
    factory, _, _ = case
    for p32, p64 in zip(factory([7], [1.5], torch.float32).parameters(), factory([7], [1.5], F64).parameters()):
        assert p32.dtype == torch.float32
        assert torch.equal(p32, p64.to(torch.float32))


def test_representation_and_decoder_partition_the_parameters(case):
    factory, _, _ = case
    model = factory(SEEDS, SCALES, F64)
    representation = {id(p) for p in model.representation_parameters()}
    decoder = {id(p) for p in model.decoder_parameters()}
    assert not representation & decoder
    assert representation | decoder == {id(p) for p in model.parameters()}
    assert decoder  # never empty (an optimizer group needs parameters)


def test_mlp_groups_and_features():
    embedded = CASES["mlp_embedded_tokens"][0](SEEDS, SCALES, F64)
    assert embedded.representation_parameters() == [embedded.embedding]
    one_hot = CASES["mlp_one_hot_no_bias"][0](SEEDS, SCALES, F64)
    assert one_hot.representation_parameters() == [] and len(one_hot.biases) == 0
    # Without biases, a ReLU net is 2-homogeneous in its weights (Lyu et al.'s setting).
    tokens = CASES["mlp_one_hot_no_bias"][1]
    before = one_hot(tokens)
    with torch.no_grad():
        for w in one_hot.weights:
            w.mul_(2.0)
    torch.testing.assert_close(one_hot(tokens), 4.0 * before)
    # Embedding then hidden features then the last layer is the forward pass.
    model = CASES["mlp_features"][0](SEEDS, SCALES, F64)
    inputs = CASES["mlp_features"][1]
    hidden = model.features(model.embed(inputs))
    assert hidden.shape == (3, 10, 7)
    torch.testing.assert_close(torch.baddbmm(model.biases[-1], hidden, model.weights[-1]), model(inputs))
    assert model.features(model.embed(inputs), layer=0).shape == (3, 10, 8)
    with pytest.raises(ValueError):
        model.features(model.embed(inputs), layer=2)
    with pytest.raises(ValueError):
        MLP(in_features=3, n_tokens=4, hidden=[2], out_dim=1, seeds=[0], init_scales=[1.0])


def test_mlp_one_hot_input_equals_summed_per_position_rows():
    model = CASES["mlp_one_hot_no_bias"][0]([0], [1.0], F64)
    tokens = torch.tensor([[2, 5]])
    w = model.weights[0][0]
    expected = torch.relu(w[2] + w[7 + 5]) @ model.weights[1][0]
    torch.testing.assert_close(model(tokens)[0, 0], expected)


def test_transformer_is_causal_and_reads_the_last_position():
    model = Transformer(n_vocab=6, n_ctx=4, out_dim=5, n_layers=2, d_model=8, n_heads=2, d_mlp=8, seeds=[1, 2], init_scales=[1.0, 1.0], dtype=F64)
    tokens = _tokens(5, 4, 6, seed=1)
    residual = model.embed(tokens)
    for block in model.blocks:
        residual = block(residual)
    # The prefix's last position is position 2 of the full sequence: later tokens are masked.
    prefix = model.features(model.embed(tokens[:, :3]))
    torch.testing.assert_close(prefix, residual[:, :, 2])
    torch.testing.assert_close(model(tokens), torch.bmm(residual[:, :, -1], model.unembed))
    changed = tokens.clone()
    changed[:, 0] = (changed[:, 0] + 1) % 6
    assert not torch.allclose(model(changed), model(tokens))  # the last position attends to all
    assert model.representation_parameters() == [model.token_embedding, model.pos_embedding]
    with pytest.raises(ValueError, match="multiple"):
        Transformer(n_vocab=4, n_ctx=3, out_dim=2, d_model=6, n_heads=4, seeds=[0], init_scales=[1.0])


def test_transformer_last_position_shortcut_equals_the_full_pass():
    model = CASES["transformer_power_ln"][0](SEEDS, SCALES, F64)
    tokens = CASES["transformer_power_ln"][1]
    residual = model.embed(tokens)
    for block in model.blocks:
        residual = block(residual)  # every position
    expected = torch.bmm(model.ln_final(residual[:, :, -1]), model.unembed)
    torch.testing.assert_close(model(tokens), expected, rtol=1e-12, atol=1e-12)
    first = model.blocks[0](model.embed(tokens))[:, :, -1]
    torch.testing.assert_close(model.features(model.embed(tokens), layer=0), first, rtol=1e-12, atol=1e-12)


def test_transformer_layer_norm_defaults_and_embedding_init():
    model = CASES["transformer_power_ln"][0]([0], [2.0], F64)
    assert torch.equal(model.blocks[0].ln1.weight, torch.full((1, 8), 2.0, dtype=F64))
    assert torch.equal(model.ln_final.bias, torch.zeros(1, 8, dtype=F64))
    big = Transformer(n_vocab=400, n_ctx=3, out_dim=2, d_model=64, n_heads=4, d_mlp=8, seeds=[0], init_scales=[1.0], dtype=F64)
    assert abs(big.token_embedding.std().item() - 1.0) < 0.02  # nn.Embedding: N(0, 1)
    bound = 1 / math.sqrt(64)
    assert big.blocks[0].w_q.abs().max().item() <= bound  # nn.Linear: U[-1/sqrt(fan_in), ...]


def test_diagonal_net_is_lyu_et_al():
    x = _features(10, 6)
    model = DiagonalLinearNet(dim=6, seeds=[0, 1], init_scales=[1.0, 4.0], dtype=F64)
    assert torch.equal(model.effective_weights(), torch.zeros(2, 6, dtype=F64))  # u = v: w = 0
    assert torch.equal(model.u[1], torch.full((6,), 4.0, dtype=F64))
    assert model.representation_parameters() == []
    with torch.no_grad():
        model.u.add_(torch.randn(2, 6, generator=torch.Generator().manual_seed(0), dtype=F64))
    w = model.u**2 - model.v**2
    f = (w @ x.T).detach()
    logits = model(x)
    torch.testing.assert_close(logits[..., 1] - logits[..., 0], f)
    y = torch.tensor([1, 0, 1, 1, 0, 0, 1, 0, 1, 1])
    ce = F.cross_entropy(logits.reshape(-1, 2), y.repeat(2), reduction="none").view(2, -1)
    torch.testing.assert_close(ce, F.softplus(-(2 * y - 1) * f))  # = logistic loss
    product = DiagonalLinearNet(dim=3, parametrization="product", seeds=[0], init_scales=[2.0], dtype=F64)
    assert torch.equal(product.u, torch.full((1, 3), 2.0, dtype=F64)) and not product.v.any()


def test_diagonal_net_norm_init_makes_alpha_the_initial_norm():
    # Lyu et al.'s code (grokking-dichotomy models.py): u = v = alpha / sqrt(2 dim), ||theta(0)|| = alpha.
    for parametrization in ("squares", "product"):
        model = DiagonalLinearNet(dim=50, parametrization=parametrization, init="norm", seeds=[0, 1], init_scales=[8.0, 128.0], dtype=F64)
        norms = torch.cat([model.u, model.v], dim=1).norm(dim=1)
        torch.testing.assert_close(norms, torch.tensor([8.0, 128.0], dtype=F64))
    squares = DiagonalLinearNet(dim=50, init="norm", seeds=[0], init_scales=[8.0], dtype=F64)
    assert torch.equal(squares.u, squares.v)  # w = 0 at init, as with the constant init


def test_factorized_matrix_reads_entries():
    model = CASES["factorized_matrix"][0](SEEDS, SCALES, F64)
    pairs = CASES["factorized_matrix"][1]
    full = model.matrix()
    torch.testing.assert_close(model(pairs)[..., 0], full[:, pairs[:, 0], pairs[:, 1]])
    assert model.representation_parameters() == [model.left]


def _mlp_reference(model: MLP, run: int, inputs: torch.Tensor) -> torch.Tensor:
    """Run ``run`` of ``model`` with plain, unbatched, out-of-place torch ops: its embedding rows
    (or one-hot rows) concatenated, then x @ W + b and the activation per layer."""
    if model.n_tokens is None:
        x = inputs
    elif model.embedding is not None:
        x = model.embedding[run][inputs].reshape(len(inputs), -1)
    else:
        x = F.one_hot(inputs, model.n_tokens).reshape(len(inputs), -1).to(F64)
    last = len(model.weights) - 1
    for layer, weight in enumerate(model.weights):
        x = x @ weight[run] + (model.biases[layer][run] if len(model.biases) else 0)
        if layer < last:
            x = model.activation(x)
    return x


def _toy_reference(model: ToyModel, run: int, pairs: torch.Tensor) -> torch.Tensor:
    x = model.embedding[run][pairs[:, 0]] + model.embedding[run][pairs[:, 1]]
    last = len(model.weights) - 1
    for layer, (weight, bias) in enumerate(zip(model.weights, model.biases)):
        x = x @ weight[run] + bias[run]
        if layer < last:
            x = model.activation(x)
    return x


REFERENCE_CASES = {
    **{name: (CASES[name][0], CASES[name][1], _mlp_reference) for name in ("mlp_features", "mlp_embedded_tokens", "mlp_one_hot_no_bias")},
    "mlp_gelu": (
        lambda s, a, dt: MLP(n_tokens=7, n_positions=2, embed_dim=3, hidden=[9, 5], out_dim=7, activation="gelu", seeds=s, init_scales=a, dtype=dt),
        _tokens(12, 2, 7),
        _mlp_reference,
    ),
    "toy_tanh": (
        lambda s, a, dt: ToyModel(n_tokens=7, embed_dim=2, hidden=[8, 6], out_dim=5, activation="tanh", seeds=s, init_scales=a, dtype=dt),
        _tokens(12, 2, 7),
        _toy_reference,
    ),
}


@pytest.mark.parametrize("name", sorted(REFERENCE_CASES))
def test_batched_forward_and_gradients_equal_a_plain_per_run_reference(name):
    """The batched forward passes (table lookups for the first layer, activations in place) give
    each run the outputs and gradients of the textbook network written with plain ops."""
    factory, inputs, reference = REFERENCE_CASES[name]
    model = factory(SEEDS, SCALES, F64)
    outputs = model(inputs)
    _loss(outputs).backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    expected = torch.stack([reference(model, run, inputs) for run in range(len(SEEDS))])
    _loss(expected).backward()
    torch.testing.assert_close(outputs.detach(), expected.detach(), rtol=1e-12, atol=1e-12)
    for got, want in zip(grads, [p.grad for p in model.parameters()], strict=True):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


def test_the_nanda_init_draws_the_reference_scales_and_torch_stays_the_default():
    from grokgrid.models import transformer_spec
    from grokgrid.models.transformer import INITS, Transformer

    assert transformer_spec.TransformerSpec.__dataclass_fields__["init"].metadata["choices"] == INITS
    kw = dict(n_vocab=114, n_ctx=3, out_dim=113, seeds=[0, 1], init_scales=[1.0, 1.0], dtype=torch.float64)
    nanda, torch_init = Transformer(**kw, init="nanda"), Transformer(**kw)
    block = nanda.blocks[0]
    for weight in (nanda.token_embedding, nanda.pos_embedding, block.w_q, block.w_k, block.w_v, block.w_o, block.w_in, block.w_out):
        assert abs(weight[0].std().item() * math.sqrt(128) - 1) < 0.15, weight.shape
    assert abs(nanda.unembed[0].std().item() * math.sqrt(114) - 1) < 0.05
    assert not block.b_in.any() and not block.b_out.any()
    assert abs(torch_init.token_embedding[0].std().item() - 1) < 0.05  # PyTorch's N(0, 1)
    assert not torch.equal(nanda.token_embedding[0], nanda.token_embedding[1])  # each run its own draws
    with pytest.raises(ValueError, match="init must be one of torch, nanda"):
        Transformer(**kw, init="xavier")


def test_at_step_0_the_nanda_init_starts_where_nandas_saved_runs_start():
    # Nanda et al.'s saved runs (p = 113, 1 layer, d_model 128) have test loss 4.76-4.78 at step
    # 0 at every fraction; PyTorch's default init starts near 5.0 (its embeddings are 11x larger).
    from grokgrid import grid, train
    from grokgrid.spec import spec_from_dict

    losses = {}
    for init in ("nanda", "torch"):
        spec = spec_from_dict({"name": "n", "task": {"name": "modular", "p": 113}, "model": {"name": "transformer", "init": init},
                               "training": {"steps": 1, "precision": "float64"}, "grid": {"train_fraction": [0.3], "seed": [0, 1, 2]}})
        state = train.build_pack(spec, grid.expand(spec))
        losses[init] = train.evaluate(state)["val_loss"]
    assert all(4.70 < v < 4.85 for v in losses["nanda"].tolist()), losses
    assert all(v > 4.9 for v in losses["torch"].tolist()), losses
