"""KL regularisation of a language-model policy towards a reference policy π_ref.

Two placements, both built on the core estimators :func:`pgmath.kl_estimate` (k1, k2, k3 of
Schulman, 2020) applied per token with ℓₜ = log π(yₜ|y<ₜ) − log π_ref(yₜ|y<ₜ), y ~ π:

* **In the reward** (InstructGPT / PPO-RLHF): rₜ ← rₜ − β kₜ with k = k1 = ℓₜ, *detached*, then
  any score-function estimator. With the reward-to-go Σ_{t'≥t} of the penalty this is an
  unbiased estimate of −β ∇ KL(π ‖ π_ref) of the whole sequence (:func:`kl_penalty`).
* **As a loss term** (GRPO): 𝓛 += β · aggregate(kₜ), differentiated through log π *inside* k only
  (the sampling distribution is not differentiated) (:func:`kl_loss`). What this gives in
  expectation, per token t with prefix y<ₜ ~ π (proved by enumeration in
  :mod:`pgmath.llm.oracle`; ``docs/llm/kl_placement.md``):

      k1:  E[∇ℓₜ] = 0                                         — no gradient at all
      k2:  E[ℓₜ ∇log πₜ] = ∇ KL(π(·|y<ₜ) ‖ π_ref(·|y<ₜ))        — the reverse KL of each *conditional*
      k3:  E[(1 − π_ref/π) ∇log πₜ] = ∇ KL(π_ref(·|y<ₜ) ‖ π(·|y<ₜ)) — the forward KL of each conditional

  summed over t with the prefixes drawn from π and held fixed. For one token (L = 1) these are
  the gradients of KL(π‖π_ref) and KL(π_ref‖π); for sequences they are *not* the gradients of
  the sequence-level KLs: k2 misses the terms E[∇log πₜ Σ_{t'>t} ℓ_{t'}] through which a token
  changes the KL of the tokens after it, and k3's prefixes come from π, not π_ref.

Checked by: the specs ``token_kl``, ``kl_penalty`` and ``kl_loss`` of :mod:`pgmath.specs.llm_kl`
(closed forms, gradients, NaN pads, detached penalty, the sequence form, bad input);
``tests/test_llm_oracle.py::test_kl_as_loss_expected_gradients_exact`` and the other
``test_kl_*`` / ``test_k*`` tests there (exact, by enumeration); the verify rows "KL-as-loss
k1/k2/k3" and "KL k1 in reward".
"""

from __future__ import annotations

import torch

from pgmath.kl import KLEstimator, kl_estimate
from pgmath.llm.aggregate import AggregationMode, aggregate_token_loss
from pgmath.validation import (
    validate_finite,
    validate_float_tensor,
    validate_mask,
    validate_positive,
)

__all__ = ["kl_loss", "kl_penalty", "token_kl"]


def token_kl(
    log_probs: torch.Tensor,
    ref_log_probs: torch.Tensor,
    mask: torch.Tensor,
    estimator: KLEstimator = "k1",
) -> torch.Tensor:
    """Per-token estimate kₜ of the KL, ``[B, L]``, 0 outside ``mask`` (NaN there never leaks).

    Args:
      log_probs: ``[B, L]`` log π(yₜ|y<ₜ) of the sampled tokens (differentiable).
      ref_log_probs: ``[B, L]`` log π_ref(yₜ|y<ₜ) (detached inside).
      mask: ``[B, L]`` bool/0-1 response tokens.
      estimator: "k1", "k2" or "k3".
    """
    validate_float_tensor(log_probs, "log_probs", finite=False)
    validate_float_tensor(ref_log_probs, "ref_log_probs", finite=False)
    if log_probs.dim() != 2 or log_probs.numel() == 0:
        raise ValueError(f"log_probs must have a non-empty shape [B, L], got {tuple(log_probs.shape)}")
    if ref_log_probs.shape != log_probs.shape:
        raise ValueError(
            f"ref_log_probs has shape {tuple(ref_log_probs.shape)} but log_probs has shape "
            f"{tuple(log_probs.shape)}"
        )
    m = validate_mask(mask, "mask", log_probs.shape, log_probs.device)
    validate_finite(log_probs, "log_probs", mask=m)
    validate_finite(ref_log_probs, "ref_log_probs", mask=m)
    zero = torch.zeros((), dtype=log_probs.dtype, device=log_probs.device)
    lp = torch.where(m, log_probs, zero)
    ref = torch.where(m, ref_log_probs.detach().to(log_probs.dtype), zero)
    return torch.where(m, kl_estimate(lp, ref, estimator), zero)


def kl_penalty(
    log_probs: torch.Tensor,
    ref_log_probs: torch.Tensor,
    mask: torch.Tensor,
    *,
    coef: float,
    estimator: KLEstimator = "k1",
) -> torch.Tensor:
    """Per-token reward penalty β·kₜ (detached), to be *subtracted* from the token rewards.

    Pass it to :func:`pgmath.llm.token_rewards` (``kl_penalty=``): rₜ = [t last]·R − β kₜ. With
    k1 and the reward-to-go of the penalty (GAE with γ = λ = 1, or REINFORCE with reward-to-go),
    E[Σₜ ∇log πₜ Σ_{t'≥t} β k1_{t'}] = β ∇ KL(π ‖ π_ref) exactly.

    Args:
      log_probs, ref_log_probs, mask: as :func:`token_kl`.
      coef: β > 0.
      estimator: "k1" (the unbiased one; default), "k2" or "k3".
    Returns:
      ``[B, L]`` detached penalties, 0 outside the mask.
    """
    beta = validate_positive(coef, "coef")
    validate_float_tensor(log_probs, "log_probs", finite=False)  # before .detach(): None is named
    return beta * token_kl(log_probs.detach(), ref_log_probs, mask, estimator)


def kl_loss(
    log_probs: torch.Tensor,
    ref_log_probs: torch.Tensor,
    mask: torch.Tensor,
    *,
    estimator: KLEstimator = "k3",
    mode: AggregationMode = "token-mean",
    normalizer: float | None = None,
    num_sequences: float | None = None,
) -> torch.Tensor:
    """The KL loss term aggregate(kₜ) (multiply by β and add to the policy loss).

    The gradient flows through log π inside kₜ only. See the module docstring for what each
    estimator's gradient is in expectation (k1: zero; k2/k3: per-conditional reverse/forward KL).

    Args:
      log_probs, ref_log_probs, mask: as :func:`token_kl`.
      estimator: "k1", "k2" or "k3" (GRPO's default is k3).
      mode, normalizer, num_sequences: as :func:`pgmath.llm.aggregate_token_loss`.
    Returns:
      0-dim tensor.
    """
    k = token_kl(log_probs, ref_log_probs, mask, estimator)
    return aggregate_token_loss(k, mask, mode, normalizer=normalizer, num_sequences=num_sequences)
