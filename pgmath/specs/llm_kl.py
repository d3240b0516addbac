"""Specs of the KL regularisation towards π_ref: per token, as a reward penalty, as a loss term.

    ℓₜ = log π(yₜ|y<ₜ) − log π_ref(yₜ|y<ₜ)
    k1 = ℓ,  k2 = ½ℓ²,  k3 = e^{−ℓ} − 1 + ℓ            (on response tokens, 0 elsewhere)
    kl_penalty = β·kₜ (detached);  kl_loss = Σ_{b,t} w_{b,t} kₜ (the aggregation weights)

Sources: Schulman (2020), "Approximating KL divergence" (k1, k2, k3); Ouyang et al. (2022) for
the penalty in the reward; Shao et al. (2024), GRPO, for k3 as a loss term.

What these give in expectation (k1 as a loss: no gradient; k2/k3: per-conditional KLs, not the
sequence KL) is statistical and checked by the oracle rows of :mod:`pgmath.llm.verify`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from pgmath.llm.aggregate import AGGREGATION_MODES
from pgmath.llm.kl import kl_loss, kl_penalty, token_kl
from pgmath.specs import extremes
from pgmath.specs.llm_aggregate import (
    aggregate_token_loss_reference,
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

__all__ = ["FAMILY", "kl_loss_reference", "kl_penalty_reference", "token_kl_reference"]

F64 = torch.float64
ESTIMATORS = ("k1", "k2", "k3")

#: kₜ and ∂kₜ/∂log π as functions of ℓ, written out (not pgmath.kl_estimate).
CLOSED_FORM: dict[str, tuple[Callable[[float], float], Callable[[float], float]]] = {
    "k1": (lambda x: x, lambda x: 1.0),
    "k2": (lambda x: 0.5 * x * x, lambda x: x),
    "k3": (lambda x: math.exp(-x) - 1.0 + x, lambda x: 1.0 - math.exp(-x)),
}
_DOC = "docs/llm/kl.md"


def token_kl_reference(log_probs, ref_log_probs, mask, estimator="k1"):
    """kₜ by a loop over the response tokens (differentiable in ``log_probs``; ref detached)."""
    out = torch.zeros(log_probs.shape, dtype=log_probs.dtype, device=log_probs.device)
    # over the responses b, then their tokens t
    for b in range(mask.shape[0]):
        for t in range(mask.shape[1]):
            if bool(mask[b, t]):
                x = log_probs[b, t] - ref_log_probs[b, t].detach()
                out[b, t] = {"k1": x, "k2": 0.5 * x * x, "k3": torch.exp(-x) - 1 + x}[estimator]
    return out


def _kl_cases(ctx: VerifyContext, offset: int):
    g = ctx.generator(offset)
    for B, L in [(1, 1), (3, 5), (4, 9)]:
        m = random_token_mask(B, L, g, ctx.device)
        lp = torch.randn(B, L, dtype=F64, generator=g, device=ctx.device) - 2
        ref = lp + torch.randn(B, L, dtype=F64, generator=g, device=ctx.device)
        yield lp, ref, m


def _closed(lp, ref, m, est: str, which: int = 0) -> torch.Tensor:
    """The closed form (or its derivative) entry by entry, 0 outside the mask."""
    f = CLOSED_FORM[est][which]
    vals = [[f(float(a) - float(b)) if bool(k) else 0.0 for a, b, k in zip(ra, rb, rk)]
            for ra, rb, rk in zip(lp.tolist(), ref.tolist(), m.tolist())]
    return torch.tensor(vals, dtype=F64, device=lp.device)


def _with_nan_pads(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    return torch.where(m, x, torch.full_like(x, math.nan))


def _token_kl_definition(impl: Callable, ctx: VerifyContext) -> Outcome:
    """k1 = ℓ, k2 = ½ℓ², k3 = e^{−ℓ} − 1 + ℓ on the mask (math module), 0 on NaN pads."""
    err = 0.0
    for lp, ref, m in _kl_cases(ctx, 80):
        for est in ESTIMATORS:
            got = impl(_with_nan_pads(lp, m), _with_nan_pads(ref, m), m, est)
            err = max(err, max_abs_error(got, _closed(lp, ref, m, est)))
    return outcome_within(err)


def _token_kl_gradient(impl: Callable, ctx: VerifyContext) -> Outcome:
    """∂kₜ/∂log π = 1, ℓ, 1 − e^{−ℓ} on the mask, 0 elsewhere; no gradient reaches log π_ref."""
    err = 0.0
    for lp, ref, m in _kl_cases(ctx, 81):
        for est in ESTIMATORS:
            x, r = lp.clone().requires_grad_(True), ref.clone().requires_grad_(True)
            gx, gr = torch.autograd.grad(impl(x, r, m, est).sum(), (x, r), allow_unused=True)
            ref_grad = 0.0 if gr is None else float(gr.abs().max())
            err = max(err, max_abs_error(gx, _closed(lp, ref, m, est, 1)), ref_grad)
    return outcome_within(err)


def token_kl_arguments_swapped(log_probs, ref_log_probs, mask, estimator="k1"):
    """log π and log π_ref passed in each other's place: kₜ of −ℓ."""
    return token_kl(ref_log_probs.detach(), log_probs, mask, estimator)


