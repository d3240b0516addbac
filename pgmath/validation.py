"""Input validation shared by every public function (``validate_*``).

Bad input gets a ``ValueError`` that names the argument, never a silent wrong number:
wrong shapes (no silent broadcasting), NaN/inf, a discount outside [0, 1], done flags that
are not boolean or 0/1, empty time axes, non-positive clip ranges.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import numpy as np
import torch

__all__ = [
    "NOT_GIVEN",
    "as_flags",
    "as_real",
    "validate_all_finite",
    "validate_finite",
    "validate_float_tensor",
    "validate_mask",
    "validate_masked_pair",
    "validate_nonnegative",
    "validate_positive",
    "validate_rollout",
    "validate_same_shape",
    "validate_time_major",
    "validate_unit_interval",
]


class _NotGiven:
    def __repr__(self) -> str:
        return "NOT_GIVEN"


#: Default of optional validator arguments: "not passed", as distinct from an explicit ``None``.
NOT_GIVEN: object = _NotGiven()


def validate_float_tensor(x: object, name: str, *, finite: bool = True) -> torch.Tensor:
    """Return ``x`` if it is a floating-point tensor (finite unless ``finite=False``)."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not torch.is_floating_point(x):
        raise ValueError(f"{name} must have a floating-point dtype, got {x.dtype}")
    if finite:
        validate_finite(x, name)
    return x


def validate_finite(x: torch.Tensor, name: str, mask: torch.Tensor | None = None) -> None:
    """Raise if ``x`` holds NaN or inf (only where ``mask`` is true, when given)."""
    bad = ~torch.isfinite(x)
    if mask is not None:
        bad = bad & mask
    if bool(bad.any()):
        n = int(bad.sum())
        raise ValueError(f"{name} contains {n} non-finite value(s) (NaN or inf)")


def validate_all_finite(**tensors: torch.Tensor | None) -> None:
    """Raise naming the first of the keyword tensors (None skipped) that holds NaN or inf."""
    for name, t in tensors.items():
        if t is not None:
            validate_finite(t, name)


def validate_time_major(x: torch.Tensor, name: str) -> None:
    """Raise unless ``x`` has a non-empty leading time axis ``[T, *B]``."""
    if x.dim() == 0:
        raise ValueError(f"{name} must be time-major [T, *B], got a scalar")
    if x.shape[0] == 0:
        raise ValueError(f"{name} has an empty time axis (T = 0)")
    if x.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(x.shape)})")


def validate_same_shape(ref_name: str, ref: torch.Tensor, **others: torch.Tensor | None) -> None:
    """Raise unless every tensor in ``others`` has exactly the shape of ``ref``."""
    for name, t in others.items():
        if t is None:
            continue
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.shape != ref.shape:
            raise ValueError(
                f"{name} has shape {tuple(t.shape)} but {ref_name} has shape "
                f"{tuple(ref.shape)}; shapes must match exactly (no broadcasting)"
            )
        if t.device != ref.device:
            raise ValueError(f"{name} is on {t.device} but {ref_name} is on {ref.device}")


def as_flags(x: object, name: str) -> torch.Tensor:
    """Return episode-end flags as a bool tensor.

    Accepts a bool tensor, or an integer / floating tensor whose values are all exactly 0 or 1.
    Anything else (2, 0.5, NaN) is a ``ValueError`` naming the argument.
    """
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dtype == torch.bool:
        return x
    if torch.is_complex(x):
        raise ValueError(f"{name} must be boolean or 0/1, got complex dtype {x.dtype}")
    ok = (x == 0) | (x == 1)
    if not bool(ok.all()):
        raise ValueError(f"{name} must be boolean or hold only 0/1 values")
    return x != 0


def validate_mask(mask: object, name: str, shape: Sequence[int], device: torch.device) -> torch.Tensor:
    """Return a bool mask of exactly ``shape`` (0/1 numeric masks are accepted)."""
    m = as_flags(mask, name)
    if tuple(m.shape) != tuple(shape):
        raise ValueError(
            f"{name} has shape {tuple(m.shape)} but must have shape {tuple(shape)} (no broadcasting)"
        )
    if m.device != device:
        raise ValueError(f"{name} is on {m.device} but the data are on {device}")
    return m


