"""Spec of the LLM-RL policy objectives: PPO, CISPO, GSPO, GSPO-token, GMPO, REINFORCE × five
aggregations (:func:`pgmath.llm.policy_loss`).

    𝓛 = Σ_{b,t} w_{b,t} ℓ_{b,t};  ℓ per objective in :mod:`pgmath.llm.policy_loss`

Sources: Schulman et al. (2017), PPO; Yu et al. (2025), DAPO (clip-higher, token-mean); Ye et al.
(2020), dual clip; MiniMax (2025), MiniMax-M1 §3.1 (CISPO); Zheng et al. (2025), "Group Sequence
Policy Optimization" (GSPO, GSPO-token); Zhao et al. (2025), "Geometric-Mean Policy Optimization"
(GMPO); Liu et al. (2025), Dr. GRPO (the constant normaliser).

The reference is a loop over responses and tokens with scalar arithmetic, written from the papers'
formulas (not from the vectorised function). Properties compare value *and* gradient.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from pgmath.llm.policy_loss import OBJECTIVES, POLICY_AGGREGATIONS, policy_loss
from pgmath.specs.gradients import GradCall, gradcheck_property, loss_value
from pgmath.specs.llm_aggregate import (
    aggregation_weights_reference,
    random_token_mask,
    token_mask,
    token_zeros,
)
from pgmath.specs.spec import BadInput, Property, Spec, WrongVariant, max_abs_error, outcome_within
from pgmath.verification import Outcome, VerifyContext

__all__ = [
    "CLIP_SETTINGS",
    "FAMILY",
    "policy_loss_reference",
    "policy_weights_reference",
]

F64 = torch.float64

#: (ε, ε_high, dual clip c) settings the properties run: symmetric, clip-higher, dual clip (PPO).
CLIP_SETTINGS = ((0.2, None, None), (0.2, 0.28, None), (0.2, 0.28, 3.0))

#: log-ratios the inputs draw from: inside the range, on both sides, and far out (ρ = e^{±1.5}, e²).
LOG_RATIOS = (-2.0, -1.5, -0.5, -0.1, 0.0, 0.1, 0.25, 0.5, 1.5, 2.0)


def policy_weights_reference(mask, aggregation, *, normalizer=None, num_sequences=None, dtype=F64):
    """w_{b,t}: the aggregation loop of :mod:`pgmath.specs.llm_aggregate`, or 1 per token for
    "token-sum"."""
    if aggregation == "token-sum":
        return mask.bool().to(dtype)
    return aggregation_weights_reference(mask, aggregation, normalizer=normalizer,
                                         num_sequences=num_sequences, dtype=dtype)


def _pessimistic(ratio, adv, lo, hi):
    """min(ρÂ, clip(ρ, 1 − lo, 1 + hi)Â) of scalar tensors."""
    return torch.minimum(ratio * adv, torch.clamp(ratio, 1 - lo, 1 + hi) * adv)


def _token_loss_reference(objective, lp, old, adv, tokens, lo, hi, dual_clip):
    """{t: ℓ_{b,t}} for one response (lists of scalar tensors indexed by its tokens)."""
    n = len(tokens)
    if objective == "reinforce":
        return {t: -adv[t] * lp[t] for t in tokens}
    if objective == "ppo":
        out = {}
        for t in tokens:
            o = _pessimistic(torch.exp(lp[t] - old[t]), adv[t], lo, hi)
            if dual_clip is not None and adv[t] < 0:
                o = torch.maximum(o, dual_clip * adv[t])
            out[t] = -o
        return out
    if objective == "cispo":
        return {t: -torch.clamp(torch.exp(lp[t] - old[t]).detach(), 1 - lo, 1 + hi) * adv[t] * lp[t]
                for t in tokens}
    mean_log_r = sum(lp[t] - old[t] for t in tokens) / n
    seq_adv = sum(adv[t] for t in tokens) / n
    if objective == "gspo":
        o = _pessimistic(torch.exp(mean_log_r), seq_adv, lo, hi)
        return {t: -o for t in tokens}
    if objective == "gspo-token":
        out = {}
        for t in tokens:
            s = torch.exp(mean_log_r.detach()) * torch.exp(lp[t]) / torch.exp(lp[t]).detach()
            out[t] = -_pessimistic(s, adv[t], lo, hi)
        return out
    # gmpo: per token, the log-ratio clipped to [−lo, hi] on the side that lowers the objective
    total = torch.zeros((), dtype=lp[tokens[0]].dtype, device=lp[tokens[0]].device)
    for t in tokens:
        log_r = lp[t] - old[t]
        if adv[t] > 0:
            total = total + torch.minimum(log_r, torch.clamp(log_r, -lo, hi))
        elif adv[t] < 0:
            total = total + torch.maximum(log_r, torch.clamp(log_r, -lo, hi))
    loss = -seq_adv * torch.exp(total / n)
    return {t: loss for t in tokens}


def policy_loss_reference(log_probs, old_log_probs, advantages, mask, *, objective="ppo",
                          aggregation="token-mean", clip_eps=0.2, clip_eps_high=None, dual_clip=None,
                          normalizer=None, num_sequences=None):
    """𝓛 by loops over the responses b and their tokens t (differentiable in ``log_probs``)."""
    w = policy_weights_reference(mask, aggregation, normalizer=normalizer, num_sequences=num_sequences,
                                 dtype=log_probs.dtype)
    hi = clip_eps if clip_eps_high is None else clip_eps_high
    # 0 connected to log π (a loss with no token or no advantage still has a zero gradient)
    total = torch.where(mask.bool(), log_probs, torch.zeros_like(log_probs)).sum() * 0
    for b in range(mask.shape[0]):
        tokens = [t for t in range(mask.shape[1]) if bool(mask[b, t])]
        if not tokens:
            continue
        lp = {t: log_probs[b, t] for t in tokens}
        old = {t: old_log_probs[b, t].detach() for t in tokens}
        adv = {t: advantages[b, t].detach() for t in tokens}
        losses = _token_loss_reference(objective, lp, old, adv, tokens, clip_eps, hi, dual_clip)
        for t in tokens:
            total = total + w[b, t] * losses[t]
    return total


# ---------------------------------------------------------------------------------------------
# properties


def _kw(objective: str, aggregation: str, clip: tuple) -> dict[str, Any]:
    eps, hi, dual = clip
    return {"objective": objective, "aggregation": aggregation, "clip_eps": eps, "clip_eps_high": hi,
            "dual_clip": dual if objective == "ppo" else None,
            "normalizer": 6.0 if aggregation == "seq-mean-token-sum-norm" else None}


def _cases(ctx: VerifyContext, offset: int, *, per_sequence: bool = False):
    """Batches with gaps and an empty row; log-ratios drawn from :data:`LOG_RATIOS`."""
    g = ctx.generator(offset)
    steps = torch.tensor(LOG_RATIOS, dtype=F64)
    for B, L in [(2, 3), (4, 7)]:
        m = random_token_mask(B, L, g, ctx.device)
        m[-1] = False  # an empty response
        m[0, 0] = True
        lp = -torch.rand(B, L, dtype=F64, generator=g, device=ctx.device) * 3
        step = steps.to(ctx.device)[torch.randint(len(LOG_RATIOS), (B, L), generator=g, device=ctx.device)]
        adv = 2 * torch.randn(B, L, dtype=F64, generator=g, device=ctx.device)
        step[0, 0], adv[0, 0] = 2.0, -1.3  # ρ = e² far above the range with Â < 0 (the dual clip)
        if per_sequence:
            adv = adv[:, :1].expand(B, L).clone()
        yield lp, lp - step, adv, m


def _observe(fn: Callable, lp, old, adv, m, **kw) -> torch.Tensor:
    """[loss, ∂/∂log π, ∂/∂old, ∂/∂Â] (every float input requires grad)."""
    return GradCall((lp, old, adv, m), kw)(fn)


def _per_token_loop(impl: Callable, ctx: VerifyContext) -> Outcome:
    """Every objective × aggregation × clip setting: value and the three gradients == the loop."""
    err = 0.0
    for lp, old, adv, m in _cases(ctx, 80):
        for objective in OBJECTIVES:
            for aggregation in POLICY_AGGREGATIONS:
                for clip in CLIP_SETTINGS:
                    kw = _kw(objective, aggregation, clip)
                    err = max(err, max_abs_error(_observe(impl, lp, old, adv, m, **kw),
                                                 _observe(policy_loss_reference, lp, old, adv, m, **kw)))
    return outcome_within(err)


def _analytic_gradient_want(objective, lp, old, adv, m, w, lo, hi, dual):
    """The piecewise ∂𝓛/∂log π of each objective, in closed form."""
    zero = torch.zeros_like(lp)
    rho = torch.exp(lp - old)
    if objective == "reinforce":
        return torch.where(m, -w * adv, zero)
    if objective == "cispo":
        return torch.where(m, -w * rho.clamp(1 - lo, 1 + hi) * adv, zero)
    if objective == "ppo":
        clipped = ((adv > 0) & (rho > 1 + hi)) | ((adv < 0) & (rho < 1 - lo))
        if dual is not None:
            clipped |= (adv < 0) & (rho * adv < dual * adv)
        return torch.where(m & ~clipped, -w * rho * adv, zero)
    mf = m.to(F64)
    n = mf.sum(1, keepdim=True).clamp(min=1)
    mean_log_r = ((lp - old) * mf).sum(1, keepdim=True) / n
    a_seq = (adv * mf).sum(1, keepdim=True) / n
    W = (w * mf).sum(1, keepdim=True)  # the total weight of the response
    if objective == "gspo":  # ∂ℓ_b/∂log πₜ = −s Â_b / L_b unless the clip binds
        s = torch.exp(mean_log_r)
        bound = ((a_seq > 0) & (s > 1 + hi)) | ((a_seq < 0) & (s < 1 - lo))
        return torch.where(m & ~bound, -W * s * a_seq / n, zero)
    if objective == "gspo-token":  # per token: −w s_b Âₜ unless the clip binds for that token
        s = torch.exp(mean_log_r).expand_as(lp)
        bound = ((adv > 0) & (s > 1 + hi)) | ((adv < 0) & (s < 1 - lo))
        return torch.where(m & ~bound, -w * s * adv, zero)
    # gmpo: −W Â_b · ratio_b / L_b on the tokens whose log-space clip does not bind
    log_r = lp - old
    c = torch.where(adv > 0, torch.minimum(log_r, log_r.clamp(-lo, hi)),
                    torch.where(adv < 0, torch.maximum(log_r, log_r.clamp(-lo, hi)), zero))
    ratio = torch.exp((c * mf).sum(1, keepdim=True) / n)
    free = (c == log_r) & (adv != 0)
    return torch.where(m & free, -W * a_seq * ratio / n, zero)


def _analytic_gradient(impl: Callable, ctx: VerifyContext) -> Outcome:
    """∂𝓛/∂log π == the closed form of each objective (kinks avoided: no log-ratio sits on a bound)."""
    err = 0.0
    for lp, old, adv, m in _cases(ctx, 81):
        for objective in OBJECTIVES:
            for aggregation in ("token-mean", "seq-mean-token-mean", "token-sum"):
                for clip in CLIP_SETTINGS:
                    kw = _kw(objective, aggregation, clip)
                    eps, hi, _ = clip
                    w = policy_weights_reference(m, aggregation, normalizer=kw["normalizer"])
                    want = _analytic_gradient_want(objective, lp, old, adv, m, w, eps, eps if hi is None else hi,
                                                   kw["dual_clip"])
                    got = _observe(impl, lp, old, adv, m, **kw)[1:1 + lp.numel()].reshape(lp.shape)
                    err = max(err, max_abs_error(got, want))
    return outcome_within(err)


def _gspo_equals_gspo_token(impl: Callable, ctx: VerifyContext) -> Outcome:
    """Per-sequence advantages: GSPO and GSPO-token have equal values and gradients (each token's
    ∂/∂log πₜ of the sequence term is s_b Â_b / L_b in both, clipped together)."""
    err = 0.0
    for lp, old, adv, m in _cases(ctx, 82, per_sequence=True):
        for aggregation in ("seq-mean-token-mean", "token-mean"):
            for clip in CLIP_SETTINGS[:2]:
                kw = _kw("gspo", aggregation, clip)
                a = _observe(impl, lp, old, adv, m, **kw)
                b = _observe(impl, lp, old, adv, m, **{**kw, "objective": "gspo-token"})
                err = max(err, max_abs_error(a, b))  # token-mean weighs b by L_b/N in both
    return outcome_within(err)


def _on_policy_gradient(impl: Callable, ctx: VerifyContext) -> Outcome:
    """old = log π (ρ = 1), per-sequence advantages: every objective's gradient is −w·Â."""
    err = 0.0
    for lp, _, adv, m in _cases(ctx, 83, per_sequence=True):
        for objective in OBJECTIVES:
            for aggregation in POLICY_AGGREGATIONS:
                kw = _kw(objective, aggregation, CLIP_SETTINGS[2])
                w = policy_weights_reference(m, aggregation, normalizer=kw["normalizer"])
                got = _observe(impl, lp, lp.clone(), adv, m, **kw)[1:1 + lp.numel()].reshape(lp.shape)
                err = max(err, max_abs_error(got, torch.where(m, -w * adv, torch.zeros_like(lp))))
    return outcome_within(err)


