"""Specs of the masked mean and the surrogate losses: policy gradient, PPO clip, value loss.

    mean_mask(x) = Σₜ mₜ xₜ / Σₜ mₜ                    (masked-out entries never reach the sum)
    L_PG   = −mean_mask(log πθ(aₜ|sₜ) Âₜ)
    L_clip = −mean_mask(min(ρₜÂₜ, clip(ρₜ, 1 − ε_low, 1 + ε_high)Âₜ)),  ρₜ = exp(log πθ − log π_old);
             dual clip (Âₜ < 0): max(min(…), c Âₜ)
    L_V    = ½ mean_mask(max((V − R)², (V_clip − R)²)),  V_clip = V_old + clip(V − V_old, −ε, ε)

Sources: Williams (1992); Schulman et al. (2017), eq. 7 (PPO); Yu et al. (2025), DAPO
(clip-higher); Ye et al. (2020) (dual clip); OpenAI baselines ppo2 (value clipping).

Advantages, old log-probabilities, old values and returns are constants for the gradient: the
generated inputs are :class:`~pgmath.specs.gradients.GradCall` s, which compare the value *and*
the gradient with respect to every float argument with the reference's, so a missing ``detach``
is found by the input generator and rejected by the ``*_detached`` properties.

The PPO wrong variants are in the harness signature of :func:`pgmath.testing.check_ppo_loss`
(``fn(log_probs, old_log_probs, advantages, *, clip_eps=0.2, clip_eps_high=None,
dual_clip=None, mask=None)`` returning the scalar loss), so the PPO properties accept a scalar or
``(loss, info)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from pgmath.losses import masked_mean, policy_gradient_loss, ppo_clip_loss, value_loss
from pgmath.specs import extremes
from pgmath.specs.gradients import GradCall, gradcheck_property, gradients, loss_value
from pgmath.specs.spec import (
    BadInput,
    Call,
    Property,
    Spec,
    WrongVariant,
    max_abs_error,
    outcome_within,
)
from pgmath.validation import (
    validate_float_tensor,
    validate_mask,
    validate_masked_pair,
    validate_positive,
)
from pgmath.verification import Outcome, VerifyContext

__all__ = [
    "FAMILY",
    "masked_mean_reference",
    "policy_gradient_loss_reference",
    "ppo_analytic_grad",
    "ppo_clip_loss_reference",
    "value_loss_reference",
]

F64 = torch.float64

# ---------------------------------------------------------------------------------------------
# validation of the references (the refusals documented for pgmath.losses)


def _validate_loss_inputs(ref_name, ref, mask, **others) -> torch.Tensor | None:
    """:func:`pgmath.validation.validate_masked_pair`, and a mask must select something."""
    m = validate_masked_pair(ref_name, ref, mask, **others)
    if m is not None and not bool(m.any()):
        raise ValueError("mask selects no entries")
    return m


def _selected(mask, n: int) -> list[int]:
    """Flat indices of the entries that count."""
    if mask is None:
        return list(range(n))
    flat = mask.reshape(-1)
    return [t for t in range(n) if bool(flat[t])]


def _mask_f(mask, like):
    return torch.ones_like(like) if mask is None else mask.to(like.dtype)


# ---------------------------------------------------------------------------------------------
# masked mean


def masked_mean_reference(x, mask):
    """Σ_{t selected} xₜ / (number selected), a plain loop over the flat entries."""
    validate_float_tensor(x, "x", finite=False)
    if mask is not None:
        mask = validate_mask(mask, "mask", x.shape, x.device)
    keep = _selected(mask, x.numel())
    if not keep:
        raise ValueError("mask selects no entries")
    flat = x.reshape(-1).to(torch.float64)  # accumulated in float64 whatever the input dtype
    return (sum(flat[t] for t in keep) / len(keep)).to(x.dtype)


def _masked_mean_cases(ctx: VerifyContext, offset: int):
    g = ctx.generator(offset)
    out = []
    for shape in [(1,), (7,), (3, 5)]:
        x = torch.randn(shape, dtype=F64, device=ctx.device, generator=g)
        m = torch.rand(shape, device=ctx.device, generator=g) < 0.6
        m.view(-1)[0] = True
        out.append((x, m))
    return out


def _masked_mean_definition(impl: Callable, ctx: VerifyContext) -> Outcome:
    """== (Σ selected xₜ) / count, summed in Python floats; the plain mean without a mask."""
    err = 0.0
    for x, m in _masked_mean_cases(ctx, 70):
        vals = [float(v) for v, k in zip(x.reshape(-1), m.reshape(-1)) if bool(k)]
        err = max(err, abs(float(impl(x, m)) - sum(vals) / len(vals)))
        err = max(err, abs(float(impl(x, None)) - sum(map(float, x.reshape(-1))) / x.numel()))
    return outcome_within(err)


def _masked_mean_nan_masked_out(impl: Callable, ctx: VerifyContext) -> Outcome:
    """NaN/inf in masked-out entries changes neither the value nor the gradient (∂/∂xₜ = mₜ/n)."""
    err = 0.0
    for x, m in _masked_mean_cases(ctx, 71):
        fill = torch.full_like(x, float("nan"))
        fill.view(-1)[1::2] = float("inf")
        bad = torch.where(m, x, fill).requires_grad_(True)
        val = impl(bad, m)
        (grad,) = torch.autograd.grad(val, bad)
        want = torch.where(m, x, torch.zeros_like(x)).sum() / m.sum()
        err = max(err, max_abs_error(val.detach(), want), max_abs_error(grad, m.to(F64) / m.sum()))
    return outcome_within(err)


def _masked_mean_gradcheck_cases(impl, ctx):
    return [(lambda v, m=m: impl(v, m), (x.requires_grad_(True),)) for x, m in _masked_mean_cases(ctx, 72)]


def masked_mean_nan_leaks(x, mask):
    """(x · m).sum() / m.sum(): a NaN in a masked-out entry leaks in (NaN · 0 = NaN)."""
    if mask is None:
        return x.mean()
    m = mask.to(x.dtype)
    return (x * m).sum() / m.sum()


def masked_mean_mask_ignored(x, mask):
    """x.mean(): the mask is ignored (padding counts)."""
    return x.mean()


def _masked_mean_inputs():
    import numpy as np
    from hypothesis import strategies as st
    from hypothesis.extra.numpy import arrays

    def build(t):
        x, m, use_mask = t
        m = m.copy()
        m.flat[0] = True
        if not use_mask:
            return Call((torch.as_tensor(x), None))
        return Call((torch.as_tensor(np.where(m, x, np.nan)), torch.as_tensor(m)))

    shape = st.sampled_from([(1,), (3,), (6,), (2, 3)])
    return shape.flatmap(lambda s: st.tuples(
        arrays(np.float64, s, elements=st.integers(-20, 20).map(lambda i: i / 4)),
        arrays(np.bool_, s, elements=st.booleans()),
        st.booleans(),
    )).map(build)


MASKED_MEAN = Spec(
    name="masked_mean",
    title="masked mean",
    area="core",
    formula="mean_mask(x) = Σₜ mₜ xₜ / Σₜ mₜ (masked-out entries never reach the sum)",
    source="the reduction of every pgmath loss (pgmath.losses)",
    function=masked_mean,
    reference=masked_mean_reference,
    implementations={"fast": masked_mean, "reference": masked_mean_reference},
    properties=(
        Property("definition", "== Σ selected xₜ / count, summed directly", _masked_mean_definition),
        Property("nan_masked_out", "NaN/inf where masked: value and ∂/∂x = m/n unchanged", _masked_mean_nan_masked_out),
        gradcheck_property(_masked_mean_gradcheck_cases),
    ),
    wrong_variants=(
        WrongVariant("masked_mean_nan_leaks", "(x·m).sum()/m.sum(): NaN · 0 = NaN leaks from masked entries",
                     "derivation (the reason pgmath.losses.masked_mean selects with torch.where)",
                     masked_mean_nan_leaks),
        WrongVariant("masked_mean_mask_ignored", "plain mean: padding entries count", "derivation",
                     masked_mean_mask_ignored),
    ),
    bad_inputs=(
        BadInput("mask selects nothing",
                 lambda f, d: f(torch.zeros(3, dtype=F64, device=d), torch.zeros(3, dtype=torch.bool, device=d)), "mask"),
        BadInput("mask shape (would broadcast)",
                 lambda f, d: f(torch.zeros(3, 2, dtype=F64, device=d), torch.ones(3, 1, dtype=torch.bool, device=d)), "mask"),
        BadInput("x is None", lambda f, d: f(None, None), "x"),
    ),
    inputs=_masked_mean_inputs,
    doc="docs/formulas/policy-gradient-loss.md",
    extra={"extremes": extremes.masked_mean},
)

# ---------------------------------------------------------------------------------------------
# policy-gradient loss


def policy_gradient_loss_reference(log_probs, advantages, mask=None):
    """L = −(1/n) Σ_{t selected} log π(aₜ) Âₜ, a plain loop (Âₜ a constant)."""
    m = _validate_loss_inputs("log_probs", log_probs, mask, advantages=advantages)
    keep = _selected(m, log_probs.numel())
    lp, adv = log_probs.reshape(-1), advantages.detach().reshape(-1)
    return -sum(lp[t] * float(adv[t]) for t in keep) / len(keep)


def _pg_batch(ctx: VerifyContext, offset: int, N: int = 24, A: int = 4):
    g = ctx.generator(offset)
    z = torch.randn(N, A, dtype=F64, device=ctx.device, generator=g)
    a = torch.randint(0, A, (N,), device=ctx.device, generator=g)
    adv = torch.randn(N, dtype=F64, device=ctx.device, generator=g)
    mask = torch.rand(N, device=ctx.device, generator=g) < 0.7
    mask[0] = True
    return z, a, adv, mask


def _pg_score_gradient(impl: Callable, ctx: VerifyContext) -> Outcome:
    """Softmax logits: −∇z L = (1/n) Σ_{t selected} Âₜ (onehot(aₜ) − πₜ) (the log-derivative trick)."""
    err = 0.0
    for masked in (False, True):
        z, a, adv, mask = _pg_batch(ctx, 9)
        m = mask if masked else None
        z.requires_grad_(True)
        lp = torch.log_softmax(z, -1).gather(-1, a.unsqueeze(-1)).squeeze(-1)
        (grad,) = torch.autograd.grad(loss_value(impl(lp, adv, m)), z)
        score = torch.nn.functional.one_hot(a, z.shape[-1]).to(F64) - torch.softmax(z.detach(), -1)
        mf = _mask_f(m, adv)
        err = max(err, max_abs_error(grad, -(mf * adv)[:, None] * score / mf.sum()))
    return outcome_within(err)


def _pg_value(impl: Callable, ctx: VerifyContext) -> Outcome:
    """L == −Σ mₜ log πₜ Âₜ / Σ mₜ, summed in Python floats."""
    err = 0.0
    for masked in (False, True):
        _, _, adv, mask = _pg_batch(ctx, 90)
        lp = -torch.rand(adv.shape, dtype=F64, device=ctx.device, generator=ctx.generator(91)) * 3
        keep = _selected(mask if masked else None, adv.numel())
        want = -sum(float(lp[t]) * float(adv[t]) for t in keep) / len(keep)
        err = max(err, abs(float(loss_value(impl(lp, adv, mask if masked else None))) - want))
    return outcome_within(err)


def _pg_advantages_detached(impl: Callable, ctx: VerifyContext) -> Outcome:
    """Âₜ is a constant: ∂L/∂Â = 0 when the advantages require grad (the critic is not trained)."""
    _, _, adv, mask = _pg_batch(ctx, 92)
    lp = -torch.rand(adv.shape, dtype=F64, device=ctx.device, generator=ctx.generator(93)).requires_grad_(True)
    adv = adv.requires_grad_(True)
    err = 0.0
    for m in (None, mask):
        _, g_adv = gradients(loss_value(impl(lp, adv, m)), [lp, adv])
        err = max(err, float(g_adv.abs().max()))
    return outcome_within(err, what="max |∂L/∂Â|")


def _pg_masked_nan(impl: Callable, ctx: VerifyContext) -> Outcome:
    """NaN in masked-out log-probs and advantages reaches neither the loss nor its gradient."""
    _, _, adv, mask = _pg_batch(ctx, 94)
    lp = -torch.rand(adv.shape, dtype=F64, device=ctx.device, generator=ctx.generator(95))
    nan = torch.full_like(adv, float("nan"))
    lp_bad = torch.where(mask, lp, nan).requires_grad_(True)
    loss = loss_value(impl(lp_bad, torch.where(mask, adv, nan), mask))
    (grad,) = torch.autograd.grad(loss, lp_bad)
    want = -(torch.where(mask, lp * adv, torch.zeros_like(lp))).sum() / mask.sum()
    want_grad = torch.where(mask, -adv / mask.sum(), torch.zeros_like(adv))
    return outcome_within(max(max_abs_error(loss.detach(), want), max_abs_error(grad, want_grad)))


def _pg_gradcheck_cases(impl, ctx):
    _, _, adv, mask = _pg_batch(ctx, 12, N=8)
    lp = -torch.rand(8, dtype=F64, device=ctx.device, generator=ctx.generator(13))
    return [(lambda x: loss_value(impl(x, adv, mask)), (lp.requires_grad_(True),))]


def pg_loss_sign_flipped(log_probs, advantages, mask=None):
    """+mean(log π Â): the objective returned as the loss (gradient descent on J)."""
    m = None if mask is None else mask.bool()
    return masked_mean(log_probs * advantages.detach(), m)


def pg_loss_advantages_not_detached(log_probs, advantages, mask=None):
    """The advantages are not detached: the policy loss back-propagates into the critic."""
    m = None if mask is None else mask.bool()
    return -masked_mean(log_probs * advantages, m)


def pg_loss_masked_nan_leaks(log_probs, advantages, mask=None):
    """−(log π · Â · m).sum() / m.sum(): NaN in a masked-out entry leaks (NaN · 0 = NaN)."""
    m = _mask_f(mask, log_probs)
    return -(log_probs * advantages.detach() * m).sum() / m.sum()


def _mask_strategy(st, np, arrays, shape, empty: bool):
    kinds = ["none", "some"] + (["empty"] if empty else [])
    return st.tuples(st.sampled_from(kinds), arrays(np.bool_, shape, elements=st.booleans()))


def _build_mask(kind, m):
    if kind == "none":
        return None
    m = m.copy()
    if kind == "empty":
        m[...] = False
    else:
        m.flat[0] = True
    return torch.as_tensor(m)


def _pg_inputs():
    import numpy as np
    from hypothesis import strategies as st
    from hypothesis.extra.numpy import arrays

    def build(t):
        lp, adv, (kind, m) = t
        mask = _build_mask(kind, m)
        if mask is not None:  # masked-out entries may hold NaN
            nan = np.isnan(lp) | ~mask.numpy()
            lp, adv = np.where(nan, np.nan, lp), np.where(nan, np.nan, adv)
        return GradCall((torch.as_tensor(lp), torch.as_tensor(adv)), {"mask": mask})

    shape = st.sampled_from([(1,), (4,), (2, 3)])
    q = st.integers(-20, 20).map(lambda i: i / 4)
    return shape.flatmap(lambda s: st.tuples(
        arrays(np.float64, s, elements=q.map(lambda v: -abs(v))),
        arrays(np.float64, s, elements=q),
        _mask_strategy(st, np, arrays, s, empty=False),
    )).map(build)


def _loss_bad_inputs_common(call, first: str, second: str) -> tuple[BadInput, ...]:
    """Shape, emptiness, NaN and mask refusals shared by the losses; ``call(f, a, b, **kw)``."""

    def z(d, n=3):
        return torch.zeros(n, dtype=F64, device=d)

    return (
        BadInput(f"{second} shape", lambda f, d: call(f, z(d), z(d)[None]), second),
        BadInput(f"NaN {first}", lambda f, d: call(f, z(d) + float("nan"), z(d)), first),
        BadInput(f"inf {second}", lambda f, d: call(f, z(d), z(d) + float("inf")), second),
        BadInput(f"empty {first}", lambda f, d: call(f, z(d, 0), z(d, 0)), first),
        BadInput("mask holds 2", lambda f, d: call(f, z(d), z(d), mask=torch.tensor([1, 2, 0], device=d)), "mask"),
        BadInput("mask shape", lambda f, d: call(f, z(d), z(d), mask=torch.ones(2, dtype=torch.bool, device=d)), "mask"),
        BadInput("mask selects nothing",
                 lambda f, d: call(f, z(d), z(d), mask=torch.zeros(3, dtype=torch.bool, device=d)), "mask"),
    )


POLICY_GRADIENT_LOSS = Spec(
    name="policy_gradient_loss",
    title="policy-gradient loss",
    area="core",
    formula="L = −mean_mask(log πθ(aₜ|sₜ) Âₜ);  −∇θL = mean_mask(Âₜ ∇θ log πθ(aₜ|sₜ))",
    source="Williams (1992); Sutton & Barto (2nd ed.), §13.3",
    function=policy_gradient_loss,
    reference=policy_gradient_loss_reference,
    implementations={"fast": policy_gradient_loss, "reference": policy_gradient_loss_reference},
    properties=(
        Property("score_gradient", "∇z == −mean Â (onehot − π) (log-derivative trick)", _pg_score_gradient),
        Property("value", "== −Σ m log π Â / Σ m, summed directly", _pg_value),
        Property("advantages_detached", "∂L/∂Â == 0 (advantages are constants)", _pg_advantages_detached),
        Property("masked_nan", "NaN where masked: loss and gradient unchanged", _pg_masked_nan),
        gradcheck_property(_pg_gradcheck_cases),
    ),
    wrong_variants=(
        WrongVariant("pg_loss_sign_flipped", "objective returned instead of loss (sign)",
                     "derivation (the loss-vs-objective sign confusion; cf. openai/baselines#1156 for PPO)",
                     pg_loss_sign_flipped),
        WrongVariant("pg_loss_advantages_not_detached", "advantages not detached (policy loss trains the critic)",
                     "no public report linked (A2C-style Â = R − V without detach)", pg_loss_advantages_not_detached),
        WrongVariant("pg_loss_masked_nan_leaks", "(log π·Â·m).sum()/m.sum(): NaN in padding leaks", "derivation",
                     pg_loss_masked_nan_leaks),
    ),
    bad_inputs=_loss_bad_inputs_common(lambda f, a, b, **kw: f(a, b, **kw), "log_probs", "advantages"),
    inputs=_pg_inputs,
    doc="docs/formulas/policy-gradient-loss.md",
    proof="pgmath.proofs.log_derivative",
    extra={"extremes": extremes.policy_gradient_loss, "outside_proof": {
        "pg_loss_advantages_not_detached": "a gradient with respect to the advantages, which the "
        "proof (about ∇θ of log π) holds constant",
        "pg_loss_masked_nan_leaks": "NaN in masked-out entries; the proof's batches are finite",
    }},
)

# ---------------------------------------------------------------------------------------------
# PPO clipped surrogate


def ppo_analytic_grad(ratio: torch.Tensor, adv: torch.Tensor, eps_low: float, eps_high: float,
                      dual_clip: float | None, n: int) -> torch.Tensor:
    """dL/d log πθ of the PPO loss, piecewise: −ρÂ/n where the unclipped branch is active, else 0.

    The clip binds (gradient 0) for Â > 0 with ρ > 1 + ε_high and for Â < 0 with ρ < 1 − ε_low;
    the dual clip binds for Â < 0 where min(ρÂ, clip(ρ)Â) < cÂ. Schulman et al. (2017), eq. 7;
    Ye et al. (2020) for the dual clip.

    Args:
      ratio: ``[*]`` ρ = exp(log πθ − log π_old).
      adv: ``[*]`` Â.
      eps_low, eps_high: the clip range [1 − ε_low, 1 + ε_high].
      dual_clip: c > 1, or None.
      n: the number of entries the loss averages over.
    Returns:
      ``[*]`` ∂L/∂ log πθ (masking, if any, is the caller's).
    """
    active = torch.ones_like(ratio, dtype=torch.bool)
    active &= ~((adv > 0) & (ratio > 1 + eps_high))
    active &= ~((adv < 0) & (ratio < 1 - eps_low))
    if dual_clip is not None:
        clipped_obj = torch.minimum(ratio * adv, ratio.clamp(1 - eps_low, 1 + eps_high) * adv)
        active &= ~((adv < 0) & (clipped_obj < dual_clip * adv))
    return torch.where(active, -ratio * adv / n, torch.zeros_like(ratio))


def _validate_clip(clip_eps, clip_eps_high, dual_clip) -> tuple[float, float, float | None]:
    lo = validate_positive(clip_eps, "clip_eps")
    if lo >= 1.0:
        raise ValueError(f"clip_eps must be < 1, got {lo}")
    hi = lo if clip_eps_high is None else validate_positive(clip_eps_high, "clip_eps_high")
    if dual_clip is not None and validate_positive(dual_clip, "dual_clip") <= 1.0:
        raise ValueError(f"dual_clip must be > 1, got {dual_clip}")
    return lo, hi, dual_clip


def ppo_clip_loss_reference(log_probs, old_log_probs, advantages, *, clip_eps=0.2, clip_eps_high=None,
                            dual_clip=None, mask=None):
    """L = −(1/n) Σ_{t selected} objₜ, entry by entry: objₜ = min(ρₜÂₜ, clip(ρₜ)Âₜ), and
    max(objₜ, cÂₜ) where Âₜ < 0 with the dual clip (returns the scalar loss)."""
    m = _validate_loss_inputs("log_probs", log_probs, mask, old_log_probs=old_log_probs, advantages=advantages)
    lo, hi, c = _validate_clip(clip_eps, clip_eps_high, dual_clip)
    lp, old, adv = log_probs.reshape(-1), old_log_probs.detach().reshape(-1), advantages.detach().reshape(-1)
    keep = _selected(m, lp.numel())
    total = 0.0
    for t in keep:
        rho, a = torch.exp(lp[t] - old[t]), float(adv[t])
        obj = torch.minimum(rho * a, torch.clamp(rho, 1 - lo, 1 + hi) * a)
        if c is not None and a < 0:
            obj = torch.clamp(obj, min=c * a)
        total = total + obj
    return -total / len(keep)


#: (ε_low, ε_high, dual clip c): PPO, clip-higher, clip-higher with the dual clip.
PPO_SETTINGS = ((0.2, None, None), (0.2, 0.28, None), (0.1, 0.3, 3.0))


def _ppo_batch(ctx: VerifyContext, offset: int, N: int = 64, spread: float = 0.7):
    g = ctx.generator(offset)
    old = torch.randn(N, dtype=F64, device=ctx.device, generator=g)
    lp = old + spread * torch.randn(N, dtype=F64, device=ctx.device, generator=g)
    adv = torch.randn(N, dtype=F64, device=ctx.device, generator=g)
    mask = torch.rand(N, device=ctx.device, generator=g) < 0.6
    mask[0] = True
    return lp, old, adv, mask


def _ppo_call(impl, lp, old, adv, setting, mask):
    lo, hi, c = setting
    return loss_value(impl(lp, old, adv, clip_eps=lo, clip_eps_high=hi, dual_clip=c, mask=mask))


def _ppo_value(impl: Callable, ctx: VerifyContext) -> Outcome:
    """L == −Σ m min(ρÂ, clip(ρ)Â) / Σ m (dual clip: max(…, cÂ) for Â < 0), in Python floats."""
    err = 0.0
    for k, setting in enumerate(PPO_SETTINGS):
        lo, hi, c = setting
        hi = lo if hi is None else hi
        lp, old, adv, mask = _ppo_batch(ctx, 100 + k)
        for m in (None, mask):
            objs = []
            for t in _selected(m, lp.numel()):
                rho, a = math.exp(float(lp[t]) - float(old[t])), float(adv[t])
                obj = min(rho * a, min(max(rho, 1 - lo), 1 + hi) * a)
                objs.append(max(obj, c * a) if c is not None and a < 0 else obj)
            err = max(err, abs(float(_ppo_call(impl, lp, old, adv, setting, m)) + sum(objs) / len(objs)))
    return outcome_within(err)


def _ppo_gradient(impl: Callable, ctx: VerifyContext) -> Outcome:
    """∂L/∂log π == −ρÂ/n where the unclipped branch is active, 0 where a clip binds."""
    err = 0.0
    for k, setting in enumerate(PPO_SETTINGS):
        lo, hi, c = setting
        lp, old, adv, mask = _ppo_batch(ctx, 10 + k, N=400)
        for m in (None, mask):
            x = lp.clone().requires_grad_(True)
            (grad,) = torch.autograd.grad(_ppo_call(impl, x, old, adv, setting, m), x)
            mf = _mask_f(m, adv)
            want = ppo_analytic_grad((lp - old).exp(), adv, lo, lo if hi is None else hi, c, int(mf.sum())) * mf
            err = max(err, max_abs_error(grad, want))
    return outcome_within(err)


def _ppo_constants_detached(impl: Callable, ctx: VerifyContext) -> Outcome:
    """log π_old and Â are constants: ∂L/∂log π_old = ∂L/∂Â = 0 when they require grad."""
    err = 0.0
    for k, setting in enumerate(PPO_SETTINGS):
        lp, old, adv, mask = _ppo_batch(ctx, 110 + k)
        xs = [x.clone().requires_grad_(True) for x in (lp, old, adv)]
        _, g_old, g_adv = gradients(_ppo_call(impl, *xs, setting, mask), xs)
        err = max(err, float(g_old.abs().max()), float(g_adv.abs().max()))
    return outcome_within(err, what="max |∂L/∂(log π_old, Â)|")


def _ppo_empty_mask(impl: Callable, ctx: VerifyContext) -> Outcome:
    """Every entry masked out: a ValueError or a finite loss, never NaN (0/0)."""
    lp, old, adv, mask = _ppo_batch(ctx, 120, N=8)
    try:
        loss = _ppo_call(impl, lp, old, adv, PPO_SETTINGS[0], torch.zeros_like(mask))
    except ValueError as exc:
        return Outcome(True, "refused (ValueError)", {"error": str(exc)})
    finite = bool(torch.isfinite(torch.as_tensor(loss)).all())
    return Outcome(finite, f"loss = {float(loss):.3g}", {"loss": float(loss)})


def _ppo_gradcheck_cases(impl, ctx):
    lp, old, adv, mask = _ppo_batch(ctx, 12, N=12, spread=0.05)  # ratios well inside the clip range…
    lp2, old2, adv2, _ = _ppo_batch(ctx, 13, N=12, spread=1.5)  # …and mostly outside it
    return [(lambda x, s=s, o=o, a=a, m=m: _ppo_call(impl, x, o, a, s, m), (x.requires_grad_(True),))
            for s in PPO_SETTINGS for x, o, a, m in ((lp.clone(), old, adv, mask), (lp2.clone(), old2, adv2, None))]


# -- wrong variants in the harness signature (copied from pgmath.testing.mutants) ---------------


def _mean(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    if mask is None:
        return x.mean()
    m = mask.bool()
    if int(m.sum()) == 0:
        raise ValueError("mask selects no entries")
    return torch.where(m, x, torch.zeros((), dtype=x.dtype, device=x.device)).sum() / m.sum()


def _ratio_adv(log_probs, old_log_probs, advantages, *, detach_old=True, detach_adv=True):
    old = old_log_probs.detach() if detach_old else old_log_probs
    adv = advantages.detach() if detach_adv else advantages
    return torch.exp(log_probs - old), adv


def _bounds(clip_eps, clip_eps_high):
    return 1.0 - clip_eps, 1.0 + (clip_eps if clip_eps_high is None else clip_eps_high)


def _clipped_objective(log_probs, old_log_probs, advantages, clip_eps, clip_eps_high, **detach):
    """The correct per-entry objective min(ρÂ, clip(ρ)Â) (bugs elsewhere in the variant)."""
    ratio, adv = _ratio_adv(log_probs, old_log_probs, advantages, **detach)
    lo, hi = _bounds(clip_eps, clip_eps_high)
    return torch.minimum(ratio * adv, torch.clamp(ratio, lo, hi) * adv)


def ppo_minmax_swapped_for_negative_advantages(log_probs, old_log_probs, advantages, *, clip_eps=0.2,
                                               clip_eps_high=None, dual_clip=None, mask=None):
    """max(ρÂ, clip(ρ)Â) where Â < 0 ("the pessimistic bound flips with the sign")."""
    ratio, adv = _ratio_adv(log_probs, old_log_probs, advantages)
    lo, hi = _bounds(clip_eps, clip_eps_high)
    s1, s2 = ratio * adv, torch.clamp(ratio, lo, hi) * adv
    obj = torch.where(adv >= 0, torch.minimum(s1, s2), torch.maximum(s1, s2))
    return -_mean(obj, mask)


def ppo_max_instead_of_min(log_probs, old_log_probs, advantages, *, clip_eps=0.2, clip_eps_high=None,
                           dual_clip=None, mask=None):
    """max(ρÂ, clip(ρ)Â) for every sign: an optimistic bound instead of PPO's pessimistic one."""
    ratio, adv = _ratio_adv(log_probs, old_log_probs, advantages)
    lo, hi = _bounds(clip_eps, clip_eps_high)
    return -_mean(torch.maximum(ratio * adv, torch.clamp(ratio, lo, hi) * adv), mask)


def ppo_ratio_inverted(log_probs, old_log_probs, advantages, *, clip_eps=0.2, clip_eps_high=None,
                       dual_clip=None, mask=None):
    """ρ = π_old/πθ (log-prob difference taken the wrong way round)."""
    ratio = torch.exp(old_log_probs.detach() - log_probs)
    adv = advantages.detach()
    lo, hi = _bounds(clip_eps, clip_eps_high)
    return -_mean(torch.minimum(ratio * adv, torch.clamp(ratio, lo, hi) * adv), mask)


def ppo_old_log_probs_not_detached(log_probs, old_log_probs, advantages, *, clip_eps=0.2,
                                   clip_eps_high=None, dual_clip=None, mask=None):
    """Gradient flows into log π_old (e.g. recomputed with the live network, no torch.no_grad)."""
    return -_mean(_clipped_objective(log_probs, old_log_probs, advantages, clip_eps, clip_eps_high,
                                     detach_old=False), mask)


def ppo_advantages_not_detached(log_probs, old_log_probs, advantages, *, clip_eps=0.2,
                                clip_eps_high=None, dual_clip=None, mask=None):
    """The policy loss back-propagates into the advantages (and through them into the critic)."""
    return -_mean(_clipped_objective(log_probs, old_log_probs, advantages, clip_eps, clip_eps_high,
                                     detach_adv=False), mask)


def ppo_min_over_ratios(log_probs, old_log_probs, advantages, *, clip_eps=0.2, clip_eps_high=None,
                        dual_clip=None, mask=None):
    """min(ρ, clip(ρ)) · Â: the minimum is taken before multiplying by the advantage."""
    ratio, adv = _ratio_adv(log_probs, old_log_probs, advantages)
    lo, hi = _bounds(clip_eps, clip_eps_high)
    return -_mean(torch.minimum(ratio, torch.clamp(ratio, lo, hi)) * adv, mask)


def ppo_surrogate_clamped(log_probs, old_log_probs, advantages, *, clip_eps=0.2, clip_eps_high=None,
                          dual_clip=None, mask=None):
    """clip(ρÂ, 1 − ε, 1 + ε): the surrogate is clamped instead of the ratio."""
    ratio, adv = _ratio_adv(log_probs, old_log_probs, advantages)
    lo, hi = _bounds(clip_eps, clip_eps_high)
    s1 = ratio * adv
    return -_mean(torch.minimum(s1, torch.clamp(s1, lo, hi)), mask)


def ppo_no_pessimistic_min(log_probs, old_log_probs, advantages, *, clip_eps=0.2, clip_eps_high=None,
                           dual_clip=None, mask=None):
    """Only the clipped term clip(ρ)Â, without the min with ρÂ."""
    ratio, adv = _ratio_adv(log_probs, old_log_probs, advantages)
    lo, hi = _bounds(clip_eps, clip_eps_high)
    return -_mean(torch.clamp(ratio, lo, hi) * adv, mask)


def ppo_loss_sign_flipped(log_probs, old_log_probs, advantages, *, clip_eps=0.2, clip_eps_high=None,
                          dual_clip=None, mask=None):
    """Returns the objective instead of the loss (gradient *descent* on the objective)."""
    return _mean(_clipped_objective(log_probs, old_log_probs, advantages, clip_eps, clip_eps_high), mask)


def ppo_mask_ignored_in_denominator(log_probs, old_log_probs, advantages, *, clip_eps=0.2,
                                    clip_eps_high=None, dual_clip=None, mask=None):
    """sum(obj · mask) / numel: padding tokens count in the mean."""
    obj = _clipped_objective(log_probs, old_log_probs, advantages, clip_eps, clip_eps_high)
    m = torch.ones_like(obj) if mask is None else mask.to(obj.dtype)
    return -(obj * m).sum() / obj.numel()


def ppo_token_mask_shifted(log_probs, old_log_probs, advantages, *, clip_eps=0.2, clip_eps_high=None,
                           dual_clip=None, mask=None):
    """The response mask is indexed like the logits (position t−1), not like the tokens (t).

    ``pgmath.llm.token_log_probs`` puts log π(tokens[t]) at position t, read from logits[t−1]; a
    mask built for the logits rows is one position early for the log-probs.
    """
    obj = _clipped_objective(log_probs, old_log_probs, advantages, clip_eps, clip_eps_high)
    if mask is None:
        return -obj.mean()
    m = mask.bool()
    shifted = torch.zeros_like(m)
    shifted[..., :-1] = m[..., 1:]
    return -(torch.where(shifted, obj, torch.zeros_like(obj)).sum() / shifted.sum())


def ppo_masked_mean_nan_when_empty(log_probs, old_log_probs, advantages, *, clip_eps=0.2,
                                   clip_eps_high=None, dual_clip=None, mask=None):
    """sum(obj · mask) / mask.sum(): NaN (0/0) when every entry is masked."""
    obj = _clipped_objective(log_probs, old_log_probs, advantages, clip_eps, clip_eps_high)
    m = torch.ones_like(obj) if mask is None else mask.to(obj.dtype)
    return -(obj * m).sum() / m.sum()


def ppo_dual_clip_all_signs(log_probs, old_log_probs, advantages, *, clip_eps=0.2, clip_eps_high=None,
                            dual_clip=None, mask=None):
    """max(min(ρÂ, clip(ρ)Â), cÂ) for Â > 0 too: the objective becomes the constant cÂ there."""
    obj = _clipped_objective(log_probs, old_log_probs, advantages, clip_eps, clip_eps_high)
    if dual_clip is not None:
        obj = torch.maximum(obj, dual_clip * advantages.detach())
    return -_mean(obj, mask)


def _ppo_inputs():
    import numpy as np
    from hypothesis import strategies as st
    from hypothesis.extra.numpy import arrays

    def build(t):
        lp, shift, adv, (kind, m), (lo, hi, c) = t
        mask = _build_mask(kind, m)
        args = (torch.as_tensor(lp), torch.as_tensor(lp - shift), torch.as_tensor(adv))
        kw = {"clip_eps": lo, "clip_eps_high": hi, "dual_clip": c, "mask": mask}
        return GradCall(args, kw, may_refuse=kind == "empty")

    shape = st.sampled_from([(1,), (3,), (6,), (2, 3)])
    q = st.integers(-12, 12).map(lambda i: i / 4)
    return shape.flatmap(lambda s: st.tuples(
        arrays(np.float64, s, elements=q.map(lambda v: -abs(v))),
        arrays(np.float64, s, elements=q.map(lambda v: v / 3)),  # log-ratio in [−1, 1]
        arrays(np.float64, s, elements=q),
        _mask_strategy(st, np, arrays, s, empty=True),
        st.sampled_from(PPO_SETTINGS),
    )).map(build)


def _ppo_bad_inputs() -> tuple[BadInput, ...]:
    def z(d, n=3):
        return torch.zeros(n, dtype=F64, device=d)

    def call(f, a, b, **kw):
        return f(a, b, torch.zeros_like(a), **kw)

    return (
        BadInput("clip_eps 0", lambda f, d: f(z(d), z(d), z(d), clip_eps=0.0), "clip_eps"),
        BadInput("clip_eps < 0", lambda f, d: f(z(d), z(d), z(d), clip_eps=-0.1), "clip_eps"),
        BadInput("clip_eps 1", lambda f, d: f(z(d), z(d), z(d), clip_eps=1.0), "clip_eps"),
        BadInput("clip_eps_high 0", lambda f, d: f(z(d), z(d), z(d), clip_eps_high=0.0), "clip_eps_high"),
        BadInput("dual_clip 1", lambda f, d: f(z(d), z(d), z(d), dual_clip=1.0), "dual_clip"),
        BadInput("dual_clip 0.5", lambda f, d: f(z(d), z(d), z(d), dual_clip=0.5), "dual_clip"),
        BadInput("advantages shape", lambda f, d: f(z(d), z(d), z(d, 2)), "advantages"),
        *_loss_bad_inputs_common(call, "log_probs", "old_log_probs"),
    )


_PPO_VARIANTS = (
    WrongVariant("ppo_minmax_swapped_for_negative_advantages", "PPO min/max swapped for negative advantages",
                 "the A < 0 case of the Spinning Up docs (openai/spinningup#255)",
                 ppo_minmax_swapped_for_negative_advantages),
    WrongVariant("ppo_max_instead_of_min", "max(ρÂ, clip(ρ)Â) for every sign (optimistic bound)",
                 "derivation (the wrong claim rejected by proofs/ppo_clip.py)", ppo_max_instead_of_min),
    WrongVariant("ppo_ratio_inverted", "ratio inverted: π_old/πθ",
                 "suspected in hill-a/stable-baselines#447 (there the neglogp sign made the code right)",
                 ppo_ratio_inverted),
    WrongVariant("ppo_old_log_probs_not_detached", "old log-probs not detached (gradient flows into π_old)",
                 "ratio with grad through the old policy (thu-ml/tianshou#742)", ppo_old_log_probs_not_detached),
    WrongVariant("ppo_advantages_not_detached", "advantages not detached (policy loss trains the critic)",
                 "no public report linked (A2C-style Â = R − V without detach)", ppo_advantages_not_detached),
    WrongVariant("ppo_min_over_ratios", "min(ρ, clip ρ)·Â: minimum taken before multiplying by Â",
                 "takuseno/ppo#3 (fixed); proposed as a fix in tensorlayer/TensorLayer#1072", ppo_min_over_ratios),
    WrongVariant("ppo_surrogate_clamped", "clip(ρÂ) instead of clip(ρ)Â", "alexis-jacq/Pytorch-DPPO#3 (fixed)",
                 ppo_surrogate_clamped),
    WrongVariant("ppo_no_pessimistic_min", "clipped term only, no min with ρÂ", "no public report linked",
                 ppo_no_pessimistic_min),
    WrongVariant("ppo_loss_sign_flipped", "objective returned instead of loss (sign)",
                 "the loss-vs-objective sign confusion of openai/baselines#1156", ppo_loss_sign_flipped),
    WrongVariant("ppo_mask_ignored_in_denominator", "masked sum divided by numel (padding counts in the mean)",
                 "no public report linked (a length-normalisation mix-up)", ppo_mask_ignored_in_denominator),
    WrongVariant("ppo_token_mask_shifted", "token mask shifted by one (indexed like the logits)",
                 "Goekdeniz-Guelmez/mlx-lm-lora#80; PrimeIntellect-ai/prime-rl#1525 review", ppo_token_mask_shifted),
    WrongVariant("ppo_masked_mean_nan_when_empty", "all-masked batch: 0/0 = NaN loss",
                 "huggingface/transformers#16711; allenai/OLMo-core#452", ppo_masked_mean_nan_when_empty),
    WrongVariant("ppo_dual_clip_all_signs", "dual clip max(…, cÂ) applied to positive advantages too",
                 "derivation (the wrong claim rejected by proofs/ppo_clip.py prove_dual_clip)",
                 ppo_dual_clip_all_signs, options={"dual_clip": 3.0}),
)

PPO_CLIP_LOSS = Spec(
    name="ppo_clip_loss",
    title="PPO clip (+high, dual)",
    area="core",
    formula="L = −mean_mask(min(ρÂ, clip(ρ, 1 − ε_low, 1 + ε_high)Â)); dual clip: max(…, cÂ) for Â < 0",
    source="Schulman et al. (2017), eq. 7; Yu et al. (2025) (clip-higher); Ye et al. (2020) (dual clip)",
    function=ppo_clip_loss,
    reference=ppo_clip_loss_reference,
    implementations={"fast": ppo_clip_loss, "reference": ppo_clip_loss_reference},
    properties=(
        Property("value", "== −mean min(ρÂ, clip(ρ)Â) (dual: max(…, cÂ)), summed directly", _ppo_value),
        Property("analytic_gradient", "∇ == piecewise −ρÂ/n or 0 (clip, clip-higher, dual)", _ppo_gradient),
        Property("constants_detached", "∂L/∂log π_old == ∂L/∂Â == 0", _ppo_constants_detached),
        Property("empty_mask", "all entries masked: ValueError or a finite loss, not NaN", _ppo_empty_mask),
        gradcheck_property(_ppo_gradcheck_cases),
    ),
    wrong_variants=_PPO_VARIANTS,
    bad_inputs=_ppo_bad_inputs(),
    inputs=_ppo_inputs,
    doc="docs/formulas/ppo-clip.md",
    proof="pgmath.proofs.ppo_clip",
    extra={"extremes": extremes.ppo_clip_loss, "outside_proof": {
        "ppo_advantages_not_detached": "a gradient with respect to the advantages, which the proof "
        "holds constant",
        "ppo_old_log_probs_not_detached": "a gradient with respect to log π_old, which the proof holds "
        "constant",
        "ppo_masked_mean_nan_when_empty": "an all-masked batch; every batch of the proof selects entries",
        "ppo_dual_clip_all_signs": "the dual clip, whose proof is pgmath.proofs.ppo_clip:prove_dual_clip "
        "(it rejects this variant: tests/test_specs.py::test_dual_clip_proof_rejects_the_all_signs_variant)",
    }},
    harness="check_ppo_loss",
)

# ---------------------------------------------------------------------------------------------
# value loss


def value_loss_reference(values, returns, *, old_values=None, clip_eps=None, mask=None):
    """L = ½ (1/n) Σ_{t selected} max((Vₜ − Rₜ)², (V_clip,ₜ − Rₜ)²), a plain loop (Rₜ, V_old constants)."""
    if clip_eps is not None and old_values is None:
        raise ValueError("old_values is required when clip_eps is given")
    others = {"returns": returns} if old_values is None else {"returns": returns, "old_values": old_values}
    m = _validate_loss_inputs("values", values, mask, **others)
    eps = None if clip_eps is None else validate_positive(clip_eps, "clip_eps")
    v, R = values.reshape(-1), returns.detach().reshape(-1)
    keep = _selected(m, v.numel())
    total = 0.0
    for t in keep:
        sq = (v[t] - float(R[t])) ** 2
        if eps is not None:
            old = float(old_values.detach().reshape(-1)[t])
            sq = torch.maximum(sq, (old + torch.clamp(v[t] - old, -eps, eps) - float(R[t])) ** 2)
        total = total + sq
    return 0.5 * total / len(keep)


def _value_batch(ctx: VerifyContext, offset: int, N: int = 50):
    g = ctx.generator(offset)
    v = torch.randn(N, dtype=F64, device=ctx.device, generator=g)
    R = torch.randn(N, dtype=F64, device=ctx.device, generator=g)
    old = v + 0.5 * torch.randn(N, dtype=F64, device=ctx.device, generator=g)
    mask = torch.rand(N, device=ctx.device, generator=g) < 0.6
    mask[0] = True
    return v, R, old, mask


def _value_loss_gradient(impl: Callable, ctx: VerifyContext) -> Outcome:
    """∂/∂V ½ mean (V − R)² = (V − R)/n; clipped: the branch with the larger error (0 where V_clip
    is outside the clip band and wins)."""
    v, R, old, mask = _value_batch(ctx, 11)
    err = 0.0
    for m in (None, mask):
        mf = _mask_f(m, v)
        n = mf.sum()
        x = v.clone().requires_grad_(True)
        (g1,) = torch.autograd.grad(impl(x, R, mask=m), x)
        err = max(err, max_abs_error(g1, mf * (v - R) / n))
        (g2,) = torch.autograd.grad(impl(x, R, old_values=old, clip_eps=0.2, mask=m), x)
        v_clip = old + (v - old).clamp(-0.2, 0.2)
        inside = (v - old).abs() < 0.2
        use_clip = (v_clip - R) ** 2 > (v - R) ** 2
        want = torch.where(use_clip & ~inside, torch.zeros_like(v), (torch.where(use_clip, v_clip, v) - R) / n)
        err = max(err, max_abs_error(g2, mf * want))
    return outcome_within(err)


def _value_loss_value(impl: Callable, ctx: VerifyContext) -> Outcome:
    """L == ½ Σ m max((V − R)², (V_clip − R)²) / Σ m, in Python floats."""
    v, R, old, mask = _value_batch(ctx, 130)
    err = 0.0
    for m in (None, mask):
        for eps in (None, 0.2):
            sq = []
            for t in _selected(m, v.numel()):
                vt, rt, ot = float(v[t]), float(R[t]), float(old[t])
                e = (vt - rt) ** 2
                sq.append(e if eps is None else max(e, (ot + min(max(vt - ot, -eps), eps) - rt) ** 2))
            kw = {} if eps is None else {"old_values": old, "clip_eps": eps}
            err = max(err, abs(float(impl(v, R, mask=m, **kw)) - 0.5 * sum(sq) / len(sq)))
    return outcome_within(err)


def _value_loss_constants_detached(impl: Callable, ctx: VerifyContext) -> Outcome:
    """Rₜ and V_old are constants: ∂L/∂R = ∂L/∂V_old = 0 when they require grad (semi-gradient)."""
    v, R, old, mask = _value_batch(ctx, 131)
    xs = [x.clone().requires_grad_(True) for x in (v, R, old)]
    _, g_r, g_old = gradients(impl(*xs[:2], old_values=xs[2], clip_eps=0.2, mask=mask), xs)
    _, g_r1 = gradients(impl(xs[0], xs[1]), xs[:2])
    return outcome_within(max(float(g.abs().max()) for g in (g_r, g_old, g_r1)), what="max |∂L/∂(R, V_old)|")


def _value_loss_gradcheck_cases(impl, ctx):
    v, R, old, mask = _value_batch(ctx, 132, N=12)
    return [(lambda x: impl(x, R, mask=mask), (v.clone().requires_grad_(True),)),
            (lambda x: impl(x, R, old_values=old, clip_eps=0.5, mask=mask), (v.clone().requires_grad_(True),))]


def value_loss_no_half(values, returns, *, old_values=None, clip_eps=None, mask=None):
    """mean (V − R)²: the ½ dropped, so the gradient is 2(V − R)."""
    return 2 * value_loss_reference(values, returns, old_values=old_values, clip_eps=clip_eps, mask=mask)


def value_loss_clip_min(values, returns, *, old_values=None, clip_eps=None, mask=None):
    """½ mean min((V − R)², (V_clip − R)²): the optimistic branch instead of the pessimistic max."""
    m = None if mask is None else mask.bool()
    sq = (values - returns.detach()) ** 2
    if clip_eps is not None:
        old = old_values.detach()
        sq = torch.minimum(sq, (old + torch.clamp(values - old, -clip_eps, clip_eps) - returns.detach()) ** 2)
    return 0.5 * masked_mean(sq, m)


def value_loss_returns_not_detached(values, returns, *, old_values=None, clip_eps=None, mask=None):
    """The targets are not detached: the gradient also flows into Rₜ (residual gradient)."""
    m = None if mask is None else mask.bool()
    sq = (values - returns) ** 2
    if clip_eps is not None:
        old = old_values.detach()
        sq = torch.maximum(sq, (old + torch.clamp(values - old, -clip_eps, clip_eps) - returns) ** 2)
    return 0.5 * masked_mean(sq, m)


def _value_inputs():
    import numpy as np
    from hypothesis import strategies as st
    from hypothesis.extra.numpy import arrays

    def build(t):
        v, R, dv, (kind, m), eps = t
        kw = {"mask": _build_mask(kind, m)}
        if eps is not None:
            kw.update(old_values=torch.as_tensor(v + dv), clip_eps=eps)
        return GradCall((torch.as_tensor(v), torch.as_tensor(R)), kw)

    shape = st.sampled_from([(1,), (3,), (6,), (2, 3)])
    q = st.integers(-20, 20).map(lambda i: i / 4)
    return shape.flatmap(lambda s: st.tuples(
        arrays(np.float64, s, elements=q),
        arrays(np.float64, s, elements=q),
        arrays(np.float64, s, elements=st.sampled_from([-0.75, -0.3, -0.1, 0.1, 0.3, 0.75])),
        _mask_strategy(st, np, arrays, s, empty=False),
        st.sampled_from([None, 0.2]),
    )).map(build)


def _value_bad_inputs() -> tuple[BadInput, ...]:
    def z(d, n=3):
        return torch.zeros(n, dtype=F64, device=d)

    return (
        BadInput("clip without old_values", lambda f, d: f(z(d), z(d), clip_eps=0.2), "old_values"),
        BadInput("clip_eps 0", lambda f, d: f(z(d), z(d), old_values=z(d), clip_eps=0.0), "clip_eps"),
        BadInput("old_values shape", lambda f, d: f(z(d), z(d), old_values=z(d, 2), clip_eps=0.2), "old_values"),
        *_loss_bad_inputs_common(lambda f, a, b, **kw: f(a, b, **kw), "values", "returns"),
    )


VALUE_LOSS = Spec(
    name="value_loss",
    title="value loss (clipped)",
    area="core",
    formula="L = ½ mean_mask(max((V − R)², (V_clip − R)²)),  V_clip = V_old + clip(V − V_old, −ε, ε)",
    source="Sutton & Barto (2nd ed.), §9.3; OpenAI baselines ppo2 (value clipping)",
    function=value_loss,
    reference=value_loss_reference,
    implementations={"fast": value_loss, "reference": value_loss_reference},
    properties=(
        Property("analytic_gradient", "∇ == (V − R)/n; clipped: the larger branch's", _value_loss_gradient),
        Property("value", "== ½ mean max((V − R)², (V_clip − R)²), summed directly", _value_loss_value),
        Property("constants_detached", "∂L/∂R == ∂L/∂V_old == 0 (semi-gradient)", _value_loss_constants_detached),
        gradcheck_property(_value_loss_gradcheck_cases),
    ),
    wrong_variants=(
        WrongVariant("value_loss_no_half", "mean (V − R)² without ½: gradient 2(V − R)",
                     "a convention that doubles vf_coef: Stable-Baselines3 uses F.mse_loss, CleanRL 0.5·mean",
                     value_loss_no_half),
        WrongVariant("value_loss_clip_min", "clipped value loss takes the min of the two branches, not the max",
                     "derivation", value_loss_clip_min),
        WrongVariant("value_loss_returns_not_detached", "targets not detached (residual gradient into Rₜ)",
                     "derivation (semi-gradient vs residual gradient, Sutton & Barto §9.3, §11.5)",
                     value_loss_returns_not_detached),
    ),
    bad_inputs=_value_bad_inputs(),
    inputs=_value_inputs,
    doc="docs/formulas/value-loss.md",
    proof="pgmath.proofs.value_loss",
    extra={"extremes": extremes.value_loss, "outside_proof": {
        "value_loss_clip_min": "the clipped value loss, which the proof does not model",
        "value_loss_returns_not_detached": "a gradient with respect to the returns, which the proof "
        "holds constant",
    }},
)

FAMILY: tuple[Spec, ...] = (MASKED_MEAN, POLICY_GRADIENT_LOSS, PPO_CLIP_LOSS, VALUE_LOSS)
