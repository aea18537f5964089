"""The model section of a spec, torch-free: the base of every model's spec class.

Each model's spec (a frozen dataclass tagged by ``name``) lives in ``<model>_spec.py`` beside
the model's implementation, and is listed in ``grokgrid.models.MODELS``. Only the standard
library is imported here: spec.py, and so status/classify/report, load it without torch.
"""

from __future__ import annotations

ACTIVATION_NAMES = ("tanh", "relu", "gelu", "silu")
