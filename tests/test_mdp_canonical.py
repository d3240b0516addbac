"""Canonical MDPs: published textbook numbers recomputed by the library (pgmath.mdp.canonical)."""

from __future__ import annotations

import math

import pytest
import torch
from scipy.optimize import minimize_scalar

from pgmath.mdp import (
    LinearSoftmaxPolicy,
    backward_induction_values,
    bandit,
    chain,
    finite_horizon,
    finite_horizon_policy,
    gridworld,
    random_mdp,
    short_corridor,
    short_corridor_features,
)

F64 = torch.float64


def _short_corridor_optimum(num_params: int) -> tuple[float, float]:
    """Maximize J over the book's linear-softmax policy with the library; return (p*, J*)."""
    mdp = short_corridor()
    policy = LinearSoftmaxPolicy(short_corridor_features(num_params))

    def theta_of(x: float) -> torch.Tensor:
        # one free direction: P(right) depends on θ_right - θ_left only
        return torch.tensor([x] if num_params == 1 else [x / 2, -x / 2], dtype=F64)

    res = minimize_scalar(
        lambda x: -float(mdp.objective(policy, theta_of(x))), bounds=(-10, 10), method="bounded",
        options={"xatol": 1e-10},
    )
    theta = theta_of(float(res.x))
    p_right = float(policy(theta)[0, 1])
    return p_right, -float(res.fun)


@pytest.mark.parametrize("num_params", [1, 2])
def test_short_corridor_optimum_matches_sutton_barto_example_13_1(num_params):
    # Sutton & Barto (2018), Example 13.1: "the best probability of selecting right is about 0.59",
    # achieving a value of about -11.6 (printed rounded to 2 and 3 significant digits)
    p_star, J_star = _short_corridor_optimum(num_params)
    assert abs(p_star - 0.59) <= 0.005
    assert abs(J_star - (-11.6)) <= 0.06
    # and to full precision, the closed form of docs/mdp/short-corridor.md: p* = 2 - √2
    assert abs(p_star - (2 - math.sqrt(2))) < 1e-6
    assert abs(J_star - (-(3 + 2 * math.sqrt(2)) * 2)) < 1e-9


def test_short_corridor_optimum_gradient_vanishes_and_deterministic_policies_fail():
    mdp = short_corridor()
    policy = LinearSoftmaxPolicy(short_corridor_features(1))
    p = 2 - math.sqrt(2)
    theta = torch.tensor([math.log(p / (1 - p))], dtype=F64)
    g = mdp.exact_policy_gradient(policy, theta)
    assert abs(float(g)) < 1e-9
    # near-deterministic policies are far worse than the stochastic optimum (the point of the example)
    for x in (-8.0, 8.0):
        assert float(mdp.objective(policy, torch.tensor([x], dtype=F64))) < -100


def test_gridworld_figure_4_1_values():
    # Sutton & Barto (2018), Figure 4.1, k = ∞: v_π of the equiprobable random policy
    book = torch.tensor(
        [[0, -14, -20, -22], [-14, -18, -20, -20], [-20, -20, -18, -14], [-22, -20, -14, 0]], dtype=F64
    )
    mdp = gridworld()
    pi = torch.full((16, 4), 0.25, dtype=F64)
    V = mdp.state_values(pi).reshape(4, 4)
    torch.testing.assert_close(V, book, rtol=0, atol=1e-9)


def test_gridworld_figure_4_1_k_equals_3_by_backward_induction():
    # Figure 4.1, k = 3 (three sweeps of iterative policy evaluation from v = 0), printed to 1 decimal
    book_k3 = torch.tensor(
        [[0.0, -2.4, -2.9, -3.0], [-2.4, -2.9, -3.0, -2.9], [-2.9, -3.0, -2.9, -2.4], [-3.0, -2.9, -2.4, 0.0]],
        dtype=F64,
    )
    mdp = gridworld()
    pi = torch.full((16, 4), 0.25, dtype=F64)
    V3 = backward_induction_values(mdp, pi, 3)[0].reshape(4, 4)
    assert float((V3 - book_k3).abs().max()) <= 0.05


