"""Reducing a per-token loss ``[B, L]`` to the scalar that is differentiated.

Every mode is a weighted sum  𝓛 = Σ_b Σ_t w_{b,t} ℓ_{b,t}  over the response tokens (mask true),
and the modes differ only in the weight one token gets. With L_b = Σ_t mask[b, t] the length of
response b, N = Σ_b L_b the number of tokens and B' the number of responses:

    "token-mean"               w = 1 / N               every token equal; a response's total
                                                       weight L_b / N grows with its length
    "seq-mean-token-sum"       w = 1 / B'              every token equal, no length division;
                                                       the loss scale grows with the length
    "seq-mean-token-mean"      w = 1 / (B' · L_b)      every *response* equal; a token of a long
                                                       response weighs less (GRPO's original
                                                       1/|oᵢ|, the length bias Dr. GRPO removed)
    "seq-mean-token-sum-norm"  w = 1 / (B' · C)        a constant C (e.g. the maximum response
                                                       length): every token equal and the scale
                                                       independent of the batch's lengths (Dr. GRPO)

Global denominators. Gradient accumulation splits a batch into micro-batches and sums their
losses; the sum equals the full-batch loss only when every micro-batch divides by the *global*
N (``normalizer=`` for "token-mean") or B' (``num_sequences=`` for the "seq-mean-*" modes). With
the local defaults the split changes the loss
(``tests/test_llm_functions.py::test_micro_batch_split_with_local_denominator_is_wrong``). Padding width never changes the loss: padded positions have
weight 0 and are never read (a NaN there does not leak — no NaN · 0).

Responses with no tokens (an all-false mask row, e.g. a dummy row that pads a micro-batch) get
weight 0 and are not counted in the default B' (the loss is then invariant to such rows too).
A call whose default denominator is 0 (no token at all) raises ``ValueError``; with an explicit
``normalizer`` / ``num_sequences`` it returns an exact 0 that is still connected to the graph
(for a micro-batch that happens to be empty).

Checked by: the specs ``aggregation_weights`` and ``aggregate_token_loss`` of
:mod:`pgmath.specs.llm_aggregate` (weights against a hand loop, the length bias of each mode,
padding and micro-batch invariance, NaN in pads, bad input; run by ``tests/test_specs.py`` and
as verify rows); ``tests/test_llm_functions.py::test_aggregate_empty_response_rows``,
``test_micro_batch_split_with_local_denominator_is_wrong``, ``test_gradchecks``.
"""

from __future__ import annotations

from typing import Literal

import torch

from pgmath.numerics import accumulation_dtype
from pgmath.validation import validate_float_tensor, validate_mask, validate_positive

__all__ = ["AGGREGATION_MODES", "AggregationMode", "aggregate_token_loss", "aggregation_weights"]

AggregationMode = Literal[
    "token-mean", "seq-mean-token-sum", "seq-mean-token-mean", "seq-mean-token-sum-norm"
]
AGGREGATION_MODES: tuple[str, ...] = (
    "token-mean",
    "seq-mean-token-sum",
    "seq-mean-token-mean",
    "seq-mean-token-sum-norm",
)


