"""What every agent's update shares: the actor-critic loss from pgmath's core, the gradient step.

The combined loss of one (mini)batch (Mnih et al., 2016; Schulman et al., 2017, eq. 9):

    L = L_π + c_v · L_V − c_H · mean H(πθ(·|sₜ))

with L_π either :func:`pgmath.policy_gradient_loss` (REINFORCE, A2C) or
:func:`pgmath.ppo_clip_loss` (PPO), and L_V = :func:`pgmath.value_loss`. Nothing here re-derives
a return, an advantage or a loss: they all come from :mod:`pgmath`.

Data layout: rollouts are time-major ``[T, N]``; updates flatten them *env-major* (index
n·T + t), so that the batch of several ranks, concatenated in rank order, is exactly the
env-major flattening of the combined ``[T, ΣN]`` batch (see :mod:`pgmath.agents.distributed`).
"""

from __future__ import annotations

import torch

import pgmath
from pgmath.agents.networks import ActorCritic

__all__ = ["actor_critic_step", "apply_gradients", "explained_variance", "flatten_env_major", "set_lr"]


def flatten_env_major(x: torch.Tensor) -> torch.Tensor:
    """``[T, N, *rest]`` → ``[N·T, *rest]`` with index n·T + t."""
    return x.transpose(0, 1).reshape(x.shape[0] * x.shape[1], *x.shape[2:])


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def apply_gradients(
    model: ActorCritic,
    optimizer: torch.optim.Optimizer,
    loss: torch.Tensor | None,
    max_grad_norm: float | None,
    comm=None,
) -> float:
    """Backpropagate ``loss`` (None: this rank contributes zero), sum the gradients over ranks,
    clip the global norm, step. Returns the gradient norm before clipping (0 if not clipped)."""
    optimizer.zero_grad(set_to_none=True)
    if loss is not None:
        loss.backward()
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    if comm is not None:
        comm.all_reduce_grads(params)
    norm = 0.0
    if max_grad_norm is not None:
        norm = float(torch.nn.utils.clip_grad_norm_(params, max_grad_norm))
    optimizer.step()
    return norm


def explained_variance(values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    """1 − Var[R − V] / Var[R] (a diagnostic of the critic; NaN when Var[R] = 0)."""
    if mask is not None:
        values, returns = values[mask], returns[mask]
    var_r = returns.var()
    if values.numel() < 2 or float(var_r) == 0.0:
        return float("nan")
    return float(1.0 - (returns - values).var() / var_r)


def actor_critic_step(
    model: ActorCritic,
    optimizer: torch.optim.Optimizer,
    obs: torch.Tensor,
    actions: torch.Tensor,
    advantages: torch.Tensor,
    returns: torch.Tensor | None,
    *,
    ent_coef: float,
    vf_coef: float,
    max_grad_norm: float | None,
    mask: torch.Tensor | None = None,
) -> dict[str, float]:
    """One gradient step on L = policy_gradient_loss + c_v value_loss − c_H entropy.

    All arguments are flat ``[B]`` (``obs`` ``[B, obs_dim]``); ``returns`` None skips the critic.
    """
    params = model.policy_params(obs)
    log_probs = model.log_prob(params, actions)
    pg_loss = pgmath.policy_gradient_loss(log_probs, advantages, mask=mask)
    entropy = pgmath.masked_mean(model.entropy(params), mask)
    loss = pg_loss - ent_coef * entropy
    v_loss = torch.zeros(())
    if returns is not None and model.has_critic:
        v_loss = pgmath.value_loss(model.value(obs), returns, mask=mask)
        loss = loss + vf_coef * v_loss
    grad_norm = apply_gradients(model, optimizer, loss, max_grad_norm)
    return {
        "policy_loss": float(pg_loss.detach()),
        "value_loss": float(v_loss.detach()),
        "entropy": float(entropy.detach()),
        "grad_norm": grad_norm,
    }
