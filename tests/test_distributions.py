"""Categorical and Gaussian log-probabilities and entropies (pgmath.distributions)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from pgmath import categorical_entropy, categorical_log_prob, gaussian_entropy, gaussian_log_prob

F64 = torch.float64


@given(seed=st.integers(0, 10_000), n=st.integers(1, 20), A=st.integers(1, 8))
def test_categorical_matches_torch_distributions(seed, n, A):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, A, dtype=F64, generator=g) * 3
    a = torch.randint(0, A, (n,), generator=g)
    d = torch.distributions.Categorical(logits=z)
    torch.testing.assert_close(categorical_log_prob(z, a), d.log_prob(a))
    torch.testing.assert_close(categorical_entropy(z), d.entropy())


@given(seed=st.integers(0, 10_000))
def test_softmax_score_is_onehot_minus_pi(seed):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(6, 5, dtype=F64, generator=g, requires_grad=True)
    a = torch.randint(0, 5, (6,), generator=g)
    (grad,) = torch.autograd.grad(categorical_log_prob(z, a).sum(), z)
    want = torch.nn.functional.one_hot(a, 5).to(F64) - torch.softmax(z.detach(), -1)
    torch.testing.assert_close(grad, want, rtol=0, atol=1e-14)


def test_masked_categorical_renormalises_and_ignores_masked_logits():
    z = torch.tensor([[1.0, float("nan"), 2.0, 0.5]], dtype=F64)
    m = torch.tensor([[True, False, True, True]])
    a = torch.tensor([2])
    sub = torch.tensor([[1.0, 2.0, 0.5]], dtype=F64)
    torch.testing.assert_close(categorical_log_prob(z, a, m), torch.log_softmax(sub, -1)[:, 1])
    torch.testing.assert_close(categorical_entropy(z, m), torch.distributions.Categorical(logits=sub).entropy())
    zg = z.nan_to_num(0.0).requires_grad_(True)
    categorical_log_prob(zg, a, m).sum().backward()
    assert zg.grad[0, 1] == 0.0 and torch.isfinite(zg.grad).all()


def test_masked_action_rejected():
    with pytest.raises(ValueError, match="mask"):
        categorical_log_prob(torch.zeros(1, 3), torch.tensor([1]), torch.tensor([[True, False, True]]))
    with pytest.raises(ValueError, match="mask"):
        categorical_entropy(torch.zeros(1, 3), torch.zeros(1, 3, dtype=torch.bool))


def test_categorical_gradcheck():
    z = torch.randn(4, 3, dtype=F64, requires_grad=True)
    a = torch.tensor([0, 2, 1, 1])
    assert torch.autograd.gradcheck(lambda z: categorical_log_prob(z, a), (z,))
    assert torch.autograd.gradcheck(categorical_entropy, (z,))


@given(seed=st.integers(0, 10_000), shared_std=st.booleans())
def test_gaussian_matches_torch_distributions(seed, shared_std):
    g = torch.Generator().manual_seed(seed)
    mu = torch.randn(5, 3, dtype=F64, generator=g)
    log_std = torch.randn(3 if shared_std else (5, 3), dtype=F64, generator=g) * 0.5
    x = torch.randn(5, 3, dtype=F64, generator=g)
    d = torch.distributions.Normal(mu, log_std.exp().expand(5, 3))
    torch.testing.assert_close(gaussian_log_prob(mu, log_std, x), d.log_prob(x).sum(-1))
    torch.testing.assert_close(gaussian_entropy(log_std.expand(5, 3)), d.entropy().sum(-1))


def test_gaussian_by_hand():
    # N(0, 1) at 0 in one dimension: −½ log 2π
    assert float(gaussian_log_prob(torch.zeros(1), torch.zeros(1), torch.zeros(1))) == pytest.approx(-0.5 * math.log(2 * math.pi))
    assert float(gaussian_entropy(torch.zeros(1, dtype=F64))) == pytest.approx(0.5 * math.log(2 * math.pi * math.e))


def test_gaussian_score_analytic():
    """∂ log N / ∂μ = (a − μ)/σ², ∂ log N / ∂ log σ = ((a − μ)/σ)² − 1."""
    mu = torch.randn(4, 2, dtype=F64, requires_grad=True)
    ls = torch.randn(4, 2, dtype=F64, requires_grad=True)
    a = torch.randn(4, 2, dtype=F64)
    gm, gs = torch.autograd.grad(gaussian_log_prob(mu, ls, a).sum(), (mu, ls))
    sig = ls.detach().exp()
    torch.testing.assert_close(gm, (a - mu.detach()) / sig**2)
    torch.testing.assert_close(gs, ((a - mu.detach()) / sig) ** 2 - 1)


def test_distribution_bad_input():
    with pytest.raises(ValueError, match="actions"):
        categorical_log_prob(torch.zeros(2, 3), torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="actions"):
        categorical_log_prob(torch.zeros(2, 3), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="logits"):
        categorical_log_prob(torch.tensor([[0.0, float("nan")]]), torch.tensor([0]))
    with pytest.raises(ValueError, match="log_std"):
        gaussian_log_prob(torch.zeros(2, 3), torch.zeros(2), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="actions"):
        gaussian_log_prob(torch.zeros(2, 3), torch.zeros(3), torch.zeros(2, 2))
