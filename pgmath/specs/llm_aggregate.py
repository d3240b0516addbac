"""Specs of the token-loss aggregation: the weight of one token, and the weighted sum.

    𝓛 = Σ_b Σ_t w_{b,t} ℓ_{b,t} over the response tokens, with L_b = Σ_t mask[b, t],
    N = Σ_b L_b and B' = #{b : L_b > 0}:

    "token-mean"               w = 1 / N
    "seq-mean-token-sum"       w = 1 / B'
    "seq-mean-token-mean"      w = 1 / (B' · L_b)
    "seq-mean-token-sum-norm"  w = 1 / (B' · C)

Sources: DAPO (Yu et al., 2025) for the token mean; Shao et al. (2024), GRPO, for 1/|oᵢ|;
Liu et al. (2025), "Understanding R1-Zero-like training" (Dr. GRPO), for the constant C.

This module also holds the token-level helpers the other ``llm_*`` spec modules share: random
response masks (:func:`random_token_mask`), the Hypothesis strategy of masks and ``[B, L]``
arrays (:func:`token_arrays`) and the plain-loop weight reference
(:func:`aggregation_weights_reference`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from pgmath.llm.aggregate import AGGREGATION_MODES, aggregate_token_loss, aggregation_weights
from pgmath.specs import extremes
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

__all__ = [
    "FAMILY",
    "aggregate_token_loss_reference",
    "aggregation_options",
    "aggregation_weights_reference",
    "random_token_mask",
    "token_arrays",
    "token_mask",
    "token_zeros",
]

F64 = torch.float64
_DOC = "docs/llm/aggregate_token_loss.md"

# ---------------------------------------------------------------------------------------------
# shared token-level helpers


def random_token_mask(B: int, L: int, g: torch.Generator, device: torch.device, *,
                      p: float = 0.7, first_false: bool = False) -> torch.Tensor:
    """``[B, L]`` bool response mask with gaps and possibly empty rows, at least one token.

    ``first_false``: column 0 is never a response token (the log-prob convention)."""
    m = torch.rand(B, L, generator=g, device=device) < p
    if first_false:
        m[:, 0] = False
    if not bool(m.any()):
        m[0, -1] = True
    return m


def token_zeros(device: torch.device, *shape: int) -> torch.Tensor:
    """float64 zeros of ``shape`` (default ``[2, 3]``): the tensors of the bad-input calls."""
    return torch.zeros(*(shape or (2, 3)), dtype=F64, device=device)


def token_mask(device: torch.device, *shape: int) -> torch.Tensor:
    """An all-true response mask of ``shape`` (default ``[2, 3]``) for the bad-input calls."""
    return torch.ones(*(shape or (2, 3)), dtype=torch.bool, device=device)


def token_arrays(n: int, *, max_B: int = 4, max_L: int = 6, min_L: int = 1, nan_pads: bool = True,
                 first_false: bool = False) -> Any:
    """Hypothesis strategy of ``(mask [B, L] bool, [x₁ … xₙ] float64 [B, L])``.

    The mask has gaps and may have empty rows but selects at least one token; the arrays hold
    quarter-integers in [−5, 5] on the mask and, when ``nan_pads``, sometimes NaN outside it
    (a correct implementation never reads those)."""
    import numpy as np
    from hypothesis import strategies as st
    from hypothesis.extra.numpy import arrays

    @st.composite
    def draw(d):
        B, L = d(st.integers(1, max_B)), d(st.integers(max(min_L, 2 if first_false else 1), max_L))
        m = d(arrays(np.bool_, (B, L)))
        if first_false:
            m[:, 0] = False
        if not m.any():
            m[d(st.integers(0, B - 1)), d(st.integers(1 if first_false else 0, L - 1))] = True
        xs = []
        for _ in range(n):
            x = d(arrays(np.float64, (B, L), elements=st.integers(-20, 20).map(lambda i: i / 4)))
            if nan_pads and d(st.booleans()):
                x = np.where(m, x, np.nan)
            xs.append(torch.as_tensor(x))
        return torch.as_tensor(m), xs

    return draw()


def aggregation_options(mask: torch.Tensor, draw: Callable[[Any], Any]) -> dict[str, Any]:
    """Draw a mode and valid denominators for ``mask``: local (default) or global ones."""
    from hypothesis import strategies as st

    mode = draw(st.sampled_from(AGGREGATION_MODES))
    kw: dict[str, Any] = {"mode": mode}
    glob = draw(st.booleans())
    if mode == "token-mean" and glob:
        kw["normalizer"] = float(int(mask.sum()) + draw(st.integers(0, 5)))
    if mode != "token-mean" and glob:
        kw["num_sequences"] = float(int(mask.any(1).sum()) + draw(st.integers(0, 3)))
    if mode == "seq-mean-token-sum-norm":
        kw["normalizer"] = float(draw(st.integers(1, 10)))
    return kw


# ---------------------------------------------------------------------------------------------
# the weights


def aggregation_weights_reference(mask, mode, *, normalizer=None, num_sequences=None,
                                  dtype=torch.float32):
    """w_{b,t} from the table of the module docstring, by loops over b and t."""
    B, L = mask.shape
    lengths = [sum(bool(mask[b, t]) for t in range(L)) for b in range(B)]
    n_tokens = normalizer if mode == "token-mean" and normalizer is not None else sum(lengths)
    n_seq = num_sequences if num_sequences is not None else sum(1 for n in lengths if n > 0)
    w = torch.zeros(B, L, dtype=dtype, device=mask.device)
    # over the responses b, then their tokens t
    for b in range(B):
        for t in range(L):
            if not bool(mask[b, t]):
                continue
            if mode == "token-mean":
                w[b, t] = 1.0 / n_tokens
            elif mode == "seq-mean-token-sum":
                w[b, t] = 1.0 / n_seq
            elif mode == "seq-mean-token-mean":
                w[b, t] = 1.0 / (n_seq * lengths[b])
            else:
                w[b, t] = 1.0 / (n_seq * normalizer)
    return w


#: The two-response example of docs/llm/aggregate_token_loss.md (lengths 1 and 4, C = 8) and
#: the weight of a token of the short and of the long response, worked out by hand.
LENGTH_BIAS_TABLE = {
    "token-mean": (1 / 5, 1 / 5),
    "seq-mean-token-sum": (1 / 2, 1 / 2),
    "seq-mean-token-mean": (1 / 2, 1 / 8),
    "seq-mean-token-sum-norm": (1 / 16, 1 / 16),
}


def _table_mask(device: torch.device) -> torch.Tensor:
    return torch.tensor([[1, 0, 0, 0], [1, 1, 1, 1]], dtype=torch.bool, device=device)


def _table_kw(mode: str) -> dict[str, Any]:
    return {"normalizer": 8.0} if mode.endswith("norm") else {}


def _weights_length_bias(impl: Callable, ctx: VerifyContext) -> Outcome:
    """Lengths 1 and 4: each mode's weight on a token equals the hand-worked table."""
    m = _table_mask(ctx.device)
    err = 0.0
    for mode, (w_short, w_long) in LENGTH_BIAS_TABLE.items():
        w = impl(m, mode, **_table_kw(mode), dtype=F64)
        want = torch.tensor([[w_short, 0, 0, 0], [w_long] * 4], dtype=F64, device=ctx.device)
        err = max(err, max_abs_error(w, want))
    return outcome_within(err, 1e-15)


