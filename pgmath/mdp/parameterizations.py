"""Policy parameterizations for tabular MDPs: θ ↦ π_θ(a|s) as a table ``[S, A]``.

Linear softmax over state-action features (Sutton & Barto, 2nd ed., §13.1, eq. 13.3)::

    h(s, a, θ) = θ · x(s, a)          π_θ(a|s) = exp h(s, a, θ) / Σ_b exp h(s, b, θ)

The tabular softmax is the special case x(s, a) = one-hot(s, a); it is built into
:meth:`pgmath.mdp.TabularMDP.policy`. Features that make all states look alike (the short
corridor, Example 13.1) need this general form.

Checked by: tests/test_mdp_tabular.py::test_linear_softmax_gradient_* (theorem == autograd ==
finite differences through a callable policy) and tests/test_mdp_canonical.py (Example 13.1).
"""

from __future__ import annotations

import torch

from pgmath.mdp.tabular import softmax
from pgmath.validation import validate_float_tensor

__all__ = ["LinearSoftmaxPolicy"]


class LinearSoftmaxPolicy:
    """π_θ(a|s) = softmax_a(x(s, a) · θ), a callable ``theta [K] -> pi [S, A]``.

    Args:
      features: ``[S, A, K]`` floating tensor x(s, a) of K features per state-action pair.
    """

    def __init__(self, features: torch.Tensor) -> None:
        validate_float_tensor(features, "features")
        if features.dim() != 3 or 0 in features.shape:
            raise ValueError(f"features must have shape [S, A, K] with S, A, K >= 1, got {tuple(features.shape)}")
        self.features = features

    @property
    def num_params(self) -> int:
        return int(self.features.shape[-1])

    def __call__(self, theta: torch.Tensor) -> torch.Tensor:
        """Return π_θ ``[S, A]`` for parameters ``theta [K]`` (differentiable)."""
        validate_float_tensor(theta, "theta")
        if tuple(theta.shape) != (self.num_params,):
            raise ValueError(f"theta must have shape [K] = ({self.num_params},), got {tuple(theta.shape)}")
        return softmax(self.features.to(theta.dtype) @ theta)