def as_real(value: object, name: str) -> float:
    """Return a finite real scalar as a float, raising a ``ValueError`` naming ``name`` otherwise.

    Accepts any real scalar: a Python ``int``/``float``, a NumPy scalar (``np.float32(0.9)``,
    ``np.int64(1)``) or 0-d array, a one-element real tensor. Booleans, complex numbers, strings,
    ``None`` and arrays of more than one element are refused.
    """
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f"{name} must be a scalar, got a tensor of shape {tuple(value.shape)}")
        if value.dtype == torch.bool or torch.is_complex(value):
            raise ValueError(f"{name} must be a real number, got a {value.dtype} tensor")
        value = value.item()
    elif isinstance(value, np.ndarray):
        if value.ndim != 0:
            raise ValueError(f"{name} must be a scalar, got an array of shape {value.shape}")
        value = value[()]
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number, got {type(value).__name__}")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {v}")
    return v


def validate_unit_interval(value: object, name: str) -> float:
    """Return ``value`` as a float, raising unless it lies in [0, 1]."""
    v = as_real(value, name)
    if not 0.0 <= v <= 1.0:
        raise ValueError(f"{name} must lie in [0, 1], got {v}")
    return v


def validate_positive(value: object, name: str) -> float:
    """Return ``value`` as a float, raising unless it is > 0."""
    v = as_real(value, name)
    if not v > 0.0:
        raise ValueError(f"{name} must be > 0, got {v}")
    return v


def validate_nonnegative(value: object, name: str) -> float:
    """Return ``value`` as a float, raising unless it is ≥ 0 (NaN refused)."""
    v = as_real(value, name)
    if not v >= 0.0:
        raise ValueError(f"{name} must be >= 0, got {v}")
    return v


def validate_rollout(
    rewards: torch.Tensor,
    *,
    values: object = NOT_GIVEN,
    next_values: object = NOT_GIVEN,
    terminated: object = None,
    truncated: object = NOT_GIVEN,
    finite: bool = True,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Validate a time-major rollout; return the (terminated, truncated) flags as bool tensors.

    ``rewards`` and ``terminated`` are required; ``values``, ``next_values`` and ``truncated`` are
    validated when passed, and a formula that does not use one leaves it out (the TD error has no
    ``truncated``; the returned flag is then ``None``). Passed as ``None``, any of them is a
    ``ValueError`` naming the argument, not an ``AttributeError`` further down; a formula whose
    tensor is optional passes :data:`NOT_GIVEN` instead of ``None``.

    With ``finite=False`` the NaN/inf scan of the float inputs is left to the caller (the fused
    numba kernels do it in the same pass as the recursion).
    """
    validate_float_tensor(rewards, "rewards", finite=finite)
    validate_time_major(rewards, "rewards")
    given = {"values": values, "next_values": next_values}
    given = {name: t for name, t in given.items() if t is not NOT_GIVEN}
    for name, t in given.items():
        validate_float_tensor(t, name, finite=finite)
    term = as_flags(terminated, "terminated")
    trunc = None if truncated is NOT_GIVEN else as_flags(truncated, "truncated")
    validate_same_shape("rewards", rewards, **given, terminated=term, truncated=trunc)
    return term, trunc


def validate_masked_pair(
    ref_name: str, ref: torch.Tensor, mask: object, **others: torch.Tensor
) -> torch.Tensor | None:
    """Validate the inputs of a masked per-entry loss: float tensors of one non-empty shape
    (``ref`` and ``others``), an optional bool/0-1 ``mask`` of that shape, and finite values where
    the mask selects (NaN is allowed where it does not). Returns the mask as bool (or None)."""
    validate_float_tensor(ref, ref_name, finite=False)
    if ref.numel() == 0:
        raise ValueError(f"{ref_name} is empty")
    for name, t in others.items():
        validate_float_tensor(t, name, finite=False)
    validate_same_shape(ref_name, ref, **others)
    m = None if mask is None else validate_mask(mask, "mask", ref.shape, ref.device)
    validate_finite(ref, ref_name, mask=m)
    for name, t in others.items():
        validate_finite(t, name, mask=m)
    return m
