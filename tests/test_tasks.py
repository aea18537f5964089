"""Datasets: shapes, determinism and known facts of each task."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from grokgrid.models.diagonal import PARAMETRIZATIONS
from grokgrid.models.diagonal_spec import PARAMETRIZATIONS as SPEC_PARAMETRIZATIONS
from grokgrid.seeding import split_mask
from grokgrid.tasks import TASKS
from grokgrid.tasks.digits import Digits
from grokgrid.tasks.modular import OPERATIONS, ModularArithmetic, is_prime, token_sequences
from grokgrid.tasks.modular_spec import MODULAR_OPS
from grokgrid.tasks.permutations import OPERATIONS as PERMUTATION_OPERATIONS
from grokgrid.tasks.permutations import PermutationGroup
from grokgrid.tasks.permutations_spec import PERMUTATION_OPS
from grokgrid.tasks.toy_addition import ToyAddition
from grokgrid.tasks.toy_addition_spec import ToyAdditionSpec
from grokgrid.tasks.sparse import MarginLinearClassification, MatrixCompletion, SparseLinearClassification
from mnist_files import fake_mnist, write_mnist

P = 7


def table(task) -> dict[tuple[int, int], int]:
    return {tuple(pair): t for pair, t in zip(task.inputs().tolist(), task.targets().tolist())}


@pytest.mark.parametrize("op", sorted(OPERATIONS))
def test_every_modular_operation_has_the_interface(op):
    task = ModularArithmetic(P, op)
    inputs, targets = task.inputs(), task.targets()
    assert inputs.dtype == targets.dtype == torch.int64
    assert inputs.shape == (task.n_examples, 2) and targets.shape == (task.n_examples,)
    assert task.n_tokens == task.n_classes == P and task.n_features is None
    assert 0 <= int(targets.min()) and int(targets.max()) < P
    assert len(set(map(tuple, inputs.tolist()))) == task.n_examples  # no repeated example
    assert torch.equal(targets, ModularArithmetic(P, op).targets())  # deterministic


@pytest.mark.parametrize(
    ("op", "formula"),
    [
        ("add", lambda x, y: x + y),
        ("sub", lambda x, y: x - y),
        ("mul", lambda x, y: x * y),
        ("quad1", lambda x, y: x**2 + y**2),
        ("quad2", lambda x, y: x**2 + x * y + y**2),
        ("quad3", lambda x, y: x**2 + x * y + y**2 + x),
        ("cube1", lambda x, y: x**3 + x * y),
        ("cube2", lambda x, y: x**3 + x * y**2 + y),
        ("mix1", lambda x, y: x // y if y % 2 == 1 else x - y),
    ],
)
def test_modular_operations_match_power_et_al_formulas(op, formula):
    p = 97
    values = table(ModularArithmetic(p, op))
    assert len(values) == p * p
    for (x, y), target in values.items():
        assert target == formula(x, y) % p


def test_division_excludes_zero_and_inverts_multiplication():
    p = 97
    task = ModularArithmetic(p, "div")
    inputs, targets = task.inputs(), task.targets()
    assert task.n_examples == p * (p - 1) == len(targets)
    assert bool((inputs[:, 1] != 0).all())
    assert bool(((targets * inputs[:, 1]) % p == inputs[:, 0]).all())  # (x / y) * y == x


def test_division_needs_a_prime_and_unknown_ops_fail():
    with pytest.raises(ValueError, match="prime"):
        ModularArithmetic(8, "div")
    with pytest.raises(ValueError, match="unknown operation"):
        ModularArithmetic(7, "pow")
    assert is_prime(97) and is_prime(113) and not is_prime(91) and not is_prime(1)


def test_commutativity_of_the_modular_operations():
    commutative = {op for op in OPERATIONS if ModularArithmetic(97, op).commutative}
    assert commutative == {"add", "mul", "quad1", "quad2"}


def test_sequences_for_transformers():
    task = ModularArithmetic(5, "add")
    with_op = task.sequences()
    assert with_op.shape == (25, 4) and task.n_vocab() == 7
    assert with_op[:, 1].eq(5).all() and with_op[:, 3].eq(6).all()
    assert torch.equal(with_op[:, [0, 2]], task.inputs())
    without = task.sequences(with_op=False)
    assert without.shape == (25, 3) and task.n_vocab(with_op=False) == 6
    assert without[:, 2].eq(5).all() and int(without.max()) < 6
    assert token_sequences(task.inputs(), 5, True)[1] == 7


def test_split_of_a_task_is_deterministic_by_fraction_and_seed():
    task = ModularArithmetic(11, "add")
    mask = split_mask(task.n_examples, 0.3, seed=4)
    assert torch.equal(mask, split_mask(task.n_examples, 0.3, seed=4))
    assert int(mask.sum()) == round(0.3 * 121)


def _training_pairs(task: ToyAddition, pairs: set[tuple[int, int]]) -> torch.Tensor:
    i, j = task.pairs()
    return torch.tensor([(a, b) in pairs for a, b in zip(i.tolist(), j.tolist())])


def test_toy_ideal_accuracy_follows_the_parallelograms_of_the_training_pairs():
    task = ToyAddition(4)  # pairs i <= j < 4, sums 0..6
    every = set(zip(*(t.tolist() for t in task.pairs())))
    # Without (1, 2): its sum's training pair is (0, 3), and E0 + E3 = E1 + E2 is the sum of the
    # training parallelograms E0 + E2 = 2 E1 and E1 + E3 = 2 E2, so (1, 2) is determined.
    assert task.ideal_accuracy(_training_pairs(task, every - {(1, 2)})) == 1.0
    # Sum 3 has no training pair left: nothing says where (1, 2) and (0, 3) go.
    assert task.ideal_accuracy(_training_pairs(task, every - {(1, 2), (0, 3)})) == 0.0
    # No two training pairs share a sum, so there is no parallelogram to learn from: the val
    # pairs (1, 1), (1, 2), (1, 3) have a training pair with their sum, yet none is determined.
    sparse = {(0, 0), (0, 1), (0, 2), (0, 3), (2, 2), (3, 3)}
    assert task.ideal_accuracy(_training_pairs(task, sparse)) == 0.0


def test_toy_ideal_accuracy_matches_the_authors_code():
    """Liu et al.'s toy/train_add.py prints acc_ideal_test 0.5 for its seed 0 and 1.0 for seeds
    1 and 58 (their default); their split: templates drawn first, then np.random.choice."""
    task = ToyAddition(10)
    for seed, printed in ((0, 0.5), (1, 1.0), (58, 1.0)):
        np.random.seed(seed)
        np.random.normal(0, 1, size=(19, 30))
        mask = torch.zeros(55, dtype=torch.bool)
        mask[torch.as_tensor(np.random.choice(55, 45, replace=False))] = True
        assert task.ideal_accuracy(mask) == printed


def test_a_determined_split_determines_every_validation_pair():
    toy, determined, random = ToyAddition(10), ToyAdditionSpec(split="determined"), ToyAdditionSpec()
    own = []  # seeds 0-5 at 45 of 55 pairs: ideal accuracies 0.9, 0.8, 1.0, 1.0, 0.4, 0.9
    for seed in range(6):
        mask = determined.split_mask(55, 0.82, seed)
        assert int(mask.sum()) == 45 and toy.ideal_accuracy(mask) == 1.0
        drawn = random.split_mask(55, 0.82, seed)
        own.append(toy.ideal_accuracy(drawn) == 1.0)
        assert torch.equal(mask, drawn) == own[-1]  # the seed's own split whenever it qualifies
    assert any(own) and not all(own)


def test_capped_splits_count_the_splits_below_the_threshold():
    # seeds 0-5 at 45 of 55 pairs: ideal accuracies 0.9, 0.8, 1.0, 1.0, 0.4, 0.9
    assert ToyAdditionSpec().capped_splits([0.82], range(6), 0.9) == 2
    assert ToyAdditionSpec().capped_splits([0.82], range(6), 0.95) == 4
    assert ToyAdditionSpec(split="determined").capped_splits([0.82], range(6), 0.95) == 0
    from grokgrid.tasks.modular_spec import ModularSpec

    assert ModularSpec().capped_splits([0.5], [0], 0.9) is None  # a task that cannot tell


def test_a_pack_trains_on_its_runs_determined_splits():
    from grokgrid import grid, train
    from grokgrid.spec import spec_from_dict

    spec = spec_from_dict({"name": "t", "task": {"name": "toy_addition", "split": "determined"}, "training": {"steps": 1},
                           "grid": {"train_fraction": [0.82], "seed": [0, 1]}})
    state = train.build_pack(spec, grid.expand(spec))
    for run, mask in zip(state.runs, state.train_mask):
        assert torch.equal(mask, spec.task.split_mask(55, 0.82, run.seed))
        assert ToyAddition(10).ideal_accuracy(mask) == 1.0
    assert torch.equal(state.val_mask, ~state.train_mask)


@pytest.mark.parametrize(("n", "size"), [(3, 6), (5, 120)])
def test_symmetric_groups_have_n_factorial_elements(n, size):
    for op in ("compose", "conjugate"):
        group = PermutationGroup(n, op)
        assert group.n_tokens == group.n_classes == size
        assert group.n_examples == size * size
        assert group.inputs().shape == (size * size, 2) and group.targets().shape == (size * size,)
        assert not group.commutative  # S3 and S5 are non-abelian; conjugation is not symmetric
    elements = PermutationGroup(n).elements()
    assert elements.tolist() == sorted(map(list, itertools.permutations(range(n))))
    assert elements[0].tolist() == list(range(n))  # token 0 is the identity


def test_s3_composition_is_a_group_law():
    group = PermutationGroup(3, "compose")
    values = table(group)
    tokens = range(group.n_tokens)
    for x in tokens:
        assert values[(0, x)] == x == values[(x, 0)]  # identity
        assert sorted(values[(x, y)] for y in tokens) == list(tokens)  # Latin square rows
        assert any(values[(x, y)] == 0 for y in tokens)  # inverse
    for x, y, z in itertools.product(tokens, repeat=3):
        assert values[(values[(x, y)], z)] == values[(x, values[(y, z)])]  # associativity


def test_s5_composition_follows_power_et_al_code():
    group = PermutationGroup(5, "compose")
    elements = group.elements()
    values = table(group)
    rng = np.random.default_rng(0)
    for x, y in rng.integers(0, 120, size=(50, 2)):
        expected = elements[y][elements[x]]  # Power et al.: c = b[a]
        assert elements[values[(x, y)]].tolist() == expected.tolist()


def test_s5_conjugation_keeps_the_cycle_type():
    group = PermutationGroup(5, "conjugate")
    elements = group.elements()

    def cycle_type(perm) -> list[int]:
        seen, lengths = set(), []
        for start in range(len(perm)):
            length, i = 0, start
            while i not in seen:
                seen.add(i)
                i = perm[i]
                length += 1
            if length:
                lengths.append(length)
        return sorted(lengths)

    values = table(group)
    for (x, y), result in values.items():
        if x % 7 == 0:  # a sample of rows keeps the test fast
            assert cycle_type(elements[result]) == cycle_type(elements[y])
    for y in range(120):
        assert values[(0, y)] == y  # conjugating by the identity
        assert values[(y, 0)] == 0  # the identity is its own class
    x = 5
    inverse = np.argsort(elements[x])
    assert elements[values[(x, 9)]].tolist() == inverse[elements[9][elements[x]]].tolist()


def test_digits_is_a_small_mnist():
    pytest.importorskip("sklearn")
    task = Digits()
    inputs, targets = task.inputs(), task.targets()
    assert task.n_features == 64 and task.n_classes == 10 and task.n_tokens is None
    assert inputs.shape == (task.n_examples, 64) and task.n_examples == 1797
    assert 0.0 <= float(inputs.min()) and float(inputs.max()) == 1.0
    assert sorted(set(targets.tolist())) == list(range(10))
    assert task.inputs(torch.float32).dtype == torch.float32
    assert int(split_mask(task.n_examples, task.fraction_for(1000), seed=0).sum()) == 1000


def test_sparse_linear_classification_is_separated_by_its_sparse_teacher():
    task = SparseLinearClassification(n_samples=200, dim=40, sparsity=3, data_seed=1)
    x, y, classes = task.inputs(), task.signs(), task.targets()
    assert x.shape == (200, 40) and task.n_features == 40 and task.n_classes == 2
    assert set(x.unique().tolist()) == {-1.0, 1.0}
    w = task.teacher()
    assert int((w != 0).sum()) == 3
    assert bool((y * (x @ w) > 0).all())  # odd sparsity on the hypercube: no ties, margin >= 1
    assert torch.equal(classes, (y > 0).long())
    assert 0.3 < float(classes.float().mean()) < 0.7
    assert torch.equal(x, SparseLinearClassification(n_samples=200, dim=40, data_seed=1).inputs())
    assert not torch.equal(x, SparseLinearClassification(n_samples=200, dim=40, data_seed=2).inputs())
    gaussian = SparseLinearClassification(n_samples=50, dim=10, distribution="gaussian")
    assert bool((gaussian.signs() * (gaussian.inputs() @ gaussian.teacher()) > 0).all())
    with pytest.raises(ValueError):
        SparseLinearClassification(distribution="uniform")


def test_margin_linear_classification_is_separated_by_its_dense_teacher_with_the_margin():
    task = MarginLinearClassification(n_samples=300, dim=400, margin=6.0, data_seed=1)
    x, y, classes = task.inputs(), task.signs(), task.targets()
    assert x.shape == (300, 400) and task.n_features == 400 and task.n_classes == 2
    w = task.teacher()
    assert abs(float(w.norm()) - 1) < 1e-12
    assert int((w.abs() > 1e-3).sum()) > 350  # dense: the signal is spread over the coordinates
    assert float((y * (x @ w)).min()) >= 3.0  # every point at least margin / 2 from the hyperplane
    assert torch.equal(classes, (y > 0).long())
    assert 0.3 < float(classes.float().mean()) < 0.7
    assert torch.equal(x, MarginLinearClassification(n_samples=300, dim=400, margin=6.0, data_seed=1).inputs())
    assert not torch.equal(x, MarginLinearClassification(n_samples=300, dim=400, margin=6.0, data_seed=2).inputs())
    flat = MarginLinearClassification(n_samples=300, dim=400, margin=0.0, data_seed=1)
    assert torch.equal(flat.signs(), y)  # the labels come before the shift: a margin of 0 keeps them
    with pytest.raises(ValueError):
        MarginLinearClassification(margin=-1.0)


def test_matrix_completion_has_a_low_rank_target():
    task = MatrixCompletion(dim=12, rank=2, data_seed=3)
    m = task.matrix()
    assert m.shape == (12, 12) and int(torch.linalg.matrix_rank(m)) == 2
    inputs, targets = task.inputs(), task.targets()
    assert inputs.shape == (144, 2) and targets.dtype == torch.float64
    assert task.n_classes is None and task.n_tokens == 12
    i, j = inputs[37].tolist()
    assert targets[37].item() == m[i, j].item()
    assert torch.equal(m, MatrixCompletion(dim=12, rank=2, data_seed=3).matrix())


# ----------------------------------------------------------------------------- task specs (registry)


def test_spec_choices_match_the_implementations():
    # The torch-free spec classes repeat these names; the implementations are the truth.
    assert MODULAR_OPS == tuple(OPERATIONS)
    assert PERMUTATION_OPS == tuple(PERMUTATION_OPERATIONS)
    assert SPEC_PARAMETRIZATIONS == tuple(PARAMETRIZATIONS)


SMALL = {"toy_addition": {"p": 7}, "modular": {"p": 7, "op": "div"}, "permutation": {"n": 3}, "digits": {},
         "sparse_linear": {"n_samples": 20, "dim": 8}, "matrix_completion": {"dim": 6, "rank": 2},
         "mnist": {"n_images": 12}, "margin_linear": {"n_samples": 20, "dim": 8}}


@pytest.mark.parametrize("name", sorted(TASKS))
def test_each_task_spec_counts_the_examples_it_loads(name, tmp_path):
    parameters = SMALL[name]
    if name == "mnist":  # reads a local copy: a fake one here (tests/test_tasks_mnist.py)
        write_mnist(tmp_path, *fake_mnist(20))
        parameters = {**parameters, "root": str(tmp_path)}
    task = TASKS[name].from_data(parameters)
    data = task.load(dtype=torch.float64)
    assert task.n_examples == len(data.targets) == len(data.inputs)
    assert task.name == name
