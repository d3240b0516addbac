"""Monte-Carlo policy-gradient estimators for the linear-Gaussian LQR policy u = −Kx + σε.

The score of the Gaussian policy π_K(u|x) = N(u; −Kx, σ²I) with respect to the gain K::

    ∇_K log π_K(uₜ|xₜ) = −(uₜ + K xₜ) xₜᵀ / σ² = −εₜ xₜᵀ / σ            (``[m, n]``; needs σ > 0)

Per-trajectory samples ĝ ``[m, n]`` of the gradient of the *cost* over T steps (descent
direction −ĝ), from trajectories of :meth:`pgmath.lqr.LQR.sample` (time-major, t = 0 … T−1)::

    reinforce      ĝ = (Σₜ scoreₜ) · Σₜ γᵗ cₜ
    reward_to_go   ĝ = Σₜ γᵗ scoreₜ Gₜ,               Gₜ = Σ_{s=t}^{T−1} γ^(s−t) c_s
    baseline       ĝ = Σₜ γᵗ scoreₜ (Gₜ − Vₜ(xₜ))
    gae            ĝ = Σₜ γᵗ scoreₜ Âₜ,  Âₜ = Σₗ (γλ)ˡ δₜ₊ₗ,  δₜ = cₜ + γ Vₜ₊₁(xₜ₊₁) − Vₜ(xₜ),  V_T = 0

with the exact finite-horizon values Vₜ(x) = xᵀPₜx + vₜ (:meth:`pgmath.lqr.LQR.finite_horizon_values`)
unless ``values`` is given. Deliberately biased rules (the suite must reject them)::

    gae_no_discount_weight  ĝ = Σₜ scoreₜ Âₜ            (the γᵗ state weight dropped)
    score_sign_flipped      gae with the score of u = +Kx + σε used for u = −Kx + σε: +εₜxₜᵀ/σ
                            (its mean is −∇C_T: the gain's sign convention crossed)
    gae_perturbed_values    gae with V + e, e(x) = 0.5 xᵀx + 1, at λ = ``lam`` < 1 (a wrong critic
                            biases GAE unless λ = 1)

Target. Every unbiased rule is unbiased for ∇C_T(K), the gradient of the *finite-horizon* cost
C_T = E Σ_{t<T} γᵗ cₜ (:meth:`pgmath.lqr.LQR.finite_horizon_gradient`, exact): the tests compare
with that exact finite-horizon gradient, not with ∇C, so no truncation bias enters at any T (the
distance ‖∇C_T − ∇C‖ is reported separately; it vanishes like ρ(√γ A_K)^(2T) and γᵀ). With the
exact Vₜ, GAE is unbiased for every λ: E[δₜ | xₜ, uₜ] = Qₜ(xₜ, uₜ) − Vₜ(xₜ).

Source: Williams (1992) (REINFORCE); Schulman et al. (2016) (GAE); Fazel et al. (ICML 2018), §4
(zeroth-order / Gaussian-policy gradient estimation on LQR).

Checked by: tests/test_lqr.py::test_estimators_unbiased_for_the_finite_horizon_gradient and
tests/test_lqr.py::test_biased_estimators_are_rejected; rows of ``pgmath verify --area lqr``.
"""

from __future__ import annotations

import torch

from pgmath.lqr.system import LQR, LQRTrajectories
from pgmath.validation import validate_unit_interval

__all__ = ["BIASED_LQR_ESTIMATORS", "LQR_ESTIMATORS", "UNBIASED_LQR_ESTIMATORS", "lqr_gradient_samples",
           "perturbed_lqr_values", "score_matrices"]

UNBIASED_LQR_ESTIMATORS: tuple[str, ...] = ("reinforce", "reward_to_go", "baseline", "gae")
BIASED_LQR_ESTIMATORS: tuple[str, ...] = ("gae_no_discount_weight", "score_sign_flipped", "gae_perturbed_values")
LQR_ESTIMATORS: tuple[str, ...] = UNBIASED_LQR_ESTIMATORS + BIASED_LQR_ESTIMATORS


