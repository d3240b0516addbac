"""REINFORCE (Williams, 1992) with an optional learned baseline, on whole episodes.

    ∇θ J ≈ mean over kept steps of  (Gₜ − b(sₜ)) ∇θ log πθ(aₜ|sₜ),
    Gₜ = rₜ + γ Gₜ₊₁  (reward-to-go, Sutton & Barto 2nd ed. §13.3–13.4),

with b(sₜ) = V_φ(sₜ) fitted by regression on Gₜ (``baseline=True``), or b = 0. The batch holds
complete episodes only (:meth:`pgmath.agents.rollout.Collector.collect_episodes`); a time-limit
truncation is bootstrapped from V_φ(final observation) when there is a critic, else the return
stops there (the classical Monte-Carlo return). Returns: :func:`pgmath.discounted_returns`;
advantage normalisation: :func:`pgmath.normalize_advantages` over the kept steps; loss:
:func:`pgmath.policy_gradient_loss` (+ :func:`pgmath.value_loss` for the baseline).
"""

from __future__ import annotations

import torch

import pgmath
from pgmath.agents.config import AgentConfig
from pgmath.agents.networks import ActorCritic
from pgmath.agents.rollout import RolloutBuffer
from pgmath.agents.update import actor_critic_step, explained_variance, flatten_env_major

__all__ = ["reinforce_targets", "reinforce_update"]


def reinforce_targets(batch: RolloutBuffer, cfg: AgentConfig, has_critic: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(returns Gₜ, advantages Gₜ − b(sₜ), normalised over the kept steps when asked), ``[T, N]``."""
    returns = pgmath.discounted_returns(
        batch.rewards, batch.terminated, batch.truncated, gamma=cfg.gamma,
        next_values=batch.next_values if has_critic else None,
    )
    adv = returns - batch.values if (cfg.baseline and has_critic) else returns
    if cfg.norm_adv:
        adv = pgmath.normalize_advantages(adv, mask=batch.valid)
    return returns, adv


def reinforce_update(
    model: ActorCritic, optimizer: torch.optim.Optimizer, batch: RolloutBuffer, cfg: AgentConfig
) -> dict[str, float]:
    """``cfg.update_epochs`` gradient steps (1 = on-policy REINFORCE) on the batch."""
    with torch.no_grad():
        returns, adv = reinforce_targets(batch, cfg, model.has_critic)
    f = flatten_env_major
    mask = f(batch.valid) if batch.valid is not None else None
    obs, actions, adv_f, ret_f = f(batch.obs), f(batch.actions), f(adv), f(returns)
    stats: dict[str, float] = {}
    for _ in range(cfg.update_epochs):
        stats = actor_critic_step(
            model, optimizer, obs, actions, adv_f, ret_f if model.has_critic else None,
            ent_coef=cfg.ent_coef, vf_coef=cfg.vf_coef, max_grad_norm=cfg.max_grad_norm, mask=mask,
        )
    if model.has_critic:
        stats["explained_variance"] = explained_variance(f(batch.values), ret_f, mask)
    return stats
