"""Power et al. (2022)'s binary operations modulo p, the tasks of the grokking papers.

The task interface shared by every task module here (modular, permutations, digits, sparse)
is small and uniform; a task is a frozen dataclass whose fields are its parameters, and

- ``n_examples``: the size of the full dataset (train + validation);
- ``inputs()``: [N, 2] int64 token ids (x, y) for token tasks, [N, F] floats for feature tasks;
- ``targets()``: [N] int64 class ids for classification, [N] float64 for regression;
- ``n_tokens``: size of the operand vocabulary (None for feature tasks);
- ``n_features``: input width of feature tasks (None for token tasks);
- ``n_classes``: number of classes (None for regression).

Binary-operation tasks (this module, permutations.py) add ``commutative`` (the table is
symmetric wherever both (x, y) and (y, x) are examples) and ``sequences(with_op)`` for
transformers. The dataset itself never depends on a run: the train/validation split is the
caller's, ``split_mask(task.n_examples, fraction, seed)`` from grokgrid.seeding, so a run's
split depends only on (fraction, seed).

Examples are every pair (x, y) in [0, p)^2 in row-major order (x slow, y fast), minus the
pairs where the operation is undefined (y = 0 for division). Targets are in [0, p).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch


@dataclass(frozen=True)
class Operation:
    formula: str
    fn: Callable[[np.ndarray, np.ndarray, int], np.ndarray]  # int64 arrays -> value (reduced mod p by the caller)
    needs_prime: bool = False
    skip_zero_y: bool = False


def _inverse(y: np.ndarray, p: int) -> np.ndarray:
    """Modular inverse by Fermat (p prime, y != 0): y^(p-2) mod p, by square-and-multiply."""
    result = np.ones_like(y)
    base = y % p
    exponent = p - 2
    while exponent:
        if exponent & 1:
            result = result * base % p
        base = base * base % p
        exponent >>= 1
    return result


def _mix(x: np.ndarray, y: np.ndarray, p: int) -> np.ndarray:
    # Integer floor division as the paper writes it (y odd, so never 0).
    safe_y = np.where(y % 2 == 1, y, 1)
    return np.where(y % 2 == 1, x // safe_y, x - y)


# Power et al. Table/Appendix A.1 names, in the paper's order. Values are reduced mod p after fn.
OPERATIONS: dict[str, Operation] = {
    "add": Operation("x+y", lambda x, y, p: x + y),
    "sub": Operation("x-y", lambda x, y, p: x - y),
    "mul": Operation("x*y", lambda x, y, p: x * y),
    "div": Operation("x/y", lambda x, y, p: x * _inverse(y, p), needs_prime=True, skip_zero_y=True),
    "quad1": Operation("x^2+y^2", lambda x, y, p: x * x + y * y),
    "quad2": Operation("x^2+xy+y^2", lambda x, y, p: x * x + x * y + y * y),
    "quad3": Operation("x^2+xy+y^2+x", lambda x, y, p: x * x + x * y + y * y + x),
    "cube1": Operation("x^3+xy", lambda x, y, p: (x * x % p) * x + x * y),
    "cube2": Operation("x^3+xy^2+y", lambda x, y, p: (x * x % p) * x + x * (y * y % p) + y),
    "mix1": Operation("x//y if y odd else x-y", _mix),
}


def is_prime(n: int) -> bool:
    return n >= 2 and all(n % d for d in range(2, int(n**0.5) + 1))


def token_sequences(pairs: torch.Tensor, n_tokens: int, with_op: bool = True) -> tuple[torch.Tensor, int]:
    """Transformer inputs for operand pairs [N, 2]: ``[x, op, y, =]`` (op token = n_tokens,
    '=' token = n_tokens + 1, vocabulary n_tokens + 2; Power et al.) or, without the op token,
    ``[x, y, =]`` ('=' token = n_tokens, vocabulary n_tokens + 1; Nanda et al.). Returns
    (sequences [N, 4 or 3] int64, vocabulary size)."""
    n = pairs.shape[0]
    x, y = pairs[:, 0], pairs[:, 1]
    if with_op:
        op = torch.full((n,), n_tokens, dtype=torch.int64)
        eq = torch.full((n,), n_tokens + 1, dtype=torch.int64)
        return torch.stack([x, op, y, eq], dim=1), n_tokens + 2
    eq = torch.full((n,), n_tokens, dtype=torch.int64)
    return torch.stack([x, y, eq], dim=1), n_tokens + 1


def table_is_commutative(pairs: torch.Tensor, targets: torch.Tensor, n_tokens: int) -> bool:
    """True when op(x, y) == op(y, x) for every (x, y) whose swap is also an example."""
    table = torch.full((n_tokens, n_tokens), -1, dtype=torch.int64)
    table[pairs[:, 0], pairs[:, 1]] = targets
    both = (table >= 0) & (table.T >= 0)
    return bool((table[both] == table.T[both]).all())


@dataclass(frozen=True)
class ModularArithmetic:
    """x <op> y mod p for one of ``OPERATIONS`` (Power et al.: p = 97; Nanda et al.: p = 113, add)."""

    p: int = 97
    op: str = "add"

    def __post_init__(self) -> None:
        if self.op not in OPERATIONS:
            raise ValueError(f"unknown operation {self.op!r}; choose one of {sorted(OPERATIONS)}")
        if self.p < 2:
            raise ValueError(f"p must be at least 2, got {self.p}")
        if OPERATIONS[self.op].needs_prime and not is_prime(self.p):
            raise ValueError(f"operation {self.op!r} needs a prime p (modular inverse), got {self.p}")

    @property
    def operation(self) -> Operation:
        return OPERATIONS[self.op]

    @property
    def n_tokens(self) -> int:
        return self.p

    @property
    def n_classes(self) -> int:
        return self.p

    n_features = None

    def _pairs(self) -> tuple[np.ndarray, np.ndarray]:
        x, y = np.meshgrid(np.arange(self.p, dtype=np.int64), np.arange(self.p, dtype=np.int64), indexing="ij")
        x, y = x.ravel(), y.ravel()
        if self.operation.skip_zero_y:
            keep = y != 0
            x, y = x[keep], y[keep]
        return x, y

    @property
    def n_examples(self) -> int:
        return self.p * (self.p - 1) if self.operation.skip_zero_y else self.p * self.p

    def inputs(self) -> torch.Tensor:
        """[N, 2] int64: the operands (x, y) of every example."""
        x, y = self._pairs()
        return torch.from_numpy(np.stack([x, y], axis=1))

    def targets(self) -> torch.Tensor:
        """[N] int64: (x op y) mod p."""
        x, y = self._pairs()
        return torch.from_numpy(np.mod(self.operation.fn(x, y, self.p), self.p))

    @property
    def commutative(self) -> bool:
        return table_is_commutative(self.inputs(), self.targets(), self.p)

    def sequences(self, with_op: bool = True) -> torch.Tensor:
        """[N, 4] ``[x, op, y, =]`` or [N, 3] ``[x, y, =]``; see :func:`token_sequences`."""
        return token_sequences(self.inputs(), self.p, with_op)[0]

    def n_vocab(self, with_op: bool = True) -> int:
        """Vocabulary size of :meth:`sequences`: p + 2 with the op token, p + 1 without."""
        return self.p + (2 if with_op else 1)
