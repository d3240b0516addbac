"""KL estimators k1/k2/k3 and the exact categorical KL (pgmath.kl), by exact enumeration."""

from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from pgmath import kl_categorical, kl_estimate

F64 = torch.float64


@given(seed=st.integers(0, 10_000), K=st.integers(2, 9), scale=st.floats(0.1, 4.0))
def test_k1_k3_unbiased_by_enumeration(seed, K, scale):
    g = torch.Generator().manual_seed(seed)
    zp = torch.randn(K, dtype=F64, generator=g) * scale
    zq = torch.randn(K, dtype=F64, generator=g) * scale
    logp, logq = zp.log_softmax(-1), zq.log_softmax(-1)
    exact = kl_categorical(zp, zq)
    for est in ("k1", "k3"):
        expectation = (logp.exp() * kl_estimate(logp, logq, est)).sum()
        torch.testing.assert_close(expectation, exact, rtol=1e-10, atol=1e-12)


def test_k2_is_biased_but_second_order():
    zp = torch.tensor([0.3, -1.0, 0.5, 2.0], dtype=F64)
    h = torch.tensor([1.0, -0.5, 0.2, 0.7], dtype=F64)
    gaps = []
    for eps in (0.04, 0.02, 0.01):
        zq = zp + eps * h
        logp, logq = zp.log_softmax(-1), zq.log_softmax(-1)
        e_k2 = (logp.exp() * kl_estimate(logp, logq, "k2")).sum()
        kl = kl_categorical(zp, zq)
        gaps.append(float((e_k2 - kl).abs()))
        assert float((e_k2 - kl).abs()) < 1e-2 * float(kl)  # agrees to leading order
    assert gaps[0] > 0  # but is not exact
    for a, b in itertools.pairwise(gaps):
        assert 7.0 < a / b < 9.0  # the gap is cubic in ε


def test_k2_is_biased_far_from_reference():
    zp = torch.tensor([3.0, 0.0], dtype=F64)
    zq = torch.tensor([0.0, 3.0], dtype=F64)
    logp, logq = zp.log_softmax(-1), zq.log_softmax(-1)
    e_k2 = (logp.exp() * kl_estimate(logp, logq, "k2")).sum()
    assert abs(float(e_k2 - kl_categorical(zp, zq))) > 0.1


@given(st.floats(-50, 50))
def test_k3_nonnegative_and_zero_only_at_equality(log_ratio):
    x = torch.tensor([log_ratio], dtype=F64)
    k3 = float(kl_estimate(x, torch.zeros(1, dtype=F64), "k3"))
    assert k3 >= 0.0
    if abs(log_ratio) > 1e-6:
        assert k3 > 0.0


def test_kl_categorical_vs_torch_and_zero_probabilities():
    zp = torch.randn(5, 4, dtype=F64)
    zq = torch.randn(5, 4, dtype=F64)
    C = torch.distributions.Categorical
    torch.testing.assert_close(kl_categorical(zp, zq), torch.distributions.kl_divergence(C(logits=zp), C(logits=zq)))
    # p puts zero mass on an outcome: 0·log 0 = 0, no NaN
    zp0 = torch.tensor([0.0, float("-inf")], dtype=F64)
    zq0 = torch.tensor([0.0, 0.0], dtype=F64)
    torch.testing.assert_close(kl_categorical(zp0, zq0), torch.log(torch.tensor(2.0, dtype=F64)))
    # q puts zero mass where p does not: +inf
    assert torch.isinf(kl_categorical(zq0, zp0))


def test_kl_bad_input():
    with pytest.raises(ValueError, match="estimator"):
        kl_estimate(torch.zeros(2), torch.zeros(2), "k5")
    with pytest.raises(ValueError, match="ref_log_probs"):
        kl_estimate(torch.zeros(2), torch.zeros(3), "k1")
    with pytest.raises(ValueError, match="log_probs"):
        kl_estimate(torch.tensor([float("nan")]), torch.zeros(1), "k1")
    with pytest.raises(ValueError, match="logits_q"):
        kl_categorical(torch.zeros(3), torch.tensor([0.0, float("nan"), 0.0]))
