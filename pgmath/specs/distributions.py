"""Specs of the categorical (softmax) and diagonal-Gaussian log-probabilities and entropies.

    log π(a) = zₐ − log Σ_{b allowed} e^{z_b},   ∂ log π(a)/∂z_b = [a = b] − π(b)
    H(π) = −Σₐ π(a) log π(a)
    log N(a; μ, σ) = Σᵢ [−½((aᵢ − μᵢ)/σᵢ)² − log σᵢ − ½ log 2π],   H = Σᵢ [log σᵢ + ½ log 2πe]

Sources: Sutton & Barto (2nd ed.), §13.2 (softmax in action preferences) and §13.7 (Gaussian
policies); Williams (1992) for the score functions.

The references are plain loops (row by row, dimension by dimension) that validate their input
like the public functions, so every property and every bad input runs on them too. The
properties compare with ``torch.distributions``, with analytic scores, with finite differences
and with exact values at extreme logits.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from pgmath.distributions import (
    categorical_entropy,
    categorical_log_prob,
    gaussian_entropy,
    gaussian_log_prob,
)
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
from pgmath.validation import validate_finite, validate_float_tensor, validate_mask
from pgmath.verification import Outcome, VerifyContext

__all__ = [
    "FAMILY",
    "categorical_entropy_reference",
    "categorical_log_prob_reference",
    "gaussian_entropy_reference",
    "gaussian_log_prob_reference",
]

F64 = torch.float64
LOG_2PI = math.log(2.0 * math.pi)

# ---------------------------------------------------------------------------------------------
# validation of the references (the same refusals as pgmath.distributions, written from the docs)


def _validate_logits(logits, mask) -> torch.Tensor | None:
    validate_float_tensor(logits, "logits", finite=False)
    if logits.dim() == 0 or logits.shape[-1] == 0:
        raise ValueError("logits must have a non-empty last (action) axis")
    m = None if mask is None else validate_mask(mask, "mask", logits.shape, logits.device)
    if m is not None and not bool(m.any(-1).all()):
        raise ValueError("mask allows no action in some row")
    validate_finite(logits, "logits", mask=m)
    return m


def _validate_actions(actions, logits, m) -> None:
    if not isinstance(actions, torch.Tensor) or actions.dtype.is_floating_point or actions.dtype == torch.bool:
        raise ValueError("actions must be an integer tensor")
    if tuple(actions.shape) != tuple(logits.shape[:-1]):
        raise ValueError(f"actions has shape {tuple(actions.shape)}, logits need {tuple(logits.shape[:-1])}")
    if bool(((actions < 0) | (actions >= logits.shape[-1])).any()):
        raise ValueError("actions out of range")
    if m is not None and not bool(m.gather(-1, actions.long().unsqueeze(-1)).all()):
        raise ValueError("actions include one the mask forbids")


def _rows(logits, mask):
    """(logits row, allowed action indices) for every row of ``[*B, A]``."""
    A = logits.shape[-1]
    flat = logits.reshape(-1, A)
    m = None if mask is None else mask.reshape(-1, A)
    for i in range(flat.shape[0]):
        yield flat[i], [b for b in range(A) if m is None or bool(m[i, b])]


def _log_normaliser(z, allowed):
    """log Σ_{b allowed} e^{z_b}, shifted by the largest allowed logit (a constant)."""
    top = max(float(z[b].detach()) for b in allowed)
    return top + torch.log(sum(torch.exp(z[b] - top) for b in allowed))


# ---------------------------------------------------------------------------------------------
# categorical log-probability


def categorical_log_prob_reference(logits, actions, mask=None):
    """log π(a) = zₐ − log Σ_{b allowed} e^{z_b}, one row at a time."""
    m = _validate_logits(logits, mask)
    _validate_actions(actions, logits, m)
    flat_a = actions.reshape(-1)
    out = [z[int(flat_a[i])] - _log_normaliser(z, allowed) for i, (z, allowed) in enumerate(_rows(logits, m))]
    return torch.stack(out).reshape(actions.shape)


def _categorical_batch(ctx: VerifyContext, offset: int, shape=(24,), A: int = 5, masked: bool = False):
    g = ctx.generator(offset)
    z = 2 * torch.randn(*shape, A, dtype=F64, device=ctx.device, generator=g)
    a = torch.randint(0, A, shape, device=ctx.device, generator=g)
    if not masked:
        return z, a, None
    m = torch.rand(*shape, A, device=ctx.device, generator=g) < 0.6
    m.scatter_(-1, a.unsqueeze(-1), True)
    z = torch.where(m, z, torch.full_like(z, float("nan")))  # masked logits may hold anything
    return z, a, m


def _masked_logits(z, m):
    return z if m is None else torch.where(m, z, torch.full_like(z, float("-inf")))


def _log_prob_vs_torch(impl: Callable, ctx: VerifyContext) -> Outcome:
    """== torch.distributions.Categorical(logits = z, −∞ where masked).log_prob(a)."""
    err = 0.0
    for k, (shape, masked) in enumerate([((24,), False), ((4, 3), False), ((24,), True), ((2, 5), True)]):
        z, a, m = _categorical_batch(ctx, 40 + k, shape, masked=masked)
        want = torch.distributions.Categorical(logits=_masked_logits(z, m)).log_prob(a)
        err = max(err, max_abs_error(impl(z, a, m), want))
    return outcome_within(err)


def _log_prob_normalised(impl: Callable, ctx: VerifyContext) -> Outcome:
    """Σ_{a allowed} exp(log π(a)) = 1, every action enumerated (with and without a mask)."""
    err = 0.0
    for masked in (False, True):
        z, _, m = _categorical_batch(ctx, 44, (6,), masked=masked)
        total = torch.zeros(6, dtype=F64, device=ctx.device)
        for b in range(z.shape[-1]):
            allowed = torch.ones(6, dtype=torch.bool, device=ctx.device) if m is None else m[:, b]
            if bool(allowed.any()):
                rows = allowed.nonzero().squeeze(-1)
                a = torch.full((int(allowed.sum()),), b, device=ctx.device)
                lp = impl(z[rows], a, None if m is None else m[rows])
                total = total.index_add(0, rows, lp.exp())
        err = max(err, max_abs_error(total, torch.ones_like(total)))
    return outcome_within(err)


def _softmax_score(impl: Callable, ctx: VerifyContext) -> Outcome:
    """∇z log π(a) = onehot(a) − π (0 for masked logits), by autograd."""
    err = 0.0
    for k, masked in enumerate((False, True)):
        z, a, m = _categorical_batch(ctx, 8 + 40 * k, (32,), masked=masked)
        z = z.nan_to_num(0.0).requires_grad_(True)
        (grad,) = torch.autograd.grad(impl(z, a, m).sum(), z)
        pi = torch.softmax(_masked_logits(z.detach(), m), -1)
        want = torch.nn.functional.one_hot(a, z.shape[-1]).to(F64) - pi
        err = max(err, max_abs_error(grad, want))
    return outcome_within(err)


def _log_prob_extreme_logits(impl: Callable, ctx: VerifyContext) -> Outcome:
    """z = (0, −120, −800): log π = z − logsumexp(z) exactly (no underflow to −∞ or clamping to
    log ε) and the score stays onehot − π."""
    z = torch.tensor([[0.0, -120.0, -800.0]] * 3, dtype=F64, device=ctx.device, requires_grad=True)
    a = torch.arange(3, device=ctx.device)
    lp = impl(z, a)
    (grad,) = torch.autograd.grad(lp.sum(), z)
    lse = math.log1p(math.exp(-120.0))  # e^{−800} is below float64's resolution next to 1
    want = torch.tensor([-lse, -120.0 - lse, -800.0 - lse], dtype=F64, device=ctx.device)
    pi = torch.tensor([1.0, math.exp(-120.0), 0.0], dtype=F64, device=ctx.device)
    score = torch.eye(3, dtype=F64, device=ctx.device) - pi
    return outcome_within(max(max_abs_error(lp.detach(), want), max_abs_error(grad, score)))


def _log_prob_gradcheck_cases(impl, ctx):
    z, a, _ = _categorical_batch(ctx, 12, (6,), A=3)
    zm, am, mm = _categorical_batch(ctx, 13, (6,), A=4, masked=True)
    return [(lambda x: impl(x, a), (z.requires_grad_(True),)),
            (lambda x: impl(x, am, mm), (zm.nan_to_num(0.0).requires_grad_(True),))]


def categorical_log_prob_unnormalised(logits, actions, mask=None):
    """log π(a) = zₐ: the logit itself, without the log-normaliser."""
    return logits.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)


def categorical_log_prob_from_softmax_probs(logits, actions, mask=None):
    """A softmax layer, then ``Categorical(probs=…)``: probabilities below the float epsilon are
    clamped (log π ≈ −36 in float64 instead of −120, with zero gradient)."""
    probs = torch.softmax(_masked_logits(logits, mask), -1)
    return torch.distributions.Categorical(probs=probs).log_prob(actions)


def categorical_log_prob_mask_ignored(logits, actions, mask=None):
    """The action mask is not applied: the softmax runs over every action."""
    return torch.log_softmax(logits, -1).gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)


def _categorical_inputs(entropy: bool = False):
    import numpy as np
    from hypothesis import strategies as st
    from hypothesis.extra.numpy import arrays

    logit = st.one_of(st.integers(-32, 32).map(lambda i: i / 4), st.sampled_from([-120.0, -800.0]))

    def build(draw_):
        N, _, z, a, use_mask, m = draw_
        m = m.copy()
        m[np.arange(N), a] = True
        z = np.where(m | ~use_mask, z, np.nan)  # masked logits may hold NaN
        zt, mt = torch.as_tensor(z), (torch.as_tensor(m) if use_mask else None)
        if entropy:
            return Call((zt,), {"mask": mt})
        return Call((zt, torch.as_tensor(a)), {"mask": mt})

    sizes = st.tuples(st.integers(1, 4), st.integers(1, 5))
    return sizes.flatmap(lambda s: st.tuples(
        st.just(s[0]), st.just(s[1]),
        arrays(np.float64, s, elements=logit),
        arrays(np.int64, (s[0],), elements=st.integers(0, s[1] - 1)),
        st.booleans(),
        arrays(np.bool_, s, elements=st.booleans()),
    )).map(build)


def _categorical_bad_inputs(with_actions: bool) -> tuple[BadInput, ...]:
    def z(d):
        return torch.zeros(2, 3, dtype=F64, device=d)

    def a(d, *vals):
        return torch.tensor(vals or (0, 1), device=d)

    if not with_actions:
        nan = lambda d: torch.tensor([[0.0, float("nan"), 1.0]], dtype=F64, device=d)  # noqa: E731
        return (
            BadInput("NaN logit", lambda f, d: f(nan(d)), "logits"),
            BadInput("mask allows no action", lambda f, d: f(z(d), mask=torch.zeros(2, 3, dtype=torch.bool, device=d)), "mask"),
            BadInput("mask shape", lambda f, d: f(z(d), mask=torch.ones(3, dtype=torch.bool, device=d)), "mask"),
            BadInput("empty action axis", lambda f, d: f(z(d)[:, :0]), "logits"),
            BadInput("integer logits", lambda f, d: f(z(d).long()), "logits"),
        )
    forbid = lambda d: torch.tensor([[True, False, True]] * 2, device=d)  # noqa: E731
    return (
        BadInput("action out of range", lambda f, d: f(z(d), a(d, 0, 3)), "actions"),
        BadInput("float actions", lambda f, d: f(z(d), a(d).double()), "actions"),
        BadInput("actions shape", lambda f, d: f(z(d), a(d, 0, 1, 2)), "actions"),
        BadInput("NaN logit", lambda f, d: f(z(d) + float("nan"), a(d)), "logits"),
        BadInput("masked action chosen", lambda f, d: f(z(d), a(d, 1, 1), forbid(d)), "mask"),
    )


CATEGORICAL_LOG_PROB = Spec(
    name="categorical_log_prob",
    title="categorical log π(a)",
    area="core",
    formula="log π(a) = zₐ − log Σ_{b allowed} e^{z_b};  ∂ log π(a)/∂z_b = [a = b] − π(b)",
    source="Sutton & Barto (2nd ed.), eq. 13.2 (softmax in action preferences); Williams (1992)",
    function=categorical_log_prob,
    reference=categorical_log_prob_reference,
    implementations={"fast": categorical_log_prob, "reference": categorical_log_prob_reference},
    properties=(
        Property("torch_distributions", "== torch.distributions.Categorical (−∞ where masked)", _log_prob_vs_torch),
        Property("normalised", "Σₐ π(a) = 1 over the allowed actions, every action enumerated", _log_prob_normalised),
        Property("score", "∇z log π(a) == onehot(a) − π", _softmax_score),
        Property("extreme_logits", "z = (0, −120, −800): exact log π and score (no underflow)", _log_prob_extreme_logits),
        gradcheck_property(_log_prob_gradcheck_cases),
    ),
    wrong_variants=(
        WrongVariant("categorical_log_prob_unnormalised", "log π(a) = zₐ (log-normaliser missing)",
                     "derivation (logits used as log-probabilities)", categorical_log_prob_unnormalised),
        WrongVariant("categorical_log_prob_from_softmax_probs",
                     "softmax layer + Categorical(probs): tiny probabilities clamped, zero gradient",
                     "the source article (shared/seeds/000), docs/errata.md#softmax-probs",
                     categorical_log_prob_from_softmax_probs),
        WrongVariant("categorical_log_prob_mask_ignored", "action mask not applied (softmax over every action)",
                     "derivation; the masking of Huang & Ontañón (2022), 'A Closer Look at Invalid Action "
                     "Masking in Policy Gradient Algorithms'", categorical_log_prob_mask_ignored),
    ),
    bad_inputs=_categorical_bad_inputs(with_actions=True),
    inputs=_categorical_inputs,
    doc="docs/formulas/distributions.md",
    proof="pgmath.proofs.categorical",
    extra={"outside_proof": {
        "categorical_log_prob_from_softmax_probs": "a round-off bug (log of an underflowed softmax at "
        "logit gaps ≳ 745); the proof evaluates moderate logits, where the formula is right",
    }},
)

# ---------------------------------------------------------------------------------------------
# categorical entropy


def categorical_entropy_reference(logits, mask=None):
    """H = −Σ_{a allowed} π(a) log π(a), one row at a time."""
    m = _validate_logits(logits, mask)
    out = []
    for z, allowed in _rows(logits, m):
        log_z = _log_normaliser(z, allowed)
        out.append(-sum(torch.exp(z[b] - log_z) * (z[b] - log_z) for b in allowed))
    return torch.stack(out).reshape(logits.shape[:-1])


def _entropy_vs_torch(impl: Callable, ctx: VerifyContext) -> Outcome:
    """== torch.distributions.Categorical(logits = z, −∞ where masked).entropy()."""
    err = 0.0
    for k, (shape, masked) in enumerate([((24,), False), ((4, 3), False), ((24,), True)]):
        z, _, m = _categorical_batch(ctx, 50 + k, shape, masked=masked)
        want = torch.distributions.Categorical(logits=_masked_logits(z, m)).entropy()
        err = max(err, max_abs_error(impl(z, mask=m), want))
    return outcome_within(err)


def _entropy_gradient(impl: Callable, ctx: VerifyContext) -> Outcome:
    """∂H/∂z_b = −π(b)(log π(b) + H) (0 for masked logits), by autograd."""
    err = 0.0
    for k, masked in enumerate((False, True)):
        z, _, m = _categorical_batch(ctx, 53 + k, (16,), masked=masked)
        z = z.nan_to_num(0.0).requires_grad_(True)
        (grad,) = torch.autograd.grad(impl(z, mask=m).sum(), z)
        logp = torch.log_softmax(_masked_logits(z.detach(), m), -1)
        pi = logp.exp()
        H = -(pi * logp.nan_to_num(0.0, neginf=0.0)).sum(-1, keepdim=True)
        want = torch.where(pi > 0, -pi * (logp + H), torch.zeros_like(pi))
        err = max(err, max_abs_error(grad, want))
    return outcome_within(err)


def _entropy_gradcheck_cases(impl, ctx):
    z, _, _ = _categorical_batch(ctx, 55, (5,), A=4)
    zm, _, mm = _categorical_batch(ctx, 56, (5,), A=4, masked=True)
    return [(lambda x: impl(x), (z.requires_grad_(True),)),
            (lambda x: impl(x, mask=mm), (zm.nan_to_num(0.0).requires_grad_(True),))]


def categorical_entropy_logits_as_log_probs(logits, mask=None):
    """H = −Σ π(a) zₐ: the logits used as log-probabilities (log Z dropped)."""
    z = _masked_logits(logits, mask)
    pi = torch.softmax(z, -1)
    return -(pi * torch.where(pi > 0, z, torch.zeros_like(z))).sum(-1)


def categorical_entropy_mask_ignored(logits, mask=None):
    """The action mask is not applied: the entropy of the softmax over every action."""
    logp = torch.log_softmax(logits, -1)
    return -(logp.exp() * logp).sum(-1)


CATEGORICAL_ENTROPY = Spec(
    name="categorical_entropy",
    title="categorical entropy H(π)",
    area="core",
    formula="H(π) = −Σₐ π(a) log π(a) = log Σ_b e^{z_b} − Σₐ π(a) zₐ (allowed actions only)",
    source="Shannon (1948); Williams & Peng (1991) for the entropy bonus",
    function=categorical_entropy,
    reference=categorical_entropy_reference,
    implementations={"fast": categorical_entropy, "reference": categorical_entropy_reference},
    properties=(
        Property("torch_distributions", "== torch.distributions.Categorical.entropy (−∞ where masked)", _entropy_vs_torch),
        Property("gradient", "∂H/∂z_b == −π(b)(log π(b) + H)", _entropy_gradient),
        gradcheck_property(_entropy_gradcheck_cases),
    ),
    wrong_variants=(
        WrongVariant("categorical_entropy_logits_as_log_probs", "H = −Σ π z: logits used as log-probabilities",
                     "derivation", categorical_entropy_logits_as_log_probs),
        WrongVariant("categorical_entropy_mask_ignored", "entropy over every action, mask ignored",
                     "derivation", categorical_entropy_mask_ignored),
    ),
    bad_inputs=_categorical_bad_inputs(with_actions=False),
    inputs=lambda: _categorical_inputs(entropy=True),
    doc="docs/formulas/distributions.md",
    proof="pgmath.proofs.categorical",
    extra={"extremes": extremes.categorical_entropy},
)

# ---------------------------------------------------------------------------------------------
# diagonal Gaussian


def _validate_gaussian(mean, log_std, actions=None) -> None:
    validate_float_tensor(mean, "mean")
    validate_float_tensor(log_std, "log_std")
    if mean.dim() == 0:
        raise ValueError("mean needs an action-dimension axis")
    if log_std.shape not in (mean.shape, mean.shape[-1:]):
        raise ValueError(f"log_std has shape {tuple(log_std.shape)}, mean {tuple(mean.shape)}")
    if actions is not None:
        validate_float_tensor(actions, "actions")
        if actions.shape != mean.shape:
            raise ValueError(f"actions has shape {tuple(actions.shape)}, mean {tuple(mean.shape)}")


def gaussian_log_prob_reference(mean, log_std, actions):
    """Σᵢ [−(aᵢ − μᵢ)² / (2 e^{2 log σᵢ}) − log σᵢ − ½ log 2π], one dimension at a time."""
    _validate_gaussian(mean, log_std, actions)
    log_std = log_std.expand(mean.shape)
    total = torch.zeros(mean.shape[:-1], dtype=mean.dtype, device=mean.device)
    for i in range(mean.shape[-1]):
        d, s = actions[..., i] - mean[..., i], log_std[..., i]
        total = total - d * d / (2 * torch.exp(2 * s)) - s - 0.5 * LOG_2PI
    return total


def _gaussian_batch(ctx: VerifyContext, offset: int, N: int = 8, D: int = 3, shared: bool = False):
    g = ctx.generator(offset)
    mu = torch.randn(N, D, dtype=F64, device=ctx.device, generator=g)
    ls = 0.5 * torch.randn(*((D,) if shared else (N, D)), dtype=F64, device=ctx.device, generator=g)
    a = mu + ls.exp() * torch.randn(N, D, dtype=F64, device=ctx.device, generator=g)
    return mu, ls, a


def _gaussian_log_prob_vs_torch(impl: Callable, ctx: VerifyContext) -> Outcome:
    """== torch.distributions.Normal(μ, σ).log_prob(a).sum(−1) (per-state and shared log σ)."""
    err = 0.0
    for k, shared in enumerate((False, True)):
        mu, ls, a = _gaussian_batch(ctx, 60 + k, shared=shared)
        want = torch.distributions.Normal(mu, ls.exp().expand(mu.shape)).log_prob(a).sum(-1)
        err = max(err, max_abs_error(impl(mu, ls, a), want))
    return outcome_within(err)


def _gaussian_score(impl: Callable, ctx: VerifyContext) -> Outcome:
    """∂ log π/∂μ = (a − μ)/σ², ∂ log π/∂ log σ = ((a − μ)/σ)² − 1, by autograd."""
    mu, ls, a = _gaussian_batch(ctx, 62)
    mu, ls = mu.requires_grad_(True), ls.requires_grad_(True)
    gm, gs = torch.autograd.grad(impl(mu, ls, a).sum(), (mu, ls))
    sig = ls.detach().exp()
    zsc = (a - mu.detach()) / sig
    return outcome_within(max(max_abs_error(gm, zsc / sig), max_abs_error(gs, zsc**2 - 1)))


def _gaussian_gradcheck_cases(impl, ctx):
    mu, ls, a = _gaussian_batch(ctx, 63, N=4, D=2)
    return [(lambda m, s: impl(m, s, a), (mu.requires_grad_(True), ls.requires_grad_(True)))]


def gaussian_log_prob_std_as_variance(mean, log_std, actions):
    """log_std read as log σ²: −½(a − μ)²/e^{log_std} − ½ log_std − ½ log 2π."""
    d = actions - mean
    return (-0.5 * d * d / log_std.exp() - 0.5 * log_std - 0.5 * LOG_2PI).sum(-1)


def gaussian_log_prob_mean_over_dims(mean, log_std, actions):
    """The per-dimension log-densities averaged instead of summed."""
    z = (actions - mean) * torch.exp(-log_std)
    return (-0.5 * z * z - log_std - 0.5 * LOG_2PI).mean(-1)


def gaussian_log_prob_missing_log_std(mean, log_std, actions):
    """The normaliser −log σ dropped (harmless only while σ is not learned)."""
    z = (actions - mean) * torch.exp(-log_std)
    return (-0.5 * z * z - 0.5 * LOG_2PI).sum(-1)


def _gaussian_inputs():
    import numpy as np
    from hypothesis import strategies as st
    from hypothesis.extra.numpy import arrays

    q = st.integers(-12, 12).map(lambda i: i / 4)

    def build(x):
        mu, ls, a = (torch.as_tensor(v) for v in x)
        return Call((mu, ls, a))

    shape = st.tuples(st.integers(1, 4), st.integers(1, 3))
    return shape.flatmap(lambda s: st.tuples(
        arrays(np.float64, s, elements=q),
        st.sampled_from([s, s[-1:]]).flatmap(lambda ss: arrays(np.float64, ss, elements=q.map(lambda v: v / 3))),
        arrays(np.float64, s, elements=q),
    )).map(build)


def _gaussian_bad_inputs() -> tuple[BadInput, ...]:
    def z(d, *shape):
        return torch.zeros(*(shape or (2, 3)), dtype=F64, device=d)

    return (
        BadInput("log_std shape", lambda f, d: f(z(d), z(d, 2), z(d)), "log_std"),
        BadInput("actions shape", lambda f, d: f(z(d), z(d, 3), z(d, 2, 2)), "actions"),
        BadInput("NaN mean", lambda f, d: f(z(d) + float("nan"), z(d, 3), z(d)), "mean"),
        BadInput("scalar mean", lambda f, d: f(z(d, 1)[0], z(d, 1)[0], z(d, 1)[0]), "mean"),
        BadInput("integer actions", lambda f, d: f(z(d), z(d, 3), z(d).long()), "actions"),
    )


GAUSSIAN_LOG_PROB = Spec(
    name="gaussian_log_prob",
    title="Gaussian log π(a)",
    area="core",
    formula="log N(a; μ, diag σ²) = Σᵢ [−½((aᵢ − μᵢ)/σᵢ)² − log σᵢ − ½ log 2π]",
    source="Sutton & Barto (2nd ed.), eq. 13.19; Williams (1992), §6",
    function=gaussian_log_prob,
    reference=gaussian_log_prob_reference,
    implementations={"fast": gaussian_log_prob, "reference": gaussian_log_prob_reference},
    properties=(
        Property("torch_distributions", "== torch.distributions.Normal(μ, σ).log_prob(a).sum(−1)", _gaussian_log_prob_vs_torch),
        Property("score", "∂/∂μ == (a − μ)/σ², ∂/∂log σ == ((a − μ)/σ)² − 1", _gaussian_score),
        gradcheck_property(_gaussian_gradcheck_cases),
    ),
    wrong_variants=(
        WrongVariant("gaussian_log_prob_std_as_variance", "log_std used as log σ² (variance parametrisation mix-up)",
                     "derivation", gaussian_log_prob_std_as_variance),
        WrongVariant("gaussian_log_prob_mean_over_dims", "log-densities averaged over action dimensions, not summed",
                     "derivation", gaussian_log_prob_mean_over_dims),
        WrongVariant("gaussian_log_prob_missing_log_std", "normaliser −log σ dropped", "derivation",
                     gaussian_log_prob_missing_log_std),
    ),
    bad_inputs=_gaussian_bad_inputs(),
    inputs=_gaussian_inputs,
    doc="docs/formulas/distributions.md",
    proof="pgmath.proofs.gaussian",
)


def gaussian_entropy_reference(log_std):
    """H = Σᵢ (log σᵢ + ½(1 + log 2π)), one dimension at a time."""
    validate_float_tensor(log_std, "log_std")
    if log_std.dim() == 0:
        raise ValueError("log_std needs an action-dimension axis")
    total = torch.zeros(log_std.shape[:-1], dtype=log_std.dtype, device=log_std.device)
    for i in range(log_std.shape[-1]):
        total = total + log_std[..., i] + 0.5 * (1.0 + LOG_2PI)
    return total


def _gaussian_entropy_vs_torch(impl: Callable, ctx: VerifyContext) -> Outcome:
    """== torch.distributions.Normal(0, σ).entropy().sum(−1)."""
    _, ls, _ = _gaussian_batch(ctx, 64, N=6, D=4)
    want = torch.distributions.Normal(torch.zeros_like(ls), ls.exp()).entropy().sum(-1)
    return outcome_within(max_abs_error(impl(ls), want))


def _gaussian_entropy_gradient(impl: Callable, ctx: VerifyContext) -> Outcome:
    """∂H/∂log σᵢ == 1 for every dimension, by autograd."""
    _, ls, _ = _gaussian_batch(ctx, 65, N=6, D=4)
    ls.requires_grad_(True)
    (grad,) = torch.autograd.grad(impl(ls).sum(), ls)
    return outcome_within(max_abs_error(grad, torch.ones_like(grad)))


def _gaussian_entropy_gradcheck_cases(impl, ctx):
    _, ls, _ = _gaussian_batch(ctx, 66, N=3, D=2)
    return [(impl, (ls.requires_grad_(True),))]


def gaussian_entropy_std_as_variance(log_std):
    """log_std read as log σ²: H = Σ (½ log_std + ½ log 2πe)."""
    return (0.5 * log_std + 0.5 * (1.0 + LOG_2PI)).sum(-1)


def gaussian_entropy_missing_constant(log_std):
    """H = Σ log σ: the constant ½ log 2πe per dimension dropped."""
    return log_std.sum(-1)


def _gaussian_entropy_inputs():
    import numpy as np
    from hypothesis import strategies as st
    from hypothesis.extra.numpy import arrays

    shape = st.tuples(st.integers(1, 4), st.integers(1, 3))
    return shape.flatmap(lambda s: arrays(np.float64, s, elements=st.integers(-8, 8).map(lambda i: i / 4))).map(
        lambda x: Call((torch.as_tensor(x),)))


GAUSSIAN_ENTROPY = Spec(
    name="gaussian_entropy",
    title="Gaussian entropy H",
    area="core",
    formula="H = Σᵢ [log σᵢ + ½ log(2πe)]",
    source="Cover & Thomas, Elements of Information Theory, Thm. 8.4.1",
    function=gaussian_entropy,
    reference=gaussian_entropy_reference,
    implementations={"fast": gaussian_entropy, "reference": gaussian_entropy_reference},
    properties=(
        Property("torch_distributions", "== torch.distributions.Normal.entropy().sum(−1)", _gaussian_entropy_vs_torch),
        Property("gradient", "∂H/∂log σᵢ == 1", _gaussian_entropy_gradient),
        gradcheck_property(_gaussian_entropy_gradcheck_cases),
    ),
    wrong_variants=(
        WrongVariant("gaussian_entropy_std_as_variance", "log_std used as log σ²", "derivation",
                     gaussian_entropy_std_as_variance),
        WrongVariant("gaussian_entropy_missing_constant", "the constant ½ log 2πe dropped", "derivation",
                     gaussian_entropy_missing_constant),
    ),
    bad_inputs=(
        BadInput("NaN log_std", lambda f, d: f(torch.full((2, 3), float("nan"), dtype=F64, device=d)), "log_std"),
        BadInput("scalar log_std", lambda f, d: f(torch.zeros((), dtype=F64, device=d)), "log_std"),
        BadInput("integer log_std", lambda f, d: f(torch.zeros(2, 3, dtype=torch.long, device=d)), "log_std"),
    ),
    inputs=_gaussian_entropy_inputs,
    doc="docs/formulas/distributions.md",
    proof="pgmath.proofs.gaussian",
)

FAMILY: tuple[Spec, ...] = (CATEGORICAL_LOG_PROB, CATEGORICAL_ENTROPY, GAUSSIAN_LOG_PROB, GAUSSIAN_ENTROPY)
