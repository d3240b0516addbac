"""Iterative policy evaluation: the plain-loop references for the linear solves of TabularMDP.

    V₀ = 0,   Vₖ₊₁(s) = Σₐ π(a|s) (R[s, a] + γ Σₛ' P[s, a, s'] Vₖ(s'))    (V = 0 on terminal s)

converges to V^π when γ < 1 or when π terminates (Sutton & Barto, 2nd ed., §4.1; this is the
algorithm that produced their Figure 4.1). The same loop run on the transposed chain gives the
discounted occupancy, dₖ₊₁ = μ₀ + γ P_πᵀ dₖ. From these two, plain loops over (s, a) give
Q^π(s, a) = R[s, a] + γ Σₛ' P[s, a, s'] V^π(s') and the policy gradient theorem
∇J = Σₛ d(s) Σₐ ∇π(a|s) Q(s, a): the references of the specs in :mod:`pgmath.specs.mdp`.

Each stops when a sweep changes the iterate by at most ``tol`` (1e-12), so it is within about
tol · ρ / (1 − ρ) of the fixed point (ρ: the spectral radius of γ P_π on non-terminal states).

Checked by: tests/test_mdp_tabular.py::test_solve_matches_iterative_evaluation and the
properties of the mdp specs (tests/test_specs.py: every spec's reference passes every property).
"""

from __future__ import annotations

import torch

from pgmath.mdp.tabular import Params, PolicyFn, TabularMDP
from pgmath.validation import validate_float_tensor, validate_positive

__all__ = [
    "iterative_action_values",
    "iterative_occupancy",
    "iterative_policy_evaluation",
    "iterative_policy_gradient",
]


def _sweeps(mdp: TabularMDP, pi: torch.Tensor, transpose: bool, tol: float, max_sweeps: int) -> torch.Tensor:
    tol = validate_positive(tol, "tol")
    if isinstance(max_sweeps, bool) or not isinstance(max_sweeps, int) or max_sweeps < 1:
        raise ValueError(f"max_sweeps must be an integer >= 1, got {max_sweeps!r}")
    pi = mdp.validate_policy(pi).detach()
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


def iterative_action_values(mdp: TabularMDP, pi: torch.Tensor) -> torch.Tensor:
    """Q^π ``[S, A]`` by a loop over (s, a): R[s, a] + γ Σₛ' P[s, a, s'] V(s'), V iterative."""
    V = iterative_policy_evaluation(mdp, pi)
    Q = torch.zeros(mdp.num_states, mdp.num_actions, dtype=mdp.dtype, device=mdp.device)
    # over states s and actions a: one look-ahead each
    for s in range(mdp.num_states):
        for a in range(mdp.num_actions):
            Q[s, a] = mdp.R[s, a] + mdp.gamma * (mdp.P[s, a] * V).sum()
    return Q


def iterative_policy_gradient(
    mdp: TabularMDP,
    logits_or_fn: torch.Tensor | PolicyFn,
    params: Params | None = None,
    *,
    method: str = "theorem",
) -> torch.Tensor:
    """∇J = Σₛ d(s) Σₐ ∇π(a|s) Q(s, a) by loops over (s, a), with iterative d, V and Q.

    Tabular softmax logits: ∂J/∂θ[s, a] = d(s) π(a|s) (Q(s, a) − V(s)), entry by entry. A
    callable ``policy_fn(params) -> π [S, A]`` (one parameter tensor): ∇π(a|s) is row (s, a)
    of the Jacobian of ``policy_fn`` (``torch.autograd.functional.jacobian``).

    Args:
      mdp: the MDP.
      logits_or_fn: ``[S, A]`` logits, or a callable ``params -> π [S, A]``.
      params: the callable's parameter tensor ``[K]`` (None for logits).
      method: accepted for the signature of :meth:`TabularMDP.exact_policy_gradient` ("theorem"
        or "autograd"); this reference computes the same loops either way.
    """
    if method not in ("theorem", "autograd"):
        raise ValueError(f"method must be 'theorem' or 'autograd', got {method!r}")
    S, A = mdp.num_states, mdp.num_actions
    if callable(logits_or_fn) and not isinstance(logits_or_fn, torch.Tensor):
        if not isinstance(params, torch.Tensor):
            raise ValueError("params must be one tensor when the policy is a callable theta -> pi")
        validate_float_tensor(params, "params")
        theta = params.detach().to(mdp.dtype)
        pi = mdp.validate_policy(logits_or_fn(theta), "policy_fn(params)").detach()
        dpi = torch.autograd.functional.jacobian(logits_or_fn, theta)  # [S, A, *params.shape]
    else:
        if params is not None:
            raise ValueError("params must be None when logits (a tensor) are given")
        pi = mdp.policy(logits_or_fn).detach()
        dpi = None
    V, d = iterative_policy_evaluation(mdp, pi), iterative_occupancy(mdp, pi)
    Q = iterative_action_values(mdp, pi)
    grad = torch.zeros(S, A, dtype=mdp.dtype, device=mdp.device) if dpi is None else torch.zeros_like(theta)
    # over states s and actions a: one term d(s) ∇π(a|s) Q(s, a) each
    for s in range(S):
        for a in range(A):
            if dpi is None:
                grad[s, a] = d[s] * pi[s, a] * (Q[s, a] - V[s])
            else:
                grad = grad + d[s] * dpi[s, a].to(mdp.dtype) * Q[s, a]
    return grad
