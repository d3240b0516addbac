"""Advantage estimators: GAE(γ, λ), λ-returns, and advantage normalisation.

Generalized Advantage Estimation (Schulman, Moritz, Levine, Jordan & Abbeel, 2015, eqs. 11–16):

    δₜ  = rₜ + γ (1 − termₜ) V(sₜ₊₁) − V(sₜ)
    Âₜ  = Σₗ (γλ)ˡ δₜ₊ₗ   (the sum stops at the end of the episode)
        = δₜ + γλ Âₜ₊₁    inside an episode;  Âₜ = δₜ  where the episode ends at t.

λ = 0 gives the TD error δₜ; λ = 1 gives Gₜ − V(sₜ) with Gₜ bootstrapped at truncation.
The λ-return is G^λₜ = Âₜ + V(sₜ), which satisfies
G^λₜ = rₜ + γ [(1 − λ) V(sₜ₊₁) + λ G^λₜ₊₁] inside an episode (Sutton & Barto, 2nd ed., eq. 12.4
in recursive form). See :mod:`pgmath.returns` for the time-index conventions.
"""

from __future__ import annotations

import numpy as np
import torch

from pgmath.numerics import stable_centre
from pgmath.returns import episode_stops
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
    validate_all_finite,
    validate_finite,
    validate_float_tensor,
    validate_mask,
    validate_rollout,
    validate_time_major,
)
from pgmath.validation import validate_unit_interval as _unit

__all__ = ["gae", "gae_reference", "lambda_returns", "normalize_advantages"]


def _validate_gae(rewards, values, next_values, terminated, truncated, gamma, lam, finite=True):
    if values is None:
        raise ValueError("values is required")
    if next_values is None:
        raise ValueError("next_values is required")
    term, trunc = validate_rollout(
        rewards, values=values, next_values=next_values, terminated=terminated,
        truncated=truncated, finite=finite,
    )
    return term, trunc, _unit(gamma, "gamma"), _unit(lam, "lam")


def gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    next_values: torch.Tensor,
    terminated: torch.Tensor,
    truncated: torch.Tensor,
    *,
    gamma: float,
    lam: float,
    backend: Backend = "auto",
) -> torch.Tensor:
    """Generalized advantage estimates Âₜ = δₜ + γλ Âₜ₊₁ (reset at every episode end).

    Args:
      rewards: ``[T, *B]`` rₜ.
      values: ``[T, *B]`` V(sₜ).
      next_values: ``[T, *B]`` V(sₜ₊₁) (the real final observation's value at a truncation).
      terminated: ``[T, *B]`` bool/0-1: sₜ₊₁ is terminal (δₜ = rₜ − V(sₜ)).
      truncated: ``[T, *B]`` bool/0-1: the episode was cut after step t (δₜ bootstraps from
        ``next_values[t]``; Âₜ does not look into the next episode).
      gamma: discount γ in [0, 1].
      lam: λ in [0, 1].
      backend: ``"auto"`` (compiled numba kernel on CPU without autograd, else the blocked torch
        scan), ``"torch"``, ``"numba"``, or ``"reference"`` (:func:`gae_reference`).
    Returns:
      ``[T, *B]`` Âₜ, same dtype/device as ``rewards``.

    Checked by: the spec ``pgmath.specs.SPECS["gae"]`` (``pgmath/specs/advantages.py``: fast ==
    reference loop for every backend, == Σ(γλ)ˡδ summed directly, λ = 0 → δ, λ = 1 → G − V,
    T = 100 000; every catalogued wrong variant rejected), run by ``tests/test_specs.py``;
    dtypes and devices in ``tests/test_advantages.py``; proof ``proofs/gae.py``.
    """
    term, trunc, gamma, lam = _validate_gae(
        rewards, values, next_values, terminated, truncated, gamma, lam, finite=False
    )
    if backend == "reference":
        return gae_reference(
            rewards, values, next_values, terminated, truncated, gamma=gamma, lam=lam
        )
    shape = rewards.shape
    T = shape[0]
    r, v, nv = (t.reshape(T, -1) for t in (rewards, values, next_values))
    term2, trunc2 = term.reshape(T, -1), trunc.reshape(T, -1)
    if pick_backend(backend, rewards, values, next_values) == "numba":
        return gae_numba(r, v, nv, term2, trunc2, gamma, lam).reshape(shape)  # checks NaN/inf itself
    validate_all_finite(rewards=rewards, values=values, next_values=next_values)
    cd = compute_dtype(rewards.dtype)
    r, v, nv = r.to(cd), v.to(cd), nv.to(cd)
    delta = r + gamma * (~term2).to(cd) * nv - v
    c = (gamma * lam) * (~episode_stops(term2, trunc2)).to(cd)
    return scan_torch(delta, c).to(rewards.dtype).reshape(shape)


