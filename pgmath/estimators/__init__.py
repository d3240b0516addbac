"""Monte-Carlo policy-gradient estimators, checked for bias against the exact gradient.

* :func:`estimate_policy_gradient` — per-episode gradient samples ``[N, S, A]`` of every
  estimator in :data:`ESTIMATORS` (REINFORCE, reward-to-go, baseline, actor-critic, TD, GAE,
  GAE without the γᵗ weight, and deliberately biased ones), on a tabular MDP
  (:mod:`.policy_gradient`).
* :func:`expected_gradient` — the exact mean of each estimator, by linear solves
  (:mod:`.expected`); :func:`gae_value_error_bias` — the bias of GAE(λ) with an imperfect critic.
* :func:`check_unbiased` / :class:`UnbiasedTest` — the statistical test (:mod:`.stats`).
* variance, error and cosine-similarity curves (:mod:`.variance`).
* the ``pgmath verify`` rows and plots (:mod:`.checks`).
"""

from pgmath.estimators.expected import expected_gradient, gae_value_error_bias
from pgmath.estimators.policy_gradient import (
    BIASED_ESTIMATORS,
    ESTIMATORS,
    UNBIASED_ESTIMATORS,
    Estimator,
    estimate_policy_gradient,
    is_unbiased,
    per_episode_gradients,
)
from pgmath.estimators.stats import UnbiasedTest, check_unbiased, hotelling_power

__all__ = [
    "BIASED_ESTIMATORS",
    "ESTIMATORS",
    "UNBIASED_ESTIMATORS",
    "Estimator",
    "UnbiasedTest",
    "check_unbiased",
    "estimate_policy_gradient",
    "expected_gradient",
    "gae_value_error_bias",
    "hotelling_power",
    "is_unbiased",
    "per_episode_gradients",
]
