"""Categorical and Gaussian log-probabilities and entropies (pgmath.distributions): hand-computed
examples (masking, the N(0, 1) density and entropy, float32).

Agreement with torch.distributions, the analytic scores, normalisation, extreme logits, the entropy
gradient, gradcheck and bad inputs are properties of the specs categorical_log_prob,
categorical_entropy, gaussian_log_prob and gaussian_entropy (pgmath.specs.distributions), run by
tests/test_specs.py."""

from __future__ import annotations

import math

import pytest
import torch

from pgmath import categorical_entropy, categorical_log_prob, gaussian_entropy, gaussian_log_prob

F64 = torch.float64


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
    zh = z.nan_to_num(0.0).requires_grad_(True)
    categorical_entropy(zh, m).backward()  # 0 · log 0 := 0 in the gradient too (was NaN)
    assert zh.grad[0, 1] == 0.0 and torch.isfinite(zh.grad).all()


def test_gaussian_by_hand():
    # N(0, 1) at 0 in one dimension: −½ log 2π
    assert float(gaussian_log_prob(torch.zeros(1), torch.zeros(1), torch.zeros(1))) == pytest.approx(-0.5 * math.log(2 * math.pi))
    assert float(gaussian_entropy(torch.zeros(1, dtype=F64))) == pytest.approx(0.5 * math.log(2 * math.pi * math.e))
