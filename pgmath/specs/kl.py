"""Specs of the Monte-Carlo KL estimators k1, k2, k3 and of the exact categorical KL.

With samples x ~ p, ℓ = log p(x) − log q(x) and ρ = q(x)/p(x) = e^{−ℓ} (Schulman 2020):

    k1 = ℓ                    E_p[k1] = KL(p ‖ q)
    k2 = ½ ℓ²                 E_p[k2] = KL(p ‖ q) + O(ε³) when q = p(1 + εh)/Z
    k3 = (ρ − 1) − log ρ      E_p[k3] = KL(p ‖ q), and k3 ≥ 0 for every sample
    KL(p ‖ q) = Σₓ p(x)(log p(x) − log q(x)),  0 · log 0 := 0

One spec per estimator, each in the harness signature of :func:`pgmath.testing.check_kl_estimator`
(``fn(log_probs, ref_log_probs)``, per sample): the function is ``kl_estimate`` with the estimator
bound (``functools.partial``, so the bad input "unknown estimator" can still override it). The
expectations are computed by exact enumeration over categoricals (no sampling), against
``torch.distributions.kl_divergence``.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable

import torch

from pgmath.kl import kl_categorical, kl_estimate
from pgmath.specs import extremes
from pgmath.specs.gradients import gradcheck_property
from pgmath.specs.spec import (
    BadInput,
    Call,
    Property,
    Spec,
    WrongVariant,
    max_abs_error,
    outcome_within,
)
from pgmath.validation import validate_float_tensor, validate_same_shape
from pgmath.verification import Outcome, VerifyContext

__all__ = ["FAMILY", "kl_categorical_reference", "kl_estimate_reference"]

F64 = torch.float64


def kl_estimate_reference(log_probs, ref_log_probs, estimator="k3"):
    """k1 = ℓ, k2 = ½ℓ², k3 = e^{−ℓ} − 1 + ℓ, one sample at a time (ℓ = log p − log q)."""
    validate_float_tensor(log_probs, "log_probs")
    validate_float_tensor(ref_log_probs, "ref_log_probs")
    validate_same_shape("log_probs", log_probs, ref_log_probs=ref_log_probs)
    formulas = {"k1": lambda x: x, "k2": lambda x: 0.5 * x * x, "k3": lambda x: torch.exp(-x) - 1 + x}
    if estimator not in formulas:
        raise ValueError(f"unknown estimator {estimator!r}")
    lp, ref = log_probs.reshape(-1), ref_log_probs.reshape(-1)
    if lp.numel() == 0:
        return torch.zeros_like(log_probs)
    return torch.stack([formulas[estimator](lp[i] - ref[i]) for i in range(lp.numel())]).reshape(log_probs.shape)


def _categoricals(ctx: VerifyContext, offset: int, rows: int = 20, K: int = 6, scale: float = 1.0):
    g = ctx.generator(offset)
    zp = scale * torch.randn(rows, K, dtype=F64, device=ctx.device, generator=g)
    zq = scale * torch.randn(rows, K, dtype=F64, device=ctx.device, generator=g)
    return zp, zq


def _exact_kl(zp, zq):
    C = torch.distributions.Categorical
    return torch.distributions.kl_divergence(C(logits=zp), C(logits=zq))


def _unbiased(impl: Callable, ctx: VerifyContext) -> Outcome:
    """E_p[k] = Σₓ p(x) k(log p(x), log q(x)) == KL(p ‖ q), every outcome enumerated."""
    err = 0.0
    for k, scale in enumerate((0.3, 1.0, 3.0)):
        zp, zq = _categoricals(ctx, 13 + k, scale=scale)
        logp, logq = zp.log_softmax(-1), zq.log_softmax(-1)
        expectation = (logp.exp() * impl(logp, logq)).sum(-1)
        err = max(err, max_abs_error(expectation, _exact_kl(zp, zq)))
    return outcome_within(err)


def _grid():
    return torch.linspace(-50, 50, 20001, dtype=F64)


def _k3_nonnegative(impl: Callable, ctx: VerifyContext) -> Outcome:
    """k3 ≥ 0 on a grid of ℓ ∈ [−50, 50], 0 at ℓ = 0 and > 0 wherever |ℓ| > 1e-6."""
    x = torch.cat([_grid(), torch.tensor([0.0, 1e-5, -1e-5], dtype=F64)]).to(ctx.device)
    k3 = impl(x, torch.zeros_like(x))
    worst = float(k3.min())
    ok = worst >= 0.0 and bool((k3[x.abs() > 1e-6] > 0).all()) and float(k3[-3]) == 0.0
    return Outcome(ok, f"min k3 = {worst:.1e}", {"min_k3": worst})


def _k3_tiny_probabilities(impl: Callable, ctx: VerifyContext) -> Outcome:
    """log-probabilities near −1000 (exp underflows to 0): k3 depends on ℓ only, finite and exact."""
    ell = torch.tensor([-2.0, -0.5, 0.0, 0.25, 3.0], dtype=F64, device=ctx.device)
    lp = torch.full_like(ell, -1000.0) + ell
    want = torch.tensor([math.expm1(-v) + v for v in ell.tolist()], dtype=F64, device=ctx.device)
    return outcome_within(max_abs_error(impl(lp, torch.full_like(ell, -1000.0)), want))


def _k2_definition(impl: Callable, ctx: VerifyContext) -> Outcome:
    """k2 == ½ℓ² on a grid ℓ ∈ [−50, 50] (relative error)."""
    x = _grid().to(ctx.device)
    want = 0.5 * x * x
    got = impl(x, torch.zeros_like(x))
    err = max_abs_error(torch.as_tensor(got) / want.clamp(min=1.0), want / want.clamp(min=1.0))
    return outcome_within(err, what="max rel err")


def _k2_second_order(impl: Callable, ctx: VerifyContext) -> Outcome:
    """q = p(1 + εh)/Z: E_p[k2] = KL(p‖q) to leading order (gap < 1 % of KL) but not exactly
    (gap > 0), and the gap is cubic: err(ε)/err(ε/2) ∈ (7, 9) for ε = 0.04, 0.02."""
    zp = torch.tensor([0.3, -1.0, 0.5, 2.0], dtype=F64, device=ctx.device)
    h = torch.tensor([1.0, -0.5, 0.2, 0.7], dtype=F64, device=ctx.device)
    gaps, rel = [], []
    for eps in (0.04, 0.02, 0.01):
        zq = zp + eps * h
        logp, logq = zp.log_softmax(-1), zq.log_softmax(-1)
        kl = float(_exact_kl(zp, zq))
        gaps.append(abs(float((logp.exp() * impl(logp, logq)).sum()) - kl))
        rel.append(gaps[-1] / kl)
    ratios = [a / max(b, 1e-300) for a, b in itertools.pairwise(gaps)]
    ok = all(7.0 < r < 9.0 for r in ratios) and all(0.0 < r < 1e-2 for r in rel)
    return Outcome(ok, f"err(ε)/err(ε/2) = {ratios[-1]:.2f} (cubic → 8)", {"ratios": ratios, "gap / KL": rel})


def _kl_gradcheck_cases(impl, ctx):
    zp, zq = _categoricals(ctx, 12, rows=4, K=3)
    logq = zq.log_softmax(-1)
    return [(lambda x: impl(x, logq), (zp.log_softmax(-1).requires_grad_(True),))]


# -- wrong variants in the harness signature fn(log_probs, ref_log_probs) ----------------------


def kl_k1_reversed(log_probs, ref_log_probs):
    """k1 = log π_ref − log π (the log-ratio of the other direction)."""
    return ref_log_probs - log_probs


def kl_k2_as_exact(log_probs, ref_log_probs):
    """½ℓ² used where the unbiased k1 is meant (k2 is only second-order accurate)."""
    ell = log_probs - ref_log_probs
    return 0.5 * ell * ell


def kl_k2_missing_half(log_probs, ref_log_probs):
    """k2 = ℓ² (the ½ dropped)."""
    return (log_probs - ref_log_probs) ** 2


def kl_k1_as_k2(log_probs, ref_log_probs):
    """ℓ returned where k2 = ½ℓ² is asked for."""
    return log_probs - ref_log_probs


def kl_k3_sign_error(log_probs, ref_log_probs):
    """k3 with ρ = π/π_ref instead of π_ref/π: (e^ℓ − 1) − ℓ."""
    ell = log_probs - ref_log_probs
    return torch.expm1(ell) - ell


def kl_k3_log_sign(log_probs, ref_log_probs):
    """(ρ − 1) + log ρ: the log term added instead of subtracted."""
    ell = log_probs - ref_log_probs
    return torch.expm1(-ell) - ell


def kl_k3_exp_then_divide(log_probs, ref_log_probs):
    """ρ = exp(log π_ref) / exp(log π): 0/0 = NaN once the probabilities underflow."""
    rho = torch.exp(ref_log_probs) / torch.exp(log_probs)
    return (rho - 1) - torch.log(rho)


def kl_k3_negated(log_probs, ref_log_probs):
    """−k3: the estimate with its sign flipped (a penalty that rewards divergence)."""
    ell = log_probs - ref_log_probs
    return -(torch.expm1(-ell) + ell)


def _estimator_inputs():
    import numpy as np
    from hypothesis import strategies as st
    from hypothesis.extra.numpy import arrays

    def build(t):
        lp, shift, base = t
        return Call((torch.as_tensor(lp + base), torch.as_tensor(lp + base - shift)))

    shape = st.sampled_from([(1,), (4,), (2, 3)])
    return shape.flatmap(lambda s: st.tuples(
        arrays(np.float64, s, elements=st.integers(-40, 0).map(lambda i: i / 4)),
        arrays(np.float64, s, elements=st.integers(-12, 12).map(lambda i: i / 4)),  # ℓ
        st.sampled_from([0.0, -800.0]),  # −800: probabilities that underflow when exponentiated
    )).map(build)


def _estimator_bad_inputs() -> tuple[BadInput, ...]:
    def z(d, n=3):
        return torch.zeros(n, dtype=F64, device=d)

    return (
        BadInput("ref_log_probs shape", lambda f, d: f(z(d), z(d, 2)), "ref_log_probs"),
        BadInput("NaN log_probs", lambda f, d: f(z(d) + float("nan"), z(d)), "log_probs"),
        BadInput("integer ref_log_probs", lambda f, d: f(z(d), z(d).long()), "ref_log_probs"),
        BadInput("unknown estimator", lambda f, d: f(z(d), z(d), estimator="k4"), "estimator"),
    )


def _estimator_spec(name: str, formula: str, properties, variants, outside_proof=None) -> Spec:
    est = name[-2:]
    return Spec(
        name=name,
        title=f"KL {est}",
        area="core",
        formula=formula,
        source="Schulman (2020), 'Approximating KL Divergence'",
        function=functools.partial(kl_estimate, estimator=est),
        reference=functools.partial(kl_estimate_reference, estimator=est),
        implementations={"fast": functools.partial(kl_estimate, estimator=est),
                         "reference": functools.partial(kl_estimate_reference, estimator=est)},
        properties=(*properties, gradcheck_property(_kl_gradcheck_cases)),
        wrong_variants=tuple(WrongVariant(n, bug, seen, fn, options={"estimator": est}) for n, bug, seen, fn in variants),
        bad_inputs=_estimator_bad_inputs(),
        inputs=_estimator_inputs,
        doc="docs/formulas/kl.md",
        proof="pgmath.proofs.kl_estimators",
        harness="check_kl_estimator",
        extra={"proof_keyword": "impl", "proof_form": functools.partial(_as_kl_estimate, est),
               "outside_proof": outside_proof or {}},
    )


def _as_kl_estimate(est: str, fn):
    """The proof's signature ``impl(log_probs, ref_log_probs, name)`` from a one-estimator function:
    ``fn`` for this estimator, pgmath's kl_estimate for the others."""

    def impl(log_probs, ref_log_probs, name):
        if name == est:
            return fn(log_probs, ref_log_probs)
        return kl_estimate(log_probs, ref_log_probs, name)

    return impl


