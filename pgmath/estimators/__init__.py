"""Monte-Carlo policy-gradient estimators, checked for bias against the exact gradient.

* :func:`estimate_policy_gradient` — per-episode gradient samples ``[N, S, A]`` of every
  estimator in :data:`ESTIMATORS` (REINFORCE, reward-to-go, baseline, actor-critic, TD, GAE,
  GAE without the γᵗ weight, and deliberately biased ones), on a tabular MDP
  (:mod:`.policy_gradient`). The deliberately biased rules that are a known bug of a formula
  call that bug's wrong variant in :data:`pgmath.specs.SPECS` instead of re-implementing it.
* :func:`expected_gradient` — the exact mean of each estimator, by linear solves
  (:mod:`.expected`); :func:`gae_value_error_bias` — the bias of GAE(λ) with an imperfect critic.
* the statistical test of unbiasedness lives in :mod:`pgmath.stats`
  (:func:`pgmath.stats.unbiasedness_test`, Hotelling T²), shared with the LLM area.
* variance, error and cosine-similarity curves (:mod:`.variance`).
* the ``pgmath verify`` rows and plots (:mod:`.verify`).
"""

from pgmath.optional import extra_error

try:
    import scipy  # noqa: F401  (an optional dependency: say which extra brings it)
except ImportError as exc:
    raise extra_error("stats", "pgmath.estimators", exc) from exc

from pgmath.estimators.expected import expected_gradient, gae_value_error_bias
from pgmath.estimators.policy_gradient import (
    BIASED_ESTIMATORS,
    ESTIMATORS,
    UNBIASED_ESTIMATORS,
    EpisodeBatch,
    Estimator,
    estimate_policy_gradient,
    is_unbiased,
    per_episode_gradients,
)

__all__ = [
    "BIASED_ESTIMATORS",
    "ESTIMATORS",
    "UNBIASED_ESTIMATORS",
    "EpisodeBatch",
    "Estimator",
    "estimate_policy_gradient",
    "expected_gradient",
    "gae_value_error_bias",
    "is_unbiased",
    "per_episode_gradients",
]
