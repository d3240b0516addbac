"""Fault-catching tests for ``pgmath/kl.py`` (issue 14, mutation testing).

``kl_categorical`` on ``[*B, K]`` inputs (a reduction over the wrong axis is caught), with −∞
logits in p (0 · log 0 := 0, finite gradient) and in q (+∞ where p > 0 and q = 0), against plain
Python loops; the three estimators by hand; the validation.
"""

from __future__ import annotations

import math

import pytest
import torch

from pgmath.kl import kl_categorical, kl_estimate

F64 = torch.float64
NEG_INF = float("-inf")


def _log_softmax(row):
    m = max(row)
    lse = m + math.log(sum(math.exp(z - m) for z in row if z > -math.inf))
    return [z - lse for z in row]


def _kl_by_hand(p_row, q_row):
    lp, lq = _log_softmax(p_row), _log_softmax(q_row)
    total = 0.0
    for a, b in zip(lp, lq):  # over outcomes
        if a == -math.inf:
            continue
        total += math.exp(a) * (a - b)
    return total


def test_kl_categorical_on_a_3d_batch_with_impossible_outcomes_by_hand():
    g = torch.Generator().manual_seed(0)
    zp = 2.0 * torch.randn(2, 3, 4, generator=g, dtype=F64)
    zq = 2.0 * torch.randn(2, 3, 4, generator=g, dtype=F64)
    zp[0, 1, 2] = NEG_INF  # p = 0 there: contributes 0
    zp[1, 2, 0] = NEG_INF
    zp[1, 2, 3] = NEG_INF
    zq[1, 0, 1] = NEG_INF  # q = 0 where p > 0: KL = +inf
    zq[0, 1, 2] = NEG_INF  # q = 0 where p = 0: finite
    out = kl_categorical(zp, zq)
    assert out.shape == (2, 3)
    for i in range(2):  # over the outer batch axis
        for j in range(3):  # over the inner batch axis
            want = _kl_by_hand(zp[i, j].tolist(), zq[i, j].tolist()) if (i, j) != (1, 0) else math.inf
            assert out[i, j].item() == pytest.approx(want, abs=1e-13), (i, j)
    # KL(p ‖ p) = 0 and KL ≥ 0
    assert torch.allclose(kl_categorical(zp, zp), torch.zeros(2, 3, dtype=F64), atol=1e-15, rtol=0)
    assert (out >= 0).all()


def test_kl_categorical_gradient_is_finite_with_neg_inf_in_p():
    zp = torch.tensor([[0.5, NEG_INF, -0.3], [0.0, 1.0, 2.0]], dtype=F64, requires_grad=True)
    zq = torch.tensor([[0.1, 0.2, 0.3], [0.3, NEG_INF, 0.0]], dtype=F64, requires_grad=True)
    out = kl_categorical(zp, zq[:1].expand(2, 3).clone().detach().requires_grad_())
    out.sum().backward()
    assert torch.isfinite(zp.grad).all() and zp.grad[0, 1] == 0
    # ∂KL/∂zq_b = q_b − p_b (finite rows)
    zq1 = torch.tensor([[0.1, 0.2, 0.3]], dtype=F64, requires_grad=True)
    kl_categorical(zp.detach()[:1], zq1).sum().backward()
    p = torch.softmax(zp.detach()[:1], -1)
    q = torch.softmax(zq1.detach(), -1)
    assert torch.allclose(zq1.grad, q - p, atol=1e-15, rtol=0)


def test_kl_categorical_refuses_bad_input():
    z = torch.zeros(2, 3, dtype=F64)
    for bad in (float("nan"), float("inf")):
        w = z.clone()
        w[0, 0] = bad
        with pytest.raises(ValueError, match=r"^logits_p contains NaN or \+inf"):
            kl_categorical(w, z)
        with pytest.raises(ValueError, match=r"^logits_q contains NaN or \+inf"):
            kl_categorical(z, w)
    with pytest.raises(ValueError, match="logits_p"):
        kl_categorical(torch.tensor(0.0, dtype=F64), torch.tensor(0.0, dtype=F64))
    with pytest.raises(ValueError, match=r"^logits_q has shape .* but logits_p has shape"):
        kl_categorical(z, torch.zeros(2, 4, dtype=F64))
    with pytest.raises(ValueError, match=r"^logits_p must"):
        kl_categorical(torch.zeros(2, 3, dtype=torch.long), z)
    with pytest.raises(ValueError, match=r"^logits_q must"):
        kl_categorical(z, torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="logits_p"):
        kl_categorical(torch.zeros(2, 0, dtype=F64), torch.zeros(2, 0, dtype=F64))


def test_kl_estimators_by_hand():
    lp = torch.tensor([[-0.2, -1.5], [-3.0, -0.01]], dtype=F64)
    lq = torch.tensor([[-0.7, -0.5], [-2.0, -0.01]], dtype=F64)
    for est in ("k1", "k2", "k3"):  # over the estimators
        out = kl_estimate(lp, lq, est)
        assert out.shape == (2, 2)
        for x, y, o in zip(lp.flatten().tolist(), lq.flatten().tolist(), out.flatten().tolist()):
            lr = x - y
            want = {"k1": lr, "k2": 0.5 * lr * lr, "k3": math.exp(-lr) - 1 + lr}[est]
            assert o == pytest.approx(want, abs=1e-15)
    assert torch.equal(kl_estimate(lp, lq), kl_estimate(lp, lq, "k3"))  # the default
    with pytest.raises(ValueError, match="estimator"):
        kl_estimate(lp, lq, "k4")
    with pytest.raises(ValueError, match=r"^ref_log_probs has shape .* but log_probs has shape"):
        kl_estimate(lp, lq[:1])
    with pytest.raises(ValueError, match=r"^log_probs contains"):
        kl_estimate(lp.clone().fill_(float("nan")), lq)
    with pytest.raises(ValueError, match=r"^ref_log_probs contains"):
        kl_estimate(lp, lq.clone().fill_(float("inf")))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_kl_categorical_returns_the_input_dtype(dtype):
    g = torch.Generator().manual_seed(2)
    zp = torch.randn(3, 5, generator=g, dtype=F64)
    zq = torch.randn(3, 5, generator=g, dtype=F64)
    out = kl_categorical(zp.to(dtype), zq.to(dtype))
    assert out.dtype == dtype and out.shape == (3,)
    want = kl_categorical(zp.to(dtype).double(), zq.to(dtype).double())
    tol = {torch.float16: 1e-2, torch.bfloat16: 5e-2, torch.float32: 1e-6}[dtype]
    torch.testing.assert_close(out.double(), want, rtol=tol, atol=tol)