def _mode_cases(m: torch.Tensor) -> list[tuple[str, dict[str, Any]]]:
    """Every mode with local and with global denominators (N + 3, B' + 2, C = 7)."""
    n, bp = float(m.sum()), float(m.any(1).sum())
    return [
        ("token-mean", {}), ("token-mean", {"normalizer": n + 3}),
        ("seq-mean-token-sum", {}), ("seq-mean-token-sum", {"num_sequences": bp + 2}),
        ("seq-mean-token-mean", {}), ("seq-mean-token-mean", {"num_sequences": bp + 2}),
        ("seq-mean-token-sum-norm", {"normalizer": 7.0}),
        ("seq-mean-token-sum-norm", {"normalizer": 7.0, "num_sequences": bp + 2}),
    ]


def _weights_by_loop(impl: Callable, ctx: VerifyContext) -> Outcome:
    """Random masks with gaps and empty rows, every mode, local and global denominators."""
    g = ctx.generator(40)
    err = 0.0
    for B, L in [(1, 1), (3, 5), (6, 9)]:
        m = random_token_mask(B, L, g, ctx.device, p=0.5)
        for mode, kw in _mode_cases(m):
            want = aggregation_weights_reference(m, mode, **kw, dtype=F64)
            err = max(err, max_abs_error(impl(m, mode, **kw, dtype=F64), want))
    return outcome_within(err)


