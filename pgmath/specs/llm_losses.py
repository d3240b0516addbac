"""Spec of the token-level policy loss (PPO/GRPO ratio, clip-higher, dual clip, any aggregation).

    ρₜ = exp(log π_θ − log π_old),  oₜ = min(ρₜÂₜ, clip(ρₜ, 1 − ε_low, 1 + ε_high)Âₜ)
    oₜ = max(oₜ, c·Âₜ) where Âₜ < 0 (dual clip, c > 1)
    𝓛 = −Σ_{b,t} w_{b,t} oₜ       (w: the aggregation weights of the mode)

Sources: Schulman et al. (2017), PPO; Yu et al. (2025), DAPO (clip-higher); Ye et al. (2020)
(dual clip).

The spec's function is the loss value of :func:`pgmath.llm.token_policy_loss` (its diagnostics
dict is not part of the formula); the properties check its gradient too.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from pgmath.llm.aggregate import AGGREGATION_MODES
from pgmath.llm.losses import token_policy_loss
from pgmath.specs import extremes
from pgmath.specs.llm_aggregate import (
    aggregation_options,
    aggregation_weights_reference,
    random_token_mask,
    token_arrays,
    token_mask,
    token_zeros,
)
from pgmath.specs.spec import (
    BadInput,
    Call,
    Property,
    Spec,
    WrongVariant,
    max_abs_error,
    outcome_within,
)
from pgmath.verification import Outcome, VerifyContext

__all__ = ["FAMILY", "token_policy_loss_reference", "token_policy_loss_value"]

F64 = torch.float64

#: (ε_low, ε_high, dual clip c): symmetric, DAPO's clip-higher, clip-higher with the dual clip.
CLIPS = [(0.2, None, None), (0.2, 0.28, None), (0.2, 0.28, 2.0)]


def token_policy_loss_value(log_probs, old_log_probs, advantages, mask, *, mode="token-mean",
                            clip_eps=0.2, clip_eps_high=None, dual_clip=None, normalizer=None,
                            num_sequences=None):
    """The loss of :func:`pgmath.llm.token_policy_loss` (without the diagnostics)."""
    loss, _ = token_policy_loss(log_probs, old_log_probs, advantages, mask, mode=mode, clip_eps=clip_eps,
                                clip_eps_high=clip_eps_high, dual_clip=dual_clip, normalizer=normalizer,
                                num_sequences=num_sequences)
    return loss


def token_policy_loss_reference(log_probs, old_log_probs, advantages, mask, *, mode="token-mean",
                                clip_eps=0.2, clip_eps_high=None, dual_clip=None, normalizer=None,
                                num_sequences=None):
    """𝓛 by a loop over the response tokens (differentiable in ``log_probs``)."""
    w = aggregation_weights_reference(mask, mode, normalizer=normalizer, num_sequences=num_sequences,
                                      dtype=log_probs.dtype)
    if advantages.dim() == 1:
        advantages = advantages.unsqueeze(1).expand_as(log_probs)
    hi = clip_eps if clip_eps_high is None else clip_eps_high
    total = torch.zeros((), dtype=log_probs.dtype, device=log_probs.device)
    # over the responses b, then their tokens t
    for b in range(mask.shape[0]):
        for t in range(mask.shape[1]):
            if not bool(mask[b, t]):
                continue
            rho = torch.exp(log_probs[b, t] - old_log_probs[b, t].detach())
            a = advantages[b, t].detach()
            o = torch.minimum(rho * a, rho.clamp(1 - clip_eps, 1 + hi) * a)
            if dual_clip is not None and a < 0:
                o = torch.maximum(o, dual_clip * a)
            total = total - w[b, t] * o
    return total


def _cases(ctx: VerifyContext, offset: int):
    """Three batches with gaps; old log-probs 0.5·N(0, 1) away, so many clips bind."""
    g = ctx.generator(offset)
    for B, L in [(1, 2), (3, 6), (5, 9)]:
        m = random_token_mask(B, L, g, ctx.device)
        lp = torch.randn(B, L, dtype=F64, generator=g, device=ctx.device)
        old = lp + 0.5 * torch.randn(B, L, dtype=F64, generator=g, device=ctx.device)
        adv = 2 * torch.randn(B, L, dtype=F64, generator=g, device=ctx.device)
        yield lp, old, adv, m


def _kw(mode: str, clip: tuple) -> dict:
    eps, hi, dual = clip
    return {"mode": mode, "clip_eps": eps, "clip_eps_high": hi, "dual_clip": dual,
            "normalizer": 6.0 if mode.endswith("norm") else None}


def _value_and_grad(fn: Callable, lp, old, adv, m, **kw):
    x = lp.detach().clone().requires_grad_(True)
    loss = fn(x, old, adv, m, **kw)
    (grad,) = torch.autograd.grad(loss, x)
    return loss.detach(), grad


def _per_token_loop(impl: Callable, ctx: VerifyContext) -> Outcome:
    """Every mode × {symmetric, clip-higher, clip-higher + dual clip}: value and ∂/∂log π."""
    err = 0.0
    for lp, old, adv, m in _cases(ctx, 70):
        for mode in AGGREGATION_MODES:
            for clip in CLIPS:
                got = _value_and_grad(impl, lp, old, adv, m, **_kw(mode, clip))
                want = _value_and_grad(token_policy_loss_reference, lp, old, adv, m, **_kw(mode, clip))
                err = max(err, max_abs_error(got[0], want[0]), max_abs_error(got[1], want[1]))
    return outcome_within(err)


def _analytic_gradient(impl: Callable, ctx: VerifyContext) -> Outcome:
    """∂𝓛/∂log πₜ = −wₜ ρₜ Âₜ where the unclipped branch is the one taken, 0 where a clip binds;
    on-policy (old = log π, ρ = 1) it is the policy gradient −wₜ Âₜ in every mode."""
    err = 0.0
    for lp, _, adv, m in _cases(ctx, 73):
        for mode in AGGREGATION_MODES:
            w = aggregation_weights_reference(m, mode, normalizer=_kw(mode, CLIPS[0])["normalizer"], dtype=F64)
            _, grad = _value_and_grad(impl, lp, lp, adv, m, **_kw(mode, CLIPS[2]))
            err = max(err, max_abs_error(grad, -w * torch.where(m, adv, torch.zeros_like(adv))))
    for lp, old, adv, m in _cases(ctx, 71):
        for clip in CLIPS:
            eps, hi, dual = clip
            hi = eps if hi is None else hi
            w = aggregation_weights_reference(m, "seq-mean-token-mean", dtype=F64)
            rho = torch.exp(lp - old)
            clipped = ((adv > 0) & (rho > 1 + hi)) | ((adv < 0) & (rho < 1 - eps))
            if dual is not None:
                clipped |= (adv < 0) & (rho * adv < dual * adv)
            want = torch.where(m & ~clipped, -w * rho * adv, torch.zeros_like(lp))
            _, grad = _value_and_grad(impl, lp, old, adv, m, **_kw("seq-mean-token-mean", clip))
            err = max(err, max_abs_error(grad, want))
    return outcome_within(err)


def _response_advantages_and_nan_pads(impl: Callable, ctx: VerifyContext) -> Outcome:
    """[B] advantages = [B, L] broadcast; NaN in pads: same value, finite gradient."""
    g = ctx.generator(72)
    lp = torch.randn(2, 5, dtype=F64, generator=g, device=ctx.device)
    old = lp + 0.1
    adv = torch.tensor([1.0, -2.0], dtype=F64, device=ctx.device)
    m = torch.tensor([[0, 1, 1, 0, 0], [0, 0, 1, 1, 1]], dtype=torch.bool, device=ctx.device)
    base = impl(lp, old, adv.unsqueeze(1).expand(2, 5), m)
    nan = lp.clone()
    nan[0, 3:] = math.nan
    val, grad = _value_and_grad(impl, nan, old, adv, m)
    finite = bool(torch.isfinite(grad).all())
    return outcome_within(max(max_abs_error(impl(lp, old, adv, m), base), max_abs_error(val, base),
                              0.0 if finite else math.inf))


def token_loss_clip_high_ignored(log_probs, old_log_probs, advantages, mask, *, mode="token-mean",
                                 clip_eps=0.2, clip_eps_high=None, dual_clip=None, normalizer=None,
                                 num_sequences=None):
    """clip_eps_high dropped: the ratio clipped symmetrically at 1 ± ε_low."""
    return token_policy_loss_value(log_probs, old_log_probs, advantages, mask, mode=mode, clip_eps=clip_eps,
                                   dual_clip=dual_clip, normalizer=normalizer, num_sequences=num_sequences)


def token_loss_dual_clip_both_signs(log_probs, old_log_probs, advantages, mask, *, mode="token-mean",
                                    clip_eps=0.2, clip_eps_high=None, dual_clip=None, normalizer=None,
                                    num_sequences=None):
    """The dual-clip bound max(o, c·Â) applied for Â > 0 too."""
    if dual_clip is None:
        return token_policy_loss_reference(log_probs, old_log_probs, advantages, mask, mode=mode,
                                           clip_eps=clip_eps, clip_eps_high=clip_eps_high,
                                           normalizer=normalizer, num_sequences=num_sequences)
    w = aggregation_weights_reference(mask, mode, normalizer=normalizer, num_sequences=num_sequences,
                                      dtype=log_probs.dtype)
    adv = advantages.unsqueeze(1).expand_as(log_probs) if advantages.dim() == 1 else advantages
    hi = clip_eps if clip_eps_high is None else clip_eps_high
    m = mask.bool()
    lp = torch.where(m, log_probs, torch.zeros_like(log_probs))
    rho = torch.exp(lp - torch.where(m, old_log_probs, torch.zeros_like(lp)))
    a = torch.where(m, adv, torch.zeros_like(lp))
    o = torch.maximum(torch.minimum(rho * a, rho.clamp(1 - clip_eps, 1 + hi) * a), dual_clip * a)
    return -(w * o).sum()


def _bad_inputs() -> tuple[BadInput, ...]:
    z, m = token_zeros, token_mask

    return (
        BadInput("1-D log_probs", lambda f, d: f(z(d, 3), z(d, 3), z(d, 3), m(d, 3)), "log_probs"),
        BadInput("mask shape", lambda f, d: f(z(d), z(d), z(d), m(d, 2, 4)), "mask"),
        BadInput("advantages shape", lambda f, d: f(z(d), z(d), z(d, 3), m(d)), "advantages"),
        BadInput("old_log_probs shape", lambda f, d: f(z(d), z(d, 2, 4), z(d), m(d)), "old_log_probs"),
        BadInput("clip_eps ≥ 1", lambda f, d: f(z(d), z(d), z(d), m(d), clip_eps=1.0), "clip_eps"),
        BadInput("dual_clip ≤ 1", lambda f, d: f(z(d), z(d), z(d), m(d), dual_clip=0.5), "dual_clip"),
        BadInput("unknown mode", lambda f, d: f(z(d), z(d), z(d), m(d), mode="mean"), "mode"),
    )


def _inputs():
    import numpy as np
    from hypothesis import strategies as st
    from hypothesis.extra.numpy import arrays

    @st.composite
    def draw(d):
        m, (lp, adv) = d(token_arrays(2))
        # log-ratios near the clip edges 1 − 0.2, 1 + 0.2, 1 + 0.28 and the dual bound
        edges = st.sampled_from([-1.0, -0.3, -0.1, 0.0, 0.1, 0.2, 0.22, 0.5])
        step = d(arrays(np.float64, tuple(m.shape), elements=edges))
        kw = aggregation_options(m, d)
        kw.update(clip_eps_high=d(st.sampled_from([None, 0.28])), dual_clip=d(st.sampled_from([None, 2.0, 3.0])))
        return Call((lp, lp - torch.as_tensor(step), adv, m), kw)

    return draw()


TOKEN_POLICY_LOSS = Spec(
    name="token_policy_loss",
    title="token_policy_loss",
    area="llm",
    formula="𝓛 = −Σ w_{b,t} oₜ, oₜ = min(ρÂ, clip(ρ, 1−ε_low, 1+ε_high)Â), max(oₜ, cÂ) where Â < 0",
    source="Schulman et al. (2017); Yu et al. (2025), DAPO clip-higher; Ye et al. (2020), dual clip",
    function=token_policy_loss_value,
    reference=token_policy_loss_reference,
    implementations={"fast": token_policy_loss_value},
    properties=(
        Property("per_token_loop", "value and ∂/∂log π == per-token loop (every mode; clip-higher, dual clip)",
                 _per_token_loop),
        Property("analytic_gradient", "∂𝓛/∂log π = −wρÂ unclipped, 0 where a clip binds; on-policy −wÂ",
                 _analytic_gradient),
        Property("response_advantages_nan_pads", "[B] advantages broadcast; NaN pads: same value, finite gradient",
                 _response_advantages_and_nan_pads),
    ),
    wrong_variants=(
        WrongVariant("token_loss_clip_high_ignored", "clip_eps_high dropped: symmetric clip at 1 ± ε_low",
                     "derivation (DAPO's clip-higher, Yu et al. 2025, silently not applied)",
                     token_loss_clip_high_ignored),
        WrongVariant("token_loss_dual_clip_both_signs", "the dual-clip bound c·Â applied for Â > 0 as well",
                     "derivation (Ye et al. 2020 bound negative advantages only)", token_loss_dual_clip_both_signs),
    ),
    bad_inputs=_bad_inputs(),
    inputs=_inputs,
    doc="docs/llm/token_policy_loss.md",
    extra={"extremes": extremes.token_policy_loss},
)

FAMILY: tuple[Spec, ...] = (TOKEN_POLICY_LOSS,)
