"""Reverse linear recurrences, the engine under returns and GAE.

Every backward quantity of policy-gradient RL is one recursion, run from the end of the rollout
to its start::

    yₜ = xₜ + cₜ yₜ₊₁,      y_T = 0                                   (time-major, t = T-1 … 0)

Discounted return: xₜ = rₜ (+ γ V(sₜ₊₁) where the episode is cut), cₜ = γ while the episode goes
on. GAE: xₜ = δₜ, cₜ = γλ while the episode goes on (Schulman et al., 2015, eq. 16).

Three implementations, tested equal to each other (``tests/test_scan.py``):

* :func:`discounted_cumsum_reference` — the plain reverse loop, obviously right.
* ``backend="torch"`` — a blocked scan in pure torch: the time axis is cut into blocks of K
  steps, each block is scanned locally (K vectorised steps over all blocks at once), and the
  carries between blocks solve the same recursion one level up. About 2·√T kernel launches instead
  of T, exact (no rescaling by (γλ)^-t, so no overflow at T = 100 000), differentiable, any
  device. This is the GPU path.
* ``backend="numba"`` — a compiled single-threaded loop on CPU (float32/float64, no autograd),
  reading each input once and writing the output once: it runs at the memory bound.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch

from pgmath.validation import (
    validate_float_tensor,
    validate_same_shape,
    validate_time_major,
)

__all__ = [
    "HAVE_NUMBA",
    "Backend",
    "as_numpy",
    "block_size",
    "compute_dtype",
    "discounted_cumsum",
    "discounted_cumsum_reference",
    "empty_like_numpy",
    "numba_available",
    "pick_backend",
    "scan_torch",
]

Backend = Literal["auto", "torch", "numba", "reference"]

try:  # numba is a declared dependency, but a broken install must not break the library
    import numba as _numba

    HAVE_NUMBA = True
except Exception:  # pragma: no cover - exercised only where numba is missing
    _numba = None
    HAVE_NUMBA = False


def numba_available() -> bool:
    """Whether the compiled CPU kernels can be used."""
    return HAVE_NUMBA


# ---------------------------------------------------------------------------------------------
# Reference: the plain loop.


def discounted_cumsum_reference(x: torch.Tensor, discounts: torch.Tensor) -> torch.Tensor:
    """yₜ = xₜ + cₜ yₜ₊₁ with y_T = 0, by a plain reverse loop over t (the reference).

    Args:
      x: ``[T, *B]`` the per-step terms xₜ.
      discounts: ``[T, *B]`` the per-step discounts cₜ (0 where the recursion must stop).
    Returns:
      ``[T, *B]`` the sums yₜ, in x's dtype and device.
    """
    _validate_scan_inputs(x, discounts)
    y = torch.empty_like(x)
    acc = torch.zeros_like(x[0])
    # backward in time: t = T-1, …, 0
    for t in range(x.shape[0] - 1, -1, -1):
        acc = x[t] + discounts[t] * acc
        y[t] = acc
    return y


# ---------------------------------------------------------------------------------------------
# Fast paths.


def discounted_cumsum(
    x: torch.Tensor, discounts: torch.Tensor, *, backend: Backend = "auto"
) -> torch.Tensor:
    """yₜ = xₜ + cₜ yₜ₊₁ with y_T = 0: the generic reverse linear recurrence, fast.

    The expansion is yₜ = Σₖ₌ₜ^{T-1} (Πⱼ₌ₜ^{k-1} cⱼ) xₖ; with cₜ = γ it is the discounted
    cumulative sum of ``scipy.signal.lfilter([1], [1, -γ], x[::-1])[::-1]``, but cₜ may vary per
    step and per environment (0 at episode ends), which lfilter cannot express.

    Args:
      x: ``[T, *B]`` floating tensor, finite.
      discounts: ``[T, *B]`` floating tensor of the same shape, finite.
      backend: ``"auto"`` (numba on CPU when no gradient is needed, else torch), ``"torch"``,
        ``"numba"``, or ``"reference"``.
    Returns:
      ``[T, *B]`` tensor, same dtype and device as ``x``.

    Checked by: the spec ``pgmath.specs.SPECS["discounted_cumsum"]`` (``pgmath/specs/returns.py``),
    run by ``tests/test_specs.py``; ``tests/test_scan.py`` (every backend == the reference loop).
    """
    _validate_scan_inputs(x, discounts)
    if backend == "reference":
        return discounted_cumsum_reference(x, discounts)
    shape = x.shape
    x2, d2 = x.reshape(shape[0], -1), discounts.reshape(shape[0], -1)
    use = pick_backend(backend, x, discounts)
    if use == "numba":
        out = _scan_numba(x2, d2)
    else:
        cd = compute_dtype(x.dtype)
        out = scan_torch(x2.to(cd), d2.to(cd)).to(x.dtype)
    return out.reshape(shape)


def _validate_scan_inputs(x: torch.Tensor, discounts: torch.Tensor) -> None:
    validate_float_tensor(x, "x")
    validate_time_major(x, "x")
    validate_float_tensor(discounts, "discounts")
    validate_same_shape("x", x, discounts=discounts)


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """Half and bfloat16 inputs accumulate in float32 and are cast back at the end."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def pick_backend(backend: str, *tensors: torch.Tensor) -> str:
    if backend not in ("auto", "torch", "numba"):
        raise ValueError(f"backend must be 'auto', 'torch', 'numba' or 'reference', got {backend!r}")
    numba_ok = (
        HAVE_NUMBA
        and all(t.device.type == "cpu" for t in tensors)
        and all(t.dtype in (torch.float32, torch.float64) for t in tensors if t.is_floating_point())
        and not any(t.requires_grad for t in tensors)
    )
    if backend == "numba":
        if not numba_ok:
            raise ValueError(
                "backend='numba' needs numba and CPU float32/float64 tensors without requires_grad"
            )
        return "numba"
    if backend == "auto" and numba_ok:
        return "numba"
    return "torch"


