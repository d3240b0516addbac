"""Exact Fisher information, natural gradient, NPG and TRPO on tabular MDPs (pgmath.mdp.natural)."""

from __future__ import annotations

import pytest
import torch

from pgmath.mdp import (
    LinearSoftmaxPolicy,
    fisher_information,
    natural_gradient,
    random_mdp,
    trpo_step,
)
from pgmath.mdp import verify as mdp_verify
from pgmath.mdp.natural import natural_gradient_reference, optimal_state_values
from pgmath.verification import VerifyContext

F64 = torch.float64
CTX = VerifyContext(quick=True)


@pytest.mark.parametrize(("gamma", "num_terminal"), [(0.9, 0), (0.5, 0), (1.0, 2), (0.95, 1)])
def test_natural_gradient_is_advantage_over_one_minus_gamma(gamma, num_terminal):
    g = torch.Generator().manual_seed(0)
    mdp = random_mdp(6, 3, generator=g, gamma=gamma, num_terminal=num_terminal)
    theta = 2 * torch.randn(6, 3, generator=g, dtype=F64)
    pi = mdp.policy(theta)
    A = mdp.advantages(pi)
    L = float(mdp.discounted_occupancy(pi).sum())
    if num_terminal == 0:
        assert abs(L - 1 / (1 - gamma)) <= 1e-10
    w = natural_gradient(mdp, theta)
    assert float((w - L * (A - A.mean(-1, keepdim=True))).abs().max()) <= 1e-10
    assert float((w - natural_gradient_reference(mdp, theta)).abs().max()) <= 1e-10
    d = mdp.discounted_occupancy(pi, normalized=True)
    F = fisher_information(mdp, theta)
    blocks = torch.block_diag(*[d[s] * (torch.diag(pi[s]) - torch.outer(pi[s], pi[s])) for s in range(6)])
    assert float((F - blocks).abs().max()) <= 1e-12


def test_linear_softmax_natural_gradient_solves_the_normal_equations():
    g = torch.Generator().manual_seed(1)
    mdp = random_mdp(5, 3, generator=g, gamma=0.9, num_terminal=1)
    policy = LinearSoftmaxPolicy(torch.randn(5, 3, 4, generator=g, dtype=F64))
    theta = torch.randn(4, generator=g, dtype=F64)
    w = natural_gradient(mdp, theta, policy=policy)
    grad = mdp.exact_policy_gradient(policy, theta, method="autograd")
    assert float((fisher_information(mdp, theta, policy=policy) @ w - grad).abs().max()) <= 1e-10


def test_optimal_values_by_policy_iteration_match_value_iteration():
    g = torch.Generator().manual_seed(2)
    mdp = random_mdp(6, 3, generator=g, gamma=0.9)
    V_star, _ = optimal_state_values(mdp)
    V = torch.zeros(6, dtype=F64)
    for _ in range(2000):
        V = (mdp.R + mdp.gamma * torch.einsum("sat,t->sa", mdp.P, V)).max(-1).values
    assert float((V - V_star).abs().max()) <= 1e-10


def test_npg_reproduces_the_closed_form_and_the_agarwal_bound():
    assert mdp_verify.verify_npg_rate(CTX).passed


def test_npg_row_rejects_the_unnormalised_fisher_and_descent():
    from pgmath.mdp.natural import natural_gradient as ng
    from pgmath.specs.mdp_offpolicy import ng_unnormalised_fisher

    assert not mdp_verify.verify_npg_rate(CTX, ng_unnormalised_fisher).passed

    def descent(mdp, theta, *, policy=None):
        return -ng(mdp, theta, policy=policy)

    out = mdp_verify.verify_npg_rate(CTX, descent)
    assert not out.passed


def test_trpo_step_meets_the_kl_constraint():
    assert mdp_verify.verify_trpo_step(CTX).passed


def test_trpo_row_rejects_a_step_not_scaled_to_the_trust_region():
    def linear_scaling(mdp, theta, *, max_kl):  # s = δ·x instead of √(2δ/xᵀFx)·x
        st = trpo_step(mdp, theta, max_kl=max_kl)
        import dataclasses

        return dataclasses.replace(st, full_step=max_kl * st.direction)

    assert not mdp_verify.verify_trpo_step(CTX, linear_scaling).passed
