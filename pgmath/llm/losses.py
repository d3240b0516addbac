"""Token-level policy loss for language models: PPO/GRPO ratio, clip-higher, dual clip.

Per token t of response b, with ρ_{b,t} = exp(log π_θ − log π_old) and advantage Â_{b,t} (a
response-level advantage is broadcast over its tokens):

    oₜ = min(ρₜ Âₜ, clip(ρₜ, 1 − ε_low, 1 + ε_high) Âₜ)          (PPO; ε_high > ε_low: DAPO's
    oₜ = max(oₜ, c Âₜ)   where Âₜ < 0, c > 1                      clip-higher; dual clip)
    𝓛  = −Σ_{b,t} w_{b,t} oₜ                                       (w: the aggregation weights)

The per-token objective is the core :func:`pgmath.ppo_clip_loss`, not a copy. The core reduces
by a masked mean, −(1/n) Σ o(ρ, Â); the objective is positively homogeneous in Â
(o(ρ, s·Â) = s·o(ρ, Â) for s > 0: min, clip and the dual bound all scale), so passing
Â' = n·w·Â turns that mean into the weighted sum −Σ w o(ρ, Â) of any aggregation mode — exact,
with the core's clip diagnostics unchanged (they depend on the sign of Â only).

Checked by: the spec ``token_policy_loss`` of :mod:`pgmath.specs.llm_losses` (value and gradient
against a per-token loop for every mode × clip-higher × dual clip, the analytic gradient,
on-policy = the policy gradient, [B] advantages, NaN pads, bad input);
``tests/test_llm_functions.py::test_token_policy_loss_reports_clip_fraction``, ``test_gradchecks``.
"""

from __future__ import annotations

import torch

from pgmath.llm.aggregate import AggregationMode, aggregation_weights
from pgmath.losses import ppo_clip_loss
from pgmath.numerics import accumulation_dtype
from pgmath.validation import validate_float_tensor, validate_mask

__all__ = ["token_policy_loss"]


def token_policy_loss(
    log_probs: torch.Tensor,
    old_log_probs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    mode: AggregationMode = "token-mean",
    clip_eps: float = 0.2,
    clip_eps_high: float | None = None,
    dual_clip: float | None = None,
    normalizer: float | None = None,
    num_sequences: float | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """−Σ w_{b,t} · clipped-surrogate(ρ_{b,t}, Â_{b,t}) over the response tokens.

    Args:
      log_probs: ``[B, L]`` log π_θ(yₜ|y<ₜ) (:func:`pgmath.llm.token_log_probs`), differentiable.
      old_log_probs: ``[B, L]`` log π_old of the sampling policy (detached). On-policy (one
        update per batch) pass ``log_probs.detach()``: ρ = 1 and the gradient is the plain
        policy gradient Σ w Â ∇log π.
      advantages: ``[B]`` per response (broadcast over its tokens) or ``[B, L]`` per token.
      mask: ``[B, L]`` bool/0-1 response tokens.
      mode, normalizer, num_sequences: the aggregation (:func:`pgmath.llm.aggregate_token_loss`).
      clip_eps, clip_eps_high, dual_clip: as :func:`pgmath.ppo_clip_loss`.
    Returns:
      ``(loss, info)``: info as :func:`pgmath.ppo_clip_loss` (token-level masked means).
    """
    validate_float_tensor(log_probs, "log_probs", finite=False)
    if log_probs.dim() != 2 or log_probs.numel() == 0:
        raise ValueError(f"log_probs must have a non-empty shape [B, L], got {tuple(log_probs.shape)}")
    m = validate_mask(mask, "mask", log_probs.shape, log_probs.device)
    validate_float_tensor(advantages, "advantages", finite=False)
    if advantages.shape == log_probs.shape[:1]:
        advantages = advantages.unsqueeze(1).expand_as(log_probs)
    elif advantages.shape != log_probs.shape:
        raise ValueError(
            f"advantages must have shape [B] = {tuple(log_probs.shape[:1])} or [B, L] = "
            f"{tuple(log_probs.shape)}, got {tuple(advantages.shape)}"
        )
    validate_float_tensor(old_log_probs, "old_log_probs", finite=False)
    if old_log_probs.shape != log_probs.shape:
        raise ValueError(
            f"old_log_probs has shape {tuple(old_log_probs.shape)} but log_probs has shape "
            f"{tuple(log_probs.shape)}"
        )
    # the weights and the token count in float32 at least: in float16 the count overflows at
    # 65 504 tokens and n·w would be inf (a bogus "non-finite advantages")
    acc = accumulation_dtype(log_probs.dtype)
    w = aggregation_weights(m, mode, normalizer=normalizer, num_sequences=num_sequences, dtype=acc)
    n = float(int(m.sum()))
    zero = torch.zeros((), dtype=log_probs.dtype, device=log_probs.device)
    # masked positions are zeroed first: NaN there reaches neither the value nor the gradient
    lp = torch.where(m, log_probs, zero)
    old = torch.where(m, old_log_probs.to(log_probs.dtype), zero)
    adv = torch.where(m, advantages.to(log_probs.dtype), zero)
    if int(m.sum()) == 0:  # only reachable with explicit global denominators: an exact 0
        return (lp * zero).sum(), {}
    loss, info = ppo_clip_loss(
        lp,
        old,
        adv.detach().to(acc) * (w * n),
        clip_eps=clip_eps,
        clip_eps_high=clip_eps_high,
        dual_clip=dual_clip,
        mask=m,
    )
    return loss.to(log_probs.dtype), info
