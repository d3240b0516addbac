"""Exact policy evaluation and the exact policy gradient (pgmath.mdp.tabular)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from pgmath.mdp import (
    LinearSoftmaxPolicy,
    central_difference_gradient,
    chain,
    gridworld,
    iterative_occupancy,
    iterative_policy_evaluation,
    random_mdp,
    truncated_occupancy,
)
from pgmath.specs import SPECS

F64 = torch.float64


@st.composite
def mdp_and_logits(draw, max_states: int = 6, max_actions: int = 4):
    """A random MDP (γ < 1, or γ = 1 with terminal states) and random softmax logits."""
    S = draw(st.integers(1, max_states))
    A = draw(st.integers(1, max_actions))
    episodic = S >= 2 and draw(st.booleans())
    K = draw(st.integers(1, S - 1)) if episodic else 0
    gamma = draw(st.sampled_from([1.0, 0.9])) if episodic else draw(st.floats(0.0, 0.95))
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    mdp = random_mdp(S, A, generator=g, gamma=gamma, num_terminal=K)
    scale = draw(st.sampled_from([0.1, 1.0, 3.0]))
    logits = scale * torch.randn(S, A, generator=g, dtype=F64)
    return mdp, logits


def _fd_tol(grad: torch.Tensor) -> float:
    # central differences with h = 1e-5 are accurate to ~1e-9 here; a wrong formula is off by O(|grad|)
    return 1e-6 * (1.0 + float(grad.abs().max()))


@given(case=mdp_and_logits())
def test_gradient_theorem_equals_autograd_and_finite_differences(case):
    mdp, logits = case
    g_thm = mdp.exact_policy_gradient(logits, method="theorem")
    g_ad = mdp.exact_policy_gradient(logits, method="autograd")
    assert g_thm.shape == (mdp.num_states, mdp.num_actions)
    torch.testing.assert_close(g_thm, g_ad, rtol=0, atol=1e-10)
    g_fd = central_difference_gradient(lambda x: mdp.objective(x), logits)
    torch.testing.assert_close(g_thm, g_fd, rtol=0, atol=_fd_tol(g_thm))


@given(case=mdp_and_logits(), K=st.integers(1, 3), seed=st.integers(0, 2**31 - 1))
def test_linear_softmax_gradient_theorem_equals_autograd_and_finite_differences(case, K, seed):
    mdp, _ = case
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(mdp.num_states, mdp.num_actions, K, generator=g, dtype=F64)
    policy = LinearSoftmaxPolicy(feats)
    theta = torch.randn(K, generator=g, dtype=F64)
    g_thm = mdp.exact_policy_gradient(policy, theta, method="theorem")
    g_ad = mdp.exact_policy_gradient(policy, theta, method="autograd")
    assert g_thm.shape == (K,)
    torch.testing.assert_close(g_thm, g_ad, rtol=0, atol=1e-10)
    g_fd = central_difference_gradient(lambda th: mdp.objective(policy, th), theta)
    torch.testing.assert_close(g_thm, g_fd, rtol=0, atol=_fd_tol(g_thm))


def test_gradient_with_tuple_params_and_tabular_logits_as_callable():
    g = torch.Generator().manual_seed(3)
    mdp = random_mdp(5, 3, generator=g, gamma=0.8)
    logits = torch.randn(5, 3, generator=g, dtype=F64)
    bias = torch.randn(3, generator=g, dtype=F64)

    def policy_fn(params):
        lg, b = params
        return torch.softmax(lg + b, -1)

    for method in ("theorem", "autograd"):
        g_l, g_b = mdp.exact_policy_gradient(policy_fn, (logits, bias), method=method)
        ref = mdp.exact_policy_gradient(logits + bias, method="autograd")
        torch.testing.assert_close(g_l, ref, rtol=0, atol=1e-12)
        torch.testing.assert_close(g_b, ref.sum(0), rtol=0, atol=1e-12)


def test_objective_is_differentiable_and_matches_sum_of_occupancy_times_reward():
    g = torch.Generator().manual_seed(0)
    mdp = random_mdp(6, 3, generator=g, gamma=0.9, num_terminal=2)
    logits = torch.randn(6, 3, generator=g, dtype=F64, requires_grad=True)
    J = mdp.objective(logits)
    (grad,) = torch.autograd.grad(J, logits)
    torch.testing.assert_close(grad, mdp.exact_policy_gradient(logits), rtol=0, atol=1e-12)
    pi = mdp.policy(logits.detach())
    d = mdp.discounted_occupancy(pi)
    torch.testing.assert_close(J.detach(), d @ mdp.expected_rewards(pi), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("gamma,K", [(0.0, 0), (0.7, 0), (0.99, 0), (1.0, 2), (0.9, 3)])
def test_bellman_equations_hold(gamma, K):
    g = torch.Generator().manual_seed(11)
    mdp = random_mdp(7, 3, generator=g, gamma=gamma, num_terminal=K)
    pi = mdp.policy(torch.randn(7, 3, generator=g, dtype=F64))
    V, Q, A = mdp.state_values(pi), mdp.action_values(pi), mdp.advantages(pi)
    live = ~mdp.terminal
    # V = Σₐ π Q, Q = R + γ P V, Σₐ π A = 0, and everything is zero on terminal states
    torch.testing.assert_close(V, (pi * Q).sum(-1), rtol=0, atol=1e-12)
    torch.testing.assert_close(Q, mdp.R + gamma * torch.einsum("sat,t->sa", mdp.P, V), rtol=0, atol=1e-12)
    torch.testing.assert_close((pi * A).sum(-1), torch.zeros(7, dtype=F64), rtol=0, atol=1e-12)
    assert bool((V[~live] == 0).all()) and bool((Q[~live] == 0).all())
    d = mdp.discounted_occupancy(pi)
    P_pi = mdp.transition_matrix(pi)
    lhs = d[live] - gamma * (P_pi.T @ d)[live]
    torch.testing.assert_close(lhs, mdp.mu0[live], rtol=0, atol=1e-12)
    assert bool((d[~live] == 0).all())
    dn = mdp.discounted_occupancy(pi, normalized=True)
    torch.testing.assert_close(dn.sum(), torch.tensor(1.0, dtype=F64), rtol=0, atol=1e-12)
    if K == 0:  # without terminal states the total discounted time is 1/(1-γ)
        torch.testing.assert_close(d.sum(), torch.tensor(1 / (1 - gamma), dtype=F64), rtol=1e-10, atol=0)
    sa = mdp.state_action_occupancy(pi)
    torch.testing.assert_close(sa.sum(-1), d, rtol=0, atol=1e-12)


@pytest.mark.parametrize("gamma,K", [(0.5, 0), (0.9, 1), (1.0, 2)])
def test_solve_matches_iterative_evaluation(gamma, K):
    g = torch.Generator().manual_seed(5)
    mdp = random_mdp(8, 3, generator=g, gamma=gamma, num_terminal=K)
    pi = mdp.policy(torch.randn(8, 3, generator=g, dtype=F64))
    torch.testing.assert_close(mdp.state_values(pi), iterative_policy_evaluation(mdp, pi), rtol=0, atol=1e-9)
    torch.testing.assert_close(mdp.discounted_occupancy(pi), iterative_occupancy(mdp, pi), rtol=0, atol=1e-9)
    # the truncated forward loop of the sampler test converges to the same occupancy
    occ = truncated_occupancy(mdp, pi, 5000)
    torch.testing.assert_close(occ, mdp.state_action_occupancy(pi), rtol=0, atol=1e-9)


def test_deterministic_chain_values_closed_form():
    n, gamma = 6, 0.8
    mdp = chain(n, gamma=gamma)
    right = torch.zeros(n, 2, dtype=F64)
    right[:, 1] = 1.0
    V = mdp.state_values(right)
    expected = torch.tensor([gamma ** (n - 2 - s) for s in range(n - 1)] + [0.0], dtype=F64)
    torch.testing.assert_close(V, expected, rtol=0, atol=1e-14)


def test_gamma_one_episodic_works_and_nonterminating_policy_raises():
    mdp = gridworld()  # γ = 1
    uniform = torch.full((16, 4), 0.25, dtype=F64)
    assert torch.isfinite(mdp.state_values(uniform)).all()
    left = torch.zeros(16, 4, dtype=F64)
    left[:, 3] = 1.0  # rows 1-3 get stuck against the left wall, never reaching a terminal corner
    with pytest.raises(ValueError, match="singular"):
        mdp.state_values(left)
    with pytest.raises(ValueError, match="singular"):
        mdp.discounted_occupancy(left)
    with pytest.raises(ValueError, match="singular"):
        mdp.exact_policy_gradient(1000.0 * (left - 1))  # exp(-1000) underflows to an exact 0
    # the same policy is fine with γ < 1
    assert torch.isfinite(mdp.with_gamma(0.9).state_values(left)).all()


def test_gamma_one_without_terminal_states_raises():
    g = torch.Generator().manual_seed(0)
    mdp = random_mdp(4, 2, generator=g, gamma=1.0)
    with pytest.raises(ValueError, match="singular"):
        mdp.objective(torch.zeros(4, 2, dtype=F64))


def test_float32_runs_and_agrees_with_float64():
    g = torch.Generator().manual_seed(2)
    mdp = random_mdp(5, 3, generator=g, gamma=0.9)
    logits = torch.randn(5, 3, generator=g, dtype=F64)
    m32 = mdp.to(dtype=torch.float32)
    g32 = m32.exact_policy_gradient(logits.float())
    assert g32.dtype == torch.float32
    torch.testing.assert_close(g32.double(), mdp.exact_policy_gradient(logits), rtol=1e-4, atol=1e-5)


def test_runs_on_device(device):
    g = torch.Generator(device=device).manual_seed(0)
    mdp = random_mdp(6, 3, generator=g, gamma=0.95, num_terminal=1)
    assert mdp.device.type == device.type
    logits = torch.zeros(6, 3, dtype=F64, device=device)
    a = mdp.exact_policy_gradient(logits)
    b = mdp.exact_policy_gradient(logits, method="autograd")
    assert a.device.type == device.type
    torch.testing.assert_close(a, b, rtol=0, atol=1e-10)


def test_central_difference_on_quadratic():
    A = torch.tensor([[2.0, 0.5], [0.5, 1.0]], dtype=F64)
    x = torch.tensor([0.3, -1.2], dtype=F64)
    g = central_difference_gradient(lambda v: 0.5 * v @ A @ v + v.sum(), x)
    torch.testing.assert_close(g, A @ x + 1, rtol=0, atol=1e-10)


@pytest.mark.parametrize("variant", SPECS["exact_policy_gradient"].wrong_variants, ids=lambda v: v.name)
def test_wrong_gradient_formulas_are_caught(variant):
    """Power: each catalogued wrong gradient (pgmath.specs.mdp) differs from the exact gradient by
    far more than the finite-difference tolerance on an episodic discounted MDP."""
    g = torch.Generator().manual_seed(7)
    mdp = random_mdp(6, 3, generator=g, gamma=0.9, num_terminal=1)
    logits = torch.randn(6, 3, generator=g, dtype=F64)
    exact = mdp.exact_policy_gradient(logits, method="autograd")
    assert float((variant.fn(mdp, logits) - exact).abs().max()) > 100 * _fd_tol(exact)


def test_short_corridor_objective_matches_closed_form_curve():
    # J(p) = (2p - 4) / (p (1 - p)) for P(right) = p (derived in docs/mdp/short-corridor.md)
    from pgmath.mdp import short_corridor, short_corridor_features

    mdp = short_corridor()
    policy = LinearSoftmaxPolicy(short_corridor_features(1))
    for p in (0.1, 0.3, 0.5, 0.59, 0.8, 0.95):
        theta = torch.tensor([math.log(p / (1 - p))], dtype=F64)
        J = float(mdp.objective(policy, theta))
        assert abs(J - (2 * p - 4) / (p * (1 - p))) < 1e-10
