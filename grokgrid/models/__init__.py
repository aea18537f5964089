"""Models batched over a leading run axis: parameters are [runs, ...] and one forward trains all."""

from grokgrid.models.toy import ToyModel

__all__ = ["ToyModel"]
