"""pgmath.testing: check anyone's GAE, returns, PPO loss and KL estimator against pgmath's.

Three lines::

    from pgmath.testing import check_gae
    from mytrainer import compute_gae
    check_gae(compute_gae, convention="sb3")

* checks — :func:`check_gae`, :func:`check_returns`, :func:`check_ppo_loss`,
  :func:`check_kl_estimator`, :func:`check_group_advantages` (:mod:`pgmath.testing.checks`), all
  configured by one :class:`CheckOptions` (or its fields as keywords)
* calling conventions — ``"pgmath"``, ``"sb3"``, ``"rlax"``, ``"torchrl"``
  (:mod:`pgmath.testing.conventions`)
* Hypothesis strategies — :func:`rollouts` (of :class:`~pgmath.rollouts.Rollout` s),
  :func:`logit_batches`, :func:`reward_groups`, :func:`tabular_mdps`
  (:mod:`pgmath.testing.strategies`)
* the catalogue of buggy implementations — :data:`MUTANTS` (:mod:`pgmath.testing.mutants`),
  built from the wrong variants of :mod:`pgmath.specs`
* mismatch messages — :mod:`pgmath.testing.report`
* a pytest plugin (:mod:`pgmath.testing.plugin`) and the ``pgmath check`` command
  (:mod:`pgmath.testing.cli`)

Docs: ``docs/testing/``.
"""

from typing import Any

from pgmath.rollouts import Rollout
from pgmath.testing.checks import (
    DEFAULT_MAX_EXAMPLES,
    CheckOptions,
    CheckReport,
    check_gae,
    check_group_advantages,
    check_kl_estimator,
    check_ppo_loss,
    check_returns,
)
from pgmath.testing.conventions import (
    GAE_CONVENTIONS,
    RETURNS_CONVENTIONS,
    to_rlax,
    to_sb3,
    to_torchrl,
)
from pgmath.testing.mutants import Mutant
from pgmath.testing.strategies import (
    LogitBatch,
    RolloutCase,  # deprecated alias of Rollout
    logit_batches,
    make_rollout,
    reward_groups,
    rollouts,
    tabular_mdps,
)

__all__ = [
    "DEFAULT_MAX_EXAMPLES",
    "GAE_CONVENTIONS",
    "MUTANTS",
    "RETURNS_CONVENTIONS",
    "CheckOptions",
    "CheckReport",
    "LogitBatch",
    "Mutant",
    "Rollout",
    "RolloutCase",
    "check_gae",
    "check_group_advantages",
    "check_kl_estimator",
    "check_ppo_loss",
    "check_returns",
    "logit_batches",
    "make_rollout",
    "reward_groups",
    "rollouts",
    "tabular_mdps",
    "to_rlax",
    "to_sb3",
    "to_torchrl",
]

#: The catalogue of :mod:`pgmath.testing.mutants` (built from the specs on first access).
MUTANTS: tuple[Mutant, ...]


def __getattr__(name: str) -> Any:
    if name == "MUTANTS":
        from pgmath.testing.mutants import catalogue

        return catalogue()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
