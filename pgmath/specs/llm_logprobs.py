"""Specs of the per-token log-probabilities and entropies of a causal language model.

    z = logits[b, t−1] / T                               (T: the sampling temperature)
    out[b, t] = log softmax(z)[tokens[b, t]] = z[tokens[b, t]] − logsumexp(z)   where mask[b, t]
    H[b, t]   = −Σⱼ pⱼ log pⱼ,  p = softmax(z)                                  where mask[b, t]
    both 0 elsewhere (and at t = 0); from hidden states, logits = hidden @ weightᵀ + bias

Source: the causal-LM convention — ``logits[:, t]`` predicts ``tokens[:, t+1]`` (Hugging Face
causal LMs; their loss shifts the labels the same way); temperature as the sampler applies it,
softmax(z / T) (huggingface/trl#4159, OpenRLHF/OpenRLHF#1319).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import torch

from pgmath.llm.chunked import token_log_probs_from_hidden, validate_hidden_inputs
from pgmath.llm.logprobs import (
    token_entropy,
    token_entropy_reference,
    token_log_probs,
    token_log_probs_reference,
)
from pgmath.specs.llm_aggregate import random_token_mask
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

__all__ = ["FAMILY", "prefix_model", "token_log_probs_from_hidden_reference"]

F64 = torch.float64

#: Temperatures the properties and the generator use (1 plus the usual sampling range).
TEMPERATURES = (1.0, 0.6, 1.7)


def prefix_model(V: int, g: torch.Generator, device: torch.device) -> Callable[[torch.Tensor], torch.Tensor]:
    """A causal map ``tokens [B, T] -> logits [B, T, V]``: position t sees tokens[≤ t] only (a
    running mean of random token embeddings)."""
    emb = torch.randn(V, V, dtype=F64, generator=g, device=device)

    def model(tok: torch.Tensor) -> torch.Tensor:
        steps = torch.arange(1, tok.shape[1] + 1, dtype=F64, device=device).view(1, -1, 1)
        return emb[tok].cumsum(1) / steps

    return model


def _prefix_by_prefix(impl: Callable, ctx: VerifyContext) -> Outcome:
    """Token t's log-prob = the model run on the prefix tokens[:, :t] alone, last position."""
    g = ctx.generator(50)
    V, B, L = 6, 4, 7
    model = prefix_model(V, g, ctx.device)
    tokens = torch.randint(0, V, (B, L), generator=g, device=ctx.device)
    mask = torch.ones(B, L, dtype=torch.bool, device=ctx.device)
    mask[:, 0] = False
    want = torch.zeros(B, L, dtype=F64, device=ctx.device)
    for t in range(1, L):  # the definition, prefix by prefix
        lp = torch.log_softmax(model(tokens[:, :t])[:, -1], -1)
        want[:, t] = lp.gather(1, tokens[:, t : t + 1]).squeeze(1)
    return outcome_within(max_abs_error(impl(model(tokens), tokens, mask), want), 1e-12)


