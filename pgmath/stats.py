"""Is a Monte-Carlo estimator unbiased? A test that can fail, with a stated false-alarm rate.

Given N independent samples x₁ … x_N ∈ ℝᵖ of an estimator (flattened) and the exact value g it
should estimate, test H₀: E[x] = g.

``method="hotelling"`` (default) — Hotelling's one-sample T² in the covariance's range::

    x̄ = (1/N) Σᵢ xᵢ,     Σ̂ = (1/(N−1)) Σᵢ (xᵢ − x̄)(xᵢ − x̄)ᵀ = U diag(λ) Uᵀ
    keep the k eigenpairs with √λⱼ > rtol · √λ_max   (U_k, λ_k; from the SVD of the centred data)
    T² = N (x̄ − g)ᵀ U_k diag(1/λ_k) U_kᵀ (x̄ − g)
    F = (N − k) / (k (N − 1)) · T²  ~  F(k, N − k) under H₀,      p = Pr(F(k, N − k) ≥ F)

Why the subspace: score-function gradient samples of a tabular softmax policy have a singular
covariance. ∇_θ log π(a|s) = e_s ⊗ (e_a − π(·|s)), so every sample's block for state s sums to 0
over actions, and so does the exact gradient d(s) π(a|s) A(s, a): the covariance has (at least)
S zero eigenvalues. Inverting Σ̂ there divides rounding noise by rounding noise. The test is done
in the span of the non-negligible eigenvalues; in the complement the samples do not vary, so the
mean is known exactly there and x̄ − g must vanish up to rounding: a residual above
``null_tol`` (see :func:`unbiasedness_test`) is a certain rejection (p = 0), reported in
``null_residual``.

``method="bonferroni"`` — a z (Student t, N − 1 dof) test per coordinate with non-negligible
variance, zⱼ = (x̄ⱼ − gⱼ) / (σ̂ⱼ / √N), p = min(1, m · minⱼ pⱼ) over the m tested coordinates.
Valid under any dependence between coordinates (conservative when they are correlated, e.g. the
two coordinates of a state with two actions are exact negatives, so m double-counts them).
Coordinates with zero variance are handled like the null space above; a mismatch along a
*combination* of coordinates that never varies (a row sum) is invisible to it — Hotelling sees it.

Which to use: Hotelling is the default. Its level is exactly α when the samples are Gaussian and
approaches α as N grows for any distribution with finite covariance (the multivariate central
limit theorem and Σ̂ → Σ), and it pools evidence over all directions, so a bias spread over many
coordinates (a γᵗ factor, an off-by-one return) is detected at smaller N than by the worst single
coordinate. Bonferroni needs no matrix inversion and works with N ≤ p (Hotelling here requires
N > p); it is the choice for large parameter vectors.

False-alarm rate: under Gaussian samples each call rejects a true H₀ with probability exactly
α (checked by ``tests/test_stats.py::test_level_under_h0_gaussian_singular_covariance``). For
score-function samples the level holds only as N grows: their tails are heavy (a return times a
sum of scores), and the T² tail converges slowly. Measured on the suite's random MDP with
REINFORCE (the heaviest-tailed estimator), rejection rates at nominal 5% / 1% / 0.1%:
N = 1000 (1000 sets): 7.8% / 2.6% / 0.5%;  N = 5000 (300 sets): 5.0% / 1.0% / 0%. So use
N ≥ 5000 per test for the stated level (the suite does; ``pgmath verify`` re-measures this
with its KS row), and treat p-values from a few hundred REINFORCE episodes as approximate. A
family of m tests of true hypotheses raises at least one false alarm with probability ≤ m · α
(Bonferroni); with fixed seeds a suite is deterministic, and m · α is the chance that a fresh
seed would flag a correct estimator.

Relative bias and its confidence interval: b = ‖x̄ − g‖ / ‖g‖. The true mean μ lies, with
confidence ``ci_level``, in the T² ellipsoid {μ : N (x̄ − μ)ᵀ Σ̂⁺ (x̄ − μ) ≤ T²_crit} (Hotelling)
or in the box |x̄ⱼ − μⱼ| ≤ t_crit σ̂ⱼ/√N (Bonferroni), whose points are within r of x̄ (r = the
largest semi-axis √(λ_max T²_crit / N), or the half-diagonal t_crit √(tr Σ̂ / N)). By the
triangle inequality ‖μ − g‖ ∈ [max(0, ‖x̄ − g‖ − r), ‖x̄ − g‖ + r], divided by ‖g‖: a
conservative (over-covering) interval for the relative bias ‖E x − g‖ / ‖g‖.

Source: Hotelling (1931), "The generalization of Student's ratio"; Anderson, *An Introduction to
Multivariate Statistical Analysis* (3rd ed., 2003), §5.2; the pseudo-inverse form for a singular
covariance: Rao, *Linear Statistical Inference* (2nd ed., 1973), §8b.

Checked by: tests/test_stats.py (exact level under Gaussian samples with a singular
covariance, for both methods; rejection of shifted means at the predicted power; agreement with
a direct numpy T² on a full-rank case; the null-space residual; CI coverage; float32 samples;
input validation) and the power rows of
:mod:`pgmath.estimators.verify`. Docs: docs/estimators/unbiasedness_test.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from pgmath.optional import extra_error

try:
    from scipy import stats as _sps
except ImportError as exc:
    raise extra_error("stats", "pgmath.stats", exc) from exc

from pgmath.validation import validate_float_tensor

__all__ = [
    "METHODS",
    "MinDetectableBias",
    "UnbiasedTest",
    "hotelling_ci_radius",
    "hotelling_power",
    "min_detectable_bias",
    "unbiasedness_test",
]

#: The tests :func:`unbiasedness_test` implements.
METHODS: tuple[str, ...] = ("hotelling", "bonferroni")


@dataclass(frozen=True)
class UnbiasedTest:
    """The outcome of :func:`unbiasedness_test`.

    Attributes:
      statistic: T² (Hotelling) or max |zⱼ| (Bonferroni); ``inf`` when the null-space residual
        alone rejects.
      p_value: the p-value of H₀: E[x] = exact.
      passed: ``p_value >= alpha`` (no evidence of bias at level alpha).
      relative_bias: ‖x̄ − exact‖ / ‖exact‖ (``inf`` if exact is 0 and x̄ is not).
      relative_bias_ci: conservative ``ci_level`` interval for ‖E x − exact‖ / ‖exact‖.
      method: "hotelling" or "bonferroni".
      n: number of samples N.
      alpha: the level.
      dof: k, the rank used (Hotelling), or m, the number of coordinates tested (Bonferroni).
      null_residual: ‖x̄ − exact‖ in the directions where the samples do not vary.
      ci_level: confidence level of ``relative_bias_ci``.
    """

    statistic: float
    p_value: float
    passed: bool
    relative_bias: float
    relative_bias_ci: tuple[float, float]
    method: str
    n: int
    alpha: float
    dof: int
    null_residual: float = 0.0
    ci_level: float = 0.95

    def summary(self) -> str:
        """One line: ``T² = 4.2 (k = 6), p = 0.65, rel. bias 0.3% [0, 1.1%]``."""
        name = "T²" if self.method == "hotelling" else "max|z|"
        lo, hi = self.relative_bias_ci
        return (
            f"{name} = {self.statistic:.3g} (k = {self.dof}), p = {self.p_value:.2g}, "
            f"rel. bias {100 * self.relative_bias:.2g}% [{100 * lo:.2g}, {100 * hi:.2g}]%"
        )


def _open_unit(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a real number in (0, 1), got {value!r}")
    v = float(value)
    if not 0.0 < v < 1.0:
        raise ValueError(f"{name} must lie in (0, 1), got {v}")
    return v


def hotelling_ci_radius(lam_max: float, k: int, n: int, ci_level: float = 0.95) -> float:
    """Largest semi-axis √(λ_max T²_crit / n) of the ``ci_level`` T² confidence ellipsoid.

    T²_crit = k (n − 1) / (n − k) · F⁻¹(ci_level; k, n − k). Every mean inside the ellipsoid is
    within this distance of the sample mean (the radius behind ``relative_bias_ci``).
    """
    t2_crit = k * (n - 1) / (n - k) * float(_sps.f.ppf(ci_level, k, n - k))
    return math.sqrt(lam_max * t2_crit / n)


def _svd(xc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Singular values σ and right singular vectors Vh (rows) of the centred data ``[N, p]``.

    Axes from eigh of the Gram matrix xcᵀxc (cheap: N p²), then each σⱼ = ‖xc uⱼ‖ measured
    directly on the data, so a structurally zero direction comes out at σ ≈ eps · σ_max (not at
    √(eps) · σ_max, as √(an eigenvalue of the Gram matrix) would).
    """
    _, U = torch.linalg.eigh(xc.T @ xc)
    U = U.flip(-1)  # descending
    sv = (xc @ U).norm(dim=0)
    order = torch.argsort(sv, descending=True)
    return sv[order], U[:, order].T


