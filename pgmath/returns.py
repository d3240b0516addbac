"""Discounted returns and one-step TD errors.

Conventions (time-major ``[T, *B]``, shared by the whole library):

* ``rewards[t]`` = rₜ, the reward of step t (taking aₜ in sₜ);
* ``values[t]`` = V(sₜ); ``next_values[t]`` = V(sₜ₊₁), the value of the observation that
  followed step t — for a truncated episode its *real* final observation, not the reset one;
* ``terminated[t]``: sₜ₊₁ is terminal, so nothing is bootstrapped after step t;
* ``truncated[t]``: the episode was cut after step t although sₜ₊₁ is not terminal: bootstrap
  from ``next_values[t]``, and do not let the recursion cross into the next episode.
* The rollout's last step t = T-1 bootstraps from ``next_values[T-1]`` unless terminated.

Sources: Sutton & Barto (2nd ed.), eqs. 3.9 and 6.5; Pardo et al. (2018), "Time Limits in
Reinforcement Learning", for bootstrapping at truncation.
"""

from __future__ import annotations

import numpy as np
import torch

from pgmath.scan import (
    HAVE_NUMBA,
    Backend,
    as_numpy,
    compute_dtype,
    empty_like_numpy,
    pick_backend,
    scan_torch,
)
from pgmath.validation import (
    NOT_GIVEN,
    validate_all_finite,
    validate_rollout,
    validate_unit_interval,
)

__all__ = [
    "discounted_returns",
    "discounted_returns_reference",
    "episode_stops",
    "td_errors",
]


def td_errors(
    rewards: torch.Tensor,
    values: torch.Tensor,
    next_values: torch.Tensor,
    terminated: torch.Tensor,
    *,
    gamma: float,
) -> torch.Tensor:
    """One-step temporal-difference errors.

        δₜ = rₜ + γ (1 − termₜ) V(sₜ₊₁) − V(sₜ)

    Truncation does not enter: a truncated step still bootstraps from V(sₜ₊₁) (its real final
    observation). Source: Sutton & Barto (2nd ed.), eq. 6.5.

    Args:
      rewards: ``[T, *B]`` rₜ.
      values: ``[T, *B]`` V(sₜ).
      next_values: ``[T, *B]`` V(sₜ₊₁).
      terminated: ``[T, *B]`` bool (or 0/1): sₜ₊₁ is terminal.
      gamma: discount in [0, 1].
    Returns:
      ``[T, *B]`` δₜ, same dtype/device as ``rewards``.

    Checked by: the spec ``pgmath.specs.SPECS["td_errors"]`` (``pgmath/specs/advantages.py``),
    run by ``tests/test_specs.py``; ``tests/test_returns.py::test_td_errors_*``; proof
    ``proofs/gae.py``.
    """
    term, _ = validate_rollout(rewards, values=values, next_values=next_values, terminated=terminated)
    gamma = validate_unit_interval(gamma, "gamma")
    not_term = (~term).to(rewards.dtype)
    return rewards + gamma * not_term * next_values - values


def episode_stops(term: torch.Tensor, trunc: torch.Tensor) -> torch.Tensor:
    """Steps after which the backward recursion must not look further: an episode ends there
    (terminated or truncated), or the rollout does (t = T−1)."""
    stop = term | trunc
    stop[-1] = True
    return stop


