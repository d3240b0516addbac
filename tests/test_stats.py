"""unbiasedness_test: level, power, the singular covariance, CI coverage, validation.

Statistical tests here use fixed seeds. The level tests draw many independent Gaussian sample
sets (where the T² level is exact) and check the rejection counts against binomial bounds whose
own false-alarm rate is stated next to each assertion.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from pgmath.stats import UnbiasedTest, hotelling_power, unbiasedness_test

F64 = torch.float64


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """These tests make thousands of tiny LAPACK calls; on an oversubscribed machine a 2-thread
    pool spins for milliseconds per call (30 ms instead of 15 µs). Restored afterwards."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _singular_gaussian(R: int, N: int, S: int = 3, A: int = 3, seed: int = 0) -> torch.Tensor:
    """R sets of N samples [S, A] whose rows sum to 0 over A (like softmax scores), mean 0."""
    g = _gen(seed)
    mix = torch.randn(S * A, S * A, generator=g, dtype=F64)
    z = torch.randn(R, N, S * A, generator=g, dtype=F64) @ mix.T
    x = z.reshape(R, N, S, A)
    return x - x.mean(-1, keepdim=True)


def _binomial_upper(n: int, p: float, fa: float = 1e-6) -> int:
    """Largest count k with Pr(Binomial(n, p) > k) >= fa: exceeding it has probability < fa."""
    return int(stats.binom.isf(fa, n, p))


def test_returns_frozen_dataclass_with_documented_fields():
    x = _singular_gaussian(1, 500)[0]
    t = unbiasedness_test(x, torch.zeros(3, 3, dtype=F64))
    assert isinstance(t, UnbiasedTest)
    for name in ("statistic", "p_value", "passed", "relative_bias", "relative_bias_ci", "method",
                 "n", "alpha", "dof"):
        assert hasattr(t, name)
    assert t.method == "hotelling" and t.n == 500 and t.alpha == 1e-3
    assert t.dof == 6  # 3 states x (3 - 1) actions: the singular directions are dropped
    assert t.passed == (t.p_value >= t.alpha)
    with pytest.raises(AttributeError):
        t.p_value = 0.5  # type: ignore[misc]


@pytest.mark.parametrize("method", ["hotelling", "bonferroni"])
def test_level_under_h0_gaussian_singular_covariance(method):
    """Rejection counts at 5% and 1% over 1500 independent sets stay within binomial bounds.

    Hotelling's level is exact for Gaussian samples: counts must also not be too LOW (a test
    that never rejects would pass an upper bound). Each bound is exceeded by chance with
    probability < 1e-6. Bonferroni is conservative, so only the upper bound applies.
    """
    R, N = 1500, 60
    x = _singular_gaussian(R, N, seed=1)
    exact = torch.zeros(3, 3, dtype=F64)
    p = np.array([unbiasedness_test(x[i], exact, method=method).p_value for i in range(R)])
    for level in (0.05, 0.01):
        k = int((p < level).sum())
        assert k <= _binomial_upper(R, level), (level, k)
        if method == "hotelling":
            assert k >= int(stats.binom.ppf(1e-6, R, level)), (level, k)
    if method == "hotelling":
        # the whole distribution: KS against Uniform(0, 1), false-alarm rate 1e-4
        assert stats.kstest(p, "uniform").pvalue >= 1e-4


def test_hotelling_agrees_with_direct_numpy_formula_full_rank():
    """T² = N d̄ᵀ Σ̂⁻¹ d̄ and F = (N−k)/(k(N−1)) T² ~ F(k, N−k), written independently in numpy."""
    g = _gen(3)
    N, p = 200, 4
    x = torch.randn(N, p, generator=g, dtype=F64) @ torch.randn(p, p, generator=g, dtype=F64) + 0.1
    exact = torch.zeros(p, dtype=F64)
    t = unbiasedness_test(x, exact)
    xn = x.numpy()
    d = xn.mean(0)
    cov = np.cov(xn, rowvar=False)
    t2 = N * d @ np.linalg.solve(cov, d)
    f = (N - p) / (p * (N - 1)) * t2
    assert t.dof == p
    assert math.isclose(t.statistic, t2, rel_tol=1e-9)
    assert math.isclose(t.p_value, stats.f.sf(f, p, N - p), rel_tol=1e-7)


def test_bonferroni_agrees_with_per_coordinate_t_tests():
    g = _gen(4)
    N = 300
    x = torch.randn(N, 5, generator=g, dtype=F64) * torch.tensor([1.0, 2, 3, 4, 5], dtype=F64) + 0.05
    t = unbiasedness_test(x, torch.zeros(5, dtype=F64), method="bonferroni")
    pj = stats.ttest_1samp(x.numpy(), 0.0).pvalue
    assert math.isclose(t.p_value, min(1.0, 5 * pj.min()), rel_tol=1e-7)
    assert t.dof == 5


