"""Token log-probabilities and entropies in chunks: no ``[n, V]`` copy of the logits, and a path
from the hidden states that never holds the ``[B, L, V]`` logits at all.

For the scored rows zₜ (row t−1 of the logits scores token t) at temperature T:

    z′ = z / T,   lse = logsumexp(z′),   log π(y) = z′[y] − lse,
    p = exp(z′ − lse),   H = −Σⱼ pⱼ log pⱼ                              (0 · log 0 = 0)

and the gradients the backward pass writes, per scored row, with g the incoming gradient:

    ∂ log π(y) / ∂z = (onehot(y) − p) / T
    ∂ H / ∂z        = −p ⊙ (log p + H) / T

Both are computed ``chunk`` rows at a time (default: about 2²⁰ logits per chunk) with one fused
log-softmax per chunk, so the extra memory is O(n + chunk · V) in the forward and the backward
pass; the backward pass recomputes each chunk's softmax instead of storing it. From the hidden states the logits of a
chunk are ``hidden[rows] @ weightᵀ + bias``, recomputed in the backward pass, and

    ∂/∂hidden[rows] = dz @ weight,   ∂/∂weight = Σ_chunks dzᵀ @ hidden[rows],   ∂/∂bias = Σ dz

(Liger-Kernel's fused linear cross-entropy does the same on GPU, in Triton.)

Source: the causal-LM convention of :mod:`pgmath.llm.logprobs`; temperature as the sampler
applies it, softmax(z / T) (huggingface/trl#4159, OpenRLHF/OpenRLHF#1319).

Checked by: the specs ``token_log_probs``, ``token_entropy`` and ``token_log_probs_from_hidden``
(:mod:`pgmath.specs.llm_logprobs`, run by ``tests/test_specs.py``), ``tests/test_llm_chunked.py``
(gradients against autograd through the full logits, chunk sizes, bf16, CUDA when present).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from pgmath.validation import as_real, validate_float_tensor, validate_mask

__all__ = [
    "DEFAULT_CHUNK_ELEMENTS",
    "MIN_HIDDEN_CHUNK_ROWS",
    "HiddenRowsFunction",
    "LogitsRowsFunction",
    "logits_rows",
    "rows_per_chunk",
    "scored_rows",
    "token_log_probs_from_hidden",
    "validate_chunk_size",
    "validate_hidden_inputs",
    "validate_scored_result",
    "validate_temperature",
    "validate_token_inputs",
]

#: Logits per chunk when ``chunk_size`` is None (4 MiB float32 temporaries: they stay in cache).
DEFAULT_CHUNK_ELEMENTS = 1 << 20

_INT_DTYPES = (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8)


# ---------------------------------------------------------------------------------------------
# input checks


def validate_temperature(temperature: object) -> float:
    """T as a float: finite and > 0 (``ValueError`` naming ``temperature`` otherwise)."""
    try:
        t = as_real(temperature, "temperature")
    except ValueError as exc:
        raise ValueError(f"temperature must be a finite number > 0: {exc}") from None
    if not (math.isfinite(t) and t > 0):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    return t


def validate_chunk_size(chunk_size: object) -> int | None:
    """None or a positive int (``ValueError`` naming ``chunk_size`` otherwise)."""
    if chunk_size is None:
        return None
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be None or a positive int, got {chunk_size!r}")
    return chunk_size


def validate_token_inputs(tokens: object, mask: object | None, B: int, L: int, V: int,
                          device: torch.device, *, scored: bool = True) -> torch.Tensor:
    """The bool mask of scored tokens ``[B, L]`` (default: all but position 0), after checking
    ``tokens`` (integer ``[B, L]`` on ``device``, ids in [0, V) where scored; skipped when
    ``tokens`` is None) and ``mask`` (``mask[:, 0]`` false)."""
    if mask is None:
        m = torch.ones(B, L, dtype=torch.bool, device=device)
        m[:, 0] = False
    else:
        m = validate_mask(mask, "mask", (B, L), device)
        if bool(m[:, 0].any()):
            raise ValueError(
                "mask[:, 0] must be False: the first token has no preceding logits "
                "(position t is scored by logits[:, t-1])"
            )
    if tokens is None and not scored:
        return m
    if not isinstance(tokens, torch.Tensor):
        raise ValueError(f"tokens must be a torch.Tensor, got {type(tokens).__name__}")
    if tokens.dtype not in _INT_DTYPES:
        raise ValueError(f"tokens must have an integer dtype, got {tokens.dtype}")
    if tuple(tokens.shape) != (B, L):
        raise ValueError(f"tokens has shape {tuple(tokens.shape)} but logits has [B, L] = {(B, L)}")
    if tokens.device != device:
        raise ValueError(f"tokens is on {tokens.device} but the logits/hidden states are on {device}")
    bad = m & ((tokens < 0) | (tokens >= V))
    if bool(bad.any()):
        raise ValueError(f"tokens holds ids outside [0, {V}) at masked-in positions")
    return m


def validate_scored_result(values: torch.Tensor, what: str = "logits") -> None:
    """Raise naming ``what`` if a scored value (log-prob or entropy) is not finite."""
    bad = ~torch.isfinite(values)
    if bool(bad.any()):
        raise ValueError(
            f"{what} give a non-finite log-probability/entropy at {int(bad.sum())} masked-in "
            "position(s) (NaN/inf in the logits row that scores the token, or a token of probability 0)"
        )


def scored_rows(m: torch.Tensor) -> torch.Tensor:
    """Flat row indices ``b·L + t − 1`` of the logits rows that score the tokens where ``m``
    (row-major order, the order of ``masked_scatter``)."""
    L = m.shape[1]
    b, t = m.nonzero(as_tuple=True)
    return b * L + t - 1


#: Rows per chunk of the hidden-state path when ``chunk_size`` is None, at least: each chunk
#: reads all of ``weight`` for its matrix product, so small chunks would re-read it too often.
MIN_HIDDEN_CHUNK_ROWS = 256


def rows_per_chunk(V: int, chunk_size: int | None, minimum: int = 1) -> int:
    """Rows per chunk: ``chunk_size``, or about :data:`DEFAULT_CHUNK_ELEMENTS` / V (at least
    ``minimum``)."""
    if chunk_size is not None:
        return chunk_size
    return max(minimum, DEFAULT_CHUNK_ELEMENTS // max(V, 1))


def _chunks(n: int, size: int) -> list[tuple[int, int]]:
    return [(s, min(s + size, n)) for s in range(0, n, size)]


# ---------------------------------------------------------------------------------------------
# the per-chunk math (z′ = z / T in the compute dtype)


def _scaled(z: torch.Tensor, cd: torch.dtype, inv_t: float) -> torch.Tensor:
    """z / T in the compute dtype (a view of ``z`` when it already is and T = 1)."""
    z = z.to(cd)
    return z * inv_t if inv_t != 1.0 else z


def _forward_chunk(zs: torch.Tensor, tgt: torch.Tensor | None, want_h: bool
                   ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """``(log π(tgt), H)`` of the rows of z′ (``None`` for what is not asked). One fused
    log-softmax per chunk (a row with NaN, +inf or only −inf gives NaN, refused afterwards)."""
    logp = torch.log_softmax(zs, dim=-1)
    lp = logp.gather(1, tgt.unsqueeze(1)).squeeze(1) if tgt is not None else None
    h = None
    if want_h:
        logp.clamp_(min=torch.finfo(logp.dtype).min)  # log 0 = −inf → finite: 0 · log 0 = 0
        h = -torch.linalg.vecdot(logp.exp(), logp)
    return lp, h


def _grad_chunk(zs: torch.Tensor, tgt: torch.Tensor | None, g_lp: torch.Tensor | None,
                h: torch.Tensor | None, g_h: torch.Tensor | None, inv_t: float) -> torch.Tensor:
    """∂(Σ g_lp · log π(tgt) + Σ g_h · H) / ∂z for the rows of z′ = z / T (the softmax is
    recomputed here, not stored by the forward pass)."""
    if g_h is None:
        d = torch.softmax(zs, dim=-1).mul_(-g_lp.unsqueeze(1))
    else:
        logp = torch.log_softmax(zs, dim=-1).clamp_(min=torch.finfo(zs.dtype).min)
        p = logp.exp()
        d = logp.add_(h.unsqueeze(1)).mul_(p).mul_(-g_h.unsqueeze(1))  # −g_h p (log p + H)
        if g_lp is not None:
            d.sub_(p.mul_(g_lp.unsqueeze(1)))
    if g_lp is not None:
        d.scatter_add_(1, tgt.unsqueeze(1), g_lp.unsqueeze(1))
    return d.mul_(inv_t) if inv_t != 1.0 else d


def _flat_view(x: torch.Tensor) -> torch.Tensor | None:
    """``x [B, L, V]`` as a ``[B·L, V]`` view, or None when its strides allow no such view."""
    try:
        return x.view(-1, x.shape[-1])
    except RuntimeError:
        return None


def _row_block(x: torch.Tensor, flat: torch.Tensor | None, rows: torch.Tensor) -> torch.Tensor:
    """Rows ``rows`` (flat indices b·L + t) of ``x [B, L, V]``: a view when they are one
    contiguous run of a viewable tensor, else a gathered ``[chunk, V]`` copy."""
    if flat is None:
        L = x.shape[1]
        return x[rows // L, rows % L]
    first, last = int(rows[0]), int(rows[-1])
    if last - first + 1 == rows.numel():
        return flat[first:last + 1]
    return flat.index_select(0, rows)


# ---------------------------------------------------------------------------------------------
# from logits


class LogitsRowsFunction(torch.autograd.Function):
    """``(log π(tgt), H)`` of the rows ``rows`` (flat b·L + t) of ``logits [B, L, V]`` at
    temperature T, in chunks.

    ``forward(ctx, logits, rows, tgt, inv_t, chunk, want_lp, want_h, cd)`` returns two ``[n]``
    tensors (empty where not wanted); the backward pass recomputes each chunk's softmax and
    writes only the scored rows of the gradient (the others are exactly 0)."""

    @staticmethod
    def forward(ctx: Any, logits: torch.Tensor, rows: torch.Tensor, tgt: torch.Tensor, inv_t: float,
                chunk: int, want_lp: bool, want_h: bool, cd: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        n = rows.numel()
        flat = _flat_view(logits)
        lp = torch.empty(n if want_lp else 0, dtype=cd, device=logits.device)
        h = torch.empty(n if want_h else 0, dtype=cd, device=logits.device)
        for s, e in _chunks(n, chunk):
            zs = _scaled(_row_block(logits, flat, rows[s:e]), cd, inv_t)
            lp_c, h_c = _forward_chunk(zs, tgt[s:e] if want_lp else None, want_h)
            if want_lp:
                lp[s:e] = lp_c
            if want_h:
                h[s:e] = h_c
        ctx.save_for_backward(logits, rows, tgt, h)
        ctx.cfg = (inv_t, chunk, want_lp, want_h, cd)
        return lp, h

    @staticmethod
    def backward(ctx: Any, g_lp: torch.Tensor | None, g_h: torch.Tensor | None) -> tuple[Any, ...]:
        logits, rows, tgt, h = ctx.saved_tensors
        inv_t, chunk, want_lp, want_h, cd = ctx.cfg
        flat = _flat_view(logits)
        grad = torch.zeros_like(logits, memory_format=torch.contiguous_format)
        gflat = grad.view(-1, grad.shape[-1])
        g_lp = g_lp if want_lp and g_lp is not None else None
        g_h = g_h if want_h and g_h is not None else None
        if g_lp is None and g_h is None:
            return (grad, *([None] * 7))
        for s, e in _chunks(rows.numel(), chunk):
            zs = _scaled(_row_block(logits, flat, rows[s:e]), cd, inv_t)
            d = _grad_chunk(zs, tgt[s:e] if g_lp is not None else None,
                            g_lp[s:e].to(cd) if g_lp is not None else None,
                            h[s:e] if g_h is not None else None,
                            g_h[s:e].to(cd) if g_h is not None else None, inv_t)
            gflat.index_copy_(0, rows[s:e], d.to(grad.dtype))
        return (grad, *([None] * 7))


def logits_rows(logits: torch.Tensor, m: torch.Tensor, tokens: torch.Tensor | None, temperature: float,
                chunk_size: int | None, *, want_lp: bool, want_h: bool
                ) -> tuple[torch.Tensor, torch.Tensor, torch.dtype]:
    """``(log-probs [n], entropies [n], compute dtype)`` of the rows that score the tokens where
    ``m`` (the engine behind :func:`pgmath.llm.token_log_probs` and :func:`pgmath.llm.token_entropy`)."""
    V = logits.shape[-1]
    cd = torch.promote_types(logits.dtype, torch.float32)
    rows = scored_rows(m)
    tgt = tokens[m].long() if tokens is not None else torch.zeros_like(rows)
    lp, h = LogitsRowsFunction.apply(logits, rows, tgt, 1.0 / temperature, rows_per_chunk(V, chunk_size),
                                     want_lp, want_h, cd)
    return lp, h, cd


# ---------------------------------------------------------------------------------------------
# from hidden states


class HiddenRowsFunction(torch.autograd.Function):
    """``(log π(tgt), H)`` of ``softmax((hidden[rows] @ weightᵀ + bias) / T)``, chunk by chunk;
    the logits of a chunk are recomputed in the backward pass, never stored."""

    @staticmethod
    def forward(ctx: Any, hflat: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                rows: torch.Tensor, tgt: torch.Tensor, inv_t: float, chunk: int, want_h: bool,
                cd: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        n = rows.numel()
        lp = torch.empty(n, dtype=cd, device=hflat.device)
        h = torch.empty(n if want_h else 0, dtype=cd, device=hflat.device)
        for s, e in _chunks(n, chunk):
            z = torch.nn.functional.linear(hflat.index_select(0, rows[s:e]), weight, bias)
            lp[s:e], h_c = _forward_chunk(_scaled(z, cd, inv_t), tgt[s:e], want_h)
            if want_h:
                h[s:e] = h_c
        ctx.save_for_backward(hflat, weight, bias, rows, tgt, h)
        ctx.cfg = (inv_t, chunk, want_h, cd)
        return lp, h

    @staticmethod
    def backward(ctx: Any, g_lp: torch.Tensor | None, g_h: torch.Tensor | None) -> tuple[Any, ...]:
        hflat, weight, bias, rows, tgt, h = ctx.saved_tensors
        inv_t, chunk, want_h, cd = ctx.cfg
        g_h = g_h if want_h else None
        acc = torch.promote_types(weight.dtype, torch.float32)  # accumulate over chunks in ≥ fp32
        grad_h = torch.zeros_like(hflat, memory_format=torch.contiguous_format) if ctx.needs_input_grad[0] else None
        grad_w = torch.zeros(weight.shape, dtype=acc, device=weight.device) if ctx.needs_input_grad[1] else None
        grad_b = torch.zeros(bias.shape, dtype=acc, device=bias.device) \
            if bias is not None and ctx.needs_input_grad[2] else None
        for s, e in _chunks(rows.numel(), chunk):
            hs = hflat.index_select(0, rows[s:e])
            zs = _scaled(torch.nn.functional.linear(hs, weight, bias), cd, inv_t)
            d = _grad_chunk(zs, tgt[s:e] if g_lp is not None else None,
                            g_lp[s:e].to(cd) if g_lp is not None else None,
                            h[s:e] if g_h is not None else None,
                            g_h[s:e].to(cd) if g_h is not None else None, inv_t)
            d = d.to(weight.dtype)
            if grad_h is not None:
                grad_h.index_copy_(0, rows[s:e], (d @ weight).to(grad_h.dtype))
            if grad_w is not None:
                grad_w.add_((d.t() @ hs).to(acc))
            if grad_b is not None:
                grad_b.add_(d.sum(0).to(acc))
        grad_w = grad_w.to(weight.dtype) if grad_w is not None else None
        grad_b = grad_b.to(bias.dtype) if grad_b is not None else None
        return (grad_h, grad_w, grad_b, *([None] * 6))


def validate_hidden_inputs(hidden: object, weight: object, bias: object | None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(hidden, weight)`` after checking ``hidden [B, L, d]``, ``weight [V, d]`` and ``bias [V]``
    (float, one dtype and device; ``ValueError`` naming the argument otherwise)."""
    hidden = validate_float_tensor(hidden, "hidden", finite=False)
    weight = validate_float_tensor(weight, "weight", finite=False)
    if hidden.dim() != 3 or 0 in hidden.shape:
        raise ValueError(f"hidden must have a non-empty shape [B, L, d], got {tuple(hidden.shape)}")
    if weight.dim() != 2 or weight.shape[1] != hidden.shape[2] or weight.shape[0] == 0:
        raise ValueError(f"weight must have shape [V, d] with d = {hidden.shape[2]} (hidden's last "
                         f"dimension), got {tuple(weight.shape)}")
    if weight.device != hidden.device:
        raise ValueError(f"weight is on {weight.device} but hidden is on {hidden.device}")
    if weight.dtype != hidden.dtype:
        raise ValueError(f"weight has dtype {weight.dtype} but hidden has {hidden.dtype}")
    if bias is not None:
        bias = validate_float_tensor(bias, "bias", finite=False)
        if tuple(bias.shape) != (weight.shape[0],) or bias.device != hidden.device or bias.dtype != hidden.dtype:
            raise ValueError(f"bias must be a [V] = [{weight.shape[0]}] tensor of hidden's dtype and "
                             f"device, got {tuple(bias.shape)} {bias.dtype} on {bias.device}")
    return hidden, weight


