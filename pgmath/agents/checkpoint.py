"""Checkpoints: one ``.pt`` file with everything a run needs to continue exactly.

Contents (all plain tensors, numbers, strings, lists and dicts, so ``torch.load(...,
weights_only=True)`` reads them — a checkpoint never executes code when loaded):

* ``config`` — :meth:`AgentConfig.to_dict`; ``format`` — :data:`FORMAT`;
* ``model``, ``optimizer`` — state dicts; ``obs_norm``, ``reward_rms`` — running statistics;
* ``progress`` — update count, global step, rows written to the CSV logs, recent returns;
* ``shuffle_rng`` — the minibatch generator's state (shared by all ranks);
* ``ranks`` — per rank: the action generator's state, the current raw observations, the running
  episode returns/lengths, the reward scaler's return accumulators and the pickled state of every
  sub-environment (``uint8`` tensors; ``None`` when the simulator cannot be pickled).

Checkpoints are written at update boundaries, atomically (temporary file, then ``os.replace``).
The sub-environment snapshots are unpickled only by ``--resume``, i.e. from a run directory the
user wrote; :func:`load_checkpoint` itself only reads data.
"""

from __future__ import annotations

import os
import pathlib
from typing import Any

import torch

__all__ = ["FORMAT", "bytes_to_tensor", "load_checkpoint", "save_checkpoint", "tensor_to_bytes"]

FORMAT = "pgmath.agents/1"


def bytes_to_tensor(b: bytes) -> torch.Tensor:
    return torch.frombuffer(bytearray(b), dtype=torch.uint8).clone()


def tensor_to_bytes(t: torch.Tensor) -> bytes:
    return t.cpu().numpy().tobytes()


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> pathlib.Path:
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"format": FORMAT, **state}, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    path = pathlib.Path(path)
    if not path.is_file():
        raise ValueError(f"checkpoint {str(path)!r} does not exist")
    state = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"{str(path)!r} is not a pgmath agent checkpoint (format {FORMAT})")
    return state
