"""A small MNIST: scikit-learn's bundled 8x8 handwritten digits (1797 images, 10 classes).

Omnigrok (Liu et al. 2023) trains on 1000 MNIST images; here the dataset is the 1797 digits
that ship inside scikit-learn (``sklearn.datasets.load_digits``, no download), and the caller
picks the training points with ``split_mask(task.n_examples, task.fraction_for(1000), seed)``:
the validation set is the remaining 797. Same interface as tasks/modular.py.

Inputs are the 64 pixel intensities divided by 16 (their maximum), so features lie in [0, 1]
like torchvision's ToTensor on MNIST; nothing is fitted on the data, so no statistic leaks
from the validation images. Targets are the digit, 0..9. For Omnigrok's MSE on one-hot
targets, use ``torch.eye(10)`` as the class templates.

scikit-learn is imported lazily: it is only needed when this task is used.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

PIXEL_MAX = 16.0


@lru_cache(maxsize=1)
def _load() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    data = load_digits()
    return np.asarray(data.data, dtype=np.float64), np.asarray(data.target, dtype=np.int64)


@dataclass(frozen=True)
class Digits:
    n_tokens = None
    n_features = 64
    n_classes = 10

    @property
    def n_examples(self) -> int:
        return len(_load()[1])

    def fraction_for(self, n_train: int) -> float:
        """The train fraction that makes ``split_mask`` pick exactly ``n_train`` images."""
        return n_train / self.n_examples

    def inputs(self, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """[1797, 64] pixel intensities in [0, 1]."""
        return torch.from_numpy(_load()[0] / PIXEL_MAX).to(dtype)

    def targets(self) -> torch.Tensor:
        """[1797] int64 digit labels."""
        return torch.from_numpy(_load()[1].copy())
