"""Rollouts in the core conventions: the one :class:`Rollout` type, and random ones for checks.

A :class:`Rollout` is a time-major batch ``[T, *B]`` of the five tensors every recursion takes
(rewards, values, next values, terminated and truncated flags). Iterating over it yields exactly
those five, so ``gae(*ro, gamma=0.99, lam=0.95)`` works. It may also carry what the harness of
:mod:`pgmath.testing` needs to call other libraries' code (``last_values``,
``first_episode_start``, the γ and λ to use, a label); those default to ``None`` / ``""``.

:func:`random_rollout` draws a *realistic* batch: ``next_values[t]`` equals ``values[t+1]`` inside
an episode, while at a truncation it is the value of the real final observation (a fresh number,
not the reset observation's ``values[t+1]``) and after a termination it is an arbitrary number
that a correct implementation must ignore. The Hypothesis strategy
:func:`pgmath.testing.strategies.rollouts` and :func:`pgmath.testing.strategies.make_rollout`
build the same type with every harness field set.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

__all__ = ["TENSOR_FIELDS", "Rollout", "random_rollout"]

#: The five tensors of a rollout, in the order of every recursion's signature.
TENSOR_FIELDS = ("rewards", "values", "next_values", "terminated", "truncated")


@dataclass(frozen=True, repr=False, eq=False)
class Rollout:
    """One time-major rollout ``[T, *B]`` in pgmath's conventions.

    Attributes:
      rewards: ``[T, *B]`` rₜ.
      values: ``[T, *B]`` V(sₜ) (after an episode end, sₜ is the reset observation).
      next_values: ``[T, *B]`` V(sₜ₊₁): ``values[t+1]`` inside an episode; the real final
        observation's value where the episode ended at t.
      terminated: ``[T, *B]`` bool, sₜ₊₁ is terminal.
      truncated: ``[T, *B]`` bool, the episode was cut after step t.
      last_values: ``[*B]`` or None, the value of the observation a vectorised env returns after
        the last step (the reset observation's when the episode ended at T−1, else
        ``next_values[T-1]``): Stable-Baselines3's ``last_values``.
      first_episode_start: ``[*B]`` bool or None, observation 0 began an episode (SB3's
        ``episode_starts[0]``; it never matters to a correct GAE).
      gamma, lam: the discount γ and GAE's λ to use with this rollout (None: not chosen).
      label: a name for hand-made edge cases ("" otherwise).

    ``iter(ro)``, ``ro[i]`` and ``len(ro)`` see only the five tensors, in :data:`TENSOR_FIELDS`
    order, so a rollout unpacks into any recursion: ``gae(*ro, gamma=γ, lam=λ)``.
    """

    rewards: torch.Tensor
    values: torch.Tensor
    next_values: torch.Tensor
    terminated: torch.Tensor
    truncated: torch.Tensor
    last_values: torch.Tensor | None = None
    first_episode_start: torch.Tensor | None = None
    gamma: float | None = None
    lam: float | None = None
    label: str = ""

    def tensors(self) -> tuple[torch.Tensor, ...]:
        """``(rewards, values, next_values, terminated, truncated)``."""
        return tuple(getattr(self, f) for f in TENSOR_FIELDS)

    def __iter__(self) -> Iterator[torch.Tensor]:
        return iter(self.tensors())

    def __len__(self) -> int:
        return len(TENSOR_FIELDS)

    def __getitem__(self, index: Any) -> Any:
        return self.tensors()[index]

    def as_dict(self) -> dict[str, torch.Tensor]:
        """The five tensors by name, in :data:`TENSOR_FIELDS` order."""
        return dict(zip(TENSOR_FIELDS, self.tensors()))

    # the name this method had when Rollout was a NamedTuple
    _asdict = as_dict

    @property
    def T(self) -> int:
        return int(self.rewards.shape[0])

    @property
    def batch_shape(self) -> tuple[int, ...]:
        return tuple(self.rewards.shape[1:])

    @property
    def dtype(self) -> torch.dtype:
        return self.rewards.dtype

    @property
    def device(self) -> torch.device:
        return self.rewards.device

    @property
    def done(self) -> torch.Tensor:
        """``terminated | truncated``: the episode ended after step t."""
        return self.terminated.bool() | self.truncated.bool()

    def to(self, dtype: torch.dtype | None = None,
           device: torch.device | str | None = None) -> Rollout:
        """The same rollout with its float tensors cast to ``dtype`` and all moved to ``device``."""

        def cv(x: torch.Tensor | None) -> torch.Tensor | None:
            if x is None:
                return None
            return x.to(device=device, dtype=dtype if x.is_floating_point() else x.dtype)

        return Rollout(*(cv(x) for x in self.tensors()), cv(self.last_values),
                       cv(self.first_episode_start), self.gamma, self.lam, self.label)

    def __repr__(self) -> str:
        def show(x: torch.Tensor | None) -> str:
            if x is None:
                return "None"
            a = x.detach().cpu()
            a = a.to(torch.int8) if a.dtype == torch.bool else a.double()
            return np.array2string(a.numpy(), separator=", ", max_line_width=10_000)

        label = f", label={self.label!r}" if self.label else ""
        return (
            f"Rollout(T={self.T}, batch_shape={self.batch_shape}, dtype={self.dtype}, "
            f"device={self.device}, gamma={self.gamma!r}, lam={self.lam!r}{label}, "
            f"rewards={show(self.rewards)}, values={show(self.values)}, "
            f"next_values={show(self.next_values)}, terminated={show(self.terminated)}, "
            f"truncated={show(self.truncated)}, last_values={show(self.last_values)})"
        )


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
    """A random rollout of shape ``[T, *B]`` with episode ends at the given rates.

    ``last_values`` is ``next_values[T-1]`` (where the last step ended an episode that slot is the
    reset observation's and ignored by a correct implementation), every ``first_episode_start``
    is True; γ and λ are left unset (None).
    """
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
    first = torch.ones(B, dtype=torch.bool, device=device)
    return Rollout(rewards, values, next_values, terminated, truncated, next_values[-1].clone(), first)