def _weights_padding_and_split(impl: Callable, ctx: VerifyContext) -> Outcome:
    """Extra pad columns and empty rows change no weight; micro-batches with the global
    denominators get the full batch's weights."""
    g = ctx.generator(41)
    m = random_token_mask(6, 5, g, ctx.device, p=0.6)
    m[:, 0] = True
    n, bp = float(m.sum()), float(m.any(1).sum())
    err = 0.0
    for mode in AGGREGATION_MODES:
        kw = {"normalizer": 9.0} if mode.endswith("norm") else {}
        full = impl(m, mode, **kw, dtype=F64)
        padded = torch.zeros(8, 8, dtype=torch.bool, device=ctx.device)
        padded[:6, :5] = m
        wp = impl(padded, mode, **kw, dtype=F64)
        err = max(err, max_abs_error(wp[:6, :5], full), float(wp[6:].abs().sum() + wp[:, 5:].abs().sum()))
        gkw = {**kw, **({"normalizer": n} if mode == "token-mean" else {"num_sequences": bp})}
        split = torch.cat([impl(m[i : i + 2], mode, **gkw, dtype=F64) for i in (0, 2, 4)])
        err = max(err, max_abs_error(split, full))
    return outcome_within(err)


def seq_mean_token_sum_as_mean_of_means(mask, mode, *, normalizer=None, num_sequences=None,
                                        dtype=torch.float32):
    """"seq-mean-token-sum" computed as the mean of per-sequence *means* (w = 1/(B'·L_b))."""
    if mode == "seq-mean-token-sum":
        mode = "seq-mean-token-mean"
    return aggregation_weights(mask, mode, normalizer=normalizer, num_sequences=num_sequences, dtype=dtype)


def token_mean_per_sequence_length(mask, mode, *, normalizer=None, num_sequences=None,
                                   dtype=torch.float32):
    """"token-mean" computed per sequence first (1/L_b), then averaged over sequences."""
    if mode == "token-mean":
        return aggregation_weights(mask, "seq-mean-token-mean", dtype=dtype)
    return aggregation_weights(mask, mode, normalizer=normalizer, num_sequences=num_sequences, dtype=dtype)


def weights_ignore_global_denominator(mask, mode, *, normalizer=None, num_sequences=None,
                                      dtype=torch.float32):
    """The global N / B' of a micro-batch ignored: every micro-batch divides by its own."""
    keep = normalizer if mode == "seq-mean-token-sum-norm" else None
    return aggregation_weights(mask, mode, normalizer=keep, dtype=dtype)


def norm_mode_divides_by_padded_width(mask, mode, *, normalizer=None, num_sequences=None,
                                      dtype=torch.float32):
    """"seq-mean-token-sum-norm" as Σ_b Σ_t m ℓ / width: the padded width, no division by B'."""
    if mode == "seq-mean-token-sum-norm":
        m = mask.bool()
        return m.to(dtype) / m.shape[-1]
    return aggregation_weights(mask, mode, normalizer=normalizer, num_sequences=num_sequences, dtype=dtype)


def seq_mean_counts_empty_rows(mask, mode, *, normalizer=None, num_sequences=None,
                               dtype=torch.float32):
    """B' = B: rows with no response token (dummy rows) counted in the sequence mean."""
    if mode != "token-mean" and num_sequences is None:
        num_sequences = mask.shape[0]
    return aggregation_weights(mask, mode, normalizer=normalizer, num_sequences=num_sequences, dtype=dtype)


