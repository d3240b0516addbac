"""Variance, error and cosine curves on synthetic samples with known mean and covariance."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pgmath.estimators.policy_gradient import perturbed_values
from pgmath.estimators.variance import (
    cosine_curve,
    covariance_trace,
    error_curve,
    gae_bias_curve,
    mse_reduction_test,
    variance_reduction,
)
from pgmath.mdp import random_mdp

F64 = torch.float64


def _gauss(N: int, mean: torch.Tensor, scale: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return mean + scale * torch.randn(N, *mean.shape, generator=g, dtype=F64)


G = torch.tensor([[1.0, -1.0], [0.5, 0.0]], dtype=F64)


def test_covariance_trace_matches_numpy():
    x = _gauss(500, G, 2.0, 0)
    assert math.isclose(covariance_trace(x), float(np.trace(np.cov(x.reshape(500, -1).numpy(), rowvar=False))),
                        rel_tol=1e-12)


def test_error_curve_bias_variance_decomposition():
    """E‖ḡₙ − g‖² = ‖μ − g‖² + tr Σ/n: observed RMS within 15% of it where there are ≥ 400 batches.

    With B ≥ 400 batches the RMS of 4 coordinates' squared error has relative sd ≈ 1/√(2B·2)
    < 2.5%, so 15% is a > 6σ band.
    """
    bias = torch.tensor([[0.1, 0.0], [0.0, -0.05]], dtype=F64)
    x = _gauss(200_000, G + bias, 3.0, 1)
    ns = [1, 4, 16, 64, 256, 500]
    c = error_curve(x, G, ns, expected=G + bias)
    gn = float(G.norm())
    for n, obs, pred, rb, rs in zip(c["n"], c["rms_rel_error"], c["predicted_rel_error"], c["rel_bias"], c["rel_std"]):
        true = math.sqrt(float(bias.norm()) ** 2 + 4 * 9.0 / n) / gn
        assert math.isclose(pred, true, rel_tol=0.02)  # tr Σ̂ ≈ 4 · 9
        assert math.isclose(obs, pred, rel_tol=0.15), (n, obs, pred)
        assert math.isclose(rb, float(bias.norm()) / gn, rel_tol=1e-12)
        assert math.isclose(pred, math.hypot(rb, rs), rel_tol=1e-12)


def test_cosine_curve_rises_to_one_for_unbiased_samples():
    x = _gauss(100_000, G, 3.0, 2)
    c = cosine_curve(x, G, [1, 10, 100, 1000, 10000])
    assert all(-1.0 <= q <= 1.0 for q in c["q10"] + c["q90"])
    assert all(a <= b <= d for a, b, d in zip(c["q10"], c["q50"], c["q90"]))
    assert all(a < b for a, b in zip(c["mean"], c["mean"][1:]))  # strictly rising here
    assert c["mean"][-1] > 0.99 and c["mean"][0] < 0.5
    assert c["batches"] == [100_000, 10_000, 1000, 100, 10]


def test_cosine_of_biased_samples_plateaus_below_one():
    """Mean pointing 45° away from g: cos → 1/√2 however many episodes."""
    mean = torch.tensor([[1.0, 0.0], [0.0, 0.0]], dtype=F64)
    g = torch.tensor([[1.0, 1.0], [0.0, 0.0]], dtype=F64)
    c = cosine_curve(_gauss(40_000, mean, 0.5, 3), g, [10_000])
    assert abs(c["mean"][0] - 1 / math.sqrt(2)) < 0.01


def test_mse_reduction_test_direction_and_null():
    base = _gauss(5000, G, 1.0, 4)
    noisy = base + _gauss(5000, torch.zeros_like(G), 2.0, 5)  # same episodes, more noise
    ratio, z, p = mse_reduction_test(base, noisy, G)
    assert ratio > 3 and z > 10 and p < 1e-20
    _, _, p_rev = mse_reduction_test(noisy, base, G)
    assert p_rev > 0.999
    r_same, z_same, p_same = mse_reduction_test(base, base, G)
    assert r_same == 1.0 and z_same == 0.0 and p_same == 0.5


def test_variance_reduction_table():
    base = _gauss(3000, G, 1.0, 6)
    table = variance_reduction({"reinforce": base + _gauss(3000, torch.zeros_like(G), 2.0, 7), "b": base}, G)
    assert table["reinforce"]["reduction"] == 1.0
    assert table["b"]["reduction"] > 3 and table["b"]["p_value"] < 1e-10
    with pytest.raises(ValueError, match="reference"):
        variance_reduction({"b": base}, G)


def test_gae_bias_curve_endpoints():
    g = torch.Generator().manual_seed(8)
    mdp = random_mdp(4, 2, generator=g, gamma=0.9, num_terminal=1)
    logits = torch.randn(4, 2, generator=g, dtype=F64)
    Vhat = perturbed_values(mdp, mdp.state_values(mdp.policy(logits)))
    c = gae_bias_curve(mdp, logits, Vhat, [0.0, 0.5, 1.0])
    assert c["lam"] == [0.0, 0.5, 1.0]
    assert c["rel_bias"][0] > 0.01 and c["rel_bias"][2] < 1e-12
    assert math.isclose(c["cosine"][2], 1.0, rel_tol=1e-12)


@pytest.mark.parametrize(
    "fn, match",
    [
        (lambda x: error_curve(x, G, [0]), "batch_sizes"),
        (lambda x: error_curve(x, G, [11]), "exceeds"),
        (lambda x: cosine_curve(x, torch.zeros(3, dtype=F64), [1]), "exact has shape"),
        (lambda x: cosine_curve(x, torch.zeros_like(G), [1]), "nonzero"),
        (lambda x: covariance_trace(x[:1]), "N >= 2"),
        (lambda x: mse_reduction_test(x, x[:5], G), "reference has shape"),
    ],
)
def test_bad_input(fn, match):
    with pytest.raises(ValueError, match=match):
        fn(_gauss(10, G, 1.0, 9))
