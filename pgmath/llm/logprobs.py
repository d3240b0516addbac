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

Temperature: a policy that samples from softmax(z / T) has log-probs log softmax(z / T) and
entropy H(softmax(z / T)); ``temperature=T`` computes exactly those. Raw log-probs (T ignored),
``log_softmax(z) / T`` and an entropy at T = 1 are the spec's wrong variants (huggingface/trl#4159,
google/tunix#1387, OpenRLHF/OpenRLHF#1319).

Memory: the rows are processed ``chunk_size`` scored tokens at a time by the custom autograd
functions of :mod:`pgmath.llm.chunked` (no ``[n, V]`` copy, no full log-softmax; the backward pass
recomputes each chunk's softmax from the saved logsumexp), so the extra memory is
O(n + chunk · V); :func:`pgmath.llm.chunked.token_log_probs_from_hidden` starts from the hidden
states and never holds the logits.

Checked by: the specs ``token_log_probs`` and ``token_entropy`` of :mod:`pgmath.specs.llm_logprobs` (prefix-by-prefix
loop, the formula on random masks, NaN in unread rows, bad input, fast == reference on generated
inputs; run by ``tests/test_specs.py``); ``tests/test_llm_functions.py::test_token_log_probs_*``
(gradcheck, bf16, masked-out ids), ``tests/test_llm_logprobs.py`` (a worked example) and
``tests/test_llm_hf.py`` (a Hugging Face GPT-2 built from a config, no download).
"""

from __future__ import annotations

import torch

from pgmath.llm.chunked import (
    logits_rows,
    validate_chunk_size,
    validate_scored_result,
    validate_temperature,
    validate_token_inputs,
)
from pgmath.validation import validate_float_tensor

__all__ = ["token_entropy", "token_entropy_reference", "token_log_probs", "token_log_probs_reference"]


def _validate_logits(logits: object) -> torch.Tensor:
    logits = validate_float_tensor(logits, "logits", finite=False)
    if logits.dim() != 3:
        raise ValueError(f"logits must have shape [B, L, V], got {tuple(logits.shape)}")
    if 0 in logits.shape:
        raise ValueError(f"logits is empty (shape {tuple(logits.shape)})")
    return logits


def _scatter(m: torch.Tensor, values: torch.Tensor, out_dtype: torch.dtype) -> torch.Tensor:
    """``[B, L]`` holding ``values`` where ``m`` (row-major), 0 elsewhere."""
    out = torch.zeros(m.shape, dtype=values.dtype, device=values.device)
    return out.masked_scatter(m, values).to(out_dtype)


def token_log_probs(
    logits: torch.Tensor,
    tokens: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    temperature: float = 1.0,
    chunk_size: int | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """log π(tokens[b, t] | tokens[b, <t]) at temperature T, from the logits one position earlier.

        out[b, t] = z[tokens[b, t]] − logsumexp(z),  z = logits[b, t−1] / T   where mask[b, t]
        out[b, t] = 0                                                          elsewhere
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
      temperature: the sampling temperature T > 0: the log-probs of softmax(logits / T), the
        distribution the tokens were sampled from.
      chunk_size: scored tokens per chunk (None: about 2²⁰ logits per chunk); the extra memory
        is O(n + chunk_size · V) in the forward and the backward pass.
      dtype: dtype of the result (default: the logits' dtype). The log-softmax is computed in at
        least float32 (bf16/fp16 logits are upcast chunk by chunk).
    Returns:
      ``[B, L]`` per-token log-probabilities, 0 at masked-out positions. Differentiable w.r.t.
      ``logits`` (a custom autograd function, chunked too); masked-out rows receive exactly zero
      gradient (no NaN leaks from them).

    Checked by: the spec ``token_log_probs`` (:mod:`pgmath.specs.llm_logprobs`),
    ``tests/test_llm_functions.py::test_token_log_probs_*``, ``tests/test_llm_chunked.py`` and
    ``tests/test_llm_hf.py``.
    """
    logits = _validate_logits(logits)
    B, L, V = logits.shape
    T = validate_temperature(temperature)
    chunk = validate_chunk_size(chunk_size)
    m = validate_token_inputs(tokens, mask, B, L, V, logits.device)
    lp, _, _ = logits_rows(logits, m, tokens, T, chunk, want_lp=True, want_h=False)
    validate_scored_result(lp.detach())
    return _scatter(m, lp, logits.dtype if dtype is None else dtype)


def token_entropy(
    logits: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    temperature: float = 1.0,
    chunk_size: int | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Entropy of the distribution token t was drawn from, at temperature T.

        out[b, t] = −Σⱼ pⱼ log pⱼ,  p = softmax(logits[b, t−1] / T)   where mask[b, t]
        out[b, t] = 0                                                elsewhere (and t = 0)

    Alignment and arguments as :func:`token_log_probs` (no tokens needed): position t holds the
    entropy of the policy at the step that produced token t, so it lines up with the log-probs,
    the advantages and the loss mask. ``0 · log 0 = 0`` (−inf logits are allowed).

    Returns:
      ``[B, L]`` entropies in nats, 0 where masked out; differentiable w.r.t. ``logits``
      (∂H/∂z = −p ⊙ (log p + H) / T, chunked).

    Checked by: the spec ``token_entropy`` (:mod:`pgmath.specs.llm_logprobs`) and
    ``tests/test_llm_chunked.py``.
    """
    logits = _validate_logits(logits)
    B, L, V = logits.shape
    T = validate_temperature(temperature)
    chunk = validate_chunk_size(chunk_size)
    m = validate_token_inputs(None, mask, B, L, V, logits.device, scored=False)
    _, h, _ = logits_rows(logits, m, None, T, chunk, want_lp=False, want_h=True)
    validate_scored_result(h.detach())
    return _scatter(m, h, logits.dtype if dtype is None else dtype)


def token_log_probs_reference(
    logits: torch.Tensor, tokens: torch.Tensor, mask: torch.Tensor | None = None, *,
    temperature: float = 1.0,
) -> torch.Tensor:
    """:func:`token_log_probs` by explicit loops over b and t (the reference implementation)."""
    logits = _validate_logits(logits)
    B, L, V = logits.shape
    T = validate_temperature(temperature)
    m = validate_token_inputs(tokens, mask, B, L, V, logits.device)
    out = torch.zeros(B, L, dtype=logits.dtype, device=logits.device)
    # over the batch, then forward in time t = 1 … L-1: token t is scored by the logits at t-1
    for b in range(B):
        for t in range(1, L):
            if bool(m[b, t]):
                row = logits[b, t - 1] / T
                out[b, t] = torch.log_softmax(row, dim=-1)[int(tokens[b, t])]
    validate_scored_result(out[m].detach())
    return out


def token_entropy_reference(
    logits: torch.Tensor, mask: torch.Tensor | None = None, *, temperature: float = 1.0,
) -> torch.Tensor:
    """:func:`token_entropy` by explicit loops over b, t and the vocabulary j."""
    logits = _validate_logits(logits)
    B, L, V = logits.shape
    T = validate_temperature(temperature)
    m = validate_token_inputs(None, mask, B, L, V, logits.device, scored=False)
    out = torch.zeros(B, L, dtype=logits.dtype, device=logits.device)
    for b in range(B):
        for t in range(1, L):
            if bool(m[b, t]):
                logp = torch.log_softmax(logits[b, t - 1] / T, dim=-1)
                out[b, t] = -sum(logp[j].exp() * logp[j] for j in range(V) if logp[j] != -torch.inf)
    validate_scored_result(out[m].detach())
    return out