@pytest.mark.parametrize("method, rel", [("hotelling", 0.15), ("bonferroni", 0.3)])
def test_detects_shifted_mean(method, rel):
    """A mean off by 15% (Bonferroni: 30%) of ‖exact‖ is rejected at N = 2000 (σ ≈ 2 per coordinate)."""
    x = _singular_gaussian(1, 2000, seed=5)[0]
    exact = torch.tensor([[1.0, -0.5, -0.5], [0.3, 0.0, -0.3], [0.0, 0.0, 0.0]], dtype=F64)
    shift = rel * exact.norm() * torch.tensor([[1.0, -1.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]],
                                               dtype=F64) / math.sqrt(2)
    t = unbiasedness_test(x + exact + shift, exact, method=method)
    assert not t.passed and t.p_value < 1e-3
    assert unbiasedness_test(x + exact + shift, exact + shift, method=method).passed


def test_power_prediction_matches_observed_rejection_rate():
    """hotelling_power vs the rejection frequency over 400 sets with a fixed shift (Gaussian)."""
    R, N = 400, 100
    x = _singular_gaussian(R, N, seed=6)
    shift = torch.zeros(3, 3, dtype=F64)
    shift[0, 0], shift[0, 1] = 0.4, -0.4
    exact = torch.zeros(3, 3, dtype=F64)
    rejected = sum(not unbiasedness_test(x[i] + shift, exact, alpha=0.01).passed for i in range(R))
    power = hotelling_power(x.reshape(R * N, 3, 3), shift, alpha=0.01, n=N)
    assert 0.2 < power < 0.9  # an informative regime
    # binomial 5-sigma band around the prediction
    sd = math.sqrt(R * power * (1 - power))
    assert abs(rejected - R * power) < 5 * sd + 0.05 * R, (rejected, R * power)


def test_null_space_residual_rejects_with_certainty():
    """Samples whose rows sum to 0 cannot be unbiased for an exact value whose rows do not.

    Hotelling sees this in the covariance's null space. Bonferroni tests coordinates only, so a
    tiny mismatch in a *combination* of coordinates is invisible to it (documented limitation).
    """
    x = _singular_gaussian(1, 500, seed=7)[0]
    exact = torch.zeros(3, 3, dtype=F64)
    exact[1] = 1e-3  # rows of exact sum to 3e-3 ≠ 0: off the samples' affine subspace
    t = unbiasedness_test(x, exact)
    assert t.p_value == 0.0 and not t.passed and math.isinf(t.statistic)
    assert t.null_residual > 1e-4
    assert unbiasedness_test(x, exact, method="bonferroni").passed


def test_zero_variance_coordinates_are_exact():
    """A coordinate that never varies must equal exact; equal -> fine, different -> p = 0."""
    g = _gen(8)
    x = torch.cat([torch.randn(400, 2, generator=g, dtype=F64), torch.full((400, 1), 2.0, dtype=F64)], 1)
    ok = unbiasedness_test(x, torch.tensor([0.0, 0.0, 2.0], dtype=F64))
    bad = unbiasedness_test(x, torch.tensor([0.0, 0.0, 2.1], dtype=F64))
    assert ok.dof == 2 and ok.p_value > 1e-3
    assert bad.p_value == 0.0


def test_float32_samples_keep_the_structural_rank():
    x = _singular_gaussian(1, 2000, seed=9)[0]
    t64 = unbiasedness_test(x, torch.zeros(3, 3, dtype=F64))
    t32 = unbiasedness_test(x.float(), torch.zeros(3, 3))
    assert t32.dof == t64.dof == 6
    assert math.isclose(t32.p_value, t64.p_value, rel_tol=1e-2, abs_tol=1e-4)


def test_relative_bias_ci_covers_truth():
    """The (conservative) 95% CI of ‖E x − g‖/‖g‖ covers the truth in ≥ 95% of 300 sets.

    Coverage is at least 0.95 by construction; the count of misses is Binomial(300, ≤ 0.05),
    exceeding 32 with probability < 1e-6.
    """
    R, N = 300, 200
    x = _singular_gaussian(R, N, seed=10)
    exact = torch.tensor([[1.0, 0.0, -1.0], [0.5, -0.5, 0.0], [0.0, 0.2, -0.2]], dtype=F64)
    bias = 0.1 * torch.tensor([[1.0, -1.0, 0.0], [0.0, 1.0, -1.0], [0.0, 0.0, 0.0]], dtype=F64)
    truth = float(bias.norm() / exact.norm())
    misses = 0
    for i in range(R):  # over independent sets
        lo, hi = unbiasedness_test(x[i] + exact + bias, exact).relative_bias_ci
        misses += not (lo <= truth <= hi)
    assert misses <= _binomial_upper(R, 0.05)