def _relative(num: float, den: float) -> float:
    if den > 0:
        return num / den
    return 0.0 if num == 0 else math.inf


def unbiasedness_test(
    samples: torch.Tensor,
    exact: torch.Tensor,
    *,
    alpha: float = 1e-3,
    method: str = "hotelling",
    ci_level: float = 0.95,
    rtol: float | None = None,
) -> UnbiasedTest:
    """Test H₀: E[samples] = exact (see the module docstring for the statistics).

    Args:
      samples: ``[N, *D]`` N independent samples of the estimator (any float dtype/device;
        the statistics are computed in float64 on the CPU).
      exact: ``[*D]`` the exact value the estimator should be unbiased for.
      alpha: level in (0, 1): the probability of rejecting a true H₀ (false alarm).
      method: "hotelling" (needs N > p = prod(D)) or "bonferroni".
      ci_level: confidence level in (0, 1) of ``relative_bias_ci``.
      rtol: directions (Hotelling: principal axes of Σ̂; Bonferroni: coordinates) whose standard
        deviation is below ``rtol`` times the largest are treated as zero-variance; default
        √eps of the samples' dtype (1.5e-8 in float64, 3.5e-4 in float32), far above the
        rounding noise of a structurally zero direction (≈ T · eps relative for a sum over T
        steps: 4e-14 seen in float64) and far below any real one in this library's uses.

    Returns:
      :class:`UnbiasedTest`.

    The null-space tolerance is ``null_tol = 10 √p · eps · (‖exact‖ + max|xᵢⱼ|) +
    10 · rtol · σ_max · √((p − k) / N)``: rounding of the samples and of ``exact`` plus a 10σ
    bound on the sampling noise of the mean in the dropped (tiny-variance) directions.

    Raises:
      ValueError naming the argument: non-tensor or non-float input, NaN/inf, N < 2, shapes that
      do not match, alpha or ci_level outside (0, 1), an unknown method, N ≤ p for Hotelling.

    Checked by: tests/test_stats.py; power rows in :mod:`pgmath.estimators.verify`.
    """
    validate_float_tensor(samples, "samples")
    validate_float_tensor(exact, "exact")
    if samples.dim() < 1:
        raise ValueError("samples must have shape [N, *D], got a scalar")
    if tuple(samples.shape[1:]) != tuple(exact.shape):
        raise ValueError(
            f"samples has shape {tuple(samples.shape)} but exact has shape {tuple(exact.shape)}; "
            "samples must be [N, *exact.shape]"
        )
    N = int(samples.shape[0])
    if N < 2:
        raise ValueError(f"samples must hold at least 2 samples, got N = {N}")
    alpha = _open_unit(alpha, "alpha")
    ci_level = _open_unit(ci_level, "ci_level")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    eps = float(torch.finfo(samples.dtype).eps)
    if rtol is None:
        rtol = math.sqrt(max(eps, float(torch.finfo(torch.float64).eps)))
    elif isinstance(rtol, bool) or not isinstance(rtol, (int, float)) or not 0.0 <= rtol < 1.0:
        raise ValueError(f"rtol must be a number in [0, 1), got {rtol!r}")

    x = samples.detach().reshape(N, -1).to(device="cpu", dtype=torch.float64)
    g = exact.detach().reshape(-1).to(device="cpu", dtype=torch.float64)
    p = int(x.shape[1])
    if method == "hotelling" and N <= p:
        raise ValueError(
            f"samples: Hotelling's T² needs more samples than coordinates (N = {N} <= p = {p}); "
            "draw more or use method='bonferroni'"
        )
    mean = x.mean(0)
    d = mean - g
    g_norm = float(g.norm())
    d_norm = float(d.norm())
    rel = _relative(d_norm, g_norm)
    scale = g_norm + float(x.abs().max())
    xc = x - mean

    if method == "hotelling":
        # Σ̂ = V diag(σ²/(N − 1)) Vᵀ with σ measured along each axis (see _svd): a zero direction
        # comes out at σ ≈ eps · σ_max, far below any real one
        sv, Vh = _svd(xc)
        sd_max = float(sv[0]) if sv.numel() else 0.0
        keep = sv > rtol * sd_max
        k = int(keep.sum())
        Uk, lk = Vh[keep].T, sv[keep] ** 2 / (N - 1)
        lam_max = sd_max**2 / (N - 1)
        z = Uk.T @ d
        null = float((d - Uk @ z).norm())
        null_tol = 10 * math.sqrt(p) * eps * scale + 10 * rtol * math.sqrt((p - k) * lam_max / N)
        if k == 0:
            stat, pval = (math.inf, 0.0) if null > null_tol else (0.0, 1.0)
            r = 0.0
        else:
            t2 = float(N * (z**2 / lk).sum())
            f_stat = (N - k) / (k * (N - 1)) * t2
            pval = float(_sps.f.sf(f_stat, k, N - k))
            stat = t2
            r = hotelling_ci_radius(float(lk.max()), k, N, ci_level)
            if null > null_tol:
                stat, pval = math.inf, 0.0
        dof = k
    else:
        var = (xc**2).sum(0) / (N - 1)
        sd_max = float(var.max().sqrt())
        keep = var.sqrt() > rtol * sd_max
        m = int(keep.sum())
        null = float(d[~keep].norm())
        null_tol = 10 * math.sqrt(p) * eps * scale + 10 * rtol * sd_max * math.sqrt((p - m) / N)
        if m == 0:
            stat, pval = (math.inf, 0.0) if null > null_tol else (0.0, 1.0)
            r = 0.0
        else:
            zj = d[keep] / torch.sqrt(var[keep] / N)
            stat = float(zj.abs().max())
            pval = min(1.0, m * 2.0 * float(_sps.t.sf(stat, N - 1)))
            t_crit = float(_sps.t.ppf(1 - (1 - ci_level) / (2 * m), N - 1))
            r = t_crit * math.sqrt(float(var[keep].sum()) / N)
            if null > null_tol:
                stat, pval = math.inf, 0.0
        dof = m

    ci = (_relative(max(0.0, d_norm - r), g_norm), _relative(d_norm + r, g_norm))
    return UnbiasedTest(
        statistic=float(stat),
        p_value=float(pval),
        passed=bool(pval >= alpha),
        relative_bias=rel,
        relative_bias_ci=ci,
        method=method,
        n=N,
        alpha=alpha,
        dof=dof,
        null_residual=null,
        ci_level=ci_level,
    )


