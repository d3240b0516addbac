"""Check anyone's GAE, returns, PPO loss, KL estimator or group advantages against pgmath's.

Three lines::

    from pgmath.testing import check_gae
    from mytrainer.buffers import compute_gae
    check_gae(compute_gae, convention="sb3")

Each check runs a property-based comparison (Hypothesis, a bounded number of examples,
derandomized so a CI run is reproducible) against pgmath's reference implementation, then the
hand-made edge cases of :mod:`pgmath.testing.edge_cases`. On the first disagreement it raises an
``AssertionError`` whose message carries the *shrunken* counterexample: the differing entries
(``t=3, env=1: expected …, got …; the episode was truncated at t=2, so the bootstrap uses
next_values[2] …``), the input as a table per environment (also as your convention saw it), and
the known bug from :mod:`pgmath.testing.mutants` whose output it reproduces, if any. On success
it returns a :class:`CheckReport`.

Every check takes the same :class:`CheckOptions` — as ``options=CheckOptions(...)`` or as keywords
(``max_examples=``, ``seed=``, ``dtype=``, ``device=``, ``rtol=``, ``atol=``, ``edge_cases=``,
``strategy=``, ``arrays=``), keywords overriding the object.

Modules: :mod:`~pgmath.testing.checks.core` (options, report, the Hypothesis run),
:mod:`~pgmath.testing.checks.rollouts` (``check_gae``, ``check_returns``),
:mod:`~pgmath.testing.checks.ppo_loss`, :mod:`~pgmath.testing.checks.kl_estimator`,
:mod:`~pgmath.testing.checks.group_advantages`, :mod:`~pgmath.testing.checks.offpolicy`
(``check_vtrace``, ``check_retrace``); messages are rendered by
:mod:`pgmath.testing.report`.

References: the plain-loop references of the formula specs (:mod:`pgmath.specs`) —
:func:`pgmath.gae_reference`, :func:`pgmath.discounted_returns_reference`,
``ppo_clip_loss_reference`` (:mod:`pgmath.specs.losses`), ``kl_estimate_reference``
(:mod:`pgmath.specs.kl`), :func:`pgmath.llm.group_advantages_reference` /
:func:`pgmath.llm.rloo_advantages_reference`.

Tolerance: an entry passes when |got − expected| ≤ atol + rtol · scale, where scale bounds the
magnitude of the terms that make up the entry (e.g. Σ (γλ)ˡ (|rₜ₊ₗ| + γ|V(sₜ₊ₗ₊₁)| + |V(sₜ₊ₗ)|)
for GAE) and rtol defaults to a small multiple of the machine epsilon of the *coarser* of the
input dtype and your output's dtype (so a float32 implementation is judged in float32).

Checked by: ``tests/test_testing_checks.py`` (the references pass; messages name the step,
environment and episode end), ``tests/test_testing_mutants.py`` (every catalogued bug is
rejected), ``tests/test_testing_sb3.py`` (Stable-Baselines3's ``RolloutBuffer``).
"""

from pgmath.testing.checks.core import DEFAULT_MAX_EXAMPLES, CheckOptions, CheckReport
from pgmath.testing.checks.group_advantages import check_group_advantages, group_reference
from pgmath.testing.checks.kl_estimator import check_kl_estimator
from pgmath.testing.checks.kl_penalty import check_kl_penalty
from pgmath.testing.checks.offpolicy import check_retrace, check_vtrace
from pgmath.testing.checks.policy_loss import check_policy_loss
from pgmath.testing.checks.ppo_loss import check_ppo_loss
from pgmath.testing.checks.rollouts import check_gae, check_returns
from pgmath.testing.checks.token_gae import check_reinforce_pp_returns, check_token_gae
from pgmath.testing.checks.token_logprobs import check_token_entropy, check_token_log_probs

__all__ = [
    "DEFAULT_MAX_EXAMPLES",
    "CheckOptions",
    "CheckReport",
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
    "group_reference",
]
