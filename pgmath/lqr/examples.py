"""Example LQR systems and the scalar closed form.

* :func:`example_system` — the fixed 2-state, 2-input system of the docs, the reference values
  and the estimator rows (γ = 0.8, σ = 1 by default), with :func:`example_gain` K₀.
* :func:`scalar_cost`, :func:`scalar_gradient` — n = m = 1 written out by hand, independent of
  any Lyapunov solve. With a_k = a − bk, w = s₀ + γσ²b²/(1 − γ)::

      C(k) = (q + rk²) w / (1 − γa_k²) + σ² r / (1 − γ)
      C'(k) = 2 w (rk − γ b a_k p) / (1 − γa_k²),    p = (q + rk²) / (1 − γa_k²)

  (differentiate: d(1 − γa_k²)/dk = 2γ b a_k).

Checked by: tests/test_lqr.py::test_scalar_closed_form and the ``scalar`` properties of the
specs ``lqr_cost`` / ``lqr_gradient`` (:mod:`pgmath.specs.lqr`).
"""

from __future__ import annotations

import torch

from pgmath.lqr.system import LQR

__all__ = ["example_gain", "example_system", "scalar_cost", "scalar_gradient"]

F64 = torch.float64


def example_system(*, gamma: float = 0.8, sigma: float = 1.0, device: torch.device | str | None = None) -> LQR:
    """A = [[0.9, 0.3], [−0.2, 0.8]], B = diag(0.5, 1), Q = diag(2, 1), R = diag(1, 0.5),
    Σ₀ = [[1, 0.2], [0.2, 0.5]]."""
    return LQR([[0.9, 0.3], [-0.2, 0.8]], [[0.5, 0.0], [0.0, 1.0]], [[2.0, 0.0], [0.0, 1.0]],
               [[1.0, 0.0], [0.0, 0.5]], [[1.0, 0.2], [0.2, 0.5]], gamma=gamma, sigma=sigma, device=device)


def example_gain(device: torch.device | str | None = None) -> torch.Tensor:
    """K₀ = [[0.2, 0.1], [0.1, 0.3]] (stabilising: ρ(√0.8 (A − BK₀)) ≈ 0.62)."""
    return torch.tensor([[0.2, 0.1], [0.1, 0.3]], dtype=F64, device=device)


def _scalar_parts(a: float, b: float, q: float, r: float, s0: float, gamma: float, sigma: float,
                  k: float) -> tuple[float, float, float]:
    ak = a - b * k
    denom = 1.0 - gamma * ak * ak
    if denom <= 0:
        raise ValueError(f"k: γ(a − bk)² = {gamma * ak * ak:.6g} >= 1, the cost is infinite")
    w = s0 + (gamma * sigma**2 * b * b / (1.0 - gamma) if sigma > 0 else 0.0)
    return ak, denom, w


def scalar_cost(a: float, b: float, q: float, r: float, s0: float, gamma: float, sigma: float, k: float) -> float:
    """C(k) of the scalar system (see the module docstring)."""
    _, denom, w = _scalar_parts(a, b, q, r, s0, gamma, sigma, k)
    noise = sigma**2 * r / (1.0 - gamma) if sigma > 0 else 0.0
    return (q + r * k * k) * w / denom + noise


def scalar_gradient(a: float, b: float, q: float, r: float, s0: float, gamma: float, sigma: float, k: float) -> float:
    """C'(k) of the scalar system (see the module docstring)."""
    ak, denom, w = _scalar_parts(a, b, q, r, s0, gamma, sigma, k)
    p = (q + r * k * k) / denom
    return 2.0 * w * (r * k - gamma * b * ak * p) / denom
