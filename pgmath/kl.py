"""KL divergence: exact for categoricals, and the k1/k2/k3 Monte-Carlo estimators.

With samples x ~ p (the policy) and the log-ratio ℓ = log p(x) − log q(x) (q the reference),
Schulman (2020), "Approximating KL Divergence", defines estimators of KL(p ‖ q) = E_p[ℓ]:

    k1 = ℓ                      unbiased, high variance, can be negative
    k2 = ½ ℓ²                   biased; E_p[k2] = KL(p ‖ q) + O(‖p − q‖³) (second order)
    k3 = (ρ − 1) − log ρ,  ρ = q(x)/p(x) = e^{−ℓ}
                                unbiased (E_p[ρ − 1] = 0) and ≥ 0 pointwise (log ρ ≤ ρ − 1)

Checked by: the specs ``kl_k1``, ``kl_k2``, ``kl_k3`` and ``kl_categorical`` of
``pgmath/specs/kl.py`` (exact enumeration over categoricals: E[k1] = E[k3] = KL, k3 ≥ 0, k2 second
order), run by ``tests/test_specs.py``; ``tests/test_kl.py``; proof ``proofs/kl_estimators.py``.
"""

from __future__ import annotations

from typing import Literal

import torch

from pgmath.numerics import accumulation_dtype
from pgmath.validation import validate_float_tensor, validate_same_shape

__all__ = ["KLEstimator", "kl_categorical", "kl_estimate"]

KLEstimator = Literal["k1", "k2", "k3"]


def kl_estimate(
    log_probs: torch.Tensor, ref_log_probs: torch.Tensor, estimator: KLEstimator = "k3"
) -> torch.Tensor:
    """Per-sample estimate of KL(π ‖ π_ref) from samples drawn from π.

    Args:
      log_probs: ``[*]`` log π(x) of the sampled x (samples drawn from π).
      ref_log_probs: ``[*]`` log π_ref(x) of the same samples.
      estimator: ``"k1"``, ``"k2"`` or ``"k3"``.
    Returns:
      ``[*]`` the per-sample estimates (average them for the estimate of the KL).
    """
    validate_float_tensor(log_probs, "log_probs")
    validate_float_tensor(ref_log_probs, "ref_log_probs")
    validate_same_shape("log_probs", log_probs, ref_log_probs=ref_log_probs)
    log_ratio = log_probs - ref_log_probs  # ℓ = log p − log q
    if estimator == "k1":
        return log_ratio
    if estimator == "k2":
        return 0.5 * log_ratio * log_ratio
    if estimator == "k3":
        return torch.expm1(-log_ratio) + log_ratio  # (ρ − 1) − log ρ with ρ = e^{−ℓ}
    raise ValueError(f"estimator must be 'k1', 'k2' or 'k3', got {estimator!r}")


def kl_categorical(logits_p: torch.Tensor, logits_q: torch.Tensor) -> torch.Tensor:
    """Exact KL(p ‖ q) = Σₓ p(x) (log p(x) − log q(x)) over the last axis (0 · log 0 := 0).

    Args:
      logits_p, logits_q: ``[*B, K]`` logits (−∞ allowed for impossible outcomes; an outcome with
        p > 0 and q = 0 gives +∞, as it should).
    Returns:
      ``[*B]``.
    """
    validate_float_tensor(logits_p, "logits_p", finite=False)
    validate_float_tensor(logits_q, "logits_q", finite=False)
    validate_same_shape("logits_p", logits_p, logits_q=logits_q)
    for name, z in (("logits_p", logits_p), ("logits_q", logits_q)):
        if bool(torch.isnan(z).any()) or bool(torch.isposinf(z).any()):
            raise ValueError(f"{name} contains NaN or +inf")
        if z.dim() == 0 or z.shape[-1] == 0:
            raise ValueError(f"{name} must have a non-empty last axis")
    logp = torch.log_softmax(logits_p, -1)
    logq = torch.log_softmax(logits_q, -1)
    p = logp.exp()
    # 0 · log 0 := 0, written before the product: where p = 0 (logits_p = −∞) the factors are
    # replaced by 0 so the backward pass never multiplies 0 by ∞ (which would be NaN everywhere)
    support = p > 0
    zero = torch.zeros((), dtype=logp.dtype, device=logp.device)
    logp_s = torch.where(support, logp, zero)
    logq_s = torch.where(support, logq, zero)
    acc = accumulation_dtype(logp.dtype)
    terms = torch.where(support, p * (logp_s - logq_s), zero)
    return terms.to(acc).sum(-1).to(logp.dtype)
