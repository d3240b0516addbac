"""Surrogate losses whose gradients are the policy-gradient estimates.

All losses are to be *minimised* (the negative of the objective to ascend) and reduce by a mean
over the entries selected by ``mask`` (all entries when ``mask`` is None). Advantages and old
log-probabilities are treated as constants (detached).

* :func:`policy_gradient_loss` — the log-derivative trick (Williams, 1992):
  ∇θ E[A] estimated by A ∇θ log πθ(a|s), so the surrogate is L = −mean(log πθ(aₜ|sₜ) Âₜ).
* :func:`ppo_clip_loss` — PPO's clipped surrogate (Schulman et al., 2017, eq. 7), with the
  asymmetric "clip-higher" range (Yu et al., 2025, DAPO) and the dual clip for negative
  advantages (Ye et al., 2020):
      ρₜ = exp(log πθ − log π_old),
      Lᶜˡⁱᵖ = −mean( min(ρₜ Âₜ, clip(ρₜ, 1 − ε_low, 1 + ε_high) Âₜ) ),
      dual clip (Âₜ < 0): the objective is max(min(…), c Âₜ) with c > 1.
  Gradient w.r.t. log πθ: ρₜ Âₜ where the unclipped branch is active, 0 where the clip binds
  (ρ > 1 + ε_high with Â > 0, or ρ < 1 − ε_low with Â < 0) and where the dual clip binds.
* :func:`value_loss` — ½ mean (V − R)², with PPO's optional value clipping.

Checked by: the specs ``masked_mean``, ``policy_gradient_loss``, ``ppo_clip_loss`` and
``value_loss`` of ``pgmath/specs/losses.py`` (gradcheck in float64; gradients against the analytic
forms), run by ``tests/test_specs.py``; ``tests/test_losses.py``; proofs ``proofs/log_derivative.py``, ``proofs/ppo_clip.py``, ``proofs/ppo_ratio_escape.py``
(the clip removes the incentive, it does not bound the ratio), ``proofs/surrogate.py`` and
``proofs/value_loss.py``.
"""

from __future__ import annotations

import torch

from pgmath.numerics import accumulation_dtype, masked_sum
from pgmath.validation import (
    validate_float_tensor,
    validate_mask,
    validate_masked_pair,
    validate_positive,
)

__all__ = ["masked_mean", "policy_gradient_loss", "ppo_clip_loss", "value_loss"]