def token_kl_masked_by_multiplication(log_probs, ref_log_probs, mask, estimator="k1"):
    """kₜ computed on every position and multiplied by the mask (NaN · 0 = NaN from a pad)."""
    x = log_probs - ref_log_probs.detach()
    k = {"k1": x, "k2": 0.5 * x * x, "k3": torch.expm1(-x) + x}[estimator]
    return k * mask.to(k.dtype)


def _kl_bad_inputs(extra: dict | None = None) -> tuple[BadInput, ...]:
    kw = extra or {}

    z, m = token_zeros, token_mask

    def nan(d):
        x = z(d)
        x[1, 2] = math.nan
        return x

    return (
        BadInput("ref_log_probs shape", lambda f, d: f(z(d), z(d, 2, 4), m(d), **kw), "ref_log_probs"),
        BadInput("mask shape", lambda f, d: f(z(d), z(d), m(d, 2, 4), **kw), "mask"),
        BadInput("1-D log_probs", lambda f, d: f(z(d, 3), z(d, 3), m(d, 3), **kw), "log_probs"),
        BadInput("integer log_probs", lambda f, d: f(z(d).long(), z(d), m(d), **kw), "log_probs"),
        BadInput("NaN at a response token", lambda f, d: f(nan(d), z(d), m(d), **kw), "log_probs"),
        BadInput("NaN reference at a response token", lambda f, d: f(z(d), nan(d), m(d), **kw), "ref_log_probs"),
        BadInput("log_probs is None", lambda f, d: f(None, z(d), m(d), **kw), "log_probs"),
    )


def _token_kl_inputs():
    from hypothesis import strategies as st

    @st.composite
    def draw(d):
        m, (lp, ref) = d(token_arrays(2))
        return Call((lp, ref, m, d(st.sampled_from(ESTIMATORS))))

    return draw()


_SWAP = ("derivation (log π and log π_ref in each other's place; the direction question of k1 is "
         "DLR-RM/stable-baselines3#419)")
_NAN = "ecmwf/WeatherGenerator#2723 (NaN · 0 from masking by multiplication)"

TOKEN_KL = Spec(
    name="token_kl",
    title="token_kl",
    area="llm",
    formula="kₜ = ℓ | ½ℓ² | e^{−ℓ} − 1 + ℓ, ℓ = log π − log π_ref, on response tokens; 0 elsewhere",
    source="Schulman (2020), 'Approximating KL divergence'",
    function=token_kl,
    reference=token_kl_reference,
    implementations={"fast": token_kl},
    properties=(
        Property("definition", "k1/k2/k3 closed forms on the mask, 0 on NaN pads", _token_kl_definition),
        Property("gradient", "∂k/∂log π = 1, ℓ, 1 − e^{−ℓ}; log π_ref gets no gradient", _token_kl_gradient),
    ),
    wrong_variants=(
        WrongVariant("token_kl_arguments_swapped", "log π and log π_ref swapped: the estimate of −ℓ", _SWAP,
                     token_kl_arguments_swapped),
        WrongVariant("token_kl_masked_by_multiplication", "k on every position × mask: NaN from a pad leaks", _NAN,
                     token_kl_masked_by_multiplication),
    ),
    bad_inputs=(*_kl_bad_inputs(),
                BadInput("estimator k4", lambda f, d: f(torch.zeros(2, 3, dtype=F64, device=d),
                                                        torch.zeros(2, 3, dtype=F64, device=d),
                                                        torch.ones(2, 3, dtype=torch.bool, device=d), "k4"),
                         "estimator")),
    inputs=_token_kl_inputs,
    doc=_DOC,
)

