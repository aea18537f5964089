"""The spec of the real-MNIST task (mnist.py): the first ``n_images`` of MNIST's training file,
read from a local copy under ``root``. Standard library only, like every spec class.

``root`` is kept as written when a spec is read: reading one never looks at the disk or the
current folder, so a finished sweep's results open anywhere, without the files. A sweep started
here fixes it (``located``: absolute, against the current folder) and checks the files
(``check_available``) before it writes anything.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from grokgrid import spec_checks as check
from grokgrid.spec_kinds import parameter, tag
from grokgrid.tasks.spec_base import LOSSES, TaskData, TaskSpec

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class MnistSpec(TaskSpec):
    """loss mse regresses onto one-hot templates (Omnigrok). 11000 images at a train fraction
    of 1000/11000: Omnigrok's 1000 training images, 10000 validation images."""

    name: str = tag("mnist")
    # Where the files are, not what they hold (location=True): no part of a run id, so another
    # copy of MNIST, or the same relative path in another checkout, trains the same runs.
    root: str = parameter("data/mnist", parse=check.folder_path, location=True)
    loss: str = parameter("mse", choices=LOSSES)
    n_images: int = parameter(11000, minimum=2)

    models: ClassVar[tuple[str, ...]] = ("mlp",)

    @property
    def n_examples(self) -> int:
        return self.n_images  # known without the files: a spec is checked on machines without them

    def located(self) -> MnistSpec:
        # The sweep's frozen spec and its Ray trials get the absolute path: a resume from another
        # folder, and trials whose working folder is not the driver's, read the same files. Done
        # when the sweep starts rather than when the spec is read, so that the shipped sweep files
        # keep their portable relative root (and their pinned dumps).
        return dataclasses.replace(self, root=os.path.abspath(os.path.expanduser(self.root)))

    def check_available(self) -> None:
        from grokgrid.tasks.mnist import images

        # The whole read, not just the headers: a truncated file is refused here too, and the
        # driver reads the data next anyway (to size the model), from this cache.
        images(self.located().root, self.n_images)

    def load(self, *, dtype: torch.dtype, sequences: bool = False, with_op: bool = False) -> TaskData:
        from grokgrid.tasks.mnist import Mnist

        mnist = Mnist(self.located().root, self.n_images)
        return TaskData(mnist.inputs(dtype), mnist.targets(), mnist.n_classes, None, None, None, False, False)
