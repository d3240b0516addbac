"""Iterative policy evaluation: the plain-loop reference for the linear solves of TabularMDP.

    V₀ = 0,   Vₖ₊₁(s) = Σₐ π(a|s) (R[s, a] + γ Σₛ' P[s, a, s'] Vₖ(s'))    (V = 0 on terminal s)

converges to V^π when γ < 1 or when π terminates (Sutton & Barto, 2nd ed., §4.1; this is the
algorithm that produced their Figure 4.1). The same loop run on the transposed chain gives the
discounted occupancy, dₖ₊₁ = μ₀ + γ P_πᵀ dₖ.

Checked by: tests/test_mdp_tabular.py::test_solve_matches_iterative_evaluation.
"""

from __future__ import annotations

import torch

from pgmath.mdp.tabular import TabularMDP
from pgmath.validation import validate_positive

__all__ = ["iterative_occupancy", "iterative_policy_evaluation"]


def _sweeps(mdp: TabularMDP, pi: torch.Tensor, transpose: bool, tol: float, max_sweeps: int) -> torch.Tensor:
    tol = validate_positive(tol, "tol")
    if isinstance(max_sweeps, bool) or not isinstance(max_sweeps, int) or max_sweeps < 1:
        raise ValueError(f"max_sweeps must be an integer >= 1, got {max_sweeps!r}")
    pi = mdp.check_policy(pi).detach()
    live = (~mdp.terminal).to(mdp.dtype)
    P_pi = torch.einsum("sa,sat->st", pi, mdp.P) * live[:, None] * live[None, :]
    b = mdp.mu0 * live if transpose else (pi * mdp.R).sum(-1) * live
    M = P_pi.T if transpose else P_pi
    x = torch.zeros_like(b)
    # sweep k = 0, 1, … until the update is below tol (a "synchronous" sweep over all states)
    for _ in range(max_sweeps):
        x_new = b + mdp.gamma * (M @ x)
        if float((x_new - x).abs().max()) <= tol:
            return x_new
        x = x_new
    raise ValueError(f"iterative evaluation did not converge in max_sweeps = {max_sweeps} sweeps")


def iterative_policy_evaluation(
    mdp: TabularMDP, pi: torch.Tensor, *, tol: float = 1e-12, max_sweeps: int = 1_000_000
) -> torch.Tensor:
    """V^π ``[S]`` by repeated Bellman backups (stops when a sweep changes V by <= tol)."""
    return _sweeps(mdp, pi, False, tol, max_sweeps)


def iterative_occupancy(
    mdp: TabularMDP, pi: torch.Tensor, *, tol: float = 1e-12, max_sweeps: int = 1_000_000
) -> torch.Tensor:
    """d^π ``[S]`` by repeated backups dₖ₊₁ = μ₀ + γ P_πᵀ dₖ on non-terminal states."""
    return _sweeps(mdp, pi, True, tol, max_sweeps)