def _weights_bad_inputs() -> tuple[BadInput, ...]:
    def m(d, *shape):
        return torch.ones(*(shape or (2, 3)), dtype=torch.bool, device=d)

    return (
        BadInput("unknown mode", lambda f, d: f(m(d), "mean"), "mode"),
        BadInput("-norm without C", lambda f, d: f(m(d), "seq-mean-token-sum-norm"), "normalizer"),
        BadInput("normalizer 0", lambda f, d: f(m(d), "token-mean", normalizer=0.0), "normalizer"),
        BadInput("normalizer for a seq-mean mode", lambda f, d: f(m(d), "seq-mean-token-mean", normalizer=3.0), "normalizer"),
        BadInput("num_sequences for token-mean", lambda f, d: f(m(d), "token-mean", num_sequences=3), "num_sequences"),
        BadInput("mask holds 2", lambda f, d: f(m(d).long() * 2, "token-mean"), "mask"),
        BadInput("1-D mask", lambda f, d: f(m(d, 4), "token-mean"), "mask"),
        BadInput("no token, default denominator", lambda f, d: f(~m(d), "token-mean"), "mask"),
    )


def _weights_inputs():
    from hypothesis import strategies as st

    @st.composite
    def draw(d):
        m, _ = d(token_arrays(0))
        kw = aggregation_options(m, d)
        return Call((m, kw.pop("mode")), {**kw, "dtype": F64})

    return draw()


_GLOBAL = "huggingface/transformers#34191 (gradient accumulation); verl-project/verl#5625, PR #5641"

AGGREGATION_WEIGHTS = Spec(
    name="aggregation_weights",
    title="aggregation_weights",
    area="llm",
    formula="w = 1/N | 1/B' | 1/(B'·L_b) | 1/(B'·C) on response tokens, 0 elsewhere",
    source="DAPO (Yu et al., 2025); GRPO (Shao et al., 2024); Dr. GRPO (Liu et al., 2025)",
    function=aggregation_weights,
    reference=aggregation_weights_reference,
    implementations={"fast": aggregation_weights},
    properties=(
        Property("length_bias_table", "lengths 1 and 4: each mode's token weight = the hand-worked table",
                 _weights_length_bias),
        Property("per_token_formula", "== per-token loop of the weight formulas (gaps, empty rows, global N/B')",
                 _weights_by_loop),
        Property("padding_and_split", "pad columns/rows change nothing; micro-batches with global N/B' = full batch",
                 _weights_padding_and_split),
    ),
    wrong_variants=(
        WrongVariant("seq_mean_token_sum_as_mean_of_means", "seq-mean-token-sum divides each sequence by its length",
                     "verl-project/verl#931 (fixes #911; the code is quoted in verl-project/verl#1233)",
                     seq_mean_token_sum_as_mean_of_means),
        WrongVariant("token_mean_per_sequence_length", "token-mean computed as a mean of per-sequence means (1/L_b)",
                     "GRPO's per-response 1/|oᵢ| where a token mean is meant (Liu et al. 2025, Dr. GRPO §3.1; "
                     "verl-project/verl#2776)", token_mean_per_sequence_length),
        WrongVariant("weights_ignore_global_denominator", "micro-batches divide by their own N / B' (global ones ignored)",
                     _GLOBAL, weights_ignore_global_denominator),
        WrongVariant("norm_mode_divides_by_padded_width", "-norm mode divides Σ m ℓ by the padded width, not by B'·C",
                     "verl agg_loss before verl-project/verl#5366 (loss_mask.shape[-1]; verl-project/verl#3741)",
                     norm_mode_divides_by_padded_width),
        WrongVariant("seq_mean_counts_empty_rows", "rows with no token counted in B'",
                     "derivation (verl's agg_loss excludes fully masked rows explicitly, verl-project/verl#3986)",
                     seq_mean_counts_empty_rows),
    ),
    bad_inputs=_weights_bad_inputs(),
    inputs=_weights_inputs,
    doc=_DOC,
)

# ---------------------------------------------------------------------------------------------
# the weighted sum