def _nan_pads(impl: Callable, ctx: VerifyContext) -> Outcome:
    """NaN in the padding of all three inputs: the same value, finite gradients."""
    err = 0.0
    for lp, old, adv, m in _cases(ctx, 84):
        for objective in OBJECTIVES:
            kw = _kw(objective, "seq-mean-token-mean", CLIP_SETTINGS[1])
            base = _observe(impl, lp, old, adv, m, **kw)
            nan = [torch.where(m, x, torch.full_like(x, math.nan)) for x in (lp, old, adv)]
            got = _observe(impl, *nan, m, **kw)
            err = max(err, max_abs_error(got, base))
    return outcome_within(err)


def _gradcheck_cases(impl: Callable, ctx: VerifyContext):
    g = ctx.generator(85)
    m = torch.tensor([[1, 1, 0, 1], [0, 1, 1, 1]], dtype=torch.bool)
    old = -torch.rand(2, 4, dtype=F64, generator=g)
    adv = torch.tensor([[1.5, 1.5, 1.5, 1.5], [-0.7, -0.7, -0.7, -0.7]], dtype=F64)
    out = []
    # CISPO is left out: its stop-gradient makes its gradient differ from the derivative of its
    # value by design (−w·clip(ρ)·Â, not −w·∂(clip(ρ) log π)/∂log π·Â); analytic_gradient checks it
    for objective in (o for o in OBJECTIVES if o != "cispo"):
        for step in (0.05, 0.7):  # inside the range; outside it (clipped branches)
            lp = (old + step * torch.tensor([[1, -1, 1, 1], [1, 1, -1, 1]], dtype=F64)).requires_grad_()

            def fn(x, objective=objective):
                return loss_value(impl(x, old, adv, m, objective=objective, aggregation="seq-mean-token-mean"))

            out.append((fn, (lp,)))
    return out