def hotelling_power(
    samples: torch.Tensor,
    bias: torch.Tensor,
    *,
    alpha: float = 1e-3,
    n: int | None = None,
    rtol: float | None = None,
) -> float:
    """Predicted probability that the Hotelling test detects a mean shifted by ``bias``.

    Under E[x] = exact + b the statistic F is noncentral F(k, n − k) with noncentrality
    n · bᵀ Σ⁺ b (Σ⁺ on the covariance's range, estimated from ``samples``); the power is
    Pr(F > F_crit(1 − alpha)). A bias with a component where the samples do not vary is
    detected with certainty (power 1). Used to *report* the power of each biased row of the
    suite next to its observed p-value (the observed rejection is what counts).

    Args:
      samples: ``[N, *D]`` samples of the (biased) estimator, for the covariance.
      bias: ``[*D]`` the predicted bias b = E[x] − exact.
      alpha: the level of the test. n: sample size (default N). rtol: as in unbiasedness_test.
    """
    validate_float_tensor(samples, "samples")
    validate_float_tensor(bias, "bias")
    if samples.dim() < 1 or tuple(samples.shape[1:]) != tuple(bias.shape) or samples.shape[0] < 2:
        raise ValueError(f"samples must be [N >= 2, *bias.shape]; got {tuple(samples.shape)} and {tuple(bias.shape)}")
    alpha = _open_unit(alpha, "alpha")
    N = int(samples.shape[0])
    n = N if n is None else int(n)
    eps = float(torch.finfo(samples.dtype).eps)
    rtol = math.sqrt(max(eps, float(torch.finfo(torch.float64).eps))) if rtol is None else rtol
    x = samples.detach().reshape(N, -1).to(device="cpu", dtype=torch.float64)
    b = bias.detach().reshape(-1).to(device="cpu", dtype=torch.float64)
    sv, Vh = _svd(x - x.mean(0))
    keep = sv > rtol * float(sv[0])
    k = int(keep.sum())
    z = Vh[keep] @ b
    if float((b - Vh[keep].T @ z).norm()) > 1e-9 * max(float(b.norm()), 1e-300) and float(b.norm()) > 0:
        return 1.0
    if k == 0 or n <= k:
        return float("nan")
    delta = float((z**2 / (sv[keep] ** 2 / (N - 1))).sum())
    crit = float(_sps.f.ppf(1 - alpha, k, n - k))
    return float(_sps.ncf.sf(crit, k, n - k, n * delta))


