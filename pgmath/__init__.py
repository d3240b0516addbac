"""pgmath: policy-gradient math, each formula beside a check that can fail.

The core formulas (time-major ``[T, *B]`` tensors; see :mod:`pgmath.returns` for conventions):

* returns and TD errors — :func:`discounted_returns`, :func:`td_errors`
* advantages — :func:`gae`, :func:`gae_reference`, :func:`lambda_returns`,
  :func:`normalize_advantages`
* the generic reverse scan — :func:`discounted_cumsum`
* distributions — :func:`categorical_log_prob`, :func:`categorical_entropy`,
  :func:`gaussian_log_prob`, :func:`gaussian_entropy`
* losses — :func:`policy_gradient_loss`, :func:`ppo_clip_loss`, :func:`value_loss`
* KL — :func:`kl_estimate`, :func:`kl_categorical`
"""

from pgmath.advantages import gae, gae_reference, lambda_returns, normalize_advantages
from pgmath.distributions import (
    categorical_entropy,
    categorical_log_prob,
    gaussian_entropy,
    gaussian_log_prob,
)
from pgmath.kl import kl_categorical, kl_estimate
from pgmath.losses import masked_mean, policy_gradient_loss, ppo_clip_loss, value_loss
from pgmath.returns import discounted_returns, discounted_returns_reference, td_errors
from pgmath.scan import discounted_cumsum, discounted_cumsum_reference

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "categorical_entropy",
    "categorical_log_prob",
    "discounted_cumsum",
    "discounted_cumsum_reference",
    "discounted_returns",
    "discounted_returns_reference",
    "gae",
    "gae_reference",
    "gaussian_entropy",
    "gaussian_log_prob",
    "kl_categorical",
    "kl_estimate",
    "lambda_returns",
    "masked_mean",
    "normalize_advantages",
    "policy_gradient_loss",
    "ppo_clip_loss",
    "td_errors",
    "value_loss",
]