# ---------------------------------------------------------------------------------------------
# wrong variants (each in the spec's signature; they run the reference for every other setting)


def _signature(objective: str) -> Callable[[Callable], Callable]:
    """A wrong variant in the spec's signature whose default objective is ``objective`` (so the
    harness, which binds no settings, runs it as that objective's loss)."""

    def wrap(body: Callable) -> Callable:
        def fn(log_probs, old_log_probs, advantages, mask, *, objective=objective, aggregation="token-mean",
               clip_eps=0.2, clip_eps_high=None, dual_clip=None, normalizer=None, num_sequences=None):
            kw = {"objective": objective, "aggregation": aggregation, "clip_eps": clip_eps,
                  "clip_eps_high": clip_eps_high, "dual_clip": dual_clip, "normalizer": normalizer,
                  "num_sequences": num_sequences}
            return body(log_probs, old_log_probs, advantages, mask, kw)

        fn.__name__ = body.__name__.lstrip("_")
        fn.__qualname__ = fn.__name__
        fn.__doc__ = body.__doc__
        return fn

    return wrap


def _per_token(kw, ell: Callable) -> Callable:
    """A loss that replaces the reference's ℓ by ``ell(lp, old, adv, m, lo, hi) -> [B, L]``."""

    def run(log_probs, old_log_probs, advantages, mask):
        m = mask.bool()
        zero = torch.zeros((), dtype=log_probs.dtype)
        lp, old, adv = (torch.where(m, x, zero) for x in (log_probs, old_log_probs.detach(), advantages.detach()))
        hi = kw["clip_eps"] if kw["clip_eps_high"] is None else kw["clip_eps_high"]
        w = policy_weights_reference(m, kw["aggregation"], normalizer=kw["normalizer"],
                                     num_sequences=kw["num_sequences"], dtype=log_probs.dtype)
        return (torch.where(m, ell(lp, old, adv, m, kw["clip_eps"], hi), zero) * w).sum()

    return run


