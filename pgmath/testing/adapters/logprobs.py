"""Other libraries' token log-probabilities and entropies in :mod:`pgmath.llm`'s alignment, for
:func:`~pgmath.testing.check_token_log_probs` and :func:`~pgmath.testing.check_token_entropy`.

Each adapter has the signature the checks call —

    fn(logits [B, L, V], tokens [B, L], mask [B, L], *, temperature) -> [B, L]   (log-probs)
    fn(logits [B, L, V], mask [B, L], *, temperature) -> [B, L]                  (entropies)

— and does what the library's trainer does around its helper: it hands the helper the logits
rows 0 … L−2 with the labels tokens[:, 1:] (the causal shift), clamps the ids of masked-out
positions (−100, pad ids) so that a gather cannot fail, applies the temperature the way the
trainer does, and puts 0 where ``mask`` is false (with ``torch.where``, so NaN in unread rows
does not reach the value). Everything else — the log-softmax, the entropy, the temperature when
the helper takes one — is the library's own code.

* TRL: :func:`trl_selective_log_softmax` (``trl.trainer.utils.selective_log_softmax``, which
  takes ``temperature``), :func:`trl_entropy_from_logits` (``entropy_from_logits`` on
  ``logits / T``, as ``GRPOTrainer`` calls it);
* verl: :func:`verl_logprobs_from_logits`, :func:`verl_entropy_from_logits`
  (``verl.utils.torch_functional``; verl's actor divides the logits by T first);
* Hugging Face: :func:`hf_loss_log_probs` (−the per-token loss of ``ForCausalLMLoss``, HF's
  causal-LM loss with its own shift and ``ignore_index=−100``), and
  :func:`hf_causal_lm_token_log_probs`, which runs a causal LM and scores its tokens from the last
  hidden states through :func:`pgmath.llm.token_log_probs_from_hidden` (the ``[B, L, V]`` logits
  are never formed).

Checked by: ``tests/test_llm_logprobs.py`` (each adapter through the checks; skipped when the
library is not installed) and ``tests/test_llm_chunked.py`` (the HF model adapter against the
model's own logits, values and gradients).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

__all__ = [
    "hf_causal_lm_token_log_probs",
    "hf_loss_log_probs",
    "shifted",
    "trl_entropy_from_logits",
    "trl_selective_log_softmax",
    "verl_entropy_from_logits",
    "verl_logprobs_from_logits",
]


def shifted(rows_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], logits: torch.Tensor,
            tokens: torch.Tensor | None, mask: torch.Tensor | None) -> torch.Tensor:
    """``[B, L]`` with ``rows_fn(logits[:, :-1], labels)`` (``labels = tokens[:, 1:]``, clamped to
    [0, V) where masked out; zeros when ``tokens`` is None) at the positions 1 … L−1 where
    ``mask``, 0 elsewhere (``mask`` None: every position but 0)."""
    B, L, V = logits.shape
    if mask is None:
        mask = torch.ones(B, L, dtype=torch.bool, device=logits.device)
        mask[:, 0] = False
    m = mask[:, 1:].bool()
    if tokens is None:
        labels = torch.zeros(B, L - 1, dtype=torch.long, device=logits.device)
    else:
        labels = torch.where(m, tokens[:, 1:].long(), torch.zeros_like(tokens[:, 1:], dtype=torch.long))
        labels = labels.clamp(0, V - 1)
    vals = rows_fn(logits[:, :-1], labels)
    vals = torch.where(m, vals, torch.zeros_like(vals))
    return torch.cat([torch.zeros_like(vals[:, :1]), vals], 1)


def _import(module: str, names: tuple[str, ...], library: str) -> tuple[Any, ...]:
    import importlib

    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"this adapter needs {library} ({module}: {exc})") from exc
    return tuple(getattr(mod, n) for n in names)


# --- TRL ------------------------------------------------------------------------------------


def trl_selective_log_softmax(logits: torch.Tensor, tokens: torch.Tensor, mask: torch.Tensor | None = None, *,
                              temperature: float = 1.0) -> torch.Tensor:
    """TRL's ``selective_log_softmax(logits, index, temperature=T)`` in pgmath's alignment."""
    (fn,) = _import("trl.trainer.utils", ("selective_log_softmax",), "trl")
    return shifted(lambda z, y: fn(z, y, temperature=temperature), logits, tokens, mask)


def trl_entropy_from_logits(logits: torch.Tensor, mask: torch.Tensor | None = None, *,
                            temperature: float = 1.0) -> torch.Tensor:
    """TRL's ``entropy_from_logits(logits / T)`` (as ``GRPOTrainer`` calls it) in pgmath's alignment."""
    (fn,) = _import("trl.trainer.utils", ("entropy_from_logits",), "trl")
    return shifted(lambda z, _: fn(z / temperature), logits, None, mask)


# --- verl -----------------------------------------------------------------------------------


def verl_logprobs_from_logits(logits: torch.Tensor, tokens: torch.Tensor, mask: torch.Tensor | None = None, *,
                              temperature: float = 1.0) -> torch.Tensor:
    """verl's ``logprobs_from_logits(logits / T, labels)`` in pgmath's alignment."""
    (fn,) = _import("verl.utils.torch_functional", ("logprobs_from_logits",), "verl")
    return shifted(lambda z, y: fn(z / temperature, y), logits, tokens, mask)


def verl_entropy_from_logits(logits: torch.Tensor, mask: torch.Tensor | None = None, *,
                             temperature: float = 1.0) -> torch.Tensor:
    """verl's ``entropy_from_logits(logits / T)`` in pgmath's alignment."""
    (fn,) = _import("verl.utils.torch_functional", ("entropy_from_logits",), "verl")
    return shifted(lambda z, _: fn(z / temperature), logits, None, mask)


# --- Hugging Face ---------------------------------------------------------------------------


def hf_loss_log_probs(logits: torch.Tensor, tokens: torch.Tensor, mask: torch.Tensor | None = None, *,
                      temperature: float = 1.0) -> torch.Tensor:
    """−(HF's causal-LM loss of each scored token alone): ``ForCausalLMLoss(logits / T, labels)``
    with ``labels`` = −100 everywhere but that token, so HF's own shift and ``ignore_index`` decide
    which logits row scores it (one call per scored token: for checks, not for training). HF
    upcasts the logits to float32 for its loss, so the result is float32."""
    (loss_fn,) = _import("transformers.loss.loss_utils", ("ForCausalLMLoss",), "transformers")
    B, L, V = logits.shape
    if mask is None:
        mask = torch.ones(B, L, dtype=torch.bool, device=logits.device)
        mask[:, 0] = False
    out = torch.zeros(B, L, dtype=torch.float32, device=logits.device)  # HF's loss runs in float32
    z = logits / temperature
    for b, t in mask.bool().nonzero().tolist():
        labels = torch.full((B, L), -100, dtype=torch.long, device=logits.device)
        labels[b, t] = tokens[b, t]
        out[b, t] = -loss_fn(z, labels, vocab_size=V)
    return out


def hf_causal_lm_token_log_probs(model: Any, input_ids: torch.Tensor, mask: torch.Tensor | None = None, *,
                                 attention_mask: torch.Tensor | None = None, temperature: float = 1.0,
                                 chunk_size: int | None = None, return_entropy: bool = False,
                                 **model_kwargs: Any) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Per-token log-probs (and entropies) of ``input_ids`` under a Hugging Face causal LM,
    computed from its last hidden states and output embedding (``lm_head``) by
    :func:`pgmath.llm.token_log_probs_from_hidden`: the ``[B, L, V]`` logits are never formed.

    Equal to ``token_log_probs(model(input_ids).logits, input_ids, mask)`` for models whose logits
    are ``lm_head(last_hidden_state)``; models that post-process the logits (final logit
    soft-capping, a logit scale) are refused with a ``ValueError``.
    """
    from pgmath.llm.chunked import token_log_probs_from_hidden

    cfg = getattr(model, "config", None)
    for attr in ("final_logit_softcapping", "logit_scale", "logits_scaling"):
        val = getattr(cfg, attr, None)
        if val not in (None, 1, 1.0):
            raise ValueError(f"model: its logits are post-processed ({attr} = {val!r}); "
                             "score model(input_ids).logits with token_log_probs instead")
    head = model.get_output_embeddings()
    out = model.base_model(input_ids=input_ids, attention_mask=attention_mask, **model_kwargs)
    hidden = out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]
    return token_log_probs_from_hidden(hidden, head.weight, input_ids, mask, bias=getattr(head, "bias", None),
                                       temperature=temperature, chunk_size=chunk_size,
                                       return_entropy=return_entropy)
