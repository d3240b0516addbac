"""pgmath.llm: token-level policy-gradient objectives for RL fine-tuning of language models.

Alignment convention for every ``[B, L]`` tensor: position t refers to token ``tokens[:, t]``
(prompt and response in one sequence); ``mask[:, t]`` marks the response tokens. The
log-probability of token t is read from the logits at t − 1 (:func:`token_log_probs`), as a
Hugging Face causal LM emits them.

* log-probs and entropies — :func:`token_log_probs`, :func:`token_entropy` (at the sampling
  temperature, chunked), :func:`token_log_probs_from_hidden` (never holds the logits)
* loss aggregation — :func:`aggregate_token_loss`, :func:`aggregation_weights`
* advantages — :func:`group_advantages` (GRPO), :func:`rloo_advantages`,
  :func:`batch_normalized_returns` (REINFORCE++), :func:`token_gae`, :func:`token_rewards`
* KL — :func:`kl_penalty` (in the reward), :func:`kl_loss` (as a loss term), :func:`token_kl`
* policy loss — :func:`token_policy_loss` (ratio, clip-higher, dual clip, any aggregation);
  :func:`policy_loss` (PPO, CISPO, GSPO, GSPO-token, GMPO, REINFORCE × five aggregations)
* the exact oracle — :mod:`pgmath.llm.oracle`; the toy trainers — :mod:`pgmath.llm.train`
* what a loss's gradient estimates, exactly — :func:`audit_loss` (:mod:`pgmath.llm.audit`,
  ``pgmath audit``)
"""

from pgmath.llm.advantages import (
    batch_normalized_returns,
    group_advantages,
    group_advantages_reference,
    last_token_index,
    rloo_advantages,
    rloo_advantages_reference,
    token_gae,
    token_rewards,
)
from pgmath.llm.aggregate import AGGREGATION_MODES, aggregate_token_loss, aggregation_weights
from pgmath.llm.audit import AuditBatch, LossAudit, audit_loss
from pgmath.llm.chunked import token_log_probs_from_hidden
from pgmath.llm.kl import kl_loss, kl_penalty, token_kl
from pgmath.llm.logprobs import (
    token_entropy,
    token_entropy_reference,
    token_log_probs,
    token_log_probs_reference,
)
from pgmath.llm.losses import token_policy_loss
from pgmath.llm.policy_loss import OBJECTIVES, POLICY_AGGREGATIONS, policy_loss

__all__ = [
    "AGGREGATION_MODES",
    "OBJECTIVES",
    "POLICY_AGGREGATIONS",
    "AuditBatch",
    "LossAudit",
    "aggregate_token_loss",
    "aggregation_weights",
    "audit_loss",
    "batch_normalized_returns",
    "group_advantages",
    "group_advantages_reference",
    "kl_loss",
    "kl_penalty",
    "last_token_index",
    "policy_loss",
    "rloo_advantages",
    "rloo_advantages_reference",
    "token_entropy",
    "token_entropy_reference",
    "token_gae",
    "token_kl",
    "token_log_probs",
    "token_log_probs_from_hidden",
    "token_log_probs_reference",
    "token_policy_loss",
    "token_rewards",
]
