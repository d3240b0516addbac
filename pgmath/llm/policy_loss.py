"""The policy objectives of today's LLM-RL trainers, one function: PPO, CISPO, GSPO, GMPO, REINFORCE.

Per response b and token t (mask true), with log rₜ = log π_θ − log π_old, ρₜ = exp(log rₜ),
Âₜ the advantage of the token (a sequence-level objective reads the sequence's advantage
Â_b = mean of Âₜ over its tokens), L_b its number of tokens and sg the stop-gradient:

    "ppo"         oₜ = min(ρₜÂₜ, clip(ρₜ, 1−ε, 1+ε_high)Âₜ); oₜ = max(oₜ, cÂₜ) where Âₜ < 0
                  (dual clip); ℓₜ = −oₜ          Schulman et al. 2017; Yu et al. 2025 (DAPO); Ye et al. 2020
    "cispo"       ℓₜ = −sg(clip(ρₜ, 1−ε, 1+ε_high)) · Âₜ · log π_θ       MiniMax-M1 (2025), eq. 4
    "gspo"        s_b = exp((1/L_b) Σₜ log rₜ),  ℓ_b = −min(s_bÂ_b, clip(s_b, 1−ε, 1+ε_high)Â_b)
                  on every token of b                                  Zheng et al. 2025 (GSPO), eq. 5
    "gspo-token"  s_{b,t} = sg(s_b) · π_θ(yₜ)/sg(π_θ(yₜ)),
                  ℓₜ = −min(s_{b,t}Âₜ, clip(s_{b,t}, 1−ε, 1+ε_high)Âₜ)     GSPO paper, eq. 13
    "gmpo"        cₜ = sgn(Âₜ)·min(sgn(Âₜ) log rₜ, sgn(Âₜ) clip(log rₜ, −ε, ε_high))   (log-space clip)
                  ℓ_b = −Â_b · exp((1/L_b) Σₜ cₜ) on every token of b     Zhao et al. 2025 (GMPO), eq. 4
    "reinforce"   ℓₜ = −Âₜ · log π_θ                                      Williams 1992

    𝓛 = Σ_{b,t} w_{b,t} ℓ_{b,t},   w: the weights of ``aggregation``

``aggregation`` is one of :data:`pgmath.llm.AGGREGATION_MODES` ("token-mean",
"seq-mean-token-sum", "seq-mean-token-mean", "seq-mean-token-sum-norm"; weights of
:func:`pgmath.llm.aggregation_weights`) or "token-sum" (w = 1 on every response token). A
sequence-level objective puts its loss ℓ_b on each token of b, so "seq-mean-token-mean" gives the
papers' (1/B') Σ_b ℓ_b.

Equalities worth knowing (each is a property of the spec ``policy_loss``): with per-sequence
advantages "gspo" and "gspo-token" have equal values and equal gradients; on-policy (old = log π)
every objective's gradient is the policy gradient −w_{b,t}Âₜ; "cispo" has the gradient
−w·clip(ρ)·Â everywhere (it never zeroes a token's gradient, which is its point), "ppo" −wρÂ
where the unclipped term is the minimum and 0 where a clip binds.

Checked by: the spec ``policy_loss`` of :mod:`pgmath.specs.llm_policy_loss` (value and gradient
against per-token loops for every objective × aggregation × clip setting, the analytic gradients,
gradcheck, GSPO = GSPO-token, on-policy gradient, NaN pads, bad input);
``tests/test_llm_policy_loss.py``.
"""

from __future__ import annotations

from typing import Literal

import torch

from pgmath.llm.aggregate import AGGREGATION_MODES, aggregation_weights
from pgmath.validation import validate_float_tensor, validate_mask, validate_positive

__all__ = ["OBJECTIVES", "POLICY_AGGREGATIONS", "policy_loss", "policy_loss_weights", "sequence_mean"]

