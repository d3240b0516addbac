"""Finite-horizon MDPs: time in the state.

A horizon-H version of an MDP has states (t, s) for t = 0 … H-1 plus one absorbing end state;
(t, s) moves to (t+1, s') with probability P[s, a, s'], and (H-1, s) moves to the end state.
Its values are the H-step values of the original MDP::

    V_H(s) = 0                 Vₜ(s) = Σₐ πₜ(a|s) (R[s, a] + γ Σₛ' P[s, a, s'] Vₜ₊₁(s'))

so every policy terminates and γ = 1 is always allowed. A policy of the expanded MDP may depend
on time: row t · S + s is πₜ(·|s).

:func:`finite_horizon_values` solves the expanded MDP (one linear solve);
:func:`backward_induction_values` is the plain backward loop it is checked against.

Source: Puterman, *Markov Decision Processes* (1994), §4.2 (backward induction).
Checked by: tests/test_mdp_canonical.py::test_finite_horizon_* (linear solve of the expanded MDP
== the backward-induction loop :func:`backward_induction_values`; H → ∞ limit for γ < 1) and the
spec ``finite_horizon_values`` of :mod:`pgmath.specs.mdp` (tests/test_specs.py).
"""

from __future__ import annotations

import torch

from pgmath.mdp.tabular import TabularMDP
from pgmath.validation import validate_float_tensor

__all__ = ["backward_induction_values", "finite_horizon", "finite_horizon_policy", "finite_horizon_values"]


def _validate_horizon(horizon: object) -> int:
    if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1:
        raise ValueError(f"horizon must be an integer >= 1, got {horizon!r}")
    return horizon


def finite_horizon(mdp: TabularMDP, horizon: int) -> TabularMDP:
    """The horizon-H MDP with states (t, s) ↦ index t · S + s and an end state H · S.

    Terminal states of ``mdp`` stay terminal at every time (absorbing); every state at time
    H-1 moves to the end state, which is terminal. μ₀ is put on time 0; γ is kept.

    Args:
      mdp: the original MDP (S states, A actions).
      horizon: H >= 1, the number of decisions.
    """
    H = _validate_horizon(horizon)
    S, A = mdp.num_states, mdp.num_actions
    N = H * S + 1
    end = H * S
    dt, dev = mdp.dtype, mdp.device
    P = torch.zeros(N, A, N, dtype=dt, device=dev)
    for t in range(H - 1):  # forward in time: (t, s) -> (t+1, s')
        P[t * S : (t + 1) * S, :, (t + 1) * S : (t + 2) * S] = mdp.P
    P[(H - 1) * S : H * S, :, end] = 1.0
    P[end, :, end] = 1.0
    term = torch.cat([mdp.terminal.repeat(H), torch.ones(1, dtype=torch.bool, device=dev)])
    for t in range(H):  # original terminal states stay put at every time
        idx = torch.nonzero(mdp.terminal).squeeze(1) + t * S
        P[idx] = 0.0
        P[idx, :, idx] = 1.0
    R = torch.cat([mdp.R.repeat(H, 1), torch.zeros(1, A, dtype=dt, device=dev)])
    mu0 = torch.zeros(N, dtype=dt, device=dev)
    mu0[:S] = mdp.mu0
    return TabularMDP(P, R, mdp.gamma, mu0, term, dtype=dt, device=dev)


def finite_horizon_policy(pi: torch.Tensor, horizon: int) -> torch.Tensor:
    """Expand a policy to the horizon-H MDP: ``[S, A]`` (stationary) or ``[H, S, A]`` (πₜ) → ``[H·S+1, A]``.

    The end state's row is uniform (it never acts).
    """
    H = _validate_horizon(horizon)
    validate_float_tensor(pi, "pi")
    if pi.dim() == 2:
        pi = pi.expand(H, *pi.shape)
    if pi.dim() != 3 or pi.shape[0] != H:
        raise ValueError(f"pi must have shape [S, A] or [H, S, A] with H = {H}, got {tuple(pi.shape)}")
    A = pi.shape[-1]
    end = torch.full((1, A), 1.0 / A, dtype=pi.dtype, device=pi.device)
    return torch.cat([pi.reshape(-1, A), end])


def finite_horizon_values(mdp: TabularMDP, pi: torch.Tensor, horizon: int) -> torch.Tensor:
    """The H-step values ``[H+1, S]`` by one linear solve of the time-expanded MDP.

    Row t holds Vₜ(s) = E[Σ_{k=t}^{H−1} γ^{k−t} r_k | s_t = s] under πₜ, …, π_{H−1}; row H is 0
    (nothing left to do), and so is every terminal state. Same layout and arguments as
    :func:`backward_induction_values`, its reference.

    Args:
      mdp: the MDP (S states, A actions).
      pi: ``[S, A]`` stationary or ``[H, S, A]`` time-dependent policy (πₜ at index t).
      horizon: H >= 1, the number of decisions.
    """
    H = _validate_horizon(horizon)
    S = mdp.num_states
    validate_float_tensor(pi, "pi")
    if pi.shape[-2:] != (S, mdp.num_actions):
        raise ValueError(f"pi must have shape [S, A] or [H, S, A] with [S, A] = {(S, mdp.num_actions)}, "
                         f"got {tuple(pi.shape)}")
    expanded = finite_horizon(mdp, H)
    V = expanded.state_values(finite_horizon_policy(pi.to(device=mdp.device), H))
    return torch.cat([V[:-1].reshape(H, S), V.new_zeros(1, S)])


def backward_induction_values(mdp: TabularMDP, pi: torch.Tensor, horizon: int) -> torch.Tensor:
    """Reference: the H-step values ``[H+1, S]`` of a (possibly time-dependent) policy by a plain loop.

    Row t holds Vₜ(s) = Σₐ πₜ(a|s)(R[s, a] + γ Σₛ' P[s, a, s'] Vₜ₊₁(s')), with V_H = 0 and
    V = 0 on terminal states.

    Args:
      mdp: the MDP.
      pi: ``[S, A]`` stationary or ``[H, S, A]`` time-dependent policy (πₜ at index t).
      horizon: H >= 1.
    """
    H = _validate_horizon(horizon)
    validate_float_tensor(pi, "pi")
    if pi.dim() == 2:
        pi = pi.expand(H, *pi.shape)
    S, A = mdp.num_states, mdp.num_actions
    if tuple(pi.shape) != (H, S, A):
        raise ValueError(f"pi must have shape [S, A] or [H, S, A] = {(H, S, A)}, got {tuple(pi.shape)}")
    for t in range(H):  # every πₜ must be a policy table on the MDP's device
        mdp.validate_policy(pi[t], "pi")
    V = torch.zeros(H + 1, S, dtype=mdp.dtype, device=mdp.device)
    live = (~mdp.terminal).to(mdp.dtype)
    # backward in time: t = H-1, …, 0
    for t in range(H - 1, -1, -1):
        Q = mdp.R + mdp.gamma * torch.einsum("sat,t->sa", mdp.P, V[t + 1])
        V[t] = (pi[t].to(mdp.dtype) * Q).sum(-1) * live
    return V
