"""pgmath.mdp.parameterizations: the linear-softmax policy against the tabular softmax."""

from __future__ import annotations

import pytest
import torch

from pgmath.mdp import random_mdp
from pgmath.mdp.parameterizations import LinearSoftmaxPolicy

F64 = torch.float64


def test_one_hot_features_reduce_to_the_tabular_softmax_and_its_exact_gradient():
    """With x(s, a) = e_(s,a), θ is the logit table: π and ∇J must equal the tabular ones."""
    g = torch.Generator().manual_seed(0)
    mdp = random_mdp(5, 3, generator=g)
    S, A = mdp.num_states, mdp.num_actions
    features = torch.eye(S * A, dtype=F64).reshape(S, A, S * A)
    policy = LinearSoftmaxPolicy(features)
    theta = torch.randn(S * A, dtype=F64, generator=g)
    logits = theta.reshape(S, A)
    torch.testing.assert_close(policy(theta), mdp.policy(logits), rtol=0, atol=1e-15)
    grad_linear = mdp.exact_policy_gradient(policy, theta)
    torch.testing.assert_close(grad_linear.reshape(S, A), mdp.exact_policy_gradient(logits), rtol=0, atol=1e-10)


def test_shared_features_tie_the_states():
    """Features that ignore the state give every state the same action distribution."""
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=F64).expand(4, 2, 2)
    pi = LinearSoftmaxPolicy(x)(torch.tensor([0.3, -0.2], dtype=F64))
    torch.testing.assert_close(pi, pi[:1].expand(4, 2))
    torch.testing.assert_close(pi.sum(-1), torch.ones(4, dtype=F64))


def test_bad_features_and_parameters():
    with pytest.raises(ValueError, match="features"):
        LinearSoftmaxPolicy(torch.zeros(3, 2, dtype=F64))
    policy = LinearSoftmaxPolicy(torch.zeros(3, 2, 4, dtype=F64))
    with pytest.raises(ValueError, match="theta"):
        policy(torch.zeros(5, dtype=F64))