Objective = Literal["ppo", "cispo", "gspo", "gspo-token", "gmpo", "reinforce"]
OBJECTIVES: tuple[str, ...] = ("ppo", "cispo", "gspo", "gspo-token", "gmpo", "reinforce")
#: The aggregation modes of :func:`policy_loss`: pgmath.llm's four, and the plain token sum.
POLICY_AGGREGATIONS: tuple[str, ...] = (*AGGREGATION_MODES, "token-sum")


def policy_loss_weights(mask: torch.Tensor, aggregation: str, *, normalizer: float | None = None,
                        num_sequences: float | None = None,
                        dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """w_{b,t} of ``aggregation``: :func:`pgmath.llm.aggregation_weights`, or the mask itself
    for "token-sum" (which takes no denominator)."""
    if aggregation not in POLICY_AGGREGATIONS:
        raise ValueError(f"aggregation must be one of {POLICY_AGGREGATIONS}, got {aggregation!r}")
    if aggregation != "token-sum":
        return aggregation_weights(mask, aggregation, normalizer=normalizer,  # type: ignore[arg-type]
                                   num_sequences=num_sequences, dtype=dtype)
    for name, v in (("normalizer", normalizer), ("num_sequences", num_sequences)):
        if v is not None:
            raise ValueError(f"{name} is not used by aggregation 'token-sum'")
    m = validate_mask(mask, "mask", mask.shape, mask.device)
    if not bool(m.any()):
        raise ValueError("mask selects no tokens")
    return m.to(dtype)


def sequence_mean(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """``[B]`` mean of ``x`` over each row's masked-in entries (0 for an empty row)."""
    mf = m.to(x.dtype)
    return (x * mf).sum(1) / mf.sum(1).clamp(min=1)


def _validate(log_probs, old_log_probs, advantages, mask, objective, clip_eps, clip_eps_high, dual_clip):
    validate_float_tensor(log_probs, "log_probs", finite=False)
    if log_probs.dim() != 2 or log_probs.numel() == 0:
        raise ValueError(f"log_probs must have a non-empty shape [B, L], got {tuple(log_probs.shape)}")
    m = validate_mask(mask, "mask", log_probs.shape, log_probs.device)
    for name, x in (("old_log_probs", old_log_probs), ("advantages", advantages)):
        validate_float_tensor(x, name, finite=False)
        if x.shape != log_probs.shape:
            raise ValueError(f"{name} has shape {tuple(x.shape)} but log_probs has shape {tuple(log_probs.shape)}")
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
    lo = validate_positive(clip_eps, "clip_eps")
    hi = lo if clip_eps_high is None else validate_positive(clip_eps_high, "clip_eps_high")
    if objective != "gmpo" and lo >= 1:
        raise ValueError(f"clip_eps must be < 1 (the ratio's lower clip 1 - clip_eps > 0), got {lo}")
    if dual_clip is not None:
        if objective != "ppo":
            raise ValueError(f"dual_clip applies to objective 'ppo' only, got objective {objective!r}")
        if validate_positive(dual_clip, "dual_clip") <= 1:
            raise ValueError(f"dual_clip must be > 1, got {dual_clip}")
    return m, lo, hi


def _clipped_min(ratio: torch.Tensor, adv: torch.Tensor, lo: float, hi: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(min(ρÂ, clip(ρ, 1−lo, 1+hi)Â), whether the clipped term is the strict minimum)."""
    unclipped, clipped = ratio * adv, ratio.clamp(1 - lo, 1 + hi) * adv
    return torch.minimum(unclipped, clipped), clipped < unclipped


def _token_losses(objective: str, lp, old, adv, m, lo, hi, dual_clip):
    """(ℓ_{b,t} [B, L], whether a clip binds [B, L]) for the zeroed-out inputs."""
    log_r = lp - old
    if objective == "reinforce":
        return -adv * lp, torch.zeros_like(m)
    if objective == "ppo":
        o, bound = _clipped_min(torch.exp(log_r), adv, lo, hi)
        if dual_clip is not None:
            dual = (adv < 0) & (o < dual_clip * adv)
            o = torch.where(dual, dual_clip * adv, o)
            bound = bound | dual
        return -o, bound
    if objective == "cispo":
        ratio = torch.exp(log_r.detach())
        w = ratio.clamp(1 - lo, 1 + hi)
        return -w * adv * lp, w != ratio
    if objective in ("gspo", "gspo-token"):
        log_s = sequence_mean(log_r, m)  # [B]
        if objective == "gspo":
            o, bound = _clipped_min(torch.exp(log_s), sequence_mean(adv, m), lo, hi)
            return -o.unsqueeze(1).expand_as(lp), bound.unsqueeze(1).expand_as(m)
        s_tok = torch.exp(log_s.detach().unsqueeze(1) + lp - lp.detach())
        o, bound = _clipped_min(s_tok, adv, lo, hi)
        return -o, bound
    # gmpo: clip in log space, towards the pessimistic side for the sign of the advantage
    sgn = torch.sign(adv)
    c = sgn * torch.minimum(sgn * log_r, sgn * log_r.clamp(-lo, hi))
    ratio = torch.exp(sequence_mean(c, m))
    loss_b = -sequence_mean(adv, m) * ratio
    return loss_b.unsqueeze(1).expand_as(lp), (c != log_r)


def policy_loss(
    log_probs: torch.Tensor,
    old_log_probs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    objective: Objective = "ppo",
    aggregation: str = "token-mean",
    clip_eps: float = 0.2,
    clip_eps_high: float | None = None,
    dual_clip: float | None = None,
    normalizer: float | None = None,
    num_sequences: float | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """𝓛 = Σ_{b,t} w_{b,t} ℓ_{b,t} for one of :data:`OBJECTIVES` (formulas in the module docstring).

    Args:
      log_probs: ``[B, L]`` log π_θ(yₜ|y<ₜ), differentiable (NaN allowed where ``mask`` is false).
      old_log_probs: ``[B, L]`` log π_old of the sampling policy (treated as a constant).
      advantages: ``[B, L]`` Âₜ per token (treated as a constant); sequence-level objectives
        ("gspo", "gmpo") read Â_b = the mean over the sequence's tokens.
      mask: ``[B, L]`` bool/0-1, true at response tokens.
      objective: "ppo", "cispo", "gspo", "gspo-token", "gmpo" or "reinforce".
      aggregation: one of :data:`POLICY_AGGREGATIONS`.
      clip_eps, clip_eps_high: ε and ε_high (default ε) of the clip range [1 − ε, 1 + ε_high]
        (for "gmpo" the log-space range [−ε, ε_high]); ignored by "reinforce".
      dual_clip: c > 1, "ppo" only: oₜ = max(oₜ, cÂₜ) where Âₜ < 0.
      normalizer, num_sequences: global denominators of the aggregation
        (:func:`pgmath.llm.aggregation_weights`).
    Returns:
      ``(loss, info)``: the 0-dim loss and ``{"clip_fraction": share of response tokens whose
      clip binds}``.
    """
    m, lo, hi = _validate(log_probs, old_log_probs, advantages, mask, objective, clip_eps, clip_eps_high,
                          dual_clip)
    w = policy_loss_weights(m, aggregation, normalizer=normalizer, num_sequences=num_sequences,
                            dtype=log_probs.dtype)
    zero = torch.zeros((), dtype=log_probs.dtype, device=log_probs.device)
    # masked positions are zeroed first: NaN there reaches neither the value nor the gradient
    lp = torch.where(m, log_probs, zero)
    old = torch.where(m, old_log_probs.detach().to(log_probs.dtype), zero)
    adv = torch.where(m, advantages.detach().to(log_probs.dtype), zero)
    loss, bound = _token_losses(objective, lp, old, adv, m, lo, hi, dual_clip)
    loss = (torch.where(m, loss, zero) * w).sum()
    frac = (bound & m).sum().to(log_probs.dtype) / m.sum().clamp(min=1)
    return loss, {"clip_fraction": frac.detach()}