def gae_reference(
    rewards: torch.Tensor,
    values: torch.Tensor,
    next_values: torch.Tensor,
    terminated: torch.Tensor,
    truncated: torch.Tensor,
    *,
    gamma: float,
    lam: float,
) -> torch.Tensor:
    """:func:`gae` by a plain reverse loop over t — the reference implementation."""
    term, trunc, gamma, lam = _validate_gae(
        rewards, values, next_values, terminated, truncated, gamma, lam
    )
    T = rewards.shape[0]
    adv = torch.empty_like(rewards)
    a_next = torch.zeros_like(rewards[0])
    # backward in time: t = T-1, …, 0
    for t in range(T - 1, -1, -1):
        not_term = (~term[t]).to(rewards.dtype)
        delta = rewards[t] + gamma * not_term * next_values[t] - values[t]
        if t == T - 1:
            goes_on = torch.zeros_like(not_term)
        else:
            goes_on = (~(term[t] | trunc[t])).to(rewards.dtype)
        a_next = delta + gamma * lam * goes_on * a_next
        adv[t] = a_next
    return adv


def lambda_returns(
    rewards: torch.Tensor,
    values: torch.Tensor,
    next_values: torch.Tensor,
    terminated: torch.Tensor,
    truncated: torch.Tensor,
    *,
    gamma: float,
    lam: float,
    backend: Backend = "auto",
) -> torch.Tensor:
    """λ-returns G^λₜ = Âₜ + V(sₜ), the usual critic target of PPO/A2C.

    Inside an episode G^λₜ = rₜ + γ [(1 − λ) V(sₜ₊₁) + λ G^λₜ₊₁]; at an episode end
    G^λₜ = rₜ + γ (1 − termₜ) V(sₜ₊₁). Arguments as :func:`gae`.

    Checked by: the spec ``pgmath.specs.SPECS["lambda_returns"]`` (its recursion; == GAE + V),
    run by ``tests/test_specs.py``; proof ``proofs/gae.py``.
    """
    adv = gae(
        rewards, values, next_values, terminated, truncated, gamma=gamma, lam=lam, backend=backend
    )
    return adv + values