def score_matrices(system: LQR, traj: LQRTrajectories) -> torch.Tensor:
    """``[T, N, m, n]`` ∇_K log π_K(uₜ|xₜ) = −εₜ xₜᵀ / σ."""
    if system.sigma <= 0:
        raise ValueError("sigma must be > 0 for score-function estimators (a deterministic policy has no score)")
    return -traj.noise[..., :, None] * traj.states[:-1, :, None, :] / system.sigma


def perturbed_lqr_values(system: LQR, K: torch.Tensor, horizon: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The exact finite-horizon (P, v) plus an error e(x) = 0.5 xᵀx + 1 for t < T (V_T = 0 kept)."""
    P, v = system.finite_horizon_values(K, horizon)
    P, v = P.clone(), v.clone()
    P[:-1] += 0.5 * torch.eye(system.state_dim, dtype=system.dtype, device=system.device)
    v[:-1] += 1.0
    return P, v


def _values(traj: LQRTrajectories, P: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``[T + 1, N]`` Vₜ(xₜ) = xₜᵀPₜxₜ + vₜ."""
    return torch.einsum("tni,tij,tnj->tn", traj.states, P, traj.states) + v[:, None]


def _discounted_suffix(x: torch.Tensor, factor: float) -> torch.Tensor:
    """yₜ = xₜ + factor · yₜ₊₁ over the time axis 0 (y_T = 0)."""
    out = torch.empty_like(x)
    acc = torch.zeros_like(x[0])
    for t in range(x.shape[0] - 1, -1, -1):  # backward in time
        acc = x[t] + factor * acc
        out[t] = acc
    return out


def lqr_gradient_samples(system: LQR, K: torch.Tensor, traj: LQRTrajectories, estimator: str, *,
                         lam: float = 1.0, values: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """Per-trajectory estimates ``[N, m, n]`` of ∇C_T(K) (see the module docstring).

    Args:
      system: the LQR (σ > 0). K: ``[m, n]`` the gain the trajectories were sampled with.
      traj: trajectories of T steps from ``system.sample(K, N, T, …)``.
      estimator: one of :data:`LQR_ESTIMATORS`.
      lam: GAE's λ ∈ [0, 1] (the gae rules only).
      values: (P ``[T + 1, n, n]``, v ``[T + 1]``) of a critic Vₜ(x) = xᵀPₜx + vₜ for baseline/GAE;
        default the exact finite-horizon values.
    """
    if estimator not in LQR_ESTIMATORS:
        raise ValueError(f"estimator must be one of {LQR_ESTIMATORS}, got {estimator!r}")
    lam = validate_unit_interval(lam, "lam")
    K = system.validate_gain_shape(K)
    T, gamma = traj.horizon, system.gamma
    score = score_matrices(system, traj)
    if estimator == "score_sign_flipped":
        score = -score
    disc = gamma ** torch.arange(T, dtype=system.dtype, device=system.device)
    if estimator == "reinforce":
        return score.sum(0) * (disc[:, None] * traj.costs).sum(0)[:, None, None]
    if estimator == "reward_to_go":
        G = _discounted_suffix(traj.costs, gamma)
        return torch.einsum("t,tn,tnij->nij", disc, G, score)
    if values is None:
        values = (perturbed_lqr_values(system, K, T) if estimator == "gae_perturbed_values"
                  else system.finite_horizon_values(K, T))
    V = _values(traj, *values)
    if estimator == "baseline":
        G = _discounted_suffix(traj.costs, gamma)
        return torch.einsum("t,tn,tnij->nij", disc, G - V[:-1], score)
    delta = traj.costs + gamma * V[1:] - V[:-1]
    adv = _discounted_suffix(delta, gamma * lam)
    weight = torch.ones_like(disc) if estimator == "gae_no_discount_weight" else disc
    return torch.einsum("t,tn,tnij->nij", weight, adv, score)