def masked_mean(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean of ``x`` over the entries where ``mask`` is true (all when None).

    Masked-out entries never reach the sum, so a NaN there cannot leak into the result (unlike
    ``(x * mask).sum()``, where NaN · 0 = NaN). The sum and the count are accumulated in float32
    at least (:func:`pgmath.numerics.masked_sum`; a float16 sum overflows at 65 504); the result
    is returned in ``x``'s dtype. ``mask`` must have exactly ``x``'s shape (bool or 0/1; no
    broadcasting).
    """
    validate_float_tensor(x, "x", finite=False)
    if mask is None:
        return x.to(accumulation_dtype(x.dtype)).mean().to(x.dtype)
    mask = validate_mask(mask, "mask", x.shape, x.device)
    n = int(mask.sum())
    if n == 0:
        raise ValueError("mask selects no entries")
    return (masked_sum(x, mask) / n).to(x.dtype)


def _zero_masked(m: torch.Tensor | None, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Replace masked-out entries by 0 *before* any arithmetic, so that neither the value nor the
    gradient sees them (a NaN there would otherwise return as 0 · NaN = NaN in the backward pass)."""
    if m is None:
        return tensors
    return tuple(torch.where(m, t, torch.zeros((), dtype=t.dtype, device=t.device)) for t in tensors)


def policy_gradient_loss(
    log_probs: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """L = −mean(log πθ(aₜ|sₜ) · Âₜ): the REINFORCE / actor-critic surrogate.

    −∇θ L = mean(Âₜ ∇θ log πθ(aₜ|sₜ)), the score-function estimate of ∇θ J (with Âₜ = Gₜ:
    REINFORCE with reward-to-go; with Âₜ = Gₜ − b(sₜ): with a baseline; with a critic's
    advantage: actor-critic). Note the mean: an unbiased estimate of ∇J itself sums over the time
    steps of an episode and averages over episodes; this mean over all entries is that estimate
    divided by the number of steps per episode (a step-size change, see the errata page).

    Args:
      log_probs: ``[*]`` log πθ(aₜ|sₜ), differentiable.
      advantages: ``[*]`` Âₜ (detached inside).
      mask: optional ``[*]`` bool/0-1 of valid entries.
    Returns:
      scalar loss.
    """
    m = validate_masked_pair("log_probs", log_probs, mask, advantages=advantages)
    log_probs, advantages = _zero_masked(m, log_probs, advantages)
    return -masked_mean(log_probs * advantages.detach(), m)


def ppo_clip_loss(
    log_probs: torch.Tensor,
    old_log_probs: torch.Tensor,
    advantages: torch.Tensor,
    *,
    clip_eps: float = 0.2,
    clip_eps_high: float | None = None,
    dual_clip: float | None = None,
    mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """PPO's clipped surrogate loss, with optional clip-higher and dual clip.

    Args:
      log_probs: ``[*]`` log πθ(aₜ|sₜ) under the policy being optimised.
      old_log_probs: ``[*]`` log π_old(aₜ|sₜ) of the policy that sampled (detached inside).
      advantages: ``[*]`` Âₜ (detached inside).
      clip_eps: ε_low > 0; the ratio is clipped below at 1 − ε_low.
      clip_eps_high: ε_high > 0 (default ε_low); the ratio is clipped above at 1 + ε_high.
      dual_clip: c > 1, or None; for Âₜ < 0 the objective is bounded below by c · Âₜ.
      mask: optional ``[*]`` bool/0-1 of valid entries.
    Returns:
      ``(loss, info)``: the scalar loss and detached diagnostics — ``clip_fraction`` (share of
      entries whose ratio lies outside [1 − ε_low, 1 + ε_high], the SB3/CleanRL definition),
      ``clipped_fraction`` (share where the clip binds and zeroes the gradient),
      ``dual_clip_fraction``, ``approx_kl`` (the k3 estimate of KL(π_old ‖ πθ), (ρ − 1) − log ρ)
      and ``ratio_mean``.
    """
    m = validate_masked_pair("log_probs", log_probs, mask, old_log_probs=old_log_probs, advantages=advantages)
    eps_low = validate_positive(clip_eps, "clip_eps")
    eps_high = eps_low if clip_eps_high is None else validate_positive(clip_eps_high, "clip_eps_high")
    if eps_low >= 1.0:
        raise ValueError(f"clip_eps must be < 1 (the ratio's lower clip 1 - clip_eps > 0), got {eps_low}")
    if dual_clip is not None:
        dual_clip = validate_positive(dual_clip, "dual_clip")
        if dual_clip <= 1.0:
            raise ValueError(f"dual_clip must be > 1, got {dual_clip}")

    log_probs, old_log_probs, advantages = _zero_masked(m, log_probs, old_log_probs, advantages)
    adv = advantages.detach()
    log_ratio = log_probs - old_log_probs.detach()
    with torch.no_grad():
        lr = log_ratio.detach()
        r = torch.exp(lr)  # may overflow to inf where the clip binds; never differentiated there
        outside = (r > 1.0 + eps_high) | (r < 1.0 - eps_low)
        binds = ((adv > 0) & (r > 1.0 + eps_high)) | ((adv < 0) & (r < 1.0 - eps_low))
        single = torch.where(binds, torch.clamp(r, 1.0 - eps_low, 1.0 + eps_high) * adv, r * adv)
        single = torch.where(adv == 0, torch.zeros_like(single), single)  # ρ·0 = 0 even if ρ = inf
        if dual_clip is not None:
            dual = (adv < 0) & (single < dual_clip * adv)
        else:
            dual = torch.zeros_like(binds)
        constant = binds | dual | (adv == 0)
        const_value = torch.where(dual, (dual_clip or 0.0) * adv, single)
    # min(ρÂ, clip(ρ)Â) (and the dual bound) written as a select between a constant where a clip
    # binds and ρÂ elsewhere; ρ is computed from a log-ratio set to 0 where a clip binds, so an
    # overflowing exp (log-ratio ≥ 11 in float16, ≥ 89 in float32) never reaches the backward
    # pass (0 · inf = NaN there would poison the whole step's gradient).
    ratio = torch.exp(torch.where(constant, torch.zeros_like(log_ratio), log_ratio))
    objective = torch.where(constant, const_value, ratio * adv)
    loss = -masked_mean(objective, m)

    with torch.no_grad():
        fl = accumulation_dtype(r.dtype)
        lr_acc = lr.to(fl)
        info = {
            "clip_fraction": masked_mean(outside.to(fl), m),
            "clipped_fraction": masked_mean(binds.to(fl), m),
            "dual_clip_fraction": masked_mean(dual.to(fl), m),
            "approx_kl": masked_mean(torch.expm1(lr_acc) - lr_acc, m),
            "ratio_mean": masked_mean(r.to(fl), m),
        }
    return loss, info


def value_loss(
    values: torch.Tensor,
    returns: torch.Tensor,
    *,
    old_values: torch.Tensor | None = None,
    clip_eps: float | None = None,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Critic regression loss ½ mean (V(sₜ) − Rₜ)², optionally PPO-clipped.

    With ``clip_eps`` (PPO2 / OpenAI baselines): V_clip = V_old + clip(V − V_old, −ε, ε) and the
    loss is ½ mean max((V − R)², (V_clip − R)²).

    Args:
      values: ``[*]`` V(sₜ), differentiable.
      returns: ``[*]`` targets Rₜ (detached inside).
      old_values: ``[*]`` V_old(sₜ) at collection time; required with ``clip_eps``.
      clip_eps: ε > 0 or None.
      mask: optional ``[*]`` bool/0-1 of valid entries.
    """
    if clip_eps is not None and old_values is None:
        raise ValueError("old_values is required when clip_eps is given")
    others = {"returns": returns}
    if old_values is not None:
        others["old_values"] = old_values
    m = validate_masked_pair("values", values, mask, **others)
    values, returns = _zero_masked(m, values, returns)
    if old_values is not None:
        (old_values,) = _zero_masked(m, old_values)
    target = returns.detach()
    sq = (values - target) ** 2
    if clip_eps is not None:
        eps = validate_positive(clip_eps, "clip_eps")
        old = old_values.detach()
        v_clip = old + torch.clamp(values - old, -eps, eps)
        sq = torch.maximum(sq, (v_clip - target) ** 2)
    return 0.5 * masked_mean(sq, m)
