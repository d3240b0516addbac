"""pgmath.testing: check anyone's GAE, returns, PPO loss and KL estimator against pgmath's.

Three lines::

    from pgmath.testing import check_gae
    from mytrainer import compute_gae
    check_gae(compute_gae, convention="sb3")

* checks — :func:`check_gae`, :func:`check_returns`, :func:`check_ppo_loss`,
  :func:`check_kl_estimator`, :func:`check_group_advantages`,
  :func:`check_policy_loss` (PPO, CISPO, GSPO, GMPO, REINFORCE × aggregations),
  :func:`check_kl_penalty`, :func:`check_token_gae`, :func:`check_reinforce_pp_returns`,
  :func:`check_vtrace`, :func:`check_retrace` (off-policy targets)
  (:mod:`pgmath.testing.checks`), all configured by one :class:`CheckOptions` (or its fields as
  keywords)
* ready adapters of real libraries — :mod:`pgmath.testing.adapters` (``pgmath conform``)
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

from pgmath.optional import extra_error

try:
    import hypothesis  # noqa: F401  (an optional dependency: say which extra brings it)
except ImportError as exc:
    raise extra_error("testing", "pgmath.testing", exc) from exc

from pgmath.rollouts import Rollout
from pgmath.testing.checks import (
    DEFAULT_MAX_EXAMPLES,
    CheckOptions,
    CheckReport,
    check_gae,
    check_group_advantages,
    check_kl_estimator,
    check_kl_penalty,
    check_policy_loss,
    check_ppo_loss,
    check_reinforce_pp_returns,
    check_retrace,
    check_returns,
    check_token_entropy,
    check_token_gae,
    check_token_log_probs,
    check_vtrace,
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
    "check_kl_penalty",
    "check_policy_loss",
    "check_ppo_loss",
    "check_reinforce_pp_returns",
    "check_retrace",
    "check_returns",
    "check_token_entropy",
    "check_token_gae",
    "check_token_log_probs",
    "check_vtrace",
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
