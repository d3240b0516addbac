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
pass; the backward pass recomputes each chunk's softmax instead of storing it.

From the hidden states the logits are ``hidden[rows] @ weightᵀ + bias``. The forward pass computes
them ``fwd`` rows at a time into a reused buffer and keeps lse (O(n)); the backward pass recomputes
them in tiles of rows × vocabulary columns (with lse a tile's softmax needs only the tile) and,
with dz = ∂/∂z,

    ∂/∂hidden[rows] = Σ_tiles dz @ weight[cols],   ∂/∂weight[cols] = Σ_tiles dzᵀ @ hidden[rows],
    ∂/∂bias = Σ dz

so forward + backward take four products of the logits' size to autograd's three (the logits are
computed twice); the saving is in the passes over the logits: one upcast and one in-place
log-softmax per forward chunk, and for the log-probs' gradient −g p / T = −sign(g) ·
exp(z / T − lse + log |g / T|), one exponential per tile (the offset and 1/T ride in the matrix
product for float32/float64 weights), the sign applied to rows of ``hidden`` and of ∂/∂hidden, and
the one-hot term g · onehot(y) / T added outside the tiles, O(n · d) in all.
Liger-Kernel's fused linear cross-entropy (``LigerFusedLinearCrossEntropyFunction``, GPU, Triton)
gets by with three products because its output is a reduced loss: one upstream number, so it forms
both gradients in the forward pass and its backward pass only rescales them. Per-token log-probs
feed PPO/GRPO losses whose weights gₜ reach this function only in the backward pass, and
∂/∂weight = −Σₜ gₜ (pₜ − eₜ) hₜᵀ / T needs every pₜ again: stored (the logits' size) or recomputed
(the fourth product).

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
    "HIDDEN_BUFFER_BYTES",
    "HIDDEN_BUFFER_FRACTION",
    "HIDDEN_MAX_TILE_ROWS",
    "HIDDEN_MIN_TILE_COLS",
    "MAX_COPY_RUNS",
    "HiddenRowsFunction",
    "LogitsRowsFunction",
    "copy_rows_into",
    "entropy_of_log_probs_",
    "hidden_plan",
    "log_softmax_",
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

#: Logits per chunk when ``chunk_size`` is None: one reused float32 buffer of 64 MiB (524 rows at
#: V = 32 000, 0.13× the bfloat16 logits of the benchmark). Few, large operations on a reused
#: buffer: every chunk costs a fixed wait for the threads on a loaded machine and fresh
#: temporaries cost page faults (``benchmarks/logprobs.py``; 2²⁰ was 10× slower than TRL there).
DEFAULT_CHUNK_ELEMENTS = 1 << 24

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


def rows_per_chunk(V: int, chunk_size: int | None) -> int:
    """Rows per chunk of the logits path: ``chunk_size``, or about :data:`DEFAULT_CHUNK_ELEMENTS` / V."""
    if chunk_size is not None:
        return chunk_size
    return max(1, DEFAULT_CHUNK_ELEMENTS // max(V, 1))


def _chunks(n: int, size: int) -> list[tuple[int, int]]:
    return [(s, min(s + size, n)) for s in range(0, n, size)]


# ---------------------------------------------------------------------------------------------
# the per-chunk math (z′ = z / T in the compute dtype)


def _scaled(z: torch.Tensor, cd: torch.dtype, inv_t: float) -> torch.Tensor:
    """z / T in the compute dtype (a view of ``z`` when it already is and T = 1)."""
    z = z.to(cd)
    return z * inv_t if inv_t != 1.0 else z


def log_softmax_(f: torch.Tensor) -> torch.Tensor:
    """log-softmax of the rows of ``f`` written over ``f`` (a buffer the caller owns). On the CPU
    the kernel reads each row before writing it, so it runs in place; elsewhere out of place."""
    if f.device.type == "cpu":
        return torch._log_softmax(f, -1, False, out=f)
    return f.copy_(torch.log_softmax(f, dim=-1))


def entropy_of_log_probs_(logp: torch.Tensor, pbuf: torch.Tensor) -> torch.Tensor:
    """H = −Σ p log p of the rows of ``logp`` (clamped in place: log 0 = −inf → finite, so that
    0 · log 0 = 0), p computed in sub-blocks into the reused flat buffer ``pbuf``."""
    logp.clamp_(min=torch.finfo(logp.dtype).min)
    n, V = logp.shape
    sub = max(1, pbuf.numel() // V)
    h = torch.empty(n, dtype=logp.dtype, device=logp.device)
    for a in range(0, n, sub):  # over blocks of rows
        b = min(a + sub, n)
        p = torch.exp(logp[a:b], out=pbuf[: (b - a) * V].view(b - a, V))
        h[a:b] = -torch.linalg.vecdot(p, logp[a:b])
    return h


def _forward_chunk(f: torch.Tensor, tgt: torch.Tensor | None, pbuf: torch.Tensor | None
                   ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """``(log π(tgt), H)`` of the rows of z′ held in the buffer ``f`` (overwritten; ``None`` for
    what is not asked; H when a probability buffer ``pbuf`` is given). One fused log-softmax per
    chunk (a row with NaN, +inf or only −inf gives NaN, refused afterwards)."""
    logp = log_softmax_(f)
    lp = logp.gather(1, tgt.unsqueeze(1)).squeeze(1) if tgt is not None else None
    h = entropy_of_log_probs_(logp, pbuf) if pbuf is not None else None
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


#: A chunk whose rows form more contiguous runs than this is gathered (one copy) instead.
MAX_COPY_RUNS = 32


def copy_rows_into(out: torch.Tensor, x: torch.Tensor, flat: torch.Tensor | None, rows: torch.Tensor) -> torch.Tensor:
    """``out[:] = x``'s rows ``rows`` (flat b·L + t), run by contiguous run, with no temporary
    (the scored rows of a batch are one run per sequence); many short runs are gathered at once."""
    if flat is not None and rows.numel() > 1:
        breaks = torch.nonzero(rows.diff() != 1).squeeze(1).tolist()
        if len(breaks) < MAX_COPY_RUNS:
            starts = [0, *(b + 1 for b in breaks)]
            ends = [*(b + 1 for b in breaks), rows.numel()]
            first = rows[starts].tolist()
            for a, b, r in zip(starts, ends, first):  # over the contiguous runs
                out[a:b].copy_(flat[r:r + b - a])
            return out
    return out.copy_(_row_block(x, flat, rows))


def _row_block(x: torch.Tensor, flat: torch.Tensor | None, rows: torch.Tensor) -> torch.Tensor:
    """Rows ``rows`` (flat indices b·L + t) of ``x [B, L, V]``: a view when they are one
    contiguous run of a viewable tensor, else a gathered ``[chunk, V]`` copy."""
    if flat is None:
        L = x.shape[1]
        return x[rows // L, rows % L]
    return _take_rows(flat, rows)


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
        V = logits.shape[-1]
        buf = torch.empty(min(chunk, n) * V, dtype=cd, device=logits.device)
        # probabilities of the entropy in blocks of a quarter of the chunk
        pbuf = torch.empty(max(V, (buf.numel() // 4) // V * V), dtype=cd, device=logits.device) if want_h else None
        for s, e in _chunks(n, chunk):  # z′ of each chunk copied into one reused buffer
            f = copy_rows_into(_buffer(buf, e - s, V), logits, flat, rows[s:e])
            if inv_t != 1.0:
                f.mul_(inv_t)
            lp_c, h_c = _forward_chunk(f, tgt[s:e] if want_lp else None, pbuf)
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
#
# Forward: ``fwd`` scored tokens per matrix product, its output (in the weights' dtype) in a buffer
# reused chunk after chunk, upcast into a second reused buffer where the log-softmax runs in place;
# the logsumexp of every scored row is kept (O(n)). Backward: tiles of ``rows × cols`` logits. With
# the saved logsumexp a tile's softmax needs only the tile, so the tiles also split the vocabulary,
# and the one-hot part of ∂/∂z (g · onehot(y) / T) is added outside the tiles, O(n · d) in all.


#: Buffers of the hidden-state path when ``chunk_size`` is None: at most this many bytes, and at
#: most :data:`HIDDEN_BUFFER_FRACTION` of the scored rows' logits. Few, large tensor operations:
#: on a loaded machine every parallel operation waits for its threads, so many small ones cost far
#: more than their arithmetic (``benchmarks/logprobs.py``).
HIDDEN_BUFFER_BYTES = 96 << 20
HIDDEN_BUFFER_FRACTION = 1 / 6
#: The backward pass keeps all scored rows in one tile row (∂/∂weight written once per vocabulary
#: block, no float32 ``[V, d]`` accumulator) when there are at most this many.
HIDDEN_MAX_TILE_ROWS = 8192
#: Columns (vocabulary entries) per backward tile, at least, so the matrix products stay efficient.
HIDDEN_MIN_TILE_COLS = 256


def hidden_plan(n: int, V: int, chunk_size: int | None, itemsize: int) -> tuple[int, int, int]:
    """``(forward rows, backward tile rows, backward tile columns)`` for ``n`` scored rows over a
    vocabulary of ``V`` with weights of ``itemsize`` bytes: with ``chunk_size`` no buffer holds
    more than ``chunk_size · V`` logits; else the buffers (the product in the weights' dtype and
    its float32 copy) take at most :data:`HIDDEN_BUFFER_BYTES` and
    :data:`HIDDEN_BUFFER_FRACTION` of the logits in the forward pass (never less than one row),
    half that in the backward pass, whose tile rows hold up to :data:`HIDDEN_MAX_TILE_ROWS` rows."""
    n = max(n, 1)
    if chunk_size is not None:
        tile = chunk_size * V
        rows = min(n, max(math.isqrt(tile), tile // V))
        return min(chunk_size, n), rows, min(V, max(1, tile // rows))
    per = itemsize + (4 if itemsize < 4 else 0)
    elems = max(V, int(min(HIDDEN_BUFFER_BYTES, n * V * itemsize * HIDDEN_BUFFER_FRACTION)) // per)
    rows = min(n, HIDDEN_MAX_TILE_ROWS)  # the backward tiles get half: the gradients sit beside them
    return min(n, elems // V), rows, min(V, max(HIDDEN_MIN_TILE_COLS, elems // (2 * rows)))


def _linear_into(out: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``out ← x @ weightᵀ + bias`` (``F.linear``'s products, into a reused buffer)."""
    if bias is None:
        return torch.mm(x, weight.t(), out=out)
    return torch.addmm(bias, x, weight.t(), out=out)


def _buffer(flat: torch.Tensor | None, r: int, c: int) -> torch.Tensor | None:
    """A contiguous ``[r, c]`` view of the start of ``flat`` (None for None)."""
    return None if flat is None else flat[: r * c].view(r, c)


def _take_rows(hflat: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """``hflat[rows]``: a view when the rows are one contiguous run, else a copy."""
    first, last = int(rows[0]), int(rows[-1])
    if last - first + 1 == rows.numel():
        return hflat[first:last + 1]
    return hflat.index_select(0, rows)


def _hidden_forward(hflat: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, rows: torch.Tensor,
                    tgt: torch.Tensor, inv_t: float, fwd: int, want_h: bool, cd: torch.dtype
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(log π(tgt), logsumexp(z′), H)`` of the scored rows, ``[n]`` each (H empty unless asked)."""
    n, V = rows.numel(), weight.shape[0]
    dev = hflat.device
    lp = torch.empty(n, dtype=cd, device=dev)
    lse = torch.empty(n, dtype=cd, device=dev)
    h = torch.empty(n if want_h else 0, dtype=cd, device=dev)
    zflat = torch.empty(min(fwd, n) * V, dtype=weight.dtype, device=dev)
    fflat = torch.empty(zflat.numel(), dtype=cd, device=dev) if weight.dtype != cd else None
    sub = max(1, min(fwd, (HIDDEN_BUFFER_BYTES // 16) // (V * 4)))  # rows per exp(log p) of the entropy
    pflat = torch.empty(sub * V, dtype=cd, device=dev) if want_h else None
    for s in range(0, n, fwd):
        e = min(s + fwd, n)
        z = _linear_into(_buffer(zflat, e - s, V), _take_rows(hflat, rows[s:e]), weight, bias)
        f = z if fflat is None else _buffer(fflat, e - s, V).copy_(z)
        if inv_t != 1.0:
            f.mul_(inv_t)
        t = tgt[s:e].unsqueeze(1)
        zy = f.gather(1, t).squeeze(1)
        log_softmax_(f)
        lp_c = f.gather(1, t).squeeze(1)
        lp[s:e] = lp_c
        torch.sub(zy, lp_c, out=lse[s:e])
        if want_h:
            h[s:e] = entropy_of_log_probs_(f, pflat)
    return lp, lse, h


def _scaled_probs(z: torch.Tensor, f: torch.Tensor | None, hs: torch.Tensor, w_blk: torch.Tensor,
                  b_blk: torch.Tensor | None, offset: torch.Tensor, inv_t: float) -> torch.Tensor:
    """``exp(z / T + offset)`` of the tile ``z = hs @ w_blkᵀ + b_blk`` (``offset`` per row), in
    ``z``'s buffer and dtype. In the compute dtype (``f`` None) the offset and 1/T ride in the
    matrix product; a low-precision ``z`` is rounded first, as autograd's logits are, then upcast
    into ``f``: two or four passes over the tile."""
    off = offset.unsqueeze(1)
    if f is None:
        if b_blk is None:
            torch.addmm(off, hs, w_blk.t(), alpha=inv_t, out=z)
        else:
            torch.add(off, b_blk.unsqueeze(0), alpha=inv_t, out=z).addmm_(hs, w_blk.t(), alpha=inv_t)
        return z.exp_()
    _linear_into(z, hs, w_blk, b_blk)
    torch.add(off, f.copy_(z), alpha=inv_t, out=f).exp_()
    return z.copy_(f)


def _entropy_tile_grad(z: torch.Tensor, f: torch.Tensor | None, hs: torch.Tensor, w_blk: torch.Tensor,
                       b_blk: torch.Tensor | None, lse: torch.Tensor, inv_t: float, gs: torch.Tensor | None,
                       h: torch.Tensor, ghs: torch.Tensor, p_buf: torch.Tensor) -> torch.Tensor:
    """∂(Σ g·log π + Σ g_h·H)/∂z of a tile without the one-hot term, in ``z``'s buffer and dtype
    (``gs = g / T``, ``ghs = g_h / T``): −g_h p (log p + H) / T − g p / T."""
    _linear_into(z, hs, w_blk, b_blk)
    f = z if f is None else f.copy_(z)
    f = torch.add(-lse.unsqueeze(1), f, alpha=inv_t, out=f).clamp_(min=torch.finfo(f.dtype).min)  # log p
    p = torch.exp(f, out=p_buf)
    f.add_(h.unsqueeze(1)).mul_(p).mul_(-ghs.unsqueeze(1))
    if gs is not None:
        f.addcmul_(p, gs.unsqueeze(1), value=-1.0)
    return f if f is z else z.copy_(f)


class HiddenRowsFunction(torch.autograd.Function):
    """``(log π(tgt), H)`` of ``softmax((hidden[rows] @ weightᵀ + bias) / T)`` in chunks; the
    logits are recomputed tile by tile in the backward pass (from the saved logsumexp), never stored.

    ``forward(ctx, hflat, weight, bias, rows, tgt, inv_t, plan, want_h, cd)`` with ``plan`` from
    :func:`hidden_plan`.

    Backward, per tile, with only log-probs differentiated: ∂/∂z = (onehot(y) − p) g / T, and
    −p g / T = −sign(g) · exp(z / T − lse + log |g / T|): the exponential gives the magnitude in
    one pass, the sign goes on the rows of ``hidden`` (for ∂/∂weight) and of the accumulated
    ∂/∂hidden, and the one-hot term is added outside the tiles (O(n · d))."""

    @staticmethod
    def forward(ctx: Any, hflat: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                rows: torch.Tensor, tgt: torch.Tensor, inv_t: float, plan: tuple[int, int, int],
                want_h: bool, cd: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        lp, lse, h = _hidden_forward(hflat, weight, bias, rows, tgt, inv_t, plan[0], want_h, cd)
        ctx.save_for_backward(hflat, weight, bias, rows, tgt, lse, h)
        ctx.cfg = (inv_t, plan, want_h, cd)
        return lp, h

    @staticmethod
    def backward(ctx: Any, g_lp: torch.Tensor | None, g_h: torch.Tensor | None) -> tuple[Any, ...]:
        hflat, weight, bias, rows, tgt, lse, h = ctx.saved_tensors
        inv_t, (_, tr, tc), want_h, cd = ctx.cfg
        need_h, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        need_b = bias is not None and ctx.needs_input_grad[2]
        gs = g_lp.to(cd) * inv_t if g_lp is not None else None
        ghs = g_h.to(cd) * inv_t if want_h and g_h is not None else None
        n, (V, d) = rows.numel(), weight.shape
        grad_h = torch.zeros_like(hflat, memory_format=torch.contiguous_format) if need_h else None
        if n == 0 or (gs is None and ghs is None):
            return (grad_h, torch.zeros_like(weight) if need_w else None,
                    torch.zeros_like(bias) if need_b else None, *([None] * 6))
        dev, wdt = hflat.device, weight.dtype
        # ∂/∂weight: one block of the vocabulary per product, in the weights' dtype when one tile
        # row holds every scored row, else summed over the tile rows in at least float32
        acc_dt = wdt if tr >= n else torch.promote_types(wdt, torch.float32)
        grad_w = torch.zeros(weight.shape, dtype=acc_dt, device=dev) if need_w else None
        grad_b = torch.zeros(V, dtype=cd, device=dev) if need_b else None
        if gs is not None:  # the one-hot term g · onehot(y) / T of ∂/∂weight and ∂/∂bias, first
            for s in range(0, n, tr):
                if grad_w is not None:
                    grad_w.index_add_(0, tgt[s:s + tr], (_take_rows(hflat, rows[s:s + tr]).to(cd)
                                                         * gs[s:s + tr].unsqueeze(1)).to(acc_dt))
                if grad_b is not None:
                    grad_b.index_add_(0, tgt[s:s + tr], gs[s:s + tr])
        r0, cw = min(tr, n), min(tc, V)
        zflat = torch.empty(r0 * cw, dtype=wdt, device=dev)
        fflat = torch.empty(zflat.numel(), dtype=cd, device=dev) if wdt != cd else None
        pflat = torch.empty(zflat.numel(), dtype=cd, device=dev) if ghs is not None else None
        gh_lo = torch.empty(r0 * d, dtype=wdt, device=dev) if need_h and wdt != cd else None
        gh_up = torch.empty(r0 * d, dtype=cd, device=dev) if need_h and wdt != cd else None
        for s in range(0, n, tr):
            e = min(s + tr, n)
            hs = _take_rows(hflat, rows[s:e])
            g_s = gs[s:e] if gs is not None else None
            if ghs is None:  # −g p / T = sgn · exp(z / T + offset)
                sgn = -torch.sign(g_s)
                offset = torch.log(g_s.abs()).sub_(lse[s:e])
                hs_w = hs * sgn.to(wdt).unsqueeze(1)
            gh = torch.zeros(e - s, d, dtype=cd, device=dev) if need_h else None
            for c0 in range(0, V, tc):
                c1 = min(c0 + tc, V)
                w_blk, b_blk = weight[c0:c1], bias[c0:c1] if bias is not None else None
                z, f = _buffer(zflat, e - s, c1 - c0), _buffer(fflat, e - s, c1 - c0)
                if ghs is None:
                    dz, xw = _scaled_probs(z, f, hs, w_blk, b_blk, offset, inv_t), hs_w  # dz: |∂/∂z|
                else:
                    dz, xw = _entropy_tile_grad(z, f, hs, w_blk, b_blk, lse[s:e], inv_t, g_s, h[s:e], ghs[s:e],
                                                _buffer(pflat, e - s, c1 - c0)), hs
                if grad_b is not None:
                    grad_b[c0:c1] += torch.mv(dz.t().to(cd), sgn) if ghs is None else dz.sum(0, dtype=cd)
                if grad_w is not None:
                    if acc_dt == wdt:
                        grad_w[c0:c1].addmm_(dz.t(), xw)
                    else:
                        grad_w[c0:c1] += dz.t() @ xw
                if gh is not None:
                    if gh_lo is None:
                        gh.addmm_(dz, w_blk)
                    else:  # summed in the compute dtype
                        gh.add_(_buffer(gh_up, e - s, d).copy_(torch.mm(dz, w_blk, out=_buffer(gh_lo, e - s, d))))
            if gh is not None:
                if ghs is None:
                    gh.mul_(sgn.unsqueeze(1))
                if g_s is not None:  # the one-hot term of ∂/∂hidden: g · weight[y] / T
                    gh.addcmul_(weight.index_select(0, tgt[s:e]).to(cd), g_s.unsqueeze(1))
                grad_h.index_copy_(0, rows[s:e], gh.to(grad_h.dtype))
        grad_w = grad_w.to(wdt) if grad_w is not None else None
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

    The forward pass runs ``chunk_size`` scored tokens at a time, the backward pass tiles of at
    most ``chunk_size · V`` logits (the logits recomputed, see the module docstring), so the extra
    memory is O(n · d + chunk · V + V · d); the gradients with respect to ``hidden``, ``weight``
    and ``bias`` equal autograd through the full logits (∂/∂hidden summed over the vocabulary in
    at least float32, ∂/∂weight too when the scored rows need several tile rows).

    Args:
      hidden: ``[B, L, d]`` float, the last hidden states; ``hidden[:, t]`` predicts
        ``tokens[:, t+1]``. Rows that score no token are never read (they may hold NaN).
      weight: ``[V, d]``, same dtype and device as ``hidden`` (``lm_head.weight``).
      tokens: ``[B, L]`` integer ids; ids outside [0, V) are allowed only where masked out.
      mask: ``[B, L]`` bool/0-1, the tokens to score; ``mask[:, 0]`` false. None: all but the first.
      bias: optional ``[V]``.
      temperature: the sampling temperature T > 0 (log-probs of softmax(z / T)).
      chunk_size: scored tokens per forward chunk (None: buffers of at most 96 MiB and 1/6 of
        the logits' size, :func:`hidden_plan`).
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
    plan = hidden_plan(rows.numel(), V, chunk, weight.element_size())
    lp, h = HiddenRowsFunction.apply(hidden.reshape(B * L, d), weight, bias, rows, tgt, 1.0 / T, plan,
                                     return_entropy, cd)
    validate_scored_result(lp.detach(), "hidden/weight")
    out_dtype = hidden.dtype if dtype is None else dtype
    out = torch.zeros(B, L, dtype=cd, device=hidden.device).masked_scatter(m, lp).to(out_dtype)
    if not return_entropy:
        return out
    validate_scored_result(h.detach(), "hidden/weight")
    ent = torch.zeros(B, L, dtype=cd, device=hidden.device).masked_scatter(m, h).to(out_dtype)
    return out, ent
