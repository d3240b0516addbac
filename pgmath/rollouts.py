"""Synthetic rollouts in the core conventions, for checks and tests.

:func:`random_rollout` draws a *realistic* time-major batch: ``next_values[t]`` equals
``values[t+1]`` inside an episode, while at a truncation it is the value of the real final
observation (a fresh number, not the reset observation's ``values[t+1]``) and after a
termination it is an arbitrary number that a correct implementation must ignore.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

__all__ = ["Rollout", "random_rollout"]


class Rollout(NamedTuple):
    rewards: torch.Tensor
    values: torch.Tensor
    next_values: torch.Tensor
    terminated: torch.Tensor
    truncated: torch.Tensor


def random_rollout(
    T: int,
    B: tuple[int, ...] = (),
    *,
    p_terminate: float = 0.1,
    p_truncate: float = 0.05,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
    generator: torch.Generator,
) -> Rollout:
    """A random rollout of shape ``[T, *B]`` with episode ends at the given rates."""
    shape = (T, *B)
    kw = {"dtype": dtype, "device": device, "generator": generator}
    rewards = torch.randn(shape, **kw)
    values = torch.randn(shape, **kw)
    terminated = torch.rand(shape, device=device, generator=generator) < p_terminate
    truncated = (torch.rand(shape, device=device, generator=generator) < p_truncate) & ~terminated
    final_values = torch.randn(shape, **kw)  # V of the real final observation at an episode end
    next_values = torch.empty_like(values)
    next_values[:-1] = values[1:]
    next_values[-1] = final_values[-1]
    ended = terminated | truncated
    next_values = torch.where(ended, final_values, next_values)
    return Rollout(rewards, values, next_values, terminated, truncated)