@dataclass(frozen=True)
class MinDetectableBias:
    """The smallest relative bias the Hotelling test rejects with probability ≥ ``power``.

    Attributes:
      along_gradient: c such that a bias b = c · exact (c relative to ‖exact‖, along ∇J) is
        rejected with probability ``power`` at level ``alpha`` with ``n`` samples.
      worst_direction: the same for the hardest direction of the sample covariance's range
        (its largest eigenvalue λ_max): ‖b‖ / ‖exact‖ = √(δ* λ_max / n) / ‖exact‖.
      power, alpha, n, dof: the power asked for, the level, the sample size and the rank k.
    """

    along_gradient: float
    worst_direction: float
    power: float
    alpha: float
    n: int
    dof: int

    def summary(self) -> str:
        """``detects ≥ 4.1% along ∇J, 9.3% worst (power 0.9)``."""
        return (f"detects ≥ {100 * self.along_gradient:.2g}% along ∇J, "
                f"{100 * self.worst_direction:.2g}% worst direction (power {self.power:g})")


def _noncentrality_for_power(k: int, dof2: int, alpha: float, power: float) -> float:
    """δ* with Pr(F'(k, dof2, δ*) > F_crit(1 − alpha)) = power (noncentral F)."""
    from scipy.optimize import brentq

    crit = float(_sps.f.ppf(1 - alpha, k, dof2))

    def gap(delta: float) -> float:
        return float(_sps.ncf.sf(crit, k, dof2, delta)) - power

    hi = 1.0
    while gap(hi) < 0:
        hi *= 2.0
    return float(brentq(gap, 0.0, hi, xtol=1e-6))