def block_size(T: int) -> int:
    """Block length of the blocked scan: about √T, within [8, 512]."""
    return int(min(512, max(8, math.isqrt(max(T, 1)))))


def scan_torch(x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Blocked scan of yₜ = xₜ + cₜ yₜ₊₁ over ``[T, N]`` tensors (pure torch, differentiable)."""
    T, N = x.shape
    K = block_size(T)
    if T <= K:
        # short sequence: the direct loop, backward in time
        acc = torch.zeros_like(x[0])
        ys = []
        for t in range(T - 1, -1, -1):
            acc = x[t] + c[t] * acc
            ys.append(acc)
        return torch.stack(ys[::-1])
    n = -(-T // K)
    pad = n * K - T
    if pad:  # padded steps sit after the end: x = 0 there, so they contribute nothing
        x = torch.cat([x, x.new_zeros(pad, N)])
        c = torch.cat([c, c.new_zeros(pad, N)])
    xb, cb = x.view(n, K, N), c.view(n, K, N)
    # local scan inside every block at once, backward over the K positions of a block
    acc = torch.zeros_like(xb[:, 0])
    prod = torch.ones_like(cb[:, 0])
    locs, prods = [], []
    for k in range(K - 1, -1, -1):
        acc = xb[:, k] + cb[:, k] * acc
        prod = cb[:, k] * prod
        locs.append(acc)
        prods.append(prod)
    yloc = torch.stack(locs[::-1], dim=1)  # [n, K, N]: the sum if nothing followed the block
    P = torch.stack(prods[::-1], dim=1)  # [n, K, N]: Π of c from position k to the block's end
    # y at the start of block i obeys the same recursion one level up: Yᵢ = ylocᵢ,₀ + Pᵢ,₀ Yᵢ₊₁
    Y = scan_torch(yloc[:, 0], P[:, 0])
    carry = torch.cat([Y[1:], Y.new_zeros(1, N)])  # Yᵢ₊₁, the value entering block i
    y = yloc + P * carry[:, None, :]
    return y.reshape(n * K, N)[:T]


# ---------------------------------------------------------------------------------------------
# numba kernels (CPU). The generic scan's kernel is here; the fused GAE and return kernels live
# beside their formulas (pgmath/advantages.py, pgmath/returns.py) and use ``numba_jit``. Each reads its inputs once and writes its output once, running the time
# loop backwards with the batch as the inner, contiguous loop (vectorised by LLVM). They are
# single-threaded on purpose: the work is memory-bound (one thread already moves the bytes as
# fast as a copy of the inputs does, see benchmarks/gae.py), and numba's OpenMP threads would
# compete with torch's own thread pool.

if HAVE_NUMBA:
    # 'contract' only: multiply-adds may fuse into FMAs (shorter dependency chain, one rounding
    # instead of two); no reassociation, so the recursion is evaluated in the reference's order.
    numba_jit = _numba.njit(cache=True, fastmath={"contract"}, nogil=True)

    @numba_jit
    def _scan_kernel(x, c, out):  # pragma: no cover - compiled
        T, N = x.shape
        acc = np.zeros(N, dtype=x.dtype)
        # backward in time
        for t in range(T - 1, -1, -1):
            for j in range(N):
                a = x[t, j] + c[t, j] * acc[j]
                acc[j] = a
                out[t, j] = a


def as_numpy(t: torch.Tensor) -> np.ndarray:
    """A contiguous NumPy view of a CPU tensor (detached), for the numba kernels."""
    return t.detach().contiguous().numpy()


def empty_like_numpy(x: torch.Tensor) -> torch.Tensor:
    """A new contiguous CPU tensor like ``x``, allocated by NumPy: glibc reuses large freed blocks,
    while torch's allocator unmaps them and page-faults a fresh output on every call."""
    return torch.from_numpy(np.empty(tuple(x.shape), dtype=as_numpy(x[:0]).dtype))


def _scan_numba(x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    out = empty_like_numpy(x)
    _scan_kernel(as_numpy(x), as_numpy(c.to(x.dtype)), out.numpy())
    return out
