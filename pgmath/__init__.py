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
* off-policy targets — :func:`vtrace`, :func:`retrace`, :func:`tree_backup`, :func:`q_lambda`,
  :func:`per_decision_is_returns`, the general :func:`trace_recursion` (each with ``*_reference``)
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
from pgmath.offpolicy import (
    per_decision_is_returns,
    per_decision_is_returns_reference,
    q_lambda,
    q_lambda_reference,
    retrace,
    retrace_reference,
    trace_recursion,
    trace_recursion_reference,
    tree_backup,
    tree_backup_reference,
    vtrace,
    vtrace_reference,
)
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
    "per_decision_is_returns",
    "per_decision_is_returns_reference",
    "policy_gradient_loss",
    "ppo_clip_loss",
    "q_lambda",
    "q_lambda_reference",
    "retrace",
    "retrace_reference",
    "td_errors",
    "trace_recursion",
    "trace_recursion_reference",
    "tree_backup",
    "tree_backup_reference",
    "value_loss",
    "vtrace",
    "vtrace_reference",
]