def token_log_probs_from_hidden(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    tokens: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    bias: torch.Tensor | None = None,
    temperature: float = 1.0,
    chunk_size: int | None = None,
    return_entropy: bool = False,
    dtype: torch.dtype | None = None,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """:func:`pgmath.llm.token_log_probs` of the logits ``hidden @ weightᵀ + bias``, without
    ever holding the ``[B, L, V]`` logits.

        z[b, t] = hidden[b, t] @ weightᵀ + bias          (the LM head, e.g. ``model.lm_head``)
        out[b, t] = log softmax(z[b, t−1] / T)[tokens[b, t]]   where mask[b, t], else 0
        H[b, t]   = −Σⱼ pⱼ log pⱼ,  p = softmax(z[b, t−1] / T) where mask[b, t], else 0

    Forward and backward run ``chunk_size`` scored tokens at a time (the logits of a chunk are
    recomputed in the backward pass), so the extra memory is O(n + chunk · V + V · d); the
    gradients with respect to ``hidden``, ``weight`` and ``bias`` equal autograd through the full
    logits (accumulated over chunks in at least float32).

    Args:
      hidden: ``[B, L, d]`` float, the last hidden states; ``hidden[:, t]`` predicts
        ``tokens[:, t+1]``. Rows that score no token are never read (they may hold NaN).
      weight: ``[V, d]``, same dtype and device as ``hidden`` (``lm_head.weight``).
      tokens: ``[B, L]`` integer ids; ids outside [0, V) are allowed only where masked out.
      mask: ``[B, L]`` bool/0-1, the tokens to score; ``mask[:, 0]`` false. None: all but the first.
      bias: optional ``[V]``.
      temperature: the sampling temperature T > 0 (log-probs of softmax(z / T)).
      chunk_size: scored tokens per chunk (None: about 2²⁰ logits per chunk, at least 256 rows
        so that the matrix products stay efficient).
      return_entropy: also return the entropies ``[B, L]``.
      dtype: of the result (default: ``hidden``'s dtype); computed in at least float32.
    Returns:
      ``[B, L]`` log-probs (and ``[B, L]`` entropies with ``return_entropy``), 0 where masked out.

    Checked by: the spec ``token_log_probs_from_hidden`` (:mod:`pgmath.specs.llm_logprobs`) and
    ``tests/test_llm_chunked.py``.
    """
    hidden, weight = validate_hidden_inputs(hidden, weight, bias)
    T = validate_temperature(temperature)
    chunk = validate_chunk_size(chunk_size)
    B, L, d = hidden.shape
    V = weight.shape[0]
    m = validate_token_inputs(tokens, mask, B, L, V, hidden.device)
    cd = torch.promote_types(hidden.dtype, torch.float32)
    rows = scored_rows(m)
    tgt = tokens[m].long()
    lp, h = HiddenRowsFunction.apply(hidden.reshape(B * L, d), weight, bias, rows, tgt, 1.0 / T,
                                     rows_per_chunk(V, chunk, MIN_HIDDEN_CHUNK_ROWS), return_entropy, cd)
    validate_scored_result(lp.detach(), "hidden/weight")
    out_dtype = hidden.dtype if dtype is None else dtype
    out = torch.zeros(B, L, dtype=cd, device=hidden.device).masked_scatter(m, lp).to(out_dtype)
    if not return_entropy:
        return out
    validate_scored_result(h.detach(), "hidden/weight")
    ent = torch.zeros(B, L, dtype=cd, device=hidden.device).masked_scatter(m, h).to(out_dtype)
    return out, ent