def _seq_mean(x, m):
    mf = m.to(x.dtype)
    return ((x * mf).sum(1) / mf.sum(1).clamp(min=1)).unsqueeze(1).expand_as(x)


@_signature("ppo")
def _ppo_dual_clip_always_on(lp, old, adv, mask, kw):
    """PPO with a dual clip at c = 3 applied even when none is asked for."""
    if kw["objective"] != "ppo" or kw["dual_clip"] is not None:
        return policy_loss_reference(lp, old, adv, mask, **kw)
    return policy_loss_reference(lp, old, adv, mask, **{**kw, "dual_clip": 3.0})


@_signature("cispo")
def _cispo_weight_not_detached(lp, old, adv, mask, kw):
    """CISPO with the clipped IS weight left in the graph: gradient −w(ρ + clip(ρ))Â inside the
    range instead of −w·clip(ρ)·Â."""
    if kw["objective"] != "cispo":
        return policy_loss_reference(lp, old, adv, mask, **kw)

    def ell(lp, old, adv, m, lo, hi):
        return -torch.exp(lp - old).clamp(1 - lo, 1 + hi) * adv * lp

    return _per_token(kw, ell)(lp, old, adv, mask)


@_signature("gspo")
def _gspo_ratio_not_length_normalised(lp, old, adv, mask, kw):
    """GSPO's sequence ratio without the 1/|y| power: s = Π ρₜ (exp of the *sum* of log-ratios)."""
    if kw["objective"] != "gspo":
        return policy_loss_reference(lp, old, adv, mask, **kw)

    def ell(lp, old, adv, m, lo, hi):
        n = m.to(lp.dtype).sum(1, keepdim=True).expand_as(lp)
        s = torch.exp(_seq_mean(lp - old, m) * n)
        a = _seq_mean(adv, m)
        return -torch.minimum(s * a, s.clamp(1 - lo, 1 + hi) * a)

    return _per_token(kw, ell)(lp, old, adv, mask)


