"""verl: ``verl.trainer.ppo.core_algos`` — policy losses, KL penalty, token GAE, group advantages.

Bridges (declared; each entry repeats its own):

* policy losses ``compute_policy_loss_<name>(old_log_prob, log_prob, advantages, response_mask,
  loss_agg_mode, config)``: the adapter reorders the arguments (verl takes the old log-probs
  first), builds a real ``verl.workers.config.ActorConfig`` with the clip range (the same numbers
  are the check's settings), passes the response mask as float and returns verl's loss. verl's
  own defaults that differ from pgmath's are passed to the check as *settings*, not hidden:
  ``compute_policy_loss_vanilla`` always applies the dual clip at ``clip_ratio_c = 3`` (the check
  runs with ``dual_clip=3.0``).
* KL: verl's actor computes ``agg_loss(kl_penalty(log_prob, ref_log_prob, kl_loss_type), mask,
  loss_agg_mode)``; the adapter is exactly that composition of verl's two functions.
* token GAE ``compute_gae_advantage_return(rewards, values, response_mask, gamma, lam)`` whitens
  the advantages with ``masked_whiten`` (√(var + 1e-8)): the check runs with ``whiten=True,
  std_floor="inside", eps=1e-8``.
* group advantages take ``(token_level_rewards [N, 1], response_mask [N, 1], index)``: the adapter
  puts each scalar reward in a one-token response and reads the ``[N, 1]`` result back as ``[N]``.

verl multiplies losses by the mask, so padding must be finite: the checks run with
``nan_pads=False`` (verl's pipeline never has NaN in padding).
"""

from __future__ import annotations

from typing import Any

import torch

from pgmath.testing.adapters import Entry

DISTRIBUTION = "verl"
_CA = "verl.trainer.ppo.core_algos"


def _config(clip_low: float, clip_high: float, loss_scale_factor: float | None = None) -> Any:
    from verl.workers.config import ActorConfig

    return ActorConfig(strategy="fsdp", rollout_n=1, ppo_micro_batch_size_per_gpu=1, clip_ratio=clip_low,
                       clip_ratio_low=clip_low, clip_ratio_high=clip_high, loss_scale_factor=loss_scale_factor)


def policy_loss_adapter(name: str, agg: str, clip_low: float = 0.2, clip_high: float = 0.28):
    """``fn(log_probs, old_log_probs, advantages, mask)`` calling verl's registered loss ``name``."""
    from verl.trainer.ppo import core_algos

    loss_fn = core_algos.get_policy_loss_fn(name)
    config = _config(clip_low, clip_high)

    def fn(log_probs, old_log_probs, advantages, mask):
        return loss_fn(old_log_probs, log_probs, advantages, mask.to(log_probs.dtype), agg, config)[0]

    fn.__name__ = fn.__qualname__ = f"verl_{name}_{agg}"
    return fn


def kl_adapter(kl_type: str, agg: str):
    from verl.trainer.ppo import core_algos

    def fn(log_probs, ref_log_probs, mask):
        k = core_algos.kl_penalty(log_probs, ref_log_probs, kl_type)
        return core_algos.agg_loss(k, mask.to(log_probs.dtype), agg)

    fn.__name__ = fn.__qualname__ = f"verl_kl_{kl_type}_{agg}"
    return fn


def gae_adapter(gamma: float, lam: float):
    from verl.trainer.ppo import core_algos

    def fn(rewards, values, mask):
        return core_algos.compute_gae_advantage_return(rewards, values, mask.to(rewards.dtype), gamma, lam)

    fn.__name__ = fn.__qualname__ = "verl_compute_gae_advantage_return"
    return fn


def reinforce_pp_adapter(gamma: float):
    from verl.trainer.config import AlgoConfig
    from verl.trainer.ppo import core_algos

    config = AlgoConfig(gamma=gamma)

    def fn(rewards, mask):
        return core_algos.compute_reinforce_plus_plus_outcome_advantage(rewards, mask.to(rewards.dtype), config)[0]

    fn.__name__ = fn.__qualname__ = "verl_compute_reinforce_plus_plus_outcome_advantage"
    return fn


def group_adapter(name: str, **kw: Any):
    import numpy as np
    from verl.trainer.ppo import core_algos

    est = getattr(core_algos, name)

    def fn(rewards, index):
        r = rewards.reshape(-1, 1)
        idx = index.cpu().numpy() if "vectorized" in name else np.array([str(int(i)) for i in index.tolist()], dtype=object)
        return est(r, torch.ones_like(r), idx, **kw)[0].reshape(-1)

    fn.__name__ = fn.__qualname__ = f"verl_{name}"
    return fn