def _returns_terms(
    rewards: torch.Tensor,
    term: torch.Tensor,
    trunc: torch.Tensor,
    gamma: float,
    next_values: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(xₜ, cₜ) of Gₜ = xₜ + cₜ Gₜ₊₁ — the terms of the generic scan."""
    stop = episode_stops(term, trunc)
    x = rewards
    if next_values is not None:
        boot = stop & ~term  # cut by truncation or by the rollout's end
        x = rewards + gamma * boot.to(rewards.dtype) * next_values
    c = gamma * (~stop).to(rewards.dtype)
    return x, c


def discounted_returns(
    rewards: torch.Tensor,
    terminated: torch.Tensor,
    truncated: torch.Tensor,
    *,
    gamma: float,
    next_values: torch.Tensor | None = None,
    backend: Backend = "auto",
) -> torch.Tensor:
    """Discounted reward-to-go, bootstrapped where an episode is cut.

        Gₜ = rₜ + γ Gₜ₊₁                    inside an episode,
        Gₜ = rₜ                              if termₜ,
        Gₜ = rₜ + γ V(sₜ₊₁)                  if truncₜ or t = T−1 (and not termₜ), with
                                             V(sₜ₊₁) = ``next_values[t]``, or 0 when not given.

    Source: Sutton & Barto (2nd ed.), eq. 3.9; bootstrapping at truncation: Pardo et al. (2018).

    Args:
      rewards: ``[T, *B]`` rₜ.
      terminated: ``[T, *B]`` bool/0-1: sₜ₊₁ is terminal.
      truncated: ``[T, *B]`` bool/0-1: the episode was cut after step t.
      gamma: discount in [0, 1].
      next_values: optional ``[T, *B]`` V(sₜ₊₁), used only where the episode is cut.
      backend: ``"auto"``, ``"torch"``, ``"numba"`` or ``"reference"`` (see :mod:`pgmath.scan`).
    Returns:
      ``[T, *B]`` Gₜ, same dtype/device as ``rewards``.

    Checked by: the spec ``pgmath.specs.SPECS["discounted_returns"]`` (``pgmath/specs/returns.py``:
    fast == reference loop, == the definition summed directly), run by ``tests/test_specs.py``;
    hand-computed cases in ``tests/test_returns.py``; proofs ``proofs/returns.py``, ``proofs/gae.py``.
    """
    term, trunc = validate_rollout(
        rewards, next_values=NOT_GIVEN if next_values is None else next_values,
        terminated=terminated, truncated=truncated, finite=False,
    )
    gamma = validate_unit_interval(gamma, "gamma")
    if backend == "reference":
        return discounted_returns_reference(
            rewards, terminated, truncated, gamma=gamma, next_values=next_values
        )
    shape = rewards.shape
    flat = [t.reshape(shape[0], -1) if t is not None else None
            for t in (rewards, term, trunc, next_values)]
    r2, term2, trunc2, nv2 = flat
    if pick_backend(backend, *(t for t in (rewards, next_values) if t is not None)) == "numba":
        return returns_numba(r2, nv2, term2, trunc2, gamma).reshape(shape)  # checks NaN/inf itself
    validate_all_finite(rewards=rewards, next_values=next_values)
    cd = compute_dtype(rewards.dtype)
    x, c = _returns_terms(
        r2.to(cd), term2, trunc2, gamma, nv2.to(cd) if nv2 is not None else None
    )
    return scan_torch(x, c).to(rewards.dtype).reshape(shape)


def discounted_returns_reference(
    rewards: torch.Tensor,
    terminated: torch.Tensor,
    truncated: torch.Tensor,
    *,
    gamma: float,
    next_values: torch.Tensor | None = None,
) -> torch.Tensor:
    """:func:`discounted_returns` by a plain reverse loop over t (the reference)."""
    term, trunc = validate_rollout(
        rewards, next_values=NOT_GIVEN if next_values is None else next_values,
        terminated=terminated, truncated=truncated,
    )
    gamma = validate_unit_interval(gamma, "gamma")
    T = rewards.shape[0]
    out = torch.empty_like(rewards)
    g_next = torch.zeros_like(rewards[0])
    # backward in time: t = T-1, …, 0
    for t in range(T - 1, -1, -1):
        if next_values is not None:
            boot = next_values[t]
        else:
            boot = torch.zeros_like(rewards[t])
        cut = trunc[t] | (t == T - 1)
        follow = torch.where(cut, boot, g_next)  # what comes after step t in this episode
        g = torch.where(term[t], rewards[t], rewards[t] + gamma * follow)
        out[t] = g
        g_next = g
    return out


# ---------------------------------------------------------------------------------------------
# The fused numba kernel (CPU float32/float64, no autograd): reads each input once.

if HAVE_NUMBA:
    from pgmath.scan import numba_jit

    @numba_jit
    def _returns_kernel(r, nv, term, trunc, gamma, use_nv, out):  # pragma: no cover - compiled
        T, N = r.shape
        acc = np.zeros(N, dtype=r.dtype)
        bad_v = np.zeros(N, dtype=r.dtype)
        one = r.dtype.type(1.0)
        zero = r.dtype.type(0.0)
        # backward in time; at t = T-1 the "next" return is the bootstrap (or 0)
        for t in range(T - 1, -1, -1):
            last = t == T - 1
            for j in range(N):
                nt = one - term[t, j]
                cut = max(trunc[t, j], last)  # bootstrap instead of following the episode
                boot = nv[t, j] if use_nv else zero
                nxt = cut * boot + (one - cut) * acc[j]
                g = r[t, j] + gamma * nt * nxt
                acc[j] = g
                bad_v[j] += (g + boot) * zero  # a NaN/inf bootstrap may be multiplied away by 0
                out[t, j] = g
        return 0 if np.isfinite(bad_v.sum()) else 1


def returns_numba(
    r: torch.Tensor, nv: torch.Tensor | None, term: torch.Tensor, trunc: torch.Tensor, gamma: float
) -> torch.Tensor:
    """Fused discounted-return kernel over ``[T, N]`` CPU tensors (used by ``discounted_returns``);
    checks ``rewards`` and ``next_values`` for NaN/inf in the same pass."""
    out = empty_like_numpy(r)
    ra = as_numpy(r)
    nv_arr = as_numpy(nv) if nv is not None else ra  # unused when use_nv is False
    bad = _returns_kernel(ra, nv_arr, as_numpy(term).view(np.uint8), as_numpy(trunc).view(np.uint8),
                          ra.dtype.type(gamma), nv is not None, out.numpy())
    if bad:
        validate_all_finite(rewards=r, next_values=nv)
    return out