# ---------------------------------------------------------------------------------------------
# the penalty in the reward


def kl_penalty_reference(log_probs, ref_log_probs, mask, *, coef, estimator="k1"):
    """β·kₜ of :func:`token_kl_reference`, detached."""
    return coef * token_kl_reference(log_probs.detach(), ref_log_probs, mask, estimator)


def _penalty_definition(impl: Callable, ctx: VerifyContext) -> Outcome:
    """β·k on the mask (math module) for β ∈ {0.05, 1}, 0 on NaN pads; nothing to differentiate."""
    err = 0.0
    for lp, ref, m in _kl_cases(ctx, 82):
        for est in ESTIMATORS:
            for beta in (0.05, 1.0):
                x = _with_nan_pads(lp, m).requires_grad_(True)
                got = impl(x, _with_nan_pads(ref, m), m, coef=beta, estimator=est)
                attached = math.inf if got.requires_grad else 0.0
                err = max(err, max_abs_error(got, beta * _closed(lp, ref, m, est)), attached)
    return outcome_within(err)


def kl_penalty_sign_flipped(log_probs, ref_log_probs, mask, *, coef, estimator="k1"):
    """−β·kₜ: subtracting it from the reward then *rewards* moving away from π_ref."""
    return -kl_penalty(log_probs, ref_log_probs, mask, coef=coef, estimator=estimator)


def _penalty_inputs():
    from hypothesis import strategies as st

    @st.composite
    def draw(d):
        m, (lp, ref) = d(token_arrays(2))
        return Call((lp, ref, m), {"coef": d(st.sampled_from([0.05, 1.0])), "estimator": d(st.sampled_from(ESTIMATORS))})

    return draw()


KL_PENALTY = Spec(
    name="kl_penalty",
    title="kl_penalty",
    area="llm",
    formula="penaltyₜ = β·kₜ, detached, subtracted from the token rewards",
    source="Ouyang et al. (2022); Ziegler et al. (2019); Schulman (2020) for kₜ",
    function=kl_penalty,
    reference=kl_penalty_reference,
    implementations={"fast": kl_penalty},
    properties=(
        Property("definition", "β·k on the mask, 0 on NaN pads, detached", _penalty_definition),
    ),
    wrong_variants=(
        WrongVariant("kl_penalty_sign_flipped", "−β·k returned: the reward then grows with the divergence",
                     "derivation (the sign slip of verl commit a65c915, made in the reward)", kl_penalty_sign_flipped),
    ),
    bad_inputs=(*_kl_bad_inputs({"coef": 0.1}),
                BadInput("coef 0", lambda f, d: f(torch.zeros(2, 3, dtype=F64, device=d),
                                                  torch.zeros(2, 3, dtype=F64, device=d),
                                                  torch.ones(2, 3, dtype=torch.bool, device=d), coef=0.0), "coef")),
    inputs=_penalty_inputs,
    doc=_DOC,
)

# ---------------------------------------------------------------------------------------------
# the loss term


def kl_loss_reference(log_probs, ref_log_probs, mask, *, estimator="k3", mode="token-mean",
                      normalizer=None, num_sequences=None):
    """The aggregation loop of :func:`aggregate_token_loss_reference` over :func:`token_kl_reference`."""
    k = token_kl_reference(log_probs, ref_log_probs, mask, estimator)
    return aggregate_token_loss_reference(k, mask, mode, normalizer=normalizer, num_sequences=num_sequences)


