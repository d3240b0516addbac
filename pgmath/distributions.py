"""Log-probabilities and entropies of the two policy families used everywhere.

Categorical (softmax) policy, πθ(a|s) = exp(zₐ) / Σ_b exp(z_b):

    log π(a) = zₐ − logsumexp(z),      ∂ log π(a) / ∂z_b = [a = b] − π(b)
    H(π) = −Σₐ π(a) log π(a)

An action mask (``True`` = allowed) removes actions: their logits become −∞, their probability
0, and they contribute nothing to the entropy (0 · log 0 := 0).

Diagonal Gaussian policy, a ~ N(μ, diag σ²) with σ = exp(log σ):

    log π(a) = Σᵢ [ −½ ((aᵢ − μᵢ)/σᵢ)² − log σᵢ − ½ log 2π ]
    H = Σᵢ [ log σᵢ + ½ log(2πe) ]

Checked by: the specs of ``pgmath/specs/distributions.py`` (against ``torch.distributions``, the
analytic score onehot(a) − π, gradcheck), run by ``tests/test_specs.py``;
``tests/test_distributions.py``; proofs ``proofs/softmax_score.py``, ``proofs/categorical.py``,
``proofs/gaussian.py``.
"""

from __future__ import annotations

import math

import torch

from pgmath.validation import validate_finite, validate_float_tensor, validate_mask

__all__ = [
    "categorical_entropy",
    "categorical_log_prob",
    "gaussian_entropy",
    "gaussian_log_prob",
]

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
_HALF_LOG_2PIE = 0.5 * math.log(2.0 * math.pi * math.e)


def _masked_log_softmax(logits: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    validate_float_tensor(logits, "logits", finite=False)
    if logits.dim() == 0 or logits.shape[-1] == 0:
        raise ValueError(f"logits must have a non-empty last (action) axis, got {tuple(logits.shape)}")
    if mask is None:
        validate_finite(logits, "logits")
        return torch.log_softmax(logits, dim=-1), None
    m = validate_mask(mask, "mask", logits.shape, logits.device)
    if not bool(m.any(dim=-1).all()):
        raise ValueError("mask allows no action in at least one row")
    validate_finite(logits, "logits", mask=m)
    neg_inf = torch.full((), float("-inf"), dtype=logits.dtype, device=logits.device)
    return torch.log_softmax(torch.where(m, logits, neg_inf), dim=-1), m


def categorical_log_prob(
    logits: torch.Tensor, actions: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """log π(a) = zₐ − logsumexp(z) for a softmax policy.

    Args:
      logits: ``[*B, A]`` unnormalised log-probabilities z.
      actions: ``[*B]`` integer actions in [0, A).
      mask: optional ``[*B, A]`` bool/0-1, ``True`` where the action is allowed. Masked logits may
        hold any value (even NaN); choosing a masked action is a ``ValueError``.
    Returns:
      ``[*B]`` log π(aₜ), same dtype/device as ``logits``.
    """
    logp, m = _masked_log_softmax(logits, mask)
    if not isinstance(actions, torch.Tensor) or actions.dtype.is_floating_point or actions.dtype == torch.bool:
        raise ValueError("actions must be an integer torch.Tensor")
    if tuple(actions.shape) != tuple(logits.shape[:-1]):
        raise ValueError(
            f"actions has shape {tuple(actions.shape)} but logits {tuple(logits.shape)} needs "
            f"{tuple(logits.shape[:-1])}"
        )
    A = logits.shape[-1]
    if bool(((actions < 0) | (actions >= A)).any()):
        raise ValueError(f"actions must lie in [0, {A})")
    idx = actions.long().unsqueeze(-1)
    if m is not None and not bool(m.gather(-1, idx).all()):
        raise ValueError("actions include an action that mask forbids")
    return logp.gather(-1, idx).squeeze(-1)


def categorical_entropy(logits: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """H(π) = −Σₐ π(a) log π(a) over the allowed actions; ``[*B, A]`` → ``[*B]``."""
    logp, m = _masked_log_softmax(logits, mask)
    if m is not None:  # 0 · log 0 := 0 before the product: 0 · (−∞) is NaN in the gradient too
        logp = torch.where(m, logp, torch.zeros_like(logp))
    plogp = logp.exp() * logp
    return -plogp.sum(-1)


def _validate_gaussian(mean: torch.Tensor, log_std: torch.Tensor) -> None:
    validate_float_tensor(mean, "mean")
    validate_float_tensor(log_std, "log_std")
    if mean.dim() == 0:
        raise ValueError("mean must have a last (action-dimension) axis")
    if log_std.shape != mean.shape and log_std.shape != mean.shape[-1:]:
        raise ValueError(
            f"log_std has shape {tuple(log_std.shape)}; it must equal mean's shape "
            f"{tuple(mean.shape)} or its last axis {tuple(mean.shape[-1:])}"
        )


def gaussian_log_prob(mean: torch.Tensor, log_std: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """log N(a; μ, diag σ²), summed over the last (action-dimension) axis.

    Args:
      mean: ``[*B, D]`` μ.
      log_std: ``[*B, D]`` or ``[D]`` (a state-independent parameter) log σ.
      actions: ``[*B, D]`` a.
    Returns:
      ``[*B]`` log π(a).
    """
    _validate_gaussian(mean, log_std)
    validate_float_tensor(actions, "actions")
    if actions.shape != mean.shape:
        raise ValueError(f"actions has shape {tuple(actions.shape)} but mean has {tuple(mean.shape)}")
    z = (actions - mean) * torch.exp(-log_std)
    return (-0.5 * z * z - log_std - _HALF_LOG_2PI).sum(-1)


def gaussian_entropy(log_std: torch.Tensor) -> torch.Tensor:
    """H = Σᵢ (log σᵢ + ½ log 2πe); ``[*B, D]`` → ``[*B]``."""
    validate_float_tensor(log_std, "log_std")
    if log_std.dim() == 0:
        raise ValueError("log_std must have a last (action-dimension) axis")
    return (log_std + _HALF_LOG_2PIE).sum(-1)