UNBIASED = Property("unbiased", "E_p[k] == KL(p‖q) by exact enumeration", _unbiased)

KL_K1 = _estimator_spec(
    "kl_k1", "k1 = ℓ = log p(x) − log q(x);  E_p[k1] = KL(p ‖ q)", (UNBIASED,),
    (("kl_k1_reversed", "k1 of the other direction: log π_ref − log π",
      "direction discussion in DLR-RM/stable-baselines3#419", kl_k1_reversed),
     ("kl_k2_as_exact", "½ℓ² used as the unbiased estimate", "derivation", kl_k2_as_exact)),
)

KL_K2 = _estimator_spec(
    "kl_k2", "k2 = ½ℓ²;  E_p[k2] = KL(p ‖ q) + O(ε³)",
    (Property("definition", "k2 == ½ℓ² on ℓ ∈ [−50, 50]", _k2_definition),
     Property("second_order", "E_p[k2] − KL ≠ 0 but O(ε³)", _k2_second_order)),
    (("kl_k2_missing_half", "k2 = ℓ² (½ dropped)", "no public report linked", kl_k2_missing_half),
     ("kl_k1_as_k2", "ℓ returned where ½ℓ² is asked for", "derivation", kl_k1_as_k2)),
)

KL_K3 = _estimator_spec(
    "kl_k3", "k3 = (ρ − 1) − log ρ = e^{−ℓ} − 1 + ℓ;  E_p[k3] = KL(p ‖ q), k3 ≥ 0",
    (UNBIASED,
     Property("nonnegative", "k3 ≥ 0 on ℓ ∈ [−50, 50], = 0 only at ℓ = 0", _k3_nonnegative),
     Property("tiny_probabilities", "log-probs ≈ −1000: finite and exact", _k3_tiny_probabilities)),
    (("kl_k3_sign_error", "k3 sign error: ρ = π/π_ref, (e^ℓ − 1) − ℓ", "Rolv-Arild/rocket-learn#12 (fixed)",
      kl_k3_sign_error),
     ("kl_k3_log_sign", "k3 = (ρ − 1) + log ρ", "no public report linked", kl_k3_log_sign),
     ("kl_k3_exp_then_divide", "ρ from exponentiated log-probs: 0/0 for tiny probabilities",
      "guarded against by a test in callummcdougall/ARENA_3.0#351", kl_k3_exp_then_divide),
     ("kl_k3_negated", "−k3: the estimate's sign flipped", "derivation", kl_k3_negated)),
    outside_proof={"kl_k3_exp_then_divide": "round-off: exp(log p) underflows to 0 for log p ≲ −745; "
                   "the proof evaluates moderate probabilities, where the formula is right"},
)

