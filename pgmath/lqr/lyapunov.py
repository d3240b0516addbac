"""Discrete Lyapunov equations X = M X Mᵀ + W, solved two ways, both differentiable.

    X = Σₖ Mᵏ W (Mᵀ)ᵏ          (converges iff the spectral radius ρ(M) < 1)

* ``method="kronecker"`` — one linear solve of the vectorised equation (row-major vec):
  vec(M X Mᵀ) = (M ⊗ M) vec(X), so (I − M ⊗ M) vec(X) = vec(W). n² unknowns: for the small
  systems of this package (n ≤ 10) it is exact to round-off and cheap.
* ``method="doubling"`` — the doubling iteration Xⱼ₊₁ = Xⱼ + Mⱼ Xⱼ Mⱼᵀ, Mⱼ₊₁ = Mⱼ², X₀ = W,
  M₀ = M: after j steps Xⱼ sums the first 2ʲ terms of the series, so the error falls like
  ρ(M)^(2^(j+1)) (quadratically); it stops when ‖Mⱼ‖ ≤ eps.

Both are plain torch operations, so autograd differentiates through them (the gradient tests of
:mod:`pgmath.specs.lqr` compare ∇C(K) with autograd through these solves).

Source: Kailath, Sayed & Hassibi, *Linear Estimation* (2000), §D (Lyapunov equations);
the doubling algorithm: Smith, "Matrix equation XA + BX = C", SIAM J. Appl. Math. 16 (1968).

Checked by: tests/test_lqr.py::test_lyapunov_solvers_agree_with_scipy (both methods against
``scipy.linalg.solve_discrete_lyapunov`` and the truncated series).
"""

from __future__ import annotations

import torch

__all__ = ["LYAPUNOV_METHODS", "solve_discrete_lyapunov"]

#: The solvers of :func:`solve_discrete_lyapunov`.
LYAPUNOV_METHODS: tuple[str, ...] = ("kronecker", "doubling")


def _kronecker(M: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    n = M.shape[0]
    eye = torch.eye(n * n, dtype=M.dtype, device=M.device)
    x = torch.linalg.solve(eye - torch.kron(M, M), W.reshape(n * n))
    return x.reshape(n, n)


def _doubling(M: torch.Tensor, W: torch.Tensor, max_iter: int = 64) -> torch.Tensor:
    X, Mj = W, M
    eps = float(torch.finfo(M.dtype).eps)
    # doubling steps j = 0, 1, …: Xⱼ sums the first 2ʲ⁺¹ terms after the update
    for _ in range(max_iter):
        X = X + Mj @ X @ Mj.mT
        Mj = Mj @ Mj
        if float(Mj.detach().abs().max()) <= eps:
            break
    return X


def solve_discrete_lyapunov(M: torch.Tensor, W: torch.Tensor, *, method: str = "kronecker") -> torch.Tensor:
    """The solution X of X = M X Mᵀ + W (symmetrised when W is symmetric).

    Args:
      M: ``[n, n]`` matrix with spectral radius < 1 (not checked here: callers check stability,
        :meth:`pgmath.lqr.LQR.spectral_radius`).
      W: ``[n, n]`` matrix (same dtype and device).
      method: ``"kronecker"`` or ``"doubling"`` (see the module docstring).

    Returns:
      ``[n, n]`` X = Σₖ Mᵏ W (Mᵀ)ᵏ.
    """
    if method not in LYAPUNOV_METHODS:
        raise ValueError(f"method must be one of {LYAPUNOV_METHODS}, got {method!r}")
    if M.dim() != 2 or M.shape[0] != M.shape[1] or tuple(W.shape) != tuple(M.shape):
        raise ValueError(f"M and W must be square [n, n] of one shape, got M {tuple(M.shape)}, W {tuple(W.shape)}")
    X = _kronecker(M, W) if method == "kronecker" else _doubling(M, W)
    if bool(torch.equal(W, W.mT)):
        X = 0.5 * (X + X.mT)
    return X