def normalize_advantages(
    adv: torch.Tensor, mask: torch.Tensor | None = None, eps: float = 1e-8
) -> torch.Tensor:
    """(Â − mean Â) / (std Â + eps) over all entries (or over those where ``mask`` is true).

    The standard deviation is the unbiased one (Bessel's correction, as ``torch.std``, which
    Stable-Baselines3 and CleanRL use). Masked-out entries are returned as 0 and may hold NaN
    (they never reach the statistics). Normalisation shifts and rescales the gradient estimate.
    The shift is a baseline, but the batch mean contains each sample itself, so the expected
    gradient is shrunk by (N − 1)/N rather than left exactly unbiased (``proofs/batch_baseline.py``;
    a leave-one-out mean would be exact); dividing by the batch standard deviation changes the step
    size per batch. At least two (unmasked) entries are needed.

    Args:
      adv: ``[*]`` advantages.
      mask: optional bool/0-1 ``[*]`` of the same shape: entries that count.
      eps: added to the standard deviation (> 0 guards a constant batch).

    Checked by: the spec ``pgmath.specs.SPECS["normalize_advantages"]``, run by
    ``tests/test_specs.py``; ``tests/test_advantages.py::test_normalize_*``; proof
    ``proofs/batch_baseline.py``.
    """
    validate_float_tensor(adv, "adv", finite=False)
    validate_time_major(adv, "adv")
    if not eps >= 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    if mask is None:
        validate_finite(adv, "adv")
        n = adv.numel()
        if n < 2:
            raise ValueError("adv must hold at least 2 entries to normalize")
        centred, std = stable_centre(adv.reshape(-1), 0)
        return (centred / (std + eps)).to(adv.dtype).reshape(adv.shape)
    m = validate_mask(mask, "mask", adv.shape, adv.device)
    validate_finite(adv, "adv", mask=m)
    n = int(m.sum())
    if n < 2:
        raise ValueError(f"mask must select at least 2 entries to normalize, got {n}")
    # shifted by a selected entry and accumulated in float32 at least (pgmath.numerics): exact
    # for near-constant batches, no float16 overflow at 10⁵ entries; masked-out entries → 0
    centred, std = stable_centre(adv.reshape(-1), 0, mask=m.reshape(-1))
    out = (centred / (std + eps)).to(adv.dtype).reshape(adv.shape)
    return torch.where(m, out, torch.zeros_like(out))


# ---------------------------------------------------------------------------------------------
# The fused numba kernel (CPU float32/float64, no autograd): reads each input once.

if HAVE_NUMBA:
    from pgmath.scan import numba_jit

    @numba_jit
    def _gae_kernel(r, v, nv, term, trunc, gamma, gl, out):  # pragma: no cover - compiled
        T, N = r.shape
        one = r.dtype.type(1.0)
        zero = r.dtype.type(0.0)
        # A NaN/inf in any input makes Âₜ non-finite at its own step, so summing Âₜ·0 (NaN exactly
        # when Âₜ is not finite) per column checks the inputs for free; returns 1 if non-finite.
        if N == 1:  # one long sequence: keep Âₜ₊₁ in a register
            acc = zero
            bad = zero
            # backward in time
            for t in range(T - 1, -1, -1):
                nt = one - term[t, 0]
                coef = gl * nt * (one - trunc[t, 0]) * (t != T - 1)
                acc = (r[t, 0] + gamma * nt * nv[t, 0] - v[t, 0]) + coef * acc
                bad += acc * zero
                out[t, 0] = acc
            return 0 if np.isfinite(bad) else 1
        acc_v = np.zeros(N, dtype=r.dtype)
        bad_v = np.zeros(N, dtype=r.dtype)
        # backward in time; acc_v holds Âₜ₊₁ (0 past the rollout's end); branch-free inner loop
        for t in range(T - 1, -1, -1):
            last = t == T - 1
            for j in range(N):
                nt = one - term[t, j]
                coef = gl * nt * (one - trunc[t, j]) * (not last)
                a = (r[t, j] + gamma * nt * nv[t, j] - v[t, j]) + coef * acc_v[j]
                acc_v[j] = a
                bad_v[j] += a * zero
                out[t, j] = a
        return 0 if np.isfinite(bad_v.sum()) else 1


def gae_numba(
    r: torch.Tensor, v: torch.Tensor, nv: torch.Tensor, term: torch.Tensor, trunc: torch.Tensor,
    gamma: float, lam: float,
) -> torch.Tensor:
    """Fused GAE kernel over ``[T, N]`` CPU tensors (used by :func:`pgmath.gae`).

    Checks the float inputs for NaN/inf in the same pass (``ValueError`` naming the argument), so
    the caller need not read them a second time.
    """
    out = empty_like_numpy(r)
    ra = as_numpy(r)
    bad = _gae_kernel(ra, as_numpy(v), as_numpy(nv), as_numpy(term).view(np.uint8), as_numpy(trunc).view(np.uint8),
                      ra.dtype.type(gamma), ra.dtype.type(gamma * lam), out.numpy())
    if bad:  # some Âₜ is not finite: name the input, or keep the (overflowed) result
        validate_all_finite(rewards=r, values=v, next_values=nv)
    return out