# ---------------------------------------------------------------------------------------------
# exact categorical KL


def kl_categorical_reference(logits_p, logits_q):
    """Σₓ p(x)(log p(x) − log q(x)) over the outcomes with p(x) > 0, one row at a time."""
    validate_float_tensor(logits_p, "logits_p", finite=False)
    validate_float_tensor(logits_q, "logits_q", finite=False)
    validate_same_shape("logits_p", logits_p, logits_q=logits_q)
    for name, z in (("logits_p", logits_p), ("logits_q", logits_q)):
        if bool(torch.isnan(z).any()) or bool(torch.isposinf(z).any()):
            raise ValueError(f"{name} holds NaN or +inf")
        if z.dim() == 0 or z.shape[-1] == 0:
            raise ValueError(f"{name} needs a non-empty last axis")
    K = logits_p.shape[-1]
    out = []
    for zp, zq in zip(logits_p.reshape(-1, K), logits_q.reshape(-1, K)):
        logp, logq = zp - torch.logsumexp(zp, 0), zq - torch.logsumexp(zq, 0)
        support = [x for x in range(K) if float(zp[x].detach()) > float("-inf")]
        out.append(sum(torch.exp(logp[x]) * (logp[x] - logq[x]) for x in support))
    return torch.stack(out).reshape(logits_p.shape[:-1])