def aggregate_token_loss_reference(loss, mask, mode="token-mean", *, normalizer=None,
                                   num_sequences=None):
    """𝓛 by loops: each response's token sum (or mean), then the sequence/token denominators.

    Differentiable; only the response tokens are read."""
    B, L = mask.shape
    rows = [(b, [t for t in range(L) if bool(mask[b, t])]) for b in range(B)]
    rows = [(b, ts) for b, ts in rows if ts]  # responses with at least one token
    n_tok = normalizer if mode == "token-mean" and normalizer is not None else sum(len(ts) for _, ts in rows)
    n_seq = num_sequences if num_sequences is not None else len(rows)
    # accumulated in float64 whatever the input dtype (a bfloat16 running sum is 3 % off at
    # T = 300), returned in the input's dtype
    total = torch.zeros((), dtype=torch.float64, device=loss.device)
    # over the responses, then their tokens
    for b, ts in rows:
        s = sum(loss[b, t].to(torch.float64) for t in ts)
        if mode == "token-mean":
            total = total + s / n_tok
        elif mode == "seq-mean-token-sum":
            total = total + s / n_seq
        elif mode == "seq-mean-token-mean":
            total = total + s / (len(ts) * n_seq)
        else:
            total = total + s / (normalizer * n_seq)
    return total.to(loss.dtype)


def _aggregate_by_loop(impl: Callable, ctx: VerifyContext) -> Outcome:
    g = ctx.generator(42)
    err = 0.0
    for B, L in [(1, 1), (4, 6), (7, 9)]:
        m = random_token_mask(B, L, g, ctx.device, p=0.5)
        loss = torch.randn(B, L, dtype=F64, device=ctx.device, generator=g)
        for mode, kw in _mode_cases(m):
            want = aggregate_token_loss_reference(loss, m, mode, **kw)
            err = max(err, max_abs_error(impl(loss, m, mode, **kw), want))
    return outcome_within(err)


def _aggregate_padding(impl: Callable, ctx: VerifyContext) -> Outcome:
    """NaN pad columns and an all-pad row: same loss, finite gradient, 0 on every pad."""
    g = ctx.generator(43)
    loss = torch.randn(3, 5, dtype=F64, device=ctx.device, generator=g)
    m = torch.tensor([[1, 1, 0, 0, 0], [1, 1, 1, 1, 1], [0, 1, 1, 0, 0]], dtype=torch.bool, device=ctx.device)
    pm = torch.zeros(4, 9, dtype=torch.bool, device=ctx.device)
    pm[:3, :5] = m
    err = 0.0
    for mode in AGGREGATION_MODES:
        kw = {"normalizer": 10.0} if mode.endswith("norm") else {}
        padded = torch.full((4, 9), math.nan, dtype=F64, device=ctx.device)
        padded[:3, :5] = torch.where(m, loss, torch.full_like(loss, math.nan))
        padded.requires_grad_(True)
        out = impl(padded, pm, mode, **kw)
        (grad,) = torch.autograd.grad(out, padded)
        pad_grad = float(torch.where(pm, torch.zeros_like(grad), grad).abs().sum())
        err = max(err, max_abs_error(out.detach(), impl(loss, m, mode, **kw)), pad_grad)
    return outcome_within(err)


def _aggregate_split(impl: Callable, ctx: VerifyContext) -> Outcome:
    """Σ of micro-batch losses with the global N / B' = the full-batch loss, every mode."""
    g = ctx.generator(44)
    loss = torch.randn(6, 7, dtype=F64, device=ctx.device, generator=g)
    m = random_token_mask(6, 7, g, ctx.device)
    m[:, 1] = True
    err = 0.0
    for mode in AGGREGATION_MODES:
        kw = {"normalizer": 9.0} if mode.endswith("norm") else {}
        full = impl(loss, m, mode, **kw)
        gkw = {**kw, **({"normalizer": float(m.sum())} if mode == "token-mean" else {"num_sequences": 6})}
        parts = sum(impl(loss[i : i + 2], m[i : i + 2], mode, **gkw) for i in (0, 2, 4))
        err = max(err, max_abs_error(parts, full))
    return outcome_within(err)


def _aggregate_gradient_table(impl: Callable, ctx: VerifyContext) -> Outcome:
    """∂𝓛/∂ℓ on the lengths-1-and-4 example = the hand-worked weight table."""
    m = _table_mask(ctx.device)
    err = 0.0
    for mode, (w_short, w_long) in LENGTH_BIAS_TABLE.items():
        loss = torch.zeros(2, 4, dtype=F64, device=ctx.device, requires_grad=True)
        (grad,) = torch.autograd.grad(impl(loss, m, mode, **_table_kw(mode)), loss)
        want = torch.tensor([[w_short, 0, 0, 0], [w_long] * 4], dtype=F64, device=ctx.device)
        err = max(err, max_abs_error(grad, want))
    return outcome_within(err, 1e-15)