def min_detectable_bias(
    samples: torch.Tensor,
    exact: torch.Tensor,
    *,
    alpha: float = 1e-3,
    power: float = 0.9,
    n: int | None = None,
    rtol: float | None = None,
) -> MinDetectableBias:
    """The minimum relative bias :func:`unbiasedness_test` (Hotelling) detects with ``power``.

    Under E[x] = exact + b the Hotelling F statistic is noncentral F(k, n − k) with
    noncentrality δ = n · bᵀ Σ⁺ b (Σ estimated from ``samples``, on its range of rank k). Solving
    Pr(F > F_crit) = power for δ* gives, for b = c · exact, c = √(δ* / (n · exactᵀ Σ⁺ exact)),
    and for the worst unit direction of the range (Σ's top eigenvector, eigenvalue λ_max),
    ‖b‖ = √(δ* λ_max / n). A component of exact outside the range would be detected with
    certainty; it is ignored here (the bound uses the projection, so it is conservative).

    Args:
      samples: ``[N, *D]`` samples of the estimator (for the covariance).
      exact: ``[*D]`` the true value (∇J), nonzero.
      alpha: the test's level. power: the rejection probability asked for, in (0, 1).
      n: the sample size to evaluate at (default N). rtol: as in :func:`unbiasedness_test`.

    Checked by: ``tests/test_stats.py::test_min_detectable_bias_*`` (a bias of that size is
    rejected in ≈ 90 % of simulated runs) and ``tests/test_estimators_power.py`` (each
    estimator's 5 %-biased variant is rejected at the default verify sample size).
    """
    validate_float_tensor(samples, "samples")
    validate_float_tensor(exact, "exact")
    if samples.dim() < 1 or tuple(samples.shape[1:]) != tuple(exact.shape) or samples.shape[0] < 3:
        raise ValueError(f"samples must be [N >= 3, *exact.shape]; got {tuple(samples.shape)} "
                         f"and {tuple(exact.shape)}")
    alpha = _open_unit(alpha, "alpha")
    power = _open_unit(power, "power")
    N = int(samples.shape[0])
    n = N if n is None else int(n)
    eps = float(torch.finfo(samples.dtype).eps)
    rtol = math.sqrt(max(eps, float(torch.finfo(torch.float64).eps))) if rtol is None else rtol
    x = samples.detach().reshape(N, -1).to(device="cpu", dtype=torch.float64)
    g = exact.detach().reshape(-1).to(device="cpu", dtype=torch.float64)
    g_norm = float(g.norm())
    if g_norm == 0.0:
        raise ValueError("exact must be nonzero (the bias is relative to ‖exact‖)")
    sv, Vh = _svd(x - x.mean(0))
    keep = sv > rtol * float(sv[0])
    k = int(keep.sum())
    if k == 0 or n <= k:
        raise ValueError(f"n must exceed the covariance's rank k = {k}, got n = {n}")
    lam = sv[keep] ** 2 / (N - 1)
    delta = _noncentrality_for_power(k, n - k, alpha, power)
    z = Vh[keep] @ g
    quad = float((z**2 / lam).sum())  # exactᵀ Σ⁺ exact
    along = math.sqrt(delta / (n * quad)) if quad > 0 else math.inf
    worst = math.sqrt(delta * float(lam.max()) / n) / g_norm
    return MinDetectableBias(along_gradient=along, worst_direction=worst, power=power,
                             alpha=alpha, n=n, dof=k)