def _by_formula(logits: torch.Tensor, tokens: torch.Tensor, mask: torch.Tensor, temperature: float = 1.0
                ) -> torch.Tensor:
    """z[t−1, yₜ] − logsumexp(z[t−1]), z = logits / T, where mask, 0 elsewhere (tokens clamped
    where unread)."""
    z = logits[:, :-1] / temperature
    tgt = torch.where(mask[:, 1:], tokens[:, 1:], torch.zeros_like(tokens[:, 1:])).long()
    val = z.gather(-1, tgt.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(z, -1)
    out = torch.where(mask[:, 1:], val, torch.zeros_like(val))
    return torch.cat([torch.zeros_like(out[:, :1]), out], 1)


def _sampler_probs(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """The sampler's distribution exp(z / T) / Σ exp(z / T), by exp and sum (no log-softmax;
    logits of moderate size only)."""
    e = torch.exp(logits / temperature)
    return e / e.sum(-1, keepdim=True)


def _definition(impl: Callable, ctx: VerifyContext) -> Outcome:
    """Random shapes, masks with gaps, logits of scale 3: == z[t−1, yₜ] − logsumexp(z[t−1])."""
    g = ctx.generator(51)
    err = 0.0
    for B, L, V in [(1, 2, 1), (3, 5, 4), (5, 9, 11), (2, 30, 50)]:
        logits = 3 * torch.randn(B, L, V, dtype=F64, generator=g, device=ctx.device)
        tokens = torch.randint(0, V, (B, L), generator=g, device=ctx.device)
        mask = random_token_mask(B, L, g, ctx.device, first_false=True)
        err = max(err, max_abs_error(impl(logits, tokens, mask), _by_formula(logits, tokens, mask)))
    return outcome_within(err, 1e-12)


def _temperature(impl: Callable, ctx: VerifyContext) -> Outcome:
    """At T = 0.6, 1.7, 0.25: == log of the sampler's probability exp(zᵧ/T) / Σ exp(z/T) of the
    token (the distribution the token was drawn from)."""
    g = ctx.generator(53)
    err = 0.0
    for T in (0.6, 1.7, 0.25):
        B, L, V = 3, 6, 7
        logits = 2 * torch.randn(B, L, V, dtype=F64, generator=g, device=ctx.device)
        tokens = torch.randint(0, V, (B, L), generator=g, device=ctx.device)
        mask = random_token_mask(B, L, g, ctx.device, first_false=True)
        p = _sampler_probs(logits[:, :-1], T).gather(-1, tokens[:, 1:].unsqueeze(-1)).squeeze(-1)
        want = torch.cat([torch.zeros_like(p[:, :1]), torch.where(mask[:, 1:], p.log(), torch.zeros_like(p))], 1)
        err = max(err, max_abs_error(impl(logits, tokens, mask, temperature=T), want))
    return outcome_within(err, 1e-12)


def _logprob_gradient(impl: Callable, ctx: VerifyContext) -> Outcome:
    """∂(Σ w·out)/∂logits = w (onehot(y) − softmax(z/T)) / T on scored rows, 0 on the others
    (the analytic gradient, T = 1 and 0.6)."""
    g = ctx.generator(54)
    err = 0.0
    for T in (1.0, 0.6):
        B, L, V = 3, 6, 5
        logits = torch.randn(B, L, V, dtype=F64, generator=g, device=ctx.device).requires_grad_(True)
        tokens = torch.randint(0, V, (B, L), generator=g, device=ctx.device)
        mask = random_token_mask(B, L, g, ctx.device, first_false=True)
        w = torch.randn(B, L, dtype=F64, generator=g, device=ctx.device)
        (grad,) = torch.autograd.grad((impl(logits, tokens, mask, temperature=T) * w).sum(), logits)
        p = _sampler_probs(logits.detach()[:, :-1], T)
        onehot = torch.nn.functional.one_hot(tokens[:, 1:], V).to(F64)
        coef = torch.where(mask[:, 1:], w[:, 1:], torch.zeros_like(w[:, 1:])).unsqueeze(-1)
        want = torch.zeros_like(grad)
        want[:, :-1] = coef * (onehot - p) / T
        err = max(err, max_abs_error(grad, want))
    return outcome_within(err, 1e-12)


def _unread_rows(impl: Callable, ctx: VerifyContext) -> Outcome:
    """NaN/inf in the rows that score no token reach neither the value nor the gradient."""
    g = ctx.generator(52)
    logits = torch.randn(2, 5, 4, dtype=F64, generator=g, device=ctx.device)
    tokens = torch.tensor([[1, 2, 3, 0, -100], [0, 1, 2, 3, 1]], device=ctx.device)
    mask = torch.tensor([[0, 1, 1, 0, 0], [0, 0, 1, 1, 1]], dtype=torch.bool, device=ctx.device)
    want = _by_formula(logits, tokens, mask)
    bad = logits.clone()
    bad[0, 2:] = math.nan  # rows 2…4 of sample 0 score tokens 3, 4: masked out
    bad[:, -1] = math.inf  # the last row scores nothing
    bad.requires_grad_(True)
    out = impl(bad, tokens, mask)
    (grad,) = torch.autograd.grad(out.sum(), bad)
    unread = float(grad[0, 2:].abs().sum() + grad[:, -1].abs().sum())
    finite = bool(torch.isfinite(grad).all())
    return outcome_within(max(max_abs_error(out.detach(), want), unread, 0.0 if finite else math.inf))


def _default_mask(tokens: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    if mask is None:
        mask = torch.ones(tokens.shape, dtype=torch.bool, device=tokens.device)
        mask[:, 0] = False
    return mask.bool()  # read only


def logprobs_unshifted(logits, tokens, mask=None, *, temperature=1.0):
    """log softmax(logits[t])[tokens[t]]: each token scored by the logits that already read it."""
    mask = _default_mask(tokens, mask)
    lp = torch.log_softmax(logits / temperature, -1).gather(-1, tokens.clamp(min=0).long().unsqueeze(-1)).squeeze(-1)
    return torch.where(mask, lp, torch.zeros_like(lp))


def logprobs_mask_multiplied(logits, tokens, mask=None, *, temperature=1.0):
    """Shifted correctly, but every row's log-softmax taken and then multiplied by the mask."""
    mask = _default_mask(tokens, mask)
    lp = torch.log_softmax(logits[:, :-1] / temperature, -1)
    lp = lp.gather(-1, tokens[:, 1:].clamp(min=0).long().unsqueeze(-1)).squeeze(-1) * mask[:, 1:].to(lp.dtype)
    return torch.cat([torch.zeros_like(lp[:, :1]), lp], 1)


def logprobs_mask_shifted(logits, tokens, mask=None, *, temperature=1.0):
    """Shifted log-probs, but the mask applied as if indexed like the logits (mask[t−1])."""
    mask = _default_mask(tokens, mask)
    full = torch.ones_like(mask, dtype=torch.bool)
    full[:, 0] = False
    clean = torch.where(torch.isfinite(logits), logits, torch.zeros_like(logits))
    lp = token_log_probs_reference(clean, tokens.clamp(min=0), full, temperature=temperature)
    shifted = torch.cat([torch.zeros_like(mask[:, :1]), mask[:, :-1]], 1).bool()
    return torch.where(shifted, lp, torch.zeros_like(lp))


def logprobs_ignore_temperature(logits, tokens, mask=None, *, temperature=1.0):
    """The raw log-probs log softmax(z) of tokens sampled from softmax(z / T)."""
    return token_log_probs_reference(logits, tokens, mask)


def logprobs_log_softmax_divided(logits, tokens, mask=None, *, temperature=1.0):
    """log_softmax(z) / T instead of log_softmax(z / T): the normaliser is divided by T too."""
    return token_log_probs_reference(logits, tokens, mask) / temperature


def _common_bad_inputs(call: Callable[..., object]) -> tuple[BadInput, ...]:
    """Temperature refusals shared by the three specs (``call(f, d, **kw)``). (``chunk_size``
    is refused by ``tests/test_llm_chunked.py``: the references take no chunk size.)"""
    return (
        BadInput("temperature 0", lambda f, d: call(f, d, temperature=0.0), "temperature"),
        BadInput("temperature < 0", lambda f, d: call(f, d, temperature=-1.0), "temperature"),
        BadInput("temperature NaN", lambda f, d: call(f, d, temperature=math.nan), "temperature"),
        BadInput("temperature inf", lambda f, d: call(f, d, temperature=math.inf), "temperature"),
        BadInput("temperature a string", lambda f, d: call(f, d, temperature="hot"), "temperature"),
    )


def _lg(d):
    return torch.zeros(2, 3, 4, dtype=F64, device=d)


def _tok(d, fill=0, shape=(2, 3)):
    return torch.full(shape, fill, dtype=torch.long, device=d)


def _m(d, shape=(2, 3), fill=True):
    x = torch.full(shape, fill, dtype=torch.bool, device=d)
    x[:, 0] = False
    return x


def _bad_inputs() -> tuple[BadInput, ...]:
    def nan_row(d):
        z = _lg(d)
        z[0, 1, 2] = math.nan  # row 1 scores token 2, which is in the mask
        return z

    return (
        BadInput("2-D logits", lambda f, d: f(_lg(d)[..., 0], _tok(d)), "logits"),
        BadInput("integer logits", lambda f, d: f(_lg(d).long(), _tok(d)), "logits"),
        BadInput("float tokens", lambda f, d: f(_lg(d), _tok(d).double()), "tokens"),
        BadInput("tokens shape", lambda f, d: f(_lg(d), _tok(d, shape=(2, 4))), "tokens"),
        BadInput("token id ≥ V where scored", lambda f, d: f(_lg(d), _tok(d, 4)), "tokens"),
        BadInput("token id −100 where scored", lambda f, d: f(_lg(d), _tok(d, -100)), "tokens"),
        BadInput("mask[:, 0] true", lambda f, d: f(_lg(d), _tok(d), torch.ones(2, 3, dtype=torch.bool, device=d)), "mask"),
        BadInput("mask shape", lambda f, d: f(_lg(d), _tok(d), _m(d, (2, 4))), "mask"),
        BadInput("mask holds 2", lambda f, d: f(_lg(d), _tok(d), 2 * _m(d).long()), "mask"),
        BadInput("NaN in a scoring row", lambda f, d: f(nan_row(d), _tok(d), _m(d)), "logits"),
        *_common_bad_inputs(lambda f, d, **kw: f(_lg(d), _tok(d), _m(d), **kw)),
    )


def _draw_logits_case(d, *, nan_rows: bool = True):
    """Hypothesis draw: ``(logits [B, L, V] float64, tokens [B, L], mask [B, L], T)`` with
    quarter-integer logits, −100 at some masked-out ids, NaN in some unread rows."""
    import numpy as np
    from hypothesis import strategies as st
    from hypothesis.extra.numpy import arrays

    B, L, V = d(st.integers(1, 3)), d(st.integers(2, 6)), d(st.integers(1, 5))
    logits = d(arrays(np.float64, (B, L, V), elements=st.integers(-12, 12).map(lambda i: i / 4)))
    tokens = d(arrays(np.int64, (B, L), elements=st.integers(0, V - 1)))
    mask = d(arrays(np.bool_, (B, L)))
    mask[:, 0] = False
    if d(st.booleans()):  # padding ids where nothing is scored (HF labels, pad ids)
        tokens = np.where(mask, tokens, -100)
    if nan_rows and d(st.booleans()):  # rows that score nothing may hold NaN (e.g. fully masked attention)
        unread = ~np.concatenate([mask[:, 1:], np.zeros((B, 1), bool)], 1)
        logits = np.where(unread[..., None], np.nan, logits)
    T = d(st.sampled_from((*TEMPERATURES, 0.25, 2.0)))
    return torch.as_tensor(logits), torch.as_tensor(tokens), torch.as_tensor(mask), T


def _inputs():
    from hypothesis import strategies as st

    @st.composite
    def draw(d):
        logits, tokens, mask, T = _draw_logits_case(d)
        return Call((logits, tokens, mask), {"temperature": T})

    return draw()


TOKEN_LOG_PROBS = Spec(
    name="token_log_probs",
    title="token_log_probs",
    area="llm",
    formula="out[b, t] = z[yₜ] − logsumexp(z), z = logits[b, t−1] / T, where mask[b, t], else 0",
    source="the causal-LM convention: logits[:, t] predicts tokens[:, t+1] (Hugging Face causal LMs); "
           "the sampler's softmax(z / T) (huggingface/trl#4159)",
    function=token_log_probs,
    reference=token_log_probs_reference,
    implementations={"fast": token_log_probs, "chunk_1": functools.partial(token_log_probs, chunk_size=1),
                     "chunk_3": functools.partial(token_log_probs, chunk_size=3),
                     "reference": token_log_probs_reference},
    properties=(
        Property("prefix_by_prefix", "off-by-one: = the model run prefix by prefix (logits[t−1] scores token t)",
                 _prefix_by_prefix),
        Property("definition", "== z[t−1, yₜ] − logsumexp(z[t−1]) on random masks (float64)", _definition),
        Property("temperature", "T = 0.6, 1.7, 0.25: == log of the sampler's exp(zᵧ/T) / Σ exp(z/T)",
                 _temperature),
        Property("gradient", "∂/∂logits == (onehot(y) − softmax(z/T)) / T on scored rows, 0 elsewhere",
                 _logprob_gradient),
        Property("unread_rows_do_not_leak", "NaN/inf in unread logits rows: same value, 0 gradient there",
                 _unread_rows),
    ),
    wrong_variants=(
        WrongVariant("logprobs_unshifted", "log_softmax(logits).gather(tokens) with no shift: token t scored by "
                     "the logits that read it", "lucidrains/PaLM-rlhf-pytorch#31; AI-Hypercomputer/maxtext#2103",
                     logprobs_unshifted),
        WrongVariant("logprobs_mask_multiplied", "log-softmax of every row, then × mask: NaN · 0 = NaN from unread rows",
                     "ecmwf/WeatherGenerator#2723 (NaN · 0 from masking by multiplication)",
                     logprobs_mask_multiplied),
        WrongVariant("logprobs_mask_shifted", "the response mask read one position early (indexed like the logits)",
                     "Goekdeniz-Guelmez/mlx-lm-lora#80; PrimeIntellect-ai/prime-rl#1525 review",
                     logprobs_mask_shifted),
        WrongVariant("logprobs_ignore_temperature", "raw log softmax(z) for tokens sampled from softmax(z / T): the "
                     "ratio against the sampler's log-probs is off (first-token ratio 2.0 at T = 0.6)",
                     "huggingface/trl#4159; OpenNMT/CTranslate2#1620", logprobs_ignore_temperature,
                     options={"temperature": 0.6}),
        WrongVariant("logprobs_log_softmax_divided", "log_softmax(z) / T instead of log_softmax(z / T): the "
                     "logsumexp is divided by T as well", "google/tunix#1387; MoonshotAI/Kimi-Audio#161",
                     logprobs_log_softmax_divided, options={"temperature": 0.6}),
    ),
    bad_inputs=_bad_inputs(),
    inputs=_inputs,
    doc="docs/llm/token_log_probs.md",
    harness="check_token_log_probs",
)


# ---------------------------------------------------------------------------------------------
# entropy


def _entropy_by_formula(logits: torch.Tensor, mask: torch.Tensor, temperature: float) -> torch.Tensor:
    """−Σⱼ pⱼ log pⱼ with p = exp(z/T) / Σ exp(z/T) (0 log 0 = 0) on row t−1, where mask."""
    p = _sampler_probs(logits[:, :-1], temperature)
    h = -torch.where(p > 0, p * p.log(), torch.zeros_like(p)).sum(-1)
    h = torch.where(mask[:, 1:], h, torch.zeros_like(h))
    return torch.cat([torch.zeros_like(h[:, :1]), h], 1)


def _entropy_definition(impl: Callable, ctx: VerifyContext) -> Outcome:
    """Random shapes and masks, T ∈ {1, 0.6, 1.7}, some −inf logits: == −Σ p log p of the
    sampler's exp(z/T) / Σ exp(z/T)."""
    g = ctx.generator(60)
    err = 0.0
    for (B, L, V), T in zip([(1, 2, 1), (3, 5, 4), (5, 9, 11), (2, 12, 30)], (1.0, 0.6, 1.7, 0.6)):
        logits = 2 * torch.randn(B, L, V, dtype=F64, generator=g, device=ctx.device)
        if V > 2:
            logits[..., 0] = -math.inf  # an impossible token: 0 · log 0 = 0
        mask = random_token_mask(B, L, g, ctx.device, first_false=True)
        err = max(err, max_abs_error(impl(logits, mask, temperature=T), _entropy_by_formula(logits, mask, T)))
    return outcome_within(err, 1e-12)


def _entropy_closed_forms(impl: Callable, ctx: VerifyContext) -> Outcome:
    """Equal logits: H = log V at every T; one finite logit (others −inf): H = 0; two logits
    a, 0: H of the Bernoulli σ(a/T)."""
    d = ctx.device
    err = 0.0
    for T in TEMPERATURES:
        uniform = torch.full((1, 3, 7), 2.5, dtype=F64, device=d)
        err = max(err, max_abs_error(impl(uniform, None, temperature=T)[0, 1:], torch.full((2,), math.log(7), dtype=F64)))
        onehot = torch.full((1, 2, 5), -math.inf, dtype=F64, device=d)
        onehot[..., 3] = 1.0
        err = max(err, max_abs_error(impl(onehot, None, temperature=T)[0, 1:], torch.zeros(1, dtype=F64)))
        a = 1.3
        two = torch.tensor([[[a, 0.0], [a, 0.0]]], dtype=F64, device=d)
        q = 1 / (1 + math.exp(-a / T))
        want = -(q * math.log(q) + (1 - q) * math.log(1 - q))
        err = max(err, max_abs_error(impl(two, None, temperature=T)[0, 1:], torch.tensor([want], dtype=F64)))
    return outcome_within(err, 1e-12)


def _entropy_prefix(impl: Callable, ctx: VerifyContext) -> Outcome:
    """Position t holds the entropy of the model run on tokens[:, :t] alone (the distribution
    token t was drawn from)."""
    g = ctx.generator(61)
    V, B, L = 6, 3, 6
    model = prefix_model(V, g, ctx.device)
    tokens = torch.randint(0, V, (B, L), generator=g, device=ctx.device)
    want = torch.zeros(B, L, dtype=F64, device=ctx.device)
    for t in range(1, L):
        lp = torch.log_softmax(model(tokens[:, :t])[:, -1] / 0.6, -1)
        want[:, t] = -(lp.exp() * lp).sum(-1)
    return outcome_within(max_abs_error(impl(model(tokens), None, temperature=0.6), want), 1e-12)


def _entropy_gradient(impl: Callable, ctx: VerifyContext) -> Outcome:
    """∂(Σ w·H)/∂logits = −w p ⊙ (log p + H) / T on scored rows, 0 elsewhere (T = 1, 0.6)."""
    g = ctx.generator(62)
    err = 0.0
    for T in (1.0, 0.6):
        B, L, V = 3, 6, 5
        logits = torch.randn(B, L, V, dtype=F64, generator=g, device=ctx.device).requires_grad_(True)
        mask = random_token_mask(B, L, g, ctx.device, first_false=True)
        w = torch.randn(B, L, dtype=F64, generator=g, device=ctx.device)
        (grad,) = torch.autograd.grad((impl(logits, mask, temperature=T) * w).sum(), logits)
        p = _sampler_probs(logits.detach()[:, :-1], T)
        h = -(p * p.log()).sum(-1, keepdim=True)
        coef = torch.where(mask[:, 1:], w[:, 1:], torch.zeros_like(w[:, 1:])).unsqueeze(-1)
        want = torch.zeros_like(grad)
        want[:, :-1] = -coef * p * (p.log() + h) / T
        err = max(err, max_abs_error(grad, want))
    return outcome_within(err, 1e-12)


def _entropy_unread_rows(impl: Callable, ctx: VerifyContext) -> Outcome:
    """NaN/inf in rows that score no token reach neither the value nor the gradient."""
    g = ctx.generator(63)
    logits = torch.randn(2, 5, 4, dtype=F64, generator=g, device=ctx.device)
    mask = torch.tensor([[0, 1, 1, 0, 0], [0, 0, 1, 1, 1]], dtype=torch.bool, device=ctx.device)
    want = _entropy_by_formula(logits, mask, 1.0)
    bad = logits.clone()
    bad[0, 2:] = math.nan
    bad[:, -1] = math.inf
    bad.requires_grad_(True)
    out = impl(bad, mask)
    (grad,) = torch.autograd.grad(out.sum(), bad)
    unread = float(grad[0, 2:].abs().sum() + grad[:, -1].abs().sum())
    finite = bool(torch.isfinite(grad).all())
    return outcome_within(max(max_abs_error(out.detach(), want), unread, 0.0 if finite else math.inf))


def entropy_at_unit_temperature(logits, mask=None, *, temperature=1.0):
    """The entropy of softmax(z) while the tokens are sampled (and log-probs taken) at T."""
    return token_entropy_reference(logits, mask)


def entropy_log_softmax_divided(logits, mask=None, *, temperature=1.0):
    """−Σ softmax(z/T) · log_softmax(z)/T: the right p, but log p taken as log_softmax(z) / T."""
    m = torch.ones(logits.shape[:2], dtype=torch.bool, device=logits.device) if mask is None else mask.bool().clone()
    m[:, 0] = False
    z = torch.where(m[:, 1:].unsqueeze(-1), logits[:, :-1], torch.zeros_like(logits[:, :-1]))
    p = torch.softmax(z / temperature, -1)
    logp = torch.log_softmax(z, -1) / temperature
    h = -torch.where(p > 0, p * logp, torch.zeros_like(p)).sum(-1)
    h = torch.where(m[:, 1:], h, torch.zeros_like(h))
    return torch.cat([torch.zeros_like(h[:, :1]), h], 1)


def entropy_unshifted(logits, mask=None, *, temperature=1.0):
    """Position t holds the entropy of logits row t (the next token's distribution)."""
    m = torch.ones(logits.shape[:2], dtype=torch.bool, device=logits.device) if mask is None else mask.bool()
    z = torch.where(m.unsqueeze(-1), logits, torch.zeros_like(logits))
    lp = torch.log_softmax(z / temperature, -1)
    h = -torch.where(lp > -math.inf, lp.exp() * lp, torch.zeros_like(lp)).sum(-1)
    return torch.where(m, h, torch.zeros_like(h))


def _entropy_bad_inputs() -> tuple[BadInput, ...]:
    def inf_row(d):
        z = _lg(d)
        z[0, 1, 2] = math.inf
        return z

    return (
        BadInput("2-D logits", lambda f, d: f(_lg(d)[..., 0]), "logits"),
        BadInput("integer logits", lambda f, d: f(_lg(d).long()), "logits"),
        BadInput("mask[:, 0] true", lambda f, d: f(_lg(d), torch.ones(2, 3, dtype=torch.bool, device=d)), "mask"),
        BadInput("mask shape", lambda f, d: f(_lg(d), _m(d, (2, 4))), "mask"),
        BadInput("+inf in a scoring row", lambda f, d: f(inf_row(d), _m(d)), "logits"),
        *_common_bad_inputs(lambda f, d, **kw: f(_lg(d), _m(d), **kw)),
    )


def _entropy_inputs():
    from hypothesis import strategies as st

    @st.composite
    def draw(d):
        logits, _, mask, T = _draw_logits_case(d)
        return Call((logits, mask), {"temperature": T})

    return draw()


TOKEN_ENTROPY = Spec(
    name="token_entropy",
    title="token_entropy",
    area="llm",
    formula="H[b, t] = −Σⱼ pⱼ log pⱼ, p = softmax(logits[b, t−1] / T), where mask[b, t], else 0",
    source="Shannon entropy of the sampling distribution softmax(z / T) (OpenRLHF/OpenRLHF#1319); "
           "the causal-LM alignment of token_log_probs",
    function=token_entropy,
    reference=token_entropy_reference,
    implementations={"fast": token_entropy, "chunk_1": functools.partial(token_entropy, chunk_size=1),
                     "reference": token_entropy_reference},
    properties=(
        Property("definition", "== −Σ p log p of the sampler's softmax(z/T), random masks, −inf logits",
                 _entropy_definition),
        Property("closed_forms", "uniform: log V; one-hot: 0; two logits: Bernoulli σ(a/T), at every T",
                 _entropy_closed_forms),
        Property("prefix_by_prefix", "position t = entropy of the model run on tokens[:, :t]", _entropy_prefix),
        Property("gradient", "∂/∂logits == −p ⊙ (log p + H) / T on scored rows, 0 elsewhere", _entropy_gradient),
        Property("unread_rows_do_not_leak", "NaN/inf in unread logits rows: same value, 0 gradient there",
                 _entropy_unread_rows),
    ),
    wrong_variants=(
        WrongVariant("entropy_at_unit_temperature", "entropy bonus of softmax(z) while sampling from softmax(z / T) "
                     "(up to 1.03 nats off at T = 0.5)", "OpenRLHF/OpenRLHF#1319", entropy_at_unit_temperature,
                     options={"temperature": 0.6}),
        WrongVariant("entropy_log_softmax_divided", "−Σ softmax(z/T) · log_softmax(z)/T: log p taken as "
                     "log_softmax(z) / T", "google/tunix#1387", entropy_log_softmax_divided,
                     options={"temperature": 0.6}),
        WrongVariant("entropy_unshifted", "position t holds the entropy of logits row t (the next token's "
                     "distribution), not of row t − 1", "derivation", entropy_unshifted),
    ),
    bad_inputs=_entropy_bad_inputs(),
    inputs=_entropy_inputs,
    doc="docs/llm/token_log_probs.md",
    harness="check_token_entropy",
)


# ---------------------------------------------------------------------------------------------
# from hidden states


def token_log_probs_from_hidden_reference(hidden, weight, tokens, mask=None, *, bias=None, temperature=1.0,
                                          return_entropy=False):
    """:func:`token_log_probs_from_hidden` by materialising the logits ``hidden @ weightᵀ + bias``
    and running the reference loops of token_log_probs and token_entropy."""
    validate_hidden_inputs(hidden, weight, bias)
    logits = torch.nn.functional.linear(hidden, weight, bias)
    lp = token_log_probs_reference(logits, tokens, mask, temperature=temperature)
    if not return_entropy:
        return lp
    return lp, token_entropy_reference(logits, mask, temperature=temperature)


def _hidden_case(g, device, B=3, L=7, d=4, V=9):
    hidden = torch.randn(B, L, d, dtype=F64, generator=g, device=device)
    weight = torch.randn(V, d, dtype=F64, generator=g, device=device)
    bias = torch.randn(V, dtype=F64, generator=g, device=device)
    tokens = torch.randint(0, V, (B, L), generator=g, device=device)
    mask = random_token_mask(B, L, g, device, first_false=True)
    return hidden, weight, bias, tokens, mask


def _hidden_values(impl: Callable, ctx: VerifyContext) -> Outcome:
    """Log-probs and entropies == the formulas on the full logits hidden @ Wᵀ + b (T = 1, 0.6)."""
    g = ctx.generator(70)
    err = 0.0
    for T in (1.0, 0.6):
        hidden, weight, bias, tokens, mask = _hidden_case(g, ctx.device)
        logits = hidden @ weight.T + bias
        lp, h = impl(hidden, weight, tokens, mask, bias=bias, temperature=T, return_entropy=True)
        err = max(err, max_abs_error(lp, _by_formula(logits, tokens, mask, T)),
                  max_abs_error(h, _entropy_by_formula(logits, mask, T)))
        lp_nb = impl(hidden, weight, tokens, mask, temperature=T)
        err = max(err, max_abs_error(lp_nb, _by_formula(hidden @ weight.T, tokens, mask, T)))
    return outcome_within(err, 1e-12)


def _hidden_gradients(impl: Callable, ctx: VerifyContext) -> Outcome:
    """∂/∂hidden, ∂/∂weight, ∂/∂bias of Σ w·log π + Σ u·H == autograd through the full logits
    and the formula (T = 0.6)."""
    g = ctx.generator(71)
    hidden, weight, bias, tokens, mask = _hidden_case(g, ctx.device)
    w = torch.randn(mask.shape, dtype=F64, generator=g, device=ctx.device)
    u = torch.randn(mask.shape, dtype=F64, generator=g, device=ctx.device)
    leaves = [x.clone().requires_grad_(True) for x in (hidden, weight, bias)]
    lp, h = impl(leaves[0], leaves[1], tokens, mask, bias=leaves[2], temperature=0.6, return_entropy=True)
    got = torch.autograd.grad((lp * w).sum() + (h * u).sum(), leaves)
    ref = [x.clone().requires_grad_(True) for x in (hidden, weight, bias)]
    logits = ref[0] @ ref[1].T + ref[2]
    loss = (_by_formula(logits, tokens, mask, 0.6) * w).sum() + (_entropy_by_formula(logits, mask, 0.6) * u).sum()
    want = torch.autograd.grad(loss, ref)
    return outcome_within(max(max_abs_error(a, b) for a, b in zip(got, want)), 1e-12)


def _hidden_unread_rows(impl: Callable, ctx: VerifyContext) -> Outcome:
    """NaN in hidden rows that score no token: same values, zero (finite) gradient there."""
    g = ctx.generator(72)
    hidden, weight, _, tokens, mask = _hidden_case(g, ctx.device)
    mask[0] = False
    mask[0, 2] = True  # sample 0 reads hidden row 1 only
    want = _by_formula(hidden @ weight.T, tokens, mask)
    bad = hidden.clone()
    bad[0, 2:] = math.nan
    bad[0, 0] = math.inf
    bad[:, -1] = math.nan
    bad.requires_grad_(True)
    out = impl(bad, weight, tokens, mask)
    (grad,) = torch.autograd.grad(out.sum(), bad)
    unread = float(grad[0, 2:].abs().sum() + grad[0, 0].abs().sum() + grad[:, -1].abs().sum())
    finite = bool(torch.isfinite(grad).all())
    return outcome_within(max(max_abs_error(out.detach(), want), unread, 0.0 if finite else math.inf))


def _hidden_bad_inputs() -> tuple[BadInput, ...]:
    def h(d, shape=(2, 3, 4)):
        return torch.zeros(shape, dtype=F64, device=d)

    def w(d, shape=(5, 4)):
        return torch.zeros(shape, dtype=F64, device=d)

    return (
        BadInput("2-D hidden", lambda f, d: f(h(d)[..., 0], w(d), _tok(d)), "hidden"),
        BadInput("weight's d ≠ hidden's d", lambda f, d: f(h(d), w(d, (5, 3)), _tok(d)), "weight"),
        BadInput("1-D weight", lambda f, d: f(h(d), w(d)[0], _tok(d)), "weight"),
        BadInput("weight float32, hidden float64", lambda f, d: f(h(d), w(d).float(), _tok(d)), "weight"),
        BadInput("bias of the wrong length", lambda f, d: f(h(d), w(d), _tok(d), bias=torch.zeros(4, dtype=F64, device=d)),
                 "bias"),
        BadInput("tokens shape", lambda f, d: f(h(d), w(d), _tok(d, shape=(2, 4))), "tokens"),
        BadInput("token id ≥ V where scored", lambda f, d: f(h(d), w(d), _tok(d, 5)), "tokens"),
        BadInput("mask[:, 0] true", lambda f, d: f(h(d), w(d), _tok(d), torch.ones(2, 3, dtype=torch.bool, device=d)),
                 "mask"),
        *_common_bad_inputs(lambda f, d, **kw: f(h(d), w(d), _tok(d), _m(d), **kw)),
    )


def _hidden_inputs():
    import numpy as np
    from hypothesis import strategies as st
    from hypothesis.extra.numpy import arrays

    quarter = st.integers(-8, 8).map(lambda i: i / 4)

    @st.composite
    def draw(d):
        B, L, dim, V = d(st.integers(1, 3)), d(st.integers(2, 5)), d(st.integers(1, 3)), d(st.integers(1, 5))
        hidden = d(arrays(np.float64, (B, L, dim), elements=quarter))
        weight = d(arrays(np.float64, (V, dim), elements=quarter))
        tokens = d(arrays(np.int64, (B, L), elements=st.integers(0, V - 1)))
        mask = d(arrays(np.bool_, (B, L)))
        mask[:, 0] = False
        kw = {"temperature": d(st.sampled_from(TEMPERATURES))}
        if d(st.booleans()):
            kw["bias"] = torch.as_tensor(d(arrays(np.float64, (V,), elements=quarter)))
        return Call((torch.as_tensor(hidden), torch.as_tensor(weight), torch.as_tensor(tokens),
                     torch.as_tensor(mask)), kw)

    return draw()


TOKEN_LOG_PROBS_FROM_HIDDEN = Spec(
    name="token_log_probs_from_hidden",
    title="token_log_probs_from_hidden",
    area="llm",
    formula="token_log_probs(hidden @ weightᵀ + bias, …) and token_entropy(…), chunk by chunk, "
            "the [B, L, V] logits never held",
    source="the LM head of a causal LM (logits = lm_head(hidden)); fused linear cross-entropy "
           "(Liger-Kernel) computes the same in chunks",
    function=token_log_probs_from_hidden,
    reference=token_log_probs_from_hidden_reference,
    implementations={"fast": token_log_probs_from_hidden,
                     "chunk_1": functools.partial(token_log_probs_from_hidden, chunk_size=1),
                     "chunk_2": functools.partial(token_log_probs_from_hidden, chunk_size=2),
                     "reference": token_log_probs_from_hidden_reference},
    properties=(
        Property("full_logits", "log-probs and entropies == the formulas on the full logits (T = 1, 0.6)",
                 _hidden_values),
        Property("gradients", "∂/∂hidden, ∂/∂weight, ∂/∂bias == autograd through the full logits", _hidden_gradients),
        Property("unread_rows_do_not_leak", "NaN/inf in unread hidden rows: same value, 0 gradient there",
                 _hidden_unread_rows),
    ),
    bad_inputs=_hidden_bad_inputs(),
    inputs=_hidden_inputs,
    doc="docs/llm/token_log_probs.md",
)

FAMILY: tuple[Spec, ...] = (TOKEN_LOG_PROBS, TOKEN_ENTROPY, TOKEN_LOG_PROBS_FROM_HIDDEN)