def _kl_loss_definition(impl: Callable, ctx: VerifyContext) -> Outcome:
    """Σ w k (weights by their loop, k by the math module), every mode and estimator; and the
    gradient w·(1, ℓ, 1 − e^{−ℓ})."""
    err = 0.0
    for lp, ref, m in _kl_cases(ctx, 83):
        for mode in AGGREGATION_MODES:
            kw = {"normalizer": 5.0} if mode.endswith("norm") else {}
            w = aggregation_weights_reference(m, mode, **kw, dtype=F64)
            for est in ESTIMATORS:
                x = _with_nan_pads(lp, m).requires_grad_(True)
                out = impl(x, _with_nan_pads(ref, m), m, estimator=est, mode=mode, **kw)
                (grad,) = torch.autograd.grad(out, x)
                want = float((w * _closed(lp, ref, m, est)).sum())
                err = max(err, abs(float(out.detach()) - want), max_abs_error(grad, w * _closed(lp, ref, m, est, 1)))
    return outcome_within(err)


def _kl_loss_sequence_form(impl: Callable, ctx: VerifyContext) -> Outcome:
    """k1, "seq-mean-token-sum" = the mean over responses of the sequence log-ratio
    log π(y) − log π_ref(y) (Σₜ of each row, by math.fsum)."""
    err = 0.0
    for lp, ref, m in _kl_cases(ctx, 84):
        rows = [[a - b for a, b, k in zip(ra, rb, rk) if k] for ra, rb, rk in zip(lp.tolist(), ref.tolist(), m.tolist())]
        rows = [r for r in rows if r]
        want = sum(math.fsum(r) for r in rows) / len(rows)
        err = max(err, abs(float(impl(lp, ref, m, estimator="k1", mode="seq-mean-token-sum")) - want))
    return outcome_within(err)


def kl_loss_sign_flipped(log_probs, ref_log_probs, mask, *, estimator="k3", mode="token-mean",
                         normalizer=None, num_sequences=None):
    """−aggregate(k): the KL term subtracted from the loss instead of added."""
    return -kl_loss(log_probs, ref_log_probs, mask, estimator=estimator, mode=mode, normalizer=normalizer,
                    num_sequences=num_sequences)


def _kl_loss_inputs():
    from hypothesis import strategies as st

    @st.composite
    def draw(d):
        m, (lp, ref) = d(token_arrays(2))
        kw = aggregation_options(m, d)
        return Call((lp, ref, m), {**kw, "estimator": d(st.sampled_from(ESTIMATORS))})

    return draw()


KL_LOSS = Spec(
    name="kl_loss",
    title="kl_loss",
    area="llm",
    formula="𝓛_KL = Σ_{b,t} w_{b,t} kₜ, differentiated through log π inside kₜ only",
    source="Shao et al. (2024), GRPO (k3 in the loss); Schulman (2020) for kₜ",
    function=kl_loss,
    reference=kl_loss_reference,
    implementations={"fast": kl_loss},
    properties=(
        Property("definition", "== Σ w k and ∂/∂log π = w·∂k (every mode and estimator, NaN pads)", _kl_loss_definition),
        Property("sequence_form", "k1, seq-mean-token-sum = mean over responses of log π(y) − log π_ref(y)",
                 _kl_loss_sequence_form),
    ),
    wrong_variants=(
        WrongVariant("kl_loss_sign_flipped", "KL term subtracted instead of added", "verl commit a65c915 (2025)",
                     kl_loss_sign_flipped),
    ),
    bad_inputs=(*_kl_bad_inputs(),
                BadInput("unknown mode", lambda f, d: f(torch.zeros(2, 3, dtype=F64, device=d),
                                                        torch.zeros(2, 3, dtype=F64, device=d),
                                                        torch.ones(2, 3, dtype=torch.bool, device=d), mode="mean"),
                         "mode")),
    inputs=_kl_loss_inputs,
    doc=_DOC,
    extra={"extremes": extremes.kl_loss},
)

FAMILY: tuple[Spec, ...] = (TOKEN_KL, KL_PENALTY, KL_LOSS)