def aggregation_weights(
    mask: torch.Tensor,
    mode: AggregationMode,
    *,
    normalizer: float | None = None,
    num_sequences: float | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """The weight w_{b,t} each token gets in :func:`aggregate_token_loss` (0 where masked out).

    Args:
      mask: ``[B, L]`` bool/0-1 response-token mask.
      mode: one of :data:`AGGREGATION_MODES`.
      normalizer: "token-mean": the (global) number of tokens N; "seq-mean-token-sum-norm": the
        constant C (required). Not accepted by the other modes.
      num_sequences: the (global) number of responses B' for the "seq-mean-*" modes.
      dtype: dtype of the weights.
    Returns:
      ``[B, L]`` weights.
    """
    if not isinstance(mask, torch.Tensor):
        raise ValueError(f"mask must be a torch.Tensor, got {type(mask).__name__}")
    if mask.dim() != 2 or mask.numel() == 0:
        raise ValueError(f"mask must have a non-empty shape [B, L], got {tuple(mask.shape)}")
    m = validate_mask(mask, "mask", mask.shape, mask.device)
    if mode not in AGGREGATION_MODES:
        raise ValueError(f"mode must be one of {AGGREGATION_MODES}, got {mode!r}")
    # counts and weights in float64 (exact integer counts; a float16 count stops at 65 504),
    # cast to ``dtype`` at the end
    mf = m.to(torch.float64)
    lengths = mf.sum(1)  # L_b
    explicit = False
    if mode == "token-mean":
        if num_sequences is not None:
            raise ValueError("num_sequences is not used by mode 'token-mean' (use normalizer)")
        if normalizer is not None:
            denom = validate_positive(normalizer, "normalizer")
            explicit = True
        else:
            denom = float(lengths.sum())
        row_scale = torch.ones_like(lengths)
    else:
        if mode == "seq-mean-token-sum-norm":
            if normalizer is None:
                raise ValueError(
                    "normalizer (the constant C, e.g. the maximum response length) is required "
                    "for mode 'seq-mean-token-sum-norm'; defaulting to the padded width would make "
                    "the loss depend on padding"
                )
            const = validate_positive(normalizer, "normalizer")
            row_scale = torch.full_like(lengths, 1.0 / const)
        elif normalizer is not None:
            raise ValueError(f"normalizer is not used by mode {mode!r} (use num_sequences)")
        elif mode == "seq-mean-token-sum":
            row_scale = torch.ones_like(lengths)
        else:  # seq-mean-token-mean: 1/L_b, 0 for an empty response
            row_scale = torch.where(lengths > 0, 1.0 / lengths.clamp(min=1), torch.zeros_like(lengths))
        if num_sequences is not None:
            denom = validate_positive(num_sequences, "num_sequences")
            explicit = True
        else:
            denom = float((lengths > 0).sum())
    if denom == 0.0:
        if explicit:  # unreachable (validate_positive), kept for clarity
            raise ValueError("normalizer must be > 0")
        raise ValueError("mask selects no tokens: the default denominator would be 0")
    return (mf * (row_scale / denom).unsqueeze(1)).to(dtype)


def aggregate_token_loss(
    loss: torch.Tensor,
    mask: torch.Tensor,
    mode: AggregationMode = "token-mean",
    *,
    normalizer: float | None = None,
    num_sequences: float | None = None,
) -> torch.Tensor:
    """𝓛 = Σ_{b,t} w_{b,t} ℓ_{b,t} with the weights of :func:`aggregation_weights`.

        "token-mean"              Σ_b Σ_t m ℓ / N
        "seq-mean-token-sum"      (1/B') Σ_b Σ_t m ℓ
        "seq-mean-token-mean"     (1/B') Σ_b (1/L_b) Σ_t m ℓ
        "seq-mean-token-sum-norm" (1/B') Σ_b (1/C) Σ_t m ℓ

    Args:
      loss: ``[B, L]`` per-token loss ℓ_{b,t} (float; may be NaN/inf where ``mask`` is false).
      mask: ``[B, L]`` bool/0-1, true at response tokens.
      mode: the aggregation (see the module docstring for the weight of one token).
      normalizer: "token-mean": the global token count N (default: this call's Σ mask);
        "seq-mean-token-sum-norm": the constant C (required).
      num_sequences: "seq-mean-*": the global number of responses B' (default: the rows of
        this call with at least one token).
    Returns:
      0-dim tensor in ``loss``'s dtype.

    Checked by: the spec ``aggregate_token_loss`` of :mod:`pgmath.specs.llm_aggregate`.
    """
    validate_float_tensor(loss, "loss", finite=False)
    if loss.dim() != 2 or loss.numel() == 0:
        raise ValueError(f"loss must have a non-empty shape [B, L], got {tuple(loss.shape)}")
    m = validate_mask(mask, "mask", loss.shape, loss.device)
    acc = accumulation_dtype(loss.dtype)  # float16/bfloat16 are weighted and summed in float32
    w = aggregation_weights(m, mode, normalizer=normalizer, num_sequences=num_sequences, dtype=acc)
    bad = m & ~torch.isfinite(loss)
    if bool(bad.any()):
        raise ValueError(f"loss contains {int(bad.sum())} non-finite value(s) at masked-in positions")
    safe = torch.where(m, loss, torch.zeros((), dtype=loss.dtype, device=loss.device))
    return (safe.to(acc) * w).sum().to(loss.dtype)