def test_relative_bias_value():
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0], [2.0, 3.0]], dtype=F64)
    exact = torch.tensor([2.0, 2.0], dtype=F64)
    t = unbiasedness_test(x, exact, method="bonferroni")
    assert math.isclose(t.relative_bias, 1.0 / math.sqrt(8.0), rel_tol=1e-12)
    lo, hi = t.relative_bias_ci
    assert lo <= t.relative_bias <= hi


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(samples=[1.0, 2.0], exact=torch.zeros(())), "samples must be a torch.Tensor"),
        (dict(samples=torch.zeros(5, 2, dtype=torch.long), exact=torch.zeros(2)), "samples must have a floating"),
        (dict(samples=torch.zeros(5, 2), exact=torch.zeros(3)), "samples must be \\[N, \\*exact.shape\\]|samples has shape"),
        (dict(samples=torch.zeros(1, 2), exact=torch.zeros(2)), "at least 2 samples"),
        (dict(samples=torch.full((5, 2), float("nan")), exact=torch.zeros(2)), "samples contains"),
        (dict(samples=torch.zeros(5, 2), exact=torch.tensor([0.0, float("inf")])), "exact contains"),
        (dict(samples=torch.randn(5, 2, generator=torch.Generator().manual_seed(0)), exact=torch.zeros(2), alpha=0.0), "alpha must lie in"),
        (dict(samples=torch.randn(5, 2, generator=torch.Generator().manual_seed(0)), exact=torch.zeros(2), alpha=1.5), "alpha must lie in"),
        (dict(samples=torch.randn(5, 2, generator=torch.Generator().manual_seed(0)), exact=torch.zeros(2), method="t2"), "method must be one of"),
        (dict(samples=torch.randn(5, 2, generator=torch.Generator().manual_seed(0)), exact=torch.zeros(2), ci_level=1.0), "ci_level must lie in"),
        (dict(samples=torch.randn(4, 4, generator=torch.Generator().manual_seed(0)), exact=torch.zeros(4)), "N = 4 <= p = 4"),
        (dict(samples=torch.randn(5, 2, generator=torch.Generator().manual_seed(0)), exact=torch.zeros(2), rtol=-1.0), "rtol must be"),
    ],
)
def test_bad_input_raises_value_error_naming_argument(kwargs, match):
    with pytest.raises(ValueError, match=match):
        unbiasedness_test(**kwargs)


def test_bonferroni_allows_fewer_samples_than_coordinates():
    g = _gen(11)
    t = unbiasedness_test(torch.randn(4, 10, generator=g, dtype=F64), torch.zeros(10, dtype=F64), method="bonferroni")
    assert t.dof == 10 and 0.0 <= t.p_value <= 1.0


# --- minimum detectable bias -----------------------------------------------------------------


def test_min_detectable_bias_is_rejected_with_the_stated_power():
    """A bias of the stated size along ∇J is rejected in ≈ 90 % of runs; a third of it rarely.

    200 seeded runs of N = 2000 correlated Gaussian samples in 3 dimensions: the rejection rate
    at the minimum detectable bias lies in [0.8, 0.97] (binomial 99.9 % band around 0.9), at a
    third of it below 0.3 (predicted ≈ 0.02).
    """
    from pgmath.stats import min_detectable_bias

    g = torch.Generator().manual_seed(11)
    exact = torch.tensor([1.0, -0.5, 0.25], dtype=torch.float64)
    L = torch.tensor([[3.0, 0.0, 0.0], [1.0, 2.0, 0.0], [0.5, -0.5, 1.0]], dtype=torch.float64)
    base = torch.randn(2000, 3, generator=g, dtype=torch.float64) @ L.T + exact
    mdb = min_detectable_bias(base, exact, alpha=1e-3, power=0.9)
    assert 0 < mdb.along_gradient <= mdb.worst_direction * (1 + 1e-9) * 10
    rejected_full, rejected_third = 0, 0
    for _ in range(200):
        x = torch.randn(2000, 3, generator=g, dtype=torch.float64) @ L.T + exact
        rejected_full += not unbiasedness_test(x + mdb.along_gradient * exact, exact).passed
        rejected_third += not unbiasedness_test(x + mdb.along_gradient / 3 * exact, exact).passed
    assert 0.8 <= rejected_full / 200 <= 0.97, rejected_full
    assert rejected_third / 200 < 0.3, rejected_third


def test_min_detectable_bias_scales_as_one_over_root_n_and_rejects_bad_input():
    from pgmath.stats import min_detectable_bias

    g = torch.Generator().manual_seed(12)
    exact = torch.tensor([1.0, 2.0], dtype=torch.float64)
    x = torch.randn(500, 2, generator=g, dtype=torch.float64) + exact
    a = min_detectable_bias(x, exact, n=1000).along_gradient
    b = min_detectable_bias(x, exact, n=4000).along_gradient
    assert b == pytest.approx(a / 2, rel=0.02)
    with pytest.raises(ValueError, match="exact"):
        min_detectable_bias(x, torch.zeros(2, dtype=torch.float64))
    with pytest.raises(ValueError, match="power"):
        min_detectable_bias(x, exact, power=1.5)
