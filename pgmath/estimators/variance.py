"""Variance, error and alignment of gradient estimators as functions of the number of episodes.

With N independent per-episode samples xᵢ ∈ ℝᵖ of an estimator whose mean is μ, the exact
gradient g, and ḡₙ the mean of a batch of n of them::

    E‖ḡₙ − g‖² = ‖μ − g‖² + tr Σ / n                      (bias² + variance, Σ = Cov x)

* :func:`covariance_trace` — tr Σ̂, the total variance of one episode's estimate.
* :func:`variance_reduction` — tr Σ̂ of each estimator and the factor REINFORCE / it, with a
  one-sided paired test that an estimator has a smaller mean squared error per episode than a
  reference computed on the same episodes: Dᵢ = ‖refᵢ − g‖² − ‖xᵢ − g‖², H₀: E D ≤ 0,
  z = D̄ / (s_D / √N), p = 1 − Φ(z). For unbiased estimators E D = tr Σ_ref − tr Σ.
* :func:`error_curve` — observed RMS of ‖ḡₙ − g‖ / ‖g‖ over disjoint batches against the
  prediction √(‖μ − g‖² + tr Σ̂ / n) / ‖g‖: the bias floor of a biased estimator appears as n
  grows, an unbiased one goes to 0 as 1/√n.
* :func:`cosine_curve` — cos(ḡₙ, g) over disjoint batches of n episodes (mean and quantiles):
  the measurement of Ilyas et al. (2020), "A Closer Look at Deep Policy Gradients", §3, here with
  the exact gradient instead of a many-sample estimate.
* :func:`gae_bias_curve` — ‖b(λ)‖ / ‖∇J‖ and cos(∇J + b(λ), ∇J) of GAE(λ) with an imperfect
  critic, exactly (:func:`pgmath.estimators.expected.gae_value_error_bias`).

Checked by: tests/test_estimators_variance.py (curves on synthetic Gaussian samples with known
mean and covariance; the bias² + variance identity; the paired test's direction and level;
gae_bias_curve endpoints). Docs: docs/estimators/variance.md, docs/estimators/gae_bias.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from scipy import stats as _sps

from pgmath.estimators.expected import gae_value_error_bias
from pgmath.mdp import TabularMDP
from pgmath.validation import validate_float_tensor

__all__ = [
    "cosine_curve",
    "covariance_trace",
    "error_curve",
    "gae_bias_curve",
    "mse_reduction_test",
    "variance_reduction",
]


def _flat(samples: torch.Tensor, name: str = "samples", min_n: int = 2) -> torch.Tensor:
    validate_float_tensor(samples, name)
    if samples.dim() < 1 or samples.shape[0] < min_n:
        raise ValueError(f"{name} must have shape [N, *D] with N >= {min_n}, got {tuple(samples.shape)}")
    return samples.detach().reshape(samples.shape[0], -1).to(device="cpu", dtype=torch.float64)


def _exact(exact: torch.Tensor, samples: torch.Tensor) -> torch.Tensor:
    validate_float_tensor(exact, "exact")
    if tuple(exact.shape) != tuple(samples.shape[1:]):
        raise ValueError(f"exact has shape {tuple(exact.shape)} but samples are {tuple(samples.shape)}")
    return exact.detach().reshape(-1).to(device="cpu", dtype=torch.float64)


def _batch_sizes(batch_sizes: Sequence[int], N: int) -> list[int]:
    out = []
    for n in batch_sizes:  # over the requested sizes
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"batch_sizes must hold integers >= 1, got {n!r}")
        if n > N:
            raise ValueError(f"batch_sizes: batch of {n} episodes exceeds the N = {N} samples")
        out.append(n)
    return out


def covariance_trace(samples: torch.Tensor) -> float:
    """tr Σ̂ = Σⱼ Var̂(xⱼ) (unbiased, N − 1), for ``samples [N, *D]``."""
    x = _flat(samples)
    return float(x.var(0, correction=1).sum())


def mse_reduction_test(
    samples: torch.Tensor, reference: torch.Tensor, exact: torch.Tensor
) -> tuple[float, float, float]:
    """One-sided paired test that ``samples`` has a smaller E‖x − g‖² than ``reference``.

    Both ``[N, *D]`` must come from the SAME N episodes (row i of each from episode i).
    Returns (mse ratio reference / samples, z, p-value of H₀: E‖ref − g‖² ≤ E‖x − g‖²).
    """
    x, r = _flat(samples), _flat(reference, "reference")
    if x.shape != r.shape:
        raise ValueError(f"reference has shape {tuple(reference.shape)} but samples {tuple(samples.shape)}")
    g = _exact(exact, samples)
    ex, er = ((x - g) ** 2).sum(1), ((r - g) ** 2).sum(1)
    D = er - ex
    N = D.shape[0]
    sd = float(D.std())
    z = math.inf if sd == 0 and float(D.mean()) > 0 else float(D.mean()) / max(sd / math.sqrt(N), 1e-300)
    return float(er.mean() / ex.mean()), z, float(_sps.norm.sf(z))


def variance_reduction(
    samples: dict[str, torch.Tensor], exact: torch.Tensor, *, reference: str = "reinforce"
) -> dict[str, dict[str, float]]:
    """tr Σ̂ per estimator, the factor tr Σ̂_ref / tr Σ̂, and the paired MSE test against ``reference``.

    Args:
      samples: ``{name: [N, *D]}``, all on the same episodes.
      exact: ``[*D]`` the exact gradient.
      reference: the key to compare against (plain REINFORCE by default).
    Returns:
      ``{name: {"trace", "reduction", "mse_ratio", "z", "p_value"}}``.
    """
    if reference not in samples:
        raise ValueError(f"reference {reference!r} is not among the samples {sorted(samples)}")
    ref_tr = covariance_trace(samples[reference])
    out = {}
    for name, x in samples.items():  # over estimators (few)
        tr = covariance_trace(x)
        ratio, z, p = mse_reduction_test(x, samples[reference], exact)
        out[name] = {"trace": tr, "reduction": ref_tr / tr if tr > 0 else math.inf,
                     "mse_ratio": ratio, "z": z, "p_value": p}
    return out


def _batch_means(x: torch.Tensor, n: int) -> torch.Tensor:
    B = x.shape[0] // n
    return x[: B * n].reshape(B, n, -1).mean(1)


def error_curve(
    samples: torch.Tensor,
    exact: torch.Tensor,
    batch_sizes: Sequence[int],
    *,
    expected: torch.Tensor | None = None,
) -> dict[str, list[float]]:
    """RMS relative error of the n-episode mean, observed and predicted, for each n.

    Args:
      samples: ``[N, *D]``; exact: ``[*D]`` the true gradient g.
      batch_sizes: the n to evaluate (each <= N); batches are disjoint, ⌊N/n⌋ of them.
      expected: ``[*D]`` the estimator's exact mean μ (e.g. from
        :func:`pgmath.estimators.expected.expected_gradient`); default the sample mean.
    Returns:
      ``{"n", "rms_rel_error", "predicted_rel_error", "rel_bias", "rel_std"}`` lists, where
      rel_std = √(tr Σ̂ / n) / ‖g‖ and rel_bias = ‖μ − g‖ / ‖g‖.
    """
    x = _flat(samples)
    g = _exact(exact, samples)
    ns = _batch_sizes(batch_sizes, x.shape[0])
    mu = x.mean(0) if expected is None else _exact(expected, samples)
    gn = float(g.norm())
    if gn == 0:
        raise ValueError("exact must be nonzero for relative errors")
    tr = float(x.var(0).sum())
    bias2 = float(((mu - g) ** 2).sum())
    out: dict[str, list[float]] = {"n": [], "rms_rel_error": [], "predicted_rel_error": [],
                                   "rel_bias": [], "rel_std": []}
    for n in ns:  # over batch sizes
        m = _batch_means(x, n)
        out["n"].append(n)
        out["rms_rel_error"].append(float(((m - g) ** 2).sum(1).mean().sqrt()) / gn)
        out["predicted_rel_error"].append(math.sqrt(bias2 + tr / n) / gn)
        out["rel_bias"].append(math.sqrt(bias2) / gn)
        out["rel_std"].append(math.sqrt(tr / n) / gn)
    return out


def cosine_curve(
    samples: torch.Tensor, exact: torch.Tensor, batch_sizes: Sequence[int]
) -> dict[str, list[float]]:
    """cos(ḡₙ, g) over the ⌊N/n⌋ disjoint batches of n episodes: mean and 10/50/90% quantiles.

    Returns ``{"n", "mean", "q10", "q50", "q90", "batches"}`` lists.
    """
    x = _flat(samples)
    g = _exact(exact, samples)
    ns = _batch_sizes(batch_sizes, x.shape[0])
    gn = float(g.norm())
    if gn == 0:
        raise ValueError("exact must be nonzero for a cosine similarity")
    out: dict[str, list[float]] = {"n": [], "mean": [], "q10": [], "q50": [], "q90": [], "batches": []}
    for n in ns:  # over batch sizes
        m = _batch_means(x, n)
        cos = (m @ g) / (m.norm(dim=1).clamp_min(1e-300) * gn)
        q = torch.quantile(cos, torch.tensor([0.1, 0.5, 0.9], dtype=cos.dtype))
        out["n"].append(n)
        out["mean"].append(float(cos.mean()))
        out["q10"].append(float(q[0]))
        out["q50"].append(float(q[1]))
        out["q90"].append(float(q[2]))
        out["batches"].append(int(m.shape[0]))
    return out


def gae_bias_curve(
    mdp: TabularMDP,
    logits: torch.Tensor,
    values: torch.Tensor,
    lams: Sequence[float],
    *,
    policy_fn: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> dict[str, list[float]]:
    """The exact bias of GAE(λ) with critic ``values`` (≠ V^π) for each λ in ``lams``.

    Returns ``{"lam", "rel_bias", "cosine"}``: ‖b(λ)‖ / ‖∇J‖ and cos(∇J + b(λ), ∇J).
    """
    g = mdp.exact_policy_gradient(logits) if policy_fn is None else mdp.exact_policy_gradient(policy_fn, logits)
    assert isinstance(g, torch.Tensor)
    gn = float(g.norm())
    if gn == 0:
        raise ValueError("the exact gradient is 0 at these logits; relative bias is undefined")
    out: dict[str, list[float]] = {"lam": [], "rel_bias": [], "cosine": []}
    for lam in lams:  # over λ (each an exact linear solve)
        b = gae_value_error_bias(mdp, logits, values, lam, policy_fn=policy_fn)
        mean = g + b
        out["lam"].append(float(lam))
        out["rel_bias"].append(float(b.norm()) / gn)
        out["cosine"].append(float((mean * g).sum()) / (float(mean.norm()) * gn))
    return out
