"""Shared machinery of the recursion specs (returns, TD errors, GAE, λ-returns).

* :func:`rollout_suite` — realistic float64 rollouts of assorted shapes and episode-end rates
  (none, sparse, dense, every step terminal) that the properties run on.
* :func:`run_gae_steps` — runs a one-step GAE update ``step(r, v, v_next, term, trunc, last,
  a_next, gamma, lam)`` backwards in time over a rollout. The spec's own step and its wrong
  variants' steps are written once, as steps: the same function runs on tensors here and on
  sympy symbols in the proof (:mod:`pgmath.proofs.gae`).
* :func:`rollout_inputs` — the Hypothesis strategy of rollout calls (drawn by
  :func:`pgmath.testing.strategies.rollouts`, imported lazily).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from pgmath.rollouts import Rollout, random_rollout
from pgmath.validation import as_flags
from pgmath.verification import VerifyContext

__all__ = ["rollout_inputs", "rollout_suite", "run_gae_steps"]

F64 = torch.float64

GaeStep = Callable[..., Any]


def rollout_suite(ctx: VerifyContext, offset: int) -> list[Rollout]:
    """Four float64 rollouts: T = 1; 7×3 sparse ends; 64×4×2 dense ends; 300×5 all terminal."""
    g = ctx.generator(offset)
    shapes = [(1, ()), (7, (3,)), (64, (4, 2)), (300, (5,))]
    rates = [(0.0, 0.0), (0.1, 0.05), (0.5, 0.3), (1.0, 0.0)]
    return [
        random_rollout(T, B, p_terminate=pt, p_truncate=pc, dtype=F64, device=ctx.device, generator=g)
        for (T, B), (pt, pc) in zip(shapes, rates)
    ]


def run_gae_steps(step: GaeStep, rewards: torch.Tensor, values: torch.Tensor,
                  next_values: torch.Tensor, terminated: torch.Tensor, truncated: torch.Tensor,
                  *, gamma: float, lam: float) -> torch.Tensor:
    """Âₜ = step(rₜ, V(sₜ), V(sₜ₊₁), termₜ, truncₜ, lastₜ, Âₜ₊₁, γ, λ) for t = T−1 … 0.

    Flags are passed as 0/1 floats of the rewards' dtype; ``last`` is 1 at t = T−1.
    """
    term = as_flags(terminated, "terminated").to(rewards.dtype)
    trunc = as_flags(truncated, "truncated").to(rewards.dtype)
    T = rewards.shape[0]
    out = torch.empty_like(rewards)
    a_next = torch.zeros_like(rewards[0])
    # backward in time: t = T-1, …, 0
    for t in range(T - 1, -1, -1):
        last = 1.0 if t == T - 1 else 0.0
        a_next = step(rewards[t], values[t], next_values[t], term[t], trunc[t], last, a_next,
                      gamma, lam)
        out[t] = a_next
    return out


def gae_function(step: GaeStep, doc: str) -> Callable[..., torch.Tensor]:
    """A GAE-signature function ``fn(rewards, values, next_values, terminated, truncated, *,
    gamma, lam)`` that runs ``step`` backwards in time."""

    def fn(rewards, values, next_values, terminated, truncated, *, gamma, lam):
        return run_gae_steps(step, rewards, values, next_values, terminated, truncated,
                             gamma=gamma, lam=lam)

    fn.__name__ = getattr(step, "__name__", "gae_from_step").removesuffix("_step")
    fn.__doc__ = doc
    return fn


def rollout_inputs(*, values: bool = True, truncated: bool = True, lam: bool = True,
                   next_values: str = "positional", max_T: int = 12) -> Any:
    """Hypothesis strategy of :class:`~pgmath.specs.Call` s over realistic rollouts with every
    episode-end pattern: ``(rewards, values, next_values, terminated, truncated, gamma=, lam=)``,
    leaving out ``values`` / ``truncated`` / ``lam`` when the formula does not take them;
    ``next_values="keyword"`` passes it as a keyword after the flags (the returns' signature)."""
    from pgmath.specs.spec import Call
    from pgmath.testing.strategies import rollouts

    def to_call(c: Any) -> Call:
        args: list[Any] = [c.rewards]
        kwargs: dict[str, Any] = {"gamma": c.gamma}
        if values:
            args.append(c.values)
        if next_values == "positional":
            args.append(c.next_values)
        else:
            kwargs["next_values"] = c.next_values
        args.append(c.terminated)
        if truncated:
            args.append(c.truncated)
        if lam:
            kwargs["lam"] = c.lam
        return Call(tuple(args), kwargs)

    return rollouts(max_T=max_T).map(to_call)
