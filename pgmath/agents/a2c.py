"""Advantage actor-critic, synchronous (A2C; Mnih et al., 2016, the synchronous variant of A3C).

Each update takes n steps from each of N envs and one gradient step on

    L = −mean Âₜ log πθ(aₜ|sₜ) + c_v · ½ mean (V_φ(sₜ) − G^λₜ)² − c_H · mean H(πθ(·|sₜ))

with G^λ = :func:`pgmath.lambda_returns` (λ = 1: the n-step bootstrapped return of the original
A2C; λ < 1: GAE, Schulman et al., 2015) and Âₜ = G^λₜ − V(sₜ) — that difference *is*
:func:`pgmath.gae`. Loss terms: :func:`pgmath.policy_gradient_loss`, :func:`pgmath.value_loss`,
:func:`pgmath.categorical_entropy` / :func:`pgmath.gaussian_entropy`. Optimiser: RMSprop
(α = 0.99, ε = 1e-5) as Stable-Baselines3's A2C, or Adam.
"""

from __future__ import annotations

import torch

import pgmath
from pgmath.agents.config import AgentConfig
from pgmath.agents.networks import ActorCritic
from pgmath.agents.rollout import RolloutBuffer
from pgmath.agents.update import actor_critic_step, explained_variance, flatten_env_major

__all__ = ["a2c_update", "advantages_and_returns"]


def advantages_and_returns(batch: RolloutBuffer, cfg: AgentConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """(Âₜ, G^λₜ) ``[T, N]`` of a rollout: G^λ by :func:`pgmath.lambda_returns`, Â = G^λ − V."""
    returns = pgmath.lambda_returns(
        batch.rewards, batch.values, batch.next_values, batch.terminated, batch.truncated,
        gamma=cfg.gamma, lam=cfg.gae_lambda,
    )
    return returns - batch.values, returns


def a2c_update(
    model: ActorCritic, optimizer: torch.optim.Optimizer, batch: RolloutBuffer, cfg: AgentConfig
) -> dict[str, float]:
    with torch.no_grad():
        adv, returns = advantages_and_returns(batch, cfg)
        if cfg.norm_adv:
            adv = pgmath.normalize_advantages(adv)
    f = flatten_env_major
    obs, actions, adv_f, ret_f = f(batch.obs), f(batch.actions), f(adv), f(returns)
    stats: dict[str, float] = {}
    for _ in range(cfg.update_epochs):
        stats = actor_critic_step(
            model, optimizer, obs, actions, adv_f, ret_f,
            ent_coef=cfg.ent_coef, vf_coef=cfg.vf_coef, max_grad_norm=cfg.max_grad_norm,
        )
    stats["explained_variance"] = explained_variance(f(batch.values), ret_f)
    return stats
