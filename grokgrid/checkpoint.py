"""A pack's checkpoint: everything a pack of runs needs to continue exactly where it stopped.

``save_checkpoint`` writes a trainer's state (parameters, optimizer moments, step, early-stop
streaks), the pack's run ids and torch's RNG states to one file, atomically; ``load_checkpoint``
reads one back (refusing a torn or foreign file) and ``restore_checkpoint`` continues a trainer
from it. trainable.py decides where checkpoints live and when they are taken.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from grokgrid.location import Location
from grokgrid.train import PackTrainer

CHECKPOINT_FORMAT = 1


def save_checkpoint(trainer: PackTrainer, path: str | os.PathLike, **extra: object) -> None:
    """Save everything a pack needs to continue exactly (``PackTrainer.state_dict``, the pack's
    run ids, torch's RNG states, and ``extra`` such as the pack id) to the local ``path``,
    atomically (``Location.write_with``: a hidden temp file beside it, fsynced, then moved into
    place), so a crash leaves the old file or the whole new one, never half of one."""
    rng = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    payload = {
        "format": CHECKPOINT_FORMAT,
        "all_run_ids": list(trainer.all_run_ids),
        "trainer": trainer.state_dict(),
        "rng": rng,
        **extra,
    }
    Location.parse(path).write_with(lambda stream: torch.save(payload, stream))


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read a checkpoint written by ``save_checkpoint`` (tensors on the CPU; ``restore_checkpoint``
    moves them to the trainer's device). Raises on a missing, torn or foreign file."""
    data = torch.load(Path(path), map_location="cpu", weights_only=True)
    if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not a grokgrid pack checkpoint")
    return data


def restore_checkpoint(trainer: PackTrainer, data: dict) -> None:
    """Continue ``trainer`` from a loaded checkpoint; refuses one of another pack's runs."""
    if list(data["all_run_ids"]) != list(trainer.all_run_ids):
        raise ValueError("checkpoint does not belong to this pack (its runs differ)")
    trainer.load_state_dict(data["trainer"])
    torch.set_rng_state(data["rng"]["cpu"])
    if "cuda" in data["rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(data["rng"]["cuda"])
