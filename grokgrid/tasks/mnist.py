"""Real MNIST from a local copy: the first ``n_images`` of MNIST's training file, read from its
idx files (no torchvision, no download).

Omnigrok (Liu et al. 2023) trains an MLP on 1000 MNIST images. The task's pool is the first
``n_images`` images of ``train-images-idx3-ubyte`` (and their labels); the caller picks the
training images with ``split_mask(n_images, fraction, seed)`` and the rest of the pool is the
validation set, as for the digits task (11000 images at a fraction 1000/11000: 1000 train,
10000 validation).

Where the files may be (``root``): the folder holding them, a torchvision root (``root/MNIST/raw``,
what ``torchvision.datasets.MNIST(root, download=True)`` makes) or torchvision's ``MNIST`` folder
(``root/raw``); each file plain or gzipped (``.gz``). Inputs are the pixels divided by 255 and
flattened to 784 features, as torchvision's ToTensor then a flatten; targets are the digit.

Every problem with the files (missing, not MNIST's idx format, truncated, too few images) is a
one-line SpecError naming ``task.root`` or ``task.n_images``, raised by ``images``, which reads
the pixels once per (folder, n_images) in a process: the driver calls it before a sweep writes
anything (it reads the data anyway, to size the model), and each pack loads its task through it.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import numpy as np

from grokgrid.spec_checks import SpecError

if TYPE_CHECKING:
    import torch

IMAGES = "train-images-idx3-ubyte"
LABELS = "train-labels-idx1-ubyte"
# idx magic numbers: 0x0803 (unsigned bytes, 3 dimensions) and 0x0801 (unsigned bytes, 1 dimension).
IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049
PIXEL_MAX = 255.0
N_CLASSES = 10


def get_it(root: str | Path) -> str:
    """The fix for missing files: torchvision writes them to <root>/MNIST/raw, which ``folders`` reads."""
    return (f"download MNIST with torchvision.datasets.MNIST({str(root)!r}, download=True) or point task.root to "
            "the folder of its idx files; the digits task needs no download")


def folders(root: Path) -> tuple[Path, ...]:
    """Where the files may be under ``root``: the files themselves, a torchvision root, its MNIST folder."""
    return (root, root / "MNIST" / "raw", root / "raw")


def _file(folder: Path, name: str) -> Path | None:
    # torchvision keeps both the .gz it downloaded and the file it extracted: read the plain one.
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def find_files(root: str) -> tuple[Path, Path]:
    """The images and labels files under ``root`` (see ``folders``), or a SpecError saying
    which names were looked for and where."""
    top = Path(root)
    if not top.exists():
        raise SpecError("task.root", f"{root}: no such folder", get_it(root))
    if not top.is_dir():
        raise SpecError("task.root", f"{root} is not a folder", get_it(root))
    found = [(folder, _file(folder, IMAGES), _file(folder, LABELS)) for folder in folders(top)]
    for folder, images, labels in found:
        if images and labels:
            return images, labels
    for folder, images, labels in found:  # half a copy: name the file that is missing there
        if images or labels:
            missing = LABELS if images else IMAGES
            raise SpecError("task.root", f"{folder} has no {missing} (nor {missing}.gz) beside "
                            f"{(images or labels).name}", f"copy it there, or {get_it(root)}")
    where = ", ".join(str(folder) for folder in folders(top))
    raise SpecError("task.root", f"no {IMAGES} and {LABELS} (each optionally .gz) in {where}", get_it(root))


def _open(path: Path) -> BinaryIO:
    try:
        return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")
    except OSError as exc:  # e.g. no permission to read it
        raise SpecError("task.root", f"cannot open {path} ({exc.strerror or exc})", "check the file's permissions") from None


def _read(stream: BinaryIO, path: Path, size: int) -> bytes:
    """Exactly ``size`` bytes of ``path``, or a SpecError (a truncated or corrupt file)."""
    try:
        data = stream.read(size)
    except (OSError, EOFError, zlib.error) as exc:
        raise SpecError("task.root", f"cannot read {path} ({exc})", "download it again") from None
    if len(data) < size:
        raise SpecError("task.root", f"{path} is truncated ({len(data)} of {size} bytes read)", "download it again")
    return data


def _header(stream: BinaryIO, path: Path, magic: int, dims: int) -> tuple[int, ...]:
    """The sizes in an idx header (big-endian: the magic number, then one uint32 per dimension)."""
    found, *sizes = struct.unpack(f">{1 + dims}I", _read(stream, path, 4 * (1 + dims)))
    if found != magic:
        kind = "images" if magic == IMAGES_MAGIC else "labels"
        raise SpecError("task.root", f"{path} is not an MNIST idx {kind} file (magic number {found}, expected {magic})",
                        "point task.root to MNIST's own idx files")
    return tuple(sizes)


def _enough(path: Path, count: int, n_images: int, what: str) -> None:
    if count < n_images:
        raise SpecError("task.n_images", f"{path} holds {count} {what}, fewer than n_images {n_images}",
                        f"use n_images <= {count}")


@lru_cache(maxsize=2)
def images(root: str, n_images: int) -> tuple[np.ndarray, np.ndarray]:
    """[n_images, rows * cols] uint8 pixels and [n_images] int64 labels: the start of the
    training file, the rest never read; every problem with the files a SpecError. ``root``
    absolute, so that the cache key names one folder (what a process reads once)."""
    images_path, labels_path = find_files(root)
    with _open(images_path) as stream:
        count, rows, cols = _header(stream, images_path, IMAGES_MAGIC, 3)
        _enough(images_path, count, n_images, "images")
        pixels = np.frombuffer(_read(stream, images_path, n_images * rows * cols), dtype=np.uint8)
    with _open(labels_path) as stream:
        _enough(labels_path, _header(stream, labels_path, LABELS_MAGIC, 1)[0], n_images, "labels")
        labels = np.frombuffer(_read(stream, labels_path, n_images), dtype=np.uint8).astype(np.int64)
    if labels.max(initial=0) >= N_CLASSES:
        raise SpecError("task.root", f"{labels_path} holds label {labels.max()}, not a digit 0-9",
                        "point task.root to MNIST's own idx files")
    pixels = pixels.reshape(n_images, rows * cols)
    pixels.flags.writeable = False  # shared by every caller through the cache
    labels.flags.writeable = False
    return pixels, labels


@dataclass(frozen=True)
class Mnist:
    """The first ``n_images`` of MNIST's training file under ``root`` (relative: to the current folder)."""

    root: str
    n_images: int

    n_tokens = None
    n_classes = N_CLASSES

    def _arrays(self) -> tuple[np.ndarray, np.ndarray]:
        return images(os.path.abspath(self.root), self.n_images)

    @property
    def n_examples(self) -> int:
        return self.n_images

    @property
    def n_features(self) -> int:
        return self._arrays()[0].shape[1]

    def inputs(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        """[n_images, 784] pixel intensities in [0, 1] (float64 unless ``dtype``)."""
        import torch

        pixels = torch.from_numpy(self._arrays()[0].copy())
        # Divided in dtype, as ToTensor divides in torch's default dtype (Omnigrok's: float64).
        return pixels.to(dtype or torch.float64) / PIXEL_MAX

    def targets(self) -> torch.Tensor:
        """[n_images] int64 digit labels."""
        import torch

        return torch.from_numpy(self._arrays()[1].copy())