def _kl_categorical_vs_torch(impl: Callable, ctx: VerifyContext) -> Outcome:
    """== torch.distributions.kl_divergence of two Categoricals."""
    zp, zq = _categoricals(ctx, 15, rows=30, K=7)
    err = max_abs_error(impl(zp, zq), _exact_kl(zp, zq))
    err = max(err, max_abs_error(impl(zp.reshape(5, 6, 7), zq.reshape(5, 6, 7)), _exact_kl(zp, zq).reshape(5, 6)))
    return outcome_within(err)


def _kl_categorical_zero_mass(impl: Callable, ctx: VerifyContext) -> Outcome:
    """p(x) = 0 contributes 0 (0 · log 0 := 0, no NaN); q(x) = 0 < p(x) gives +∞."""
    zp = torch.tensor([[0.0, float("-inf")], [1.0, float("-inf")]], dtype=F64, device=ctx.device)
    zq = torch.tensor([[0.0, 0.0], [0.0, 2.0]], dtype=F64, device=ctx.device)
    want = torch.tensor([math.log(2.0), math.log1p(math.exp(2.0))], dtype=F64, device=ctx.device)
    err = max_abs_error(impl(zp, zq), want)
    inf = impl(zq, zp)
    ok = bool(torch.isposinf(inf).all())
    o = outcome_within(err if ok else math.inf)
    o.statistic += f"; KL(p ‖ q with a zero) = {inf.tolist()}"
    return o


