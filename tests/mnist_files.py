"""Fake MNIST copies for the tests: real idx files (MNIST's format, random pixels and labels),
written in any of the layouts the mnist task reads, gzipped or not. No download, no torchvision."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

IMAGES = "train-images-idx3-ubyte"
LABELS = "train-labels-idx1-ubyte"
# The folder under a root that holds the files: the root itself, a torchvision root, torchvision's MNIST folder.
LAYOUTS = {"files": ".", "torchvision": "MNIST/raw", "raw": "raw"}


def fake_mnist(n: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """[n, 28, 28] uint8 pixels (0 and 255 included) and [n] labels 0-9."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    pixels[0, 0, 0], pixels[0, 0, 1] = 0, 255
    return pixels, rng.integers(0, 10, size=n, dtype=np.uint8)


def idx_bytes(array: np.ndarray, magic: int | None = None) -> bytes:
    """An idx file: big-endian magic (0x08 = unsigned bytes, then the number of dimensions), sizes, data."""
    magic = 0x0800 + array.ndim if magic is None else magic
    return struct.pack(f">{1 + array.ndim}I", magic, *array.shape) + array.astype(np.uint8).tobytes()


def write_mnist(root: Path, pixels: np.ndarray, labels: np.ndarray, *, layout: str = "files", gz: bool = False) -> Path:
    """Write the two training files under ``root`` in ``layout``; returns the folder that holds them."""
    folder = root / LAYOUTS[layout]
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in ((IMAGES, pixels), (LABELS, labels)):
        data = idx_bytes(array)
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)
    return folder