@_signature("gspo-token")
def _gspo_token_sequence_ratio_not_detached(lp, old, adv, mask, kw):
    """GSPO-token with s_b not stopped: s_{b,t} = s_b·πₜ/sg(πₜ), so every token's gradient also
    flows through the sequence ratio (twice the GSPO gradient per token, mixed across tokens)."""
    if kw["objective"] != "gspo-token":
        return policy_loss_reference(lp, old, adv, mask, **kw)

    def ell(lp, old, adv, m, lo, hi):
        s = torch.exp(_seq_mean(lp - old, m) + lp - lp.detach())
        return -torch.minimum(s * adv, s.clamp(1 - lo, 1 + hi) * adv)

    return _per_token(kw, ell)(lp, old, adv, mask)


@_signature("gmpo")
def _gmpo_clip_in_ratio_space(lp, old, adv, mask, kw):
    """GMPO clipping the log-ratio at log(1 − ε), log(1 + ε_high) (PPO's ratio range) instead of
    GMPO's log-space range [−ε, ε_high]."""
    if kw["objective"] != "gmpo":
        return policy_loss_reference(lp, old, adv, mask, **kw)

    def ell(lp, old, adv, m, lo, hi):
        log_r = lp - old
        sgn = torch.sign(adv)
        c = sgn * torch.minimum(sgn * log_r, sgn * log_r.clamp(math.log(1 - lo), math.log(1 + hi)))
        return -_seq_mean(adv, m) * torch.exp(_seq_mean(c, m))

    return _per_token(kw, ell)(lp, old, adv, mask)


