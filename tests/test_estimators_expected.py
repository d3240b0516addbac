"""Exact expectations of the estimators (linear solves) against independent computations."""

from __future__ import annotations

import pytest
import torch

from pgmath.estimators import UNBIASED_ESTIMATORS, expected_gradient, gae_value_error_bias
from pgmath.estimators.expected import score_expectation, value_error_action_values
from pgmath.estimators.policy_gradient import perturbed_values
from pgmath.mdp import LinearSoftmaxPolicy, random_mdp, short_corridor, short_corridor_features

F64 = torch.float64


def _problem(seed: int, gamma: float = 0.9):
    g = torch.Generator().manual_seed(seed)
    mdp = random_mdp(5, 3, generator=g, gamma=gamma, num_terminal=1)
    return mdp, torch.randn(5, 3, generator=g, dtype=F64)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("name", UNBIASED_ESTIMATORS)
def test_unbiased_rules_have_mean_exact_gradient(name, seed):
    mdp, logits = _problem(seed)
    want = mdp.exact_policy_gradient(logits, method="autograd")
    torch.testing.assert_close(expected_gradient(mdp, logits, name), want, rtol=1e-10, atol=1e-12)


def test_unbiased_rules_with_linear_features():
    mdp = short_corridor()
    fn = LinearSoftmaxPolicy(short_corridor_features(2))
    theta = torch.tensor([0.4, -0.3], dtype=F64)
    want = mdp.exact_policy_gradient(fn, theta, method="autograd")
    for name in UNBIASED_ESTIMATORS:
        torch.testing.assert_close(expected_gradient(mdp, theta, name, policy_fn=fn), want, rtol=1e-10, atol=1e-12)


def test_no_discount_weight_exact_at_gamma_one_biased_below():
    mdp, logits = _problem(3, gamma=1.0)
    torch.testing.assert_close(expected_gradient(mdp, logits, "gae_no_discount_weight"),
                               mdp.exact_policy_gradient(logits), rtol=1e-10, atol=1e-12)
    mdp9 = mdp.with_gamma(0.9)
    biased = expected_gradient(mdp9, logits, "gae_no_discount_weight")
    exact = mdp9.exact_policy_gradient(logits)
    assert float((biased - exact).norm() / exact.norm()) > 0.05
    # closed form d₁(s) π(a|s) A(s, a) with d₁ from a forward loop (not a linear solve)
    pi = mdp9.policy(logits)
    P = mdp9.transition_matrix(pi)
    live = (~mdp9.terminal).to(F64)
    dist, d1 = mdp9.mu0.clone(), torch.zeros(5, dtype=F64)
    for _ in range(3000):  # forward in time until the mass has terminated
        d1 += dist * live
        dist = (dist * live) @ P
    torch.testing.assert_close(biased, d1[:, None] * pi * mdp9.advantages(pi), rtol=1e-9, atol=1e-12)


def test_value_error_action_values_by_power_series():
    """Q_e = Σₗ (γλ)ˡ E[εₜ₊ₗ | sₜ, aₜ], summed term by term with the transition matrix."""
    mdp, logits = _problem(4)
    pi = mdp.policy(logits)
    V = mdp.state_values(pi)
    Vhat = perturbed_values(mdp, V)
    lam = 0.6
    e = (Vhat - V) * (~mdp.terminal).to(F64)
    eps = (mdp.gamma * torch.einsum("sat,t->sa", mdp.P, e) - e[:, None]) * (~mdp.terminal).to(F64)[:, None]
    eps_pi = (pi * eps).sum(-1)
    P_pi = mdp.transition_matrix(pi)
    Qe = eps.clone()
    reach = mdp.P.clone()  # Pr(s_{t+l} = · | sₜ, aₜ), starting at l = 1
    # forward over l = 1, 2, …: add (γλ)ˡ E[ε_π(s_{t+l})]
    for step in range(1, 400):
        Qe = Qe + (mdp.gamma * lam) ** step * torch.einsum("sat,t->sa", reach, eps_pi)
        reach = torch.einsum("sat,tu->sau", reach, P_pi)
    torch.testing.assert_close(value_error_action_values(mdp, pi, Vhat, lam), Qe, rtol=1e-9, atol=1e-12)


def test_gae_bias_vanishes_at_lambda_one_and_has_closed_form_at_zero():
    mdp, logits = _problem(5)
    pi = mdp.policy(logits)
    V = mdp.state_values(pi)
    Vhat = perturbed_values(mdp, V)
    g = mdp.exact_policy_gradient(logits)
    assert float(gae_value_error_bias(mdp, logits, Vhat, 1.0).norm() / g.norm()) < 1e-12
    e = (Vhat - V) * (~mdp.terminal).to(F64)
    f = mdp.gamma * torch.einsum("sat,t->sa", mdp.P, e)
    d = mdp.discounted_occupancy(pi)
    closed = d[:, None] * pi * (f - (pi * f).sum(-1, keepdim=True))
    torch.testing.assert_close(gae_value_error_bias(mdp, logits, Vhat, 0.0), closed, rtol=1e-10, atol=1e-12)
    assert float(closed.norm() / g.norm()) > 0.05  # the perturbation really biases λ = 0


def test_biased_rules_closed_forms():
    mdp, logits = _problem(6)
    pi = mdp.policy(logits)
    g = mdp.exact_policy_gradient(logits)
    d = mdp.discounted_occupancy(pi)

    def softmax_score(f):  # d(s) π(a|s) (f − Σ_b π f) — the tabular-softmax closed form
        return d[:, None] * pi * (f - (pi * f).sum(-1, keepdim=True))

    torch.testing.assert_close(expected_gradient(mdp, logits, "gae_wrong_recursion", lam=0.7), 0.7 * g)
    torch.testing.assert_close(expected_gradient(mdp, logits, "action_dependent_baseline"), g - softmax_score(mdp.R))
    # Gₜ − R(sₜ, aₜ) = γ Gₜ₊₁: the action-dependent baseline b = R is γ × the off-by-one return
    torch.testing.assert_close(expected_gradient(mdp, logits, "action_dependent_baseline"),
                               mdp.gamma * expected_gradient(mdp, logits, "off_by_one_return"))
    Vhat = perturbed_values(mdp, mdp.state_values(pi))
    torch.testing.assert_close(expected_gradient(mdp, logits, "gae_perturbed_values"),
                               g + gae_value_error_bias(mdp, logits, Vhat, 0.5))
    torch.testing.assert_close(expected_gradient(mdp, logits, "baseline", values=Vhat), g)


def test_score_expectation_validation():
    mdp, logits = _problem(7)
    with pytest.raises(ValueError, match="params"):
        score_expectation(mdp, torch.zeros(5, 3, dtype=torch.long), torch.ones(5, dtype=F64), torch.ones(5, 3, dtype=F64))
    with pytest.raises(ValueError, match="lam"):
        value_error_action_values(mdp, mdp.policy(logits), torch.zeros(5, dtype=F64), 1.2)
    with pytest.raises(ValueError, match="values must have shape"):
        value_error_action_values(mdp, mdp.policy(logits), torch.zeros(4, dtype=F64), 0.5)