def test_gridworld_moves_and_slip():
    mdp = gridworld(3, 4, terminals=[(0, 3)], slip=0.2, gamma=0.9)
    s = 1 * 4 + 1  # cell (1, 1)
    up, right, down, left = 0, 1, 2, 3
    assert abs(float(mdp.P[s, up, 0 * 4 + 1]) - (0.8 + 0.05)) < 1e-15
    assert abs(float(mdp.P[s, right, 1 * 4 + 2]) - 0.85) < 1e-15
    assert abs(float(mdp.P[s, down, 2 * 4 + 1]) - 0.85) < 1e-15
    assert abs(float(mdp.P[s, left, 1 * 4 + 0]) - 0.85) < 1e-15
    corner = 2 * 4 + 0  # (2, 0): down and left bump into walls
    assert abs(float(mdp.P[corner, down, corner]) - (0.8 + 0.1)) < 1e-15
    assert bool(mdp.terminal[3]) and int(mdp.terminal.sum()) == 1


def test_bandit_objective_and_gradient_closed_form():
    means = [1.0, -0.5, 2.0]
    mdp = bandit(means)
    logits = torch.zeros(2, 3, dtype=F64)
    logits[0] = torch.tensor([0.2, -1.0, 0.5], dtype=F64)
    pi = torch.softmax(logits[0], -1)
    m = torch.tensor(means, dtype=F64)
    J = float(pi @ m)
    assert abs(float(mdp.objective(logits)) - J) < 1e-14
    g = mdp.exact_policy_gradient(logits)
    torch.testing.assert_close(g[0], pi * (m - J), rtol=0, atol=1e-14)
    assert bool((g[1] == 0).all())


def test_chain_slip_keeps_rows_stochastic_and_values_decrease_away_from_goal():
    mdp = chain(5, gamma=0.95, slip=0.1)
    right = torch.zeros(5, 2, dtype=F64)
    right[:, 1] = 1.0
    V = mdp.state_values(right)
    assert bool((V[:-2] < V[1:-1]).all()) and float(V[-1]) == 0.0


@pytest.mark.parametrize("gamma,K", [(0.9, 0), (1.0, 1)])
def test_finite_horizon_solve_equals_backward_induction(gamma, K):
    g = torch.Generator().manual_seed(4)
    mdp = random_mdp(5, 3, generator=g, gamma=gamma, num_terminal=K)
    H = 7
    pi_t = torch.softmax(torch.randn(H, 5, 3, generator=g, dtype=F64), -1)
    fh = finite_horizon(mdp, H)
    assert fh.num_states == H * 5 + 1
    V_fh = fh.state_values(finite_horizon_policy(pi_t, H))
    V_ref = backward_induction_values(mdp, pi_t, H)
    torch.testing.assert_close(V_fh[:-1].reshape(H, 5), V_ref[:H], rtol=0, atol=1e-12)
    J_ref = float(mdp.mu0 @ V_ref[0])
    assert abs(float(fh.objective(torch.log(finite_horizon_policy(pi_t, H)))) - J_ref) < 1e-12


def test_finite_horizon_converges_to_infinite_horizon():
    g = torch.Generator().manual_seed(9)
    mdp = random_mdp(4, 2, generator=g, gamma=0.5)
    pi = torch.full((4, 2), 0.5, dtype=F64)
    H = 60  # bound γ^H max|R| / (1 - γ) < 1e-17
    V_H = finite_horizon(mdp, H).state_values(finite_horizon_policy(pi, H))[:4]
    torch.testing.assert_close(V_H, mdp.state_values(pi), rtol=0, atol=1e-12)


def test_random_mdp_is_reproducible_and_valid():
    a = random_mdp(6, 3, generator=torch.Generator().manual_seed(1), num_terminal=2)
    b = random_mdp(6, 3, generator=torch.Generator().manual_seed(1), num_terminal=2)
    c = random_mdp(6, 3, generator=torch.Generator().manual_seed(2), num_terminal=2)
    assert torch.equal(a.P, b.P) and torch.equal(a.R, b.R) and torch.equal(a.mu0, b.mu0)
    assert not torch.equal(a.P, c.P)
    assert a.terminal.tolist() == [False] * 4 + [True] * 2