def entries() -> list[Entry]:
    from verl.trainer.ppo import core_algos  # noqa: F401  (missing library → ImportError)

    clip = {"clip_eps": 0.2, "clip_eps_high": 0.28}
    nan = {"nan_pads": False}
    b_loss = "arguments reordered (verl takes old_log_prob first); a real ActorConfig(clip 0.2/0.28)"
    out = []
    for agg in ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "token-sum"):
        out.append(Entry(f"{_CA}.compute_policy_loss_vanilla", "check_policy_loss",
                         {"objective": "ppo", "aggregation": agg, **clip, "dual_clip": 3.0, **nan},
                         policy_loss_adapter("vanilla", agg), b_loss + "; verl's clip_ratio_c = 3 → dual_clip=3.0"))
    out.append(Entry(f"{_CA}.compute_policy_loss_vanilla", "check_policy_loss",
                     {"objective": "ppo", "aggregation": "seq-mean-token-sum-norm", "normalizer": 8.0, **clip,
                      "dual_clip": 3.0, **nan},
                     policy_loss_adapter("vanilla", "seq-mean-token-sum-norm"),
                     b_loss + "; loss_scale_factor left at its default (None)"))
    out.append(Entry(f"{_CA}.compute_policy_loss_cispo", "check_policy_loss",
                     {"objective": "cispo", "aggregation": "token-mean", **clip, **nan},
                     policy_loss_adapter("cispo", "token-mean"), b_loss))
    out.append(Entry(f"{_CA}.compute_policy_loss_gspo", "check_policy_loss",
                     {"objective": "gspo-token", "aggregation": "seq-mean-token-mean", **clip, **nan},
                     policy_loss_adapter("gspo", "seq-mean-token-mean"), b_loss))
    out.append(Entry(f"{_CA}.compute_policy_loss_geo_mean", "check_policy_loss",
                     {"objective": "gmpo", "aggregation": "seq-mean-token-mean", "clip_eps": 0.4, **nan},
                     policy_loss_adapter("geo_mean", "seq-mean-token-mean", 0.4, 0.4),
                     "arguments reordered; ActorConfig(clip 0.4/0.4: GMPO's log-space range)"))
    for kl_type, est in (("kl", "k1"), ("mse", "k2"), ("low_var_kl", "k3")):
        out.append(Entry(f"{_CA}.kl_penalty + agg_loss", "check_kl_penalty",
                         {"estimator": est, "aggregation": "token-mean", **nan}, kl_adapter(kl_type, "token-mean"),
                         f"agg_loss(kl_penalty(log_prob, ref_log_prob, {kl_type!r}), mask, 'token-mean'), as verl's actor"))
    out.append(Entry(f"{_CA}.compute_gae_advantage_return", "check_token_gae",
                     {"gamma": 1.0, "lam": 0.95, "whiten": True, "std_floor": "inside", "eps": 1e-8, **nan},
                     gae_adapter(1.0, 0.95), "mask as float; verl whitens with masked_whiten (√(var + 1e-8))"))
    out.append(Entry(f"{_CA}.compute_reinforce_plus_plus_outcome_advantage", "check_reinforce_pp_returns",
                     {"gamma": 0.99, "std_floor": "inside", "eps": 1e-8, **nan}, reinforce_pp_adapter(0.99),
                     "AlgoConfig(gamma=0.99); masked_whiten (√(var + 1e-8))"))
    b_grp = "scalar rewards as one-token responses [N, 1]; index as uid strings (ints for *_vectorized)"
    for name, est, kw, settings in (
        ("compute_grpo_outcome_advantage", "grpo", {}, {"eps": 1e-6}),
        ("compute_grpo_outcome_advantage", "grpo-no-std", {"norm_adv_by_std_in_grpo": False}, {}),
        ("compute_grpo_vectorized_outcome_advantage", "grpo", {}, {"eps": 1e-6}),
        ("compute_rloo_outcome_advantage", "rloo", {}, {}),
        ("compute_rloo_vectorized_outcome_advantage", "rloo", {}, {}),
        ("compute_reinforce_plus_plus_baseline_outcome_advantage", "reinforce++-baseline", {},
         {"eps": 1e-8, "std_floor": "inside"}),
    ):
        out.append(Entry(f"{_CA}.{name}", "check_group_advantages",
                         {"estimator": est, "layout": "index", **settings}, group_adapter(name, **kw),
                         b_grp + (f"; {kw}" if kw else "")))
    return out