_VARIANTS = (
    WrongVariant("policy_loss_dual_clip_always_on", "PPO dual clip at c = 3 applied though none was asked for",
                 "verl compute_policy_loss_vanilla (clip_ratio_c = 3.0 applied unconditionally; a "
                 "documented default there, a bug where the user asked for plain PPO)",
                 _ppo_dual_clip_always_on, options={"objective": "ppo", "dual_clip": None}),
    WrongVariant("cispo_weight_not_detached", "CISPO's clipped IS weight not stopped (gradient through clip(ρ))",
                 "derivation (MiniMax-M1 §3.1 stresses the stop-gradient sg(·))", _cispo_weight_not_detached,
                 options={"objective": "cispo"}),
    WrongVariant("gspo_ratio_not_length_normalised", "GSPO ratio Π ρₜ instead of (Π ρₜ)^(1/L_b) (no length normalisation)",
                 "derivation (GSPO paper §4.1: the length normalisation keeps s in the clip range)",
                 _gspo_ratio_not_length_normalised, options={"objective": "gspo"}),
    WrongVariant("gspo_token_sequence_ratio_not_detached", "GSPO-token without sg on the sequence ratio s_b",
                 "derivation (GSPO paper eq. 13: s_{i,t} = sg[s_i]·π/sg[π])",
                 _gspo_token_sequence_ratio_not_detached, options={"objective": "gspo-token"}),
    WrongVariant("gmpo_clip_in_ratio_space", "GMPO log-ratio clipped at log(1 ± ε) instead of ±ε",
                 "derivation (GMPO paper eq. 4 clips log ρ to [−ε, ε])", _gmpo_clip_in_ratio_space,
                 options={"objective": "gmpo"}),
)


def _bad_inputs() -> tuple[BadInput, ...]:
    z, m = token_zeros, token_mask

    return (
        BadInput("1-D log_probs", lambda f, d: f(z(d, 3), z(d, 3), z(d, 3), m(d, 3)), "log_probs"),
        BadInput("mask shape", lambda f, d: f(z(d), z(d), z(d), m(d, 2, 4)), "mask"),
        BadInput("advantages shape", lambda f, d: f(z(d), z(d), z(d, 2), m(d)), "advantages"),
        BadInput("old_log_probs shape", lambda f, d: f(z(d), z(d, 2, 4), z(d), m(d)), "old_log_probs"),
        BadInput("unknown objective", lambda f, d: f(z(d), z(d), z(d), m(d), objective="grpo"), "objective"),
        BadInput("unknown aggregation", lambda f, d: f(z(d), z(d), z(d), m(d), aggregation="mean"), "aggregation"),
        BadInput("clip_eps 0", lambda f, d: f(z(d), z(d), z(d), m(d), clip_eps=0.0), "clip_eps"),
        BadInput("clip_eps 1 (ppo)", lambda f, d: f(z(d), z(d), z(d), m(d), clip_eps=1.0), "clip_eps"),
        BadInput("clip_eps_high < 0", lambda f, d: f(z(d), z(d), z(d), m(d), clip_eps_high=-0.1), "clip_eps_high"),
        BadInput("dual_clip ≤ 1", lambda f, d: f(z(d), z(d), z(d), m(d), dual_clip=0.5), "dual_clip"),
        BadInput("dual_clip with gspo", lambda f, d: f(z(d), z(d), z(d), m(d), objective="gspo", dual_clip=3.0),
                 "dual_clip"),
        BadInput("normalizer with token-sum", lambda f, d: f(z(d), z(d), z(d), m(d), aggregation="token-sum",
                                                            normalizer=4.0), "normalizer"),
    )