def _kl_categorical_gradient(impl: Callable, ctx: VerifyContext) -> Outcome:
    """∂KL(p‖q)/∂z_q = q − p, by autograd."""
    zp, zq = _categoricals(ctx, 16)
    zq.requires_grad_(True)
    (grad,) = torch.autograd.grad(impl(zp, zq).sum(), zq)
    return outcome_within(max_abs_error(grad, zq.detach().softmax(-1) - zp.softmax(-1)))


def _kl_categorical_gradcheck_cases(impl, ctx):
    zp, zq = _categoricals(ctx, 17, rows=3, K=4)
    return [(impl, (zp.requires_grad_(True), zq.requires_grad_(True)))]


def kl_categorical_reversed(logits_p, logits_q):
    """KL(q ‖ p) returned for KL(p ‖ q)."""
    return kl_categorical(logits_q, logits_p)


def kl_categorical_nan_on_zero_mass(logits_p, logits_q):
    """Σ p (log p − log q) with no 0 · log 0 := 0: NaN where p(x) = 0."""
    logp, logq = torch.log_softmax(logits_p, -1), torch.log_softmax(logits_q, -1)
    return (logp.exp() * (logp - logq)).sum(-1)


def _kl_categorical_inputs():
    import numpy as np
    from hypothesis import strategies as st
    from hypothesis.extra.numpy import arrays

    def build(t):
        zp, zq, dead = t
        dead = dead.copy()
        dead[..., 0] = False  # every row keeps an outcome with p > 0
        return Call((torch.as_tensor(np.where(dead, -np.inf, zp)), torch.as_tensor(zq)))

    shape = st.tuples(st.integers(1, 3), st.integers(1, 5))
    q = st.integers(-16, 16).map(lambda i: i / 4)
    return shape.flatmap(lambda s: st.tuples(
        arrays(np.float64, s, elements=q), arrays(np.float64, s, elements=q),
        arrays(np.bool_, s, elements=st.booleans()),
    )).map(build)


def _kl_categorical_bad_inputs() -> tuple[BadInput, ...]:
    def z(d, *shape):
        return torch.zeros(*(shape or (2, 3)), dtype=F64, device=d)

    return (
        BadInput("NaN logits_q", lambda f, d: f(z(d), z(d) + float("nan")), "logits_q"),
        BadInput("logits_q shape", lambda f, d: f(z(d), z(d, 3)), "logits_q"),
        BadInput("+inf logits_p", lambda f, d: f(z(d) + float("inf"), z(d)), "logits_p"),
        BadInput("empty last axis", lambda f, d: f(z(d, 2, 0), z(d, 2, 0)), "logits_p"),
        BadInput("integer logits_p", lambda f, d: f(z(d).long(), z(d)), "logits_p"),
    )


KL_CATEGORICAL = Spec(
    name="kl_categorical",
    title="KL exact (categorical)",
    area="core",
    formula="KL(p ‖ q) = Σₓ p(x)(log p(x) − log q(x)), 0 · log 0 := 0",
    source="Kullback & Leibler (1951); Cover & Thomas, eq. 2.26",
    function=kl_categorical,
    reference=kl_categorical_reference,
    implementations={"fast": kl_categorical, "reference": kl_categorical_reference},
    properties=(
        Property("torch_distributions", "== torch.distributions.kl_divergence", _kl_categorical_vs_torch),
        Property("zero_mass", "p(x) = 0 adds 0; q(x) = 0 < p(x) gives +∞", _kl_categorical_zero_mass),
        Property("gradient", "∂KL/∂z_q == q − p", _kl_categorical_gradient),
        gradcheck_property(_kl_categorical_gradcheck_cases),
    ),
    wrong_variants=(
        WrongVariant("kl_categorical_reversed", "KL(q ‖ p) for KL(p ‖ q)", "derivation", kl_categorical_reversed),
        WrongVariant("kl_categorical_nan_on_zero_mass", "0 · log 0 not defined as 0: NaN where p(x) = 0",
                     "derivation", kl_categorical_nan_on_zero_mass),
    ),
    bad_inputs=_kl_categorical_bad_inputs(),
    inputs=_kl_categorical_inputs,
    doc="docs/formulas/kl.md",
    extra={"extremes": extremes.kl_categorical},
)

FAMILY: tuple[Spec, ...] = (KL_K1, KL_K2, KL_K3, KL_CATEGORICAL)
