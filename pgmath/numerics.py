"""Numerically careful building blocks shared by the formulas: accumulation dtype, masked sums
and means, and stable centring of a group of numbers.

* **Accumulation dtype.** Counts, sums and means of float16/bfloat16 tensors are accumulated in
  float32 (a float16 sum overflows at 65 504: a 64 × 1100 token batch; a bfloat16 sum of 300
  ones is already off by 3 %). float32 and float64 accumulate in their own dtype.
* **Stable centring.** x − mean(x) is computed as d − mean(d) with d = x − x₀ shifted by a member
  x₀ of the group (exact for near-constant groups: Sterbenz) and d scaled by max |d| before
  squaring (no overflow for rewards of 10³⁰ in float32). Mathematically both steps cancel, so
  values and gradients are those of the plain formula.

Checked by: ``tests/test_dtypes.py`` (every spec in float64/32/16/bf16, 10⁵ masked entries and the
spec's extreme values against the float64 reference; ``test_numerics_*``).
"""

from __future__ import annotations

import torch

__all__ = ["accumulation_dtype", "masked_sum", "stable_centre"]

_HALF = (torch.float16, torch.bfloat16)


def accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32 for float16/bfloat16 inputs, the dtype itself otherwise."""
    return torch.float32 if dtype in _HALF else dtype


def masked_sum(x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Σ x over the entries where ``mask`` is true (all when None), in :func:`accumulation_dtype`.

    Masked-out entries are replaced by 0 before the sum (a NaN there reaches neither the value
    nor the gradient). Returns a 0-dim tensor in the accumulation dtype.
    """
    acc = accumulation_dtype(x.dtype)
    xa = x.to(acc)
    if mask is not None:
        xa = torch.where(mask, xa, torch.zeros((), dtype=acc, device=x.device))
    return xa.sum()


def stable_centre(
    x: torch.Tensor, dim: int, mask: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(x − mean x, unbiased std x) along ``dim`` over the entries selected by ``mask``.

    Shifted by the first selected member of each group and scaled by max |x − x₀| before the
    moments are taken, in :func:`accumulation_dtype`. Entries outside ``mask`` give 0 in the
    centred output and never reach the statistics. Each group needs ≥ 2 selected entries for the
    std (the caller checks).

    Args:
      x: float tensor.
      dim: the axis of the groups.
      mask: optional bool tensor of ``x``'s shape.
    Returns:
      ``(centred, std)``: centred has ``x``'s shape, std keeps ``dim`` as size 1; both in the
      accumulation dtype.
    """
    acc = accumulation_dtype(x.dtype)
    xa = x.to(acc)
    zero = torch.zeros((), dtype=acc, device=x.device)
    if mask is None:
        mask = torch.ones_like(xa, dtype=torch.bool)
    first = mask.to(torch.int8).argmax(dim=dim, keepdim=True)
    shift = torch.where(mask, xa, zero).gather(dim, first).detach()
    d = torch.where(mask, xa - shift, zero)
    scale = d.detach().abs().amax(dim=dim, keepdim=True)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    u = d / scale
    n = mask.sum(dim=dim, keepdim=True).to(acc)
    mean_u = u.sum(dim=dim, keepdim=True) / n
    cu = torch.where(mask, u - mean_u, zero)
    var_u = (cu * cu).sum(dim=dim, keepdim=True) / (n - 1)
    # √var with a zero (not NaN) gradient at var = 0: an exactly constant group
    positive = var_u > 0
    std_u = torch.where(positive, torch.where(positive, var_u, torch.ones_like(var_u)).sqrt(), zero)
    return cu * scale, std_u * scale