def _inputs():
    import numpy as np
    from hypothesis import strategies as st
    from hypothesis.extra.numpy import arrays

    from pgmath.specs.llm_aggregate import token_arrays

    @st.composite
    def draw(d):
        m, (lp, adv) = d(token_arrays(2))
        step = d(arrays(np.float64, tuple(m.shape), elements=st.sampled_from(LOG_RATIOS)))
        objective = d(st.sampled_from(OBJECTIVES))
        if d(st.booleans()):  # per-sequence advantages (what GSPO and GMPO are written for)
            adv = torch.where(m, torch.nan_to_num(adv[:, :1]).expand_as(adv), adv)
        aggregation = d(st.sampled_from(POLICY_AGGREGATIONS))
        kw: dict[str, Any] = {"objective": objective, "aggregation": aggregation,
                              "clip_eps_high": d(st.sampled_from([None, 0.28]))}
        if objective == "ppo":
            kw["dual_clip"] = d(st.sampled_from([None, 3.0]))
        if aggregation == "seq-mean-token-sum-norm":
            kw["normalizer"] = float(d(st.integers(1, 10)))
        lp = -lp.abs()
        return GradCall((lp, lp - torch.as_tensor(step), adv, m), kw)

    return draw()


POLICY_LOSS = Spec(
    name="policy_loss",
    title="policy_loss (PPO/CISPO/GSPO/GMPO)",
    area="llm",
    formula="𝓛 = Σ_{b,t} w_{b,t} ℓ_{b,t}; ℓ: PPO min(ρÂ, clip(ρ)Â) (dual clip); CISPO −sg(clip ρ)Â log π; "
            "GSPO s_b = exp(mean log ρ); GSPO-token sg(s_b)π/sg(π); GMPO exp(mean clipped log ρ)·Â; "
            "REINFORCE −Â log π",
    source="Schulman et al. (2017); Yu et al. (2025) DAPO; Ye et al. (2020); MiniMax-M1 (2025) §3.1; "
           "Zheng et al. (2025) GSPO eq. 5, 13; Zhao et al. (2025) GMPO eq. 4",
    function=policy_loss,
    reference=policy_loss_reference,
    implementations={"fast": policy_loss},
    properties=(
        Property("per_token_loop", "value, ∂/∂log π, ∂/∂old, ∂/∂Â == per-token loop (6 objectives × 5 "
                 "aggregations × clip, clip-higher, dual clip)", _per_token_loop),
        Property("analytic_gradient", "∂𝓛/∂log π == the piecewise closed form of each objective",
                 _analytic_gradient),
        Property("gspo_equals_gspo_token", "per-sequence Â: GSPO and GSPO-token equal in value and gradient",
                 _gspo_equals_gspo_token),
        Property("on_policy_gradient", "old = log π: every objective's gradient is the policy gradient −wÂ",
                 _on_policy_gradient),
        Property("nan_pads", "NaN in the padding: same value, same (finite) gradients", _nan_pads),
        gradcheck_property(_gradcheck_cases),
    ),
    wrong_variants=_VARIANTS,
    bad_inputs=_bad_inputs(),
    inputs=_inputs,
    doc="docs/llm/policy_loss.md",
    harness="check_policy_loss",
)

FAMILY: tuple[Spec, ...] = (POLICY_LOSS,)