def aggregate_nan_times_zero_in_pads(loss, mask, mode="token-mean", *, normalizer=None,
                                     num_sequences=None):
    """Pads zeroed by multiplying with the mask: NaN · 0 = NaN leaks from a pad."""
    w = aggregation_weights(mask, mode, normalizer=normalizer, num_sequences=num_sequences, dtype=loss.dtype)
    return (loss * mask.to(loss.dtype) * w).sum()


def aggregate_mask_ignored_in_denominator(loss, mask, mode="token-mean", *, normalizer=None,
                                          num_sequences=None):
    """token-mean as Σ m ℓ / (B·L): the pads counted in the denominator."""
    safe = torch.where(mask.bool(), loss, torch.zeros_like(loss))
    if mode == "token-mean" and normalizer is None:
        return safe.sum() / loss.numel()
    return aggregate_token_loss(loss, mask, mode, normalizer=normalizer, num_sequences=num_sequences)


def _aggregate_bad_inputs() -> tuple[BadInput, ...]:
    z, m = token_zeros, token_mask

    def nan(d):
        x = z(d)
        x[0, 1] = math.nan
        return x

    return (
        BadInput("unknown mode", lambda f, d: f(z(d), m(d), "mean"), "mode"),
        BadInput("mask shape", lambda f, d: f(z(d), m(d, 2, 4)), "mask"),
        BadInput("1-D loss", lambda f, d: f(z(d, 6), m(d, 6)), "loss"),
        BadInput("integer loss", lambda f, d: f(z(d).long(), m(d)), "loss"),
        BadInput("NaN at a response token", lambda f, d: f(nan(d), m(d)), "loss"),
        BadInput("-norm without C", lambda f, d: f(z(d), m(d), "seq-mean-token-sum-norm"), "normalizer"),
    )


def _aggregate_inputs():
    from hypothesis import strategies as st

    @st.composite
    def draw(d):
        m, (loss,) = d(token_arrays(1))
        kw = aggregation_options(m, d)
        return Call((loss, m, kw.pop("mode")), kw)

    return draw()


AGGREGATE_TOKEN_LOSS = Spec(
    name="aggregate_token_loss",
    title="aggregate_token_loss",
    area="llm",
    formula="𝓛 = Σ_b Σ_t w_{b,t} ℓ_{b,t}, pads never read",
    source="DAPO (Yu et al., 2025); GRPO (Shao et al., 2024); Dr. GRPO (Liu et al., 2025)",
    function=aggregate_token_loss,
    reference=aggregate_token_loss_reference,
    implementations={"fast": aggregate_token_loss},
    properties=(
        Property("definition", "== loop over responses, every mode, local and global N/B'", _aggregate_by_loop),
        Property("padding_invariance", "NaN pad columns and empty rows: same loss, 0 gradient on pads",
                 _aggregate_padding),
        Property("micro_batch_split", "Σ micro-batch losses with global N/B' = full-batch loss", _aggregate_split),
        Property("gradient_is_weight_table", "∂𝓛/∂ℓ on lengths 1 and 4 = the hand-worked weights",
                 _aggregate_gradient_table),
    ),
    wrong_variants=(
        WrongVariant("aggregate_nan_times_zero_in_pads", "pads zeroed by multiplying with the mask (NaN · 0 = NaN)",
                     "ecmwf/WeatherGenerator#2723 (the same masking in another loss)",
                     aggregate_nan_times_zero_in_pads),
        WrongVariant("aggregate_mask_ignored_in_denominator", "token-mean divides by B·L: pads counted",
                     "no public report linked (a masked mean written as .mean())",
                     aggregate_mask_ignored_in_denominator),
    ),
    bad_inputs=_aggregate_bad_inputs(),
    inputs=_aggregate_inputs,
    doc=_DOC,
    extra={"extremes": extremes.aggregate_token_loss},
)

FAMILY: tuple[Spec, ...] = (AGGREGATION_WEIGHTS, AGGREGATE_TOKEN_LOSS)
