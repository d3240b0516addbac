"""Spec of the per-token log-probabilities of a causal language model.

    out[b, t] = log softmax(logits[b, t−1])[tokens[b, t]]
              = logits[b, t−1, tokens[b, t]] − logsumexp(logits[b, t−1, :])   where mask[b, t]
    out[b, t] = 0                                                              elsewhere (and t = 0)

Source: the causal-LM convention — ``logits[:, t]`` predicts ``tokens[:, t+1]`` (Hugging Face
causal LMs; their loss shifts the labels the same way).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from pgmath.llm.logprobs import token_log_probs, token_log_probs_reference
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

__all__ = ["FAMILY", "prefix_model"]

F64 = torch.float64


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


def _by_formula(logits: torch.Tensor, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """z[t−1, yₜ] − logsumexp(z[t−1]) where mask, 0 elsewhere (tokens clamped where unread)."""
    z = logits[:, :-1]
    tgt = torch.where(mask[:, 1:], tokens[:, 1:], torch.zeros_like(tokens[:, 1:])).long()
    val = z.gather(-1, tgt.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(z, -1)
    out = torch.where(mask[:, 1:], val, torch.zeros_like(val))
    return torch.cat([torch.zeros_like(out[:, :1]), out], 1)


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


def logprobs_unshifted(logits, tokens, mask=None):
    """log softmax(logits[t])[tokens[t]]: each token scored by the logits that already read it."""
    if mask is None:
        mask = torch.ones(tokens.shape, dtype=torch.bool, device=tokens.device)
        mask[:, 0] = False
    lp = torch.log_softmax(logits, -1).gather(-1, tokens.clamp(min=0).long().unsqueeze(-1)).squeeze(-1)
    return torch.where(mask.bool(), lp, torch.zeros_like(lp))


def logprobs_mask_multiplied(logits, tokens, mask=None):
    """Shifted correctly, but every row's log-softmax taken and then multiplied by the mask."""
    if mask is None:
        mask = torch.ones(tokens.shape, dtype=torch.bool, device=tokens.device)
        mask[:, 0] = False
    lp = torch.log_softmax(logits[:, :-1], -1)
    lp = lp.gather(-1, tokens[:, 1:].clamp(min=0).long().unsqueeze(-1)).squeeze(-1) * mask[:, 1:].to(lp.dtype)
    return torch.cat([torch.zeros_like(lp[:, :1]), lp], 1)


def logprobs_mask_shifted(logits, tokens, mask=None):
    """Shifted log-probs, but the mask applied as if indexed like the logits (mask[t−1])."""
    if mask is None:
        mask = torch.ones(tokens.shape, dtype=torch.bool, device=tokens.device)
        mask[:, 0] = False
    full = torch.ones_like(mask, dtype=torch.bool)
    full[:, 0] = False
    lp = token_log_probs_reference(logits, tokens.clamp(min=0), full)
    shifted = torch.cat([torch.zeros_like(mask[:, :1]), mask[:, :-1]], 1).bool()
    return torch.where(shifted, lp, torch.zeros_like(lp))


def _bad_inputs() -> tuple[BadInput, ...]:
    def lg(d):
        return torch.zeros(2, 3, 4, dtype=F64, device=d)

    def tok(d, fill=0, shape=(2, 3)):
        return torch.full(shape, fill, dtype=torch.long, device=d)

    def m(d, shape=(2, 3), fill=True):
        x = torch.full(shape, fill, dtype=torch.bool, device=d)
        x[:, 0] = False
        return x

    def nan_row(d):
        z = lg(d)
        z[0, 1, 2] = math.nan  # row 1 scores token 2, which is in the mask
        return z

    return (
        BadInput("2-D logits", lambda f, d: f(lg(d)[..., 0], tok(d)), "logits"),
        BadInput("integer logits", lambda f, d: f(lg(d).long(), tok(d)), "logits"),
        BadInput("float tokens", lambda f, d: f(lg(d), tok(d).double()), "tokens"),
        BadInput("tokens shape", lambda f, d: f(lg(d), tok(d, shape=(2, 4))), "tokens"),
        BadInput("token id ≥ V where scored", lambda f, d: f(lg(d), tok(d, 4)), "tokens"),
        BadInput("mask[:, 0] true", lambda f, d: f(lg(d), tok(d), torch.ones(2, 3, dtype=torch.bool, device=d)), "mask"),
        BadInput("mask shape", lambda f, d: f(lg(d), tok(d), m(d, (2, 4))), "mask"),
        BadInput("mask holds 2", lambda f, d: f(lg(d), tok(d), 2 * m(d).long()), "mask"),
        BadInput("NaN in a scoring row", lambda f, d: f(nan_row(d), tok(d), m(d)), "logits"),
    )


def _inputs():
    import numpy as np
    from hypothesis import strategies as st
    from hypothesis.extra.numpy import arrays

    @st.composite
    def draw(d):
        B, L, V = d(st.integers(1, 3)), d(st.integers(2, 6)), d(st.integers(1, 5))
        logits = d(arrays(np.float64, (B, L, V), elements=st.integers(-12, 12).map(lambda i: i / 4)))
        tokens = d(arrays(np.int64, (B, L), elements=st.integers(0, V - 1)))
        mask = d(arrays(np.bool_, (B, L)))
        mask[:, 0] = False
        if d(st.booleans()):  # rows that score nothing may hold NaN (e.g. fully masked attention)
            unread = ~np.concatenate([mask[:, 1:], np.zeros((B, 1), bool)], 1)
            logits = np.where(unread[..., None], np.nan, logits)
        return Call((torch.as_tensor(logits), torch.as_tensor(tokens), torch.as_tensor(mask)))

    return draw()


TOKEN_LOG_PROBS = Spec(
    name="token_log_probs",
    title="token_log_probs",
    area="llm",
    formula="out[b, t] = logits[b, t−1, yₜ] − logsumexp(logits[b, t−1]) where mask[b, t], else 0",
    source="the causal-LM convention: logits[:, t] predicts tokens[:, t+1] (Hugging Face causal LMs)",
    function=token_log_probs,
    reference=token_log_probs_reference,
    implementations={"fast": token_log_probs, "reference": token_log_probs_reference},
    properties=(
        Property("prefix_by_prefix", "off-by-one: = the model run prefix by prefix (logits[t−1] scores token t)",
                 _prefix_by_prefix),
        Property("definition", "== z[t−1, yₜ] − logsumexp(z[t−1]) on random masks (float64)", _definition),
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
    ),
    bad_inputs=_bad_inputs(),
    inputs=_inputs,
    doc="docs/llm/token_log_probs.md",
)

FAMILY: tuple[Spec, ...] = (TOKEN_LOG_PROBS,)
