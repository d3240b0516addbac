"""Central finite differences: the third, assumption-free check of an exact gradient.

    ∂f/∂xᵢ ≈ (f(x + h eᵢ) - f(x - h eᵢ)) / (2h)        error O(h²) + O(ε_mach / h)

With float64 and h ≈ 1e-5 the two error terms balance near 1e-10 relative to the scale of f.

Checked by: tests/test_mdp_tabular.py::test_central_difference_on_quadratic (exact on a
quadratic) and used by the gradient tests of the same file.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from pgmath.validation import validate_float_tensor, validate_positive

__all__ = ["central_difference_gradient"]


def central_difference_gradient(
    fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, *, step: float = 1e-5
) -> torch.Tensor:
    """The central-difference gradient of a scalar function at ``x`` (same shape as ``x``).

    Args:
      fn: ``x -> scalar tensor``; called 2·numel(x) times, without autograd.
      x: the point (any shape, floating; float64 recommended).
      step: h > 0.
    """
    validate_float_tensor(x, "x")
    h = validate_positive(step, "step")
    x = x.detach()
    flat = x.reshape(-1)
    g = torch.empty_like(flat)
    with torch.no_grad():
        # over coordinates i, one pair of evaluations each
        for i in range(flat.numel()):
            e = torch.zeros_like(flat)
            e[i] = h
            g[i] = (fn((flat + e).reshape(x.shape)) - fn((flat - e).reshape(x.shape))) / (2 * h)
    return g.reshape(x.shape)
