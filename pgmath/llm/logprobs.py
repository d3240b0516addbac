"""Per-token log-probabilities of a causal language model's response.

A causal LM reads tokens y₀ … y_{L−1} and at position t emits logits zₜ that predict the *next*
token, y_{t+1}. The log-probability of token t therefore comes from the logits one position
earlier:

    log π(yₜ | y<ₜ) = log softmax(z_{t−1})[yₜ] = z_{t−1}[yₜ] − logsumexp(z_{t−1}),   t = 1 … L−1.

Output alignment (this is the convention of the whole of :mod:`pgmath.llm`): the result has the
shape of ``tokens`` and position t holds log π(tokens[t] | tokens[<t]); position 0 has no
prediction (nothing precedes it) and is always 0. ``mask[b, t]`` marks the tokens whose
log-probability is wanted (the response tokens), indexed like ``tokens`` — so a mask of the
response tokens can be used unchanged for the log-probs, the advantages and the loss. This is the
alignment of Hugging Face causal LMs: ``model(input_ids).logits`` is passed with
``tokens=input_ids`` unchanged (the shift happens here, as in the HF loss with ``labels=input_ids``).

The classic off-by-one — ``log_softmax(logits).gather(-1, tokens)`` without the shift — scores
each token with the logits that *saw* it; the spec's property "prefix_by_prefix" shows that only
the shifted read matches an explicit autoregressive loop, and rejects the unshifted one (its wrong
variant ``logprobs_unshifted``).

Checked by: the spec ``token_log_probs`` of :mod:`pgmath.specs.llm_logprobs` (prefix-by-prefix
loop, the formula on random masks, NaN in unread rows, bad input, fast == reference on generated
inputs; run by ``tests/test_specs.py``); ``tests/test_llm_functions.py::test_token_log_probs_*``
(gradcheck, bf16, masked-out ids), ``tests/test_llm_logprobs.py`` (a worked example) and
``tests/test_llm_hf.py`` (a Hugging Face GPT-2 built from a config, no download).
"""

from __future__ import annotations

import torch

from pgmath.validation import validate_float_tensor, validate_mask

__all__ = ["token_log_probs", "token_log_probs_reference"]


def _validate_inputs(
    logits: object, tokens: object, mask: object | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    logits = validate_float_tensor(logits, "logits", finite=False)
    if logits.dim() != 3:
        raise ValueError(f"logits must have shape [B, L, V], got {tuple(logits.shape)}")
    B, L, V = logits.shape
    if B == 0 or L == 0 or V == 0:
        raise ValueError(f"logits is empty (shape {tuple(logits.shape)})")
    if not isinstance(tokens, torch.Tensor):
        raise ValueError(f"tokens must be a torch.Tensor, got {type(tokens).__name__}")
    if tokens.dtype not in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8):
        raise ValueError(f"tokens must have an integer dtype, got {tokens.dtype}")
    if tuple(tokens.shape) != (B, L):
        raise ValueError(
            f"tokens has shape {tuple(tokens.shape)} but logits has [B, L] = {(B, L)}"
        )
    if tokens.device != logits.device:
        raise ValueError(f"tokens is on {tokens.device} but logits is on {logits.device}")
    if mask is None:
        m = torch.ones(B, L, dtype=torch.bool, device=logits.device)
        m[:, 0] = False
    else:
        m = validate_mask(mask, "mask", (B, L), logits.device)
        if bool(m[:, 0].any()):
            raise ValueError(
                "mask[:, 0] must be False: the first token has no preceding logits "
                "(position t is scored by logits[:, t-1])"
            )
    bad = m & ((tokens < 0) | (tokens >= V))
    if bool(bad.any()):
        raise ValueError(f"tokens holds ids outside [0, {V}) at masked-in positions")
    return logits, tokens, m


def _validate_result(lp: torch.Tensor) -> None:
    bad = ~torch.isfinite(lp)
    if bool(bad.any()):
        raise ValueError(
            f"logits give a non-finite log-probability at {int(bad.sum())} masked-in position(s) "
            "(NaN/inf in the logits row that scores the token, or a token of probability 0)"
        )


def token_log_probs(
    logits: torch.Tensor,
    tokens: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """log π(tokens[b, t] | tokens[b, <t]) from the logits one position earlier.

        out[b, t] = logits[b, t−1, tokens[b, t]] − logsumexp(logits[b, t−1, :])   where mask[b, t]
        out[b, t] = 0                                                               elsewhere
        out[b, 0] = 0 always (no logits precede the first token)

    Args:
      logits: ``[B, L, V]`` float; ``logits[:, t]`` predicts ``tokens[:, t+1]`` (the output of a
        causal LM on ``tokens``, e.g. a Hugging Face model's ``.logits``, unchanged). Rows that
        are not read (row t−1 of every masked-out token t, and the last row) may hold NaN/inf;
        a read row may hold −inf for impossible tokens, but a non-finite log-probability of a
        scored token raises ``ValueError``.
      tokens: ``[B, L]`` integer token ids (prompt and response together). Masked-out positions
        may hold anything (e.g. −100 or a pad id).
      mask: ``[B, L]`` bool/0-1, true at the tokens to score (the response tokens), indexed like
        ``tokens``; ``mask[:, 0]`` must be false. None: every token but the first.
      dtype: dtype of the result (default: the logits' dtype). The log-softmax is computed in at
        least float32 (bf16/fp16 logits are upcast first).
    Returns:
      ``[B, L]`` per-token log-probabilities, 0 at masked-out positions. Differentiable w.r.t.
      ``logits``; masked-out rows receive exactly zero gradient (no NaN leaks from them).

    Checked by: the spec ``token_log_probs`` (:mod:`pgmath.specs.llm_logprobs`),
    ``tests/test_llm_functions.py::test_token_log_probs_*`` and ``tests/test_llm_hf.py``.
    """
    logits, tokens, m = _validate_inputs(logits, tokens, mask)
    out_dtype = logits.dtype if dtype is None else dtype
    B, L, _ = logits.shape
    cd = torch.promote_types(logits.dtype, torch.float32)
    m_next = m[:, 1:]  # token t (t ≥ 1) is scored by logits row t − 1
    # only the rows that score a masked-in token are read (a copy of those rows): the others
    # never reach the value, and their gradient is exactly 0 (no NaN · 0 from the softmax's
    # backward pass)
    z = logits[:, :-1][m_next].to(cd)  # [n, V]
    tgt = tokens[:, 1:][m_next].long()  # [n]
    lp_sel = torch.log_softmax(z, dim=-1).gather(1, tgt.unsqueeze(1)).squeeze(1)
    _validate_result(lp_sel.detach())
    out = torch.zeros(B, L - 1, dtype=cd, device=logits.device).masked_scatter(m_next, lp_sel)
    first = torch.zeros(B, 1, dtype=cd, device=logits.device)
    return torch.cat([first, out], dim=1).to(out_dtype)


def token_log_probs_reference(
    logits: torch.Tensor, tokens: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """:func:`token_log_probs` by explicit loops over b and t (the reference implementation)."""
    logits, tokens, m = _validate_inputs(logits, tokens, mask)
    B, L, _ = logits.shape
    out = torch.zeros(B, L, dtype=logits.dtype, device=logits.device)
    # over the batch, then forward in time t = 1 … L-1: token t is scored by the logits at t-1
    for b in range(B):
        for t in range(1, L):
            if bool(m[b, t]):
                row = logits[b, t - 1]
                out[b, t] = torch.log_softmax(row, dim=-1)[int(tokens[b, t])]
    _validate_result(out[m].detach())
    return out
