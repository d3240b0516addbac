"""Plain-loop references of the LQR closed forms: the series summed term by term.

    C(K) = Σₜ γᵗ (tr((Q + KᵀRK) Sₜ) + σ² tr R),   S₀ = Σ₀,  Sₜ₊₁ = (A − BK) Sₜ (A − BK)ᵀ + σ² BBᵀ

summed until a term is below ``tol`` relative to the running sum (the terms decay geometrically
once ρ(√γ(A − BK)) < 1 and, for σ > 0, γ < 1). No Lyapunov solve, no closed form: the
definition of the expected discounted cost, one step of expected second moments at a time.
:func:`lqr_gradient_reference` is reverse-mode autograd through that loop.

Checked by: tests/test_lqr.py::test_cost_matches_the_series and the specs ``lqr_cost`` /
``lqr_gradient`` (:mod:`pgmath.specs.lqr`, whose reference these are).
"""

from __future__ import annotations

import torch

from pgmath.lqr.system import LQR

__all__ = ["lqr_cost_reference", "lqr_gradient_reference"]


def lqr_cost_reference(system: LQR, K: torch.Tensor, *, tol: float = 1e-17, max_steps: int = 1_000_000) -> torch.Tensor:
    """C(K) by summing E[cₜ] over t until the terms vanish (a 0-d tensor, differentiable in K).

    Args:
      system: the LQR. K: ``[m, n]`` stabilising gain.
      tol: stop once a term is ≤ tol · (1 + the running sum) and the remaining geometric tail
        (≤ term · q/(1 − q), q the observed term ratio) is as small.
      max_steps: safety cap (a ValueError names K if the series has not converged by then).
    """
    K = system.validate_gain(K)
    AK = system.A - system.B @ K
    QK = system.Q + K.mT @ system.R @ K
    noise_x = system.sigma**2 * (system.B @ system.B.mT)
    noise_u = system.sigma**2 * torch.trace(system.R)
    S, total, disc, prev = system.Sigma0, torch.zeros((), dtype=system.dtype, device=system.device), 1.0, None
    for _ in range(max_steps):  # over time steps t = 0, 1, …
        term = disc * (torch.trace(QK @ S) + noise_u)
        total = total + term
        size = float(term.detach().abs())
        if prev is not None and prev > 0:
            q = min(size / prev, 0.999999)
            if size * (1 + q / (1 - q)) <= tol * (1.0 + float(total.detach().abs())):
                return total
        prev = size
        S = AK @ S @ AK.mT + noise_x
        disc *= system.gamma
    raise ValueError(f"K: the cost series did not converge in {max_steps} steps")


def lqr_gradient_reference(system: LQR, K: torch.Tensor) -> torch.Tensor:
    """∇C(K) ``[m, n]`` by autograd through :func:`lqr_cost_reference` (no closed form)."""
    K = system.validate_gain(K).detach().clone().requires_grad_(True)
    with torch.enable_grad():
        (g,) = torch.autograd.grad(lqr_cost_reference(system, K), K)
    return g
