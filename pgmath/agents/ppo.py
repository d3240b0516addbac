"""Proximal policy optimisation with the clipped surrogate (Schulman et al., 2017, Algorithm 1).

Per update: advantages Âₜ and targets G^λₜ of the whole rollout (:func:`pgmath.lambda_returns`,
Â = G^λ − V, i.e. GAE), then ``update_epochs`` passes over the batch in ``num_minibatches``
shuffled minibatches, each one gradient step on

    L = Lᶜˡⁱᵖ(ρ, Â) + c_v · L_V − c_H · mean H,      ρₜ = πθ(aₜ|sₜ) / π_old(aₜ|sₜ)

with Lᶜˡⁱᵖ = :func:`pgmath.ppo_clip_loss`, L_V = :func:`pgmath.value_loss` (optionally clipped
around the old values), Â normalised per minibatch by :func:`pgmath.normalize_advantages`.
Early stop (Stable-Baselines3's rule): before a minibatch's step, if the k3 estimate of
KL(π_old ‖ πθ) on it exceeds 1.5 × ``target_kl``, the update ends.

Data parallel (``comm`` given, see :mod:`pgmath.agents.distributed`): every rank holds its own
``[T, N]`` rollout; rank r's samples are the global indices r·B … r·B + B − 1 of the env-major
flattening (B = T·N). All ranks draw the *same* permutation of the W·B global indices from a
generator seeded alike, so minibatch k is the same global set everywhere; each rank computes the
loss on the members it owns, weighted by (its count) / (minibatch size), and the gradients are
summed over ranks — exactly the gradient of the mean over the whole minibatch. Advantages are
all-gathered once per update so that each minibatch is normalised with its global mean and
standard deviation. Hence one update on W ranks equals the single-process update on the
combined batch (``tests/test_agents_distributed.py``).
"""

from __future__ import annotations

import torch

import pgmath
from pgmath.agents.a2c import advantages_and_returns
from pgmath.agents.config import AgentConfig
from pgmath.agents.networks import ActorCritic
from pgmath.agents.rollout import RolloutBuffer
from pgmath.agents.update import apply_gradients, explained_variance, flatten_env_major

__all__ = ["ppo_update"]


def ppo_update(
    model: ActorCritic,
    optimizer: torch.optim.Optimizer,
    batch: RolloutBuffer,
    cfg: AgentConfig,
    *,
    shuffle_generator: torch.Generator,
    comm=None,
) -> dict[str, float]:
    """One PPO update on ``batch``; returns diagnostics (means over the minibatches run).

    Args:
      model, optimizer: the agent (the optimizer's learning rate is set by the caller).
      batch: the ``[T, N]`` rollout of this rank.
      cfg: hyperparameters (``clip_coef``, ``vf_clip``, ``ent_coef``, ``vf_coef``,
        ``update_epochs``, ``num_minibatches``, ``norm_adv``, ``target_kl``, ``max_grad_norm``,
        ``gamma``, ``gae_lambda``).
      shuffle_generator: CPU generator of the minibatch permutations (same seed on every rank).
      comm: a :class:`pgmath.agents.distributed.Comm`, or None for a single process.
    """
    T, N = batch.shape
    B = T * N
    rank, world = (comm.rank, comm.world_size) if comm is not None else (0, 1)
    dev = batch.rewards.device
    with torch.no_grad():
        adv, returns = advantages_and_returns(batch, cfg)
    f = flatten_env_major
    obs, actions, old_logp, old_v = f(batch.obs), f(batch.actions), f(batch.log_probs), f(batch.values)
    adv_f, ret_f = f(adv), f(returns)
    adv_all = comm.all_gather_cat(adv_f) if comm is not None else adv_f  # [W·B], rank order
    G = world * B
    if G % cfg.num_minibatches:
        raise ValueError(f"num_minibatches ({cfg.num_minibatches}) must divide the global batch {G}")
    mb = G // cfg.num_minibatches

    sums = {"policy_loss": 0.0, "value_loss": 0.0, "entropy": 0.0, "approx_kl": 0.0,
            "clip_fraction": 0.0, "grad_norm": 0.0}
    n_steps = 0
    stop = False
    # epochs, then minibatches in a fresh shuffled order each epoch
    for _ in range(cfg.update_epochs):
        perm = torch.randperm(G, generator=shuffle_generator)
        for k in range(cfg.num_minibatches):
            gidx = perm[k * mb:(k + 1) * mb].to(dev)
            if world == 1:
                own, lidx = None, gidx
            else:  # the members of global minibatch k that this rank holds
                own = (gidx // B) == rank
                lidx = gidx[own] - rank * B
            n_local = int(lidx.numel())
            weight = n_local / mb
            loss = None
            diag = torch.zeros(2, dtype=torch.float64, device=dev)  # [approx_kl, clip_frac] · weight
            if n_local:
                if cfg.norm_adv:  # statistics of the whole (global) minibatch
                    a_mb = pgmath.normalize_advantages(adv_all[gidx])
                    a_mb = a_mb if own is None else a_mb[own]
                else:
                    a_mb = adv_f[lidx]
                params = model.policy_params(obs[lidx])
                logp = model.log_prob(params, actions[lidx])
                pg_loss, info = pgmath.ppo_clip_loss(logp, old_logp[lidx], a_mb, clip_eps=cfg.clip_coef)
                entropy = model.entropy(params).mean()
                v_loss = pgmath.value_loss(
                    model.value(obs[lidx]), ret_f[lidx], old_values=old_v[lidx], clip_eps=cfg.vf_clip,
                )
                loss = (pg_loss + cfg.vf_coef * v_loss - cfg.ent_coef * entropy) * weight
                diag[0] = info["approx_kl"] * weight
                diag[1] = info["clip_fraction"] * weight
            if comm is not None:
                comm.all_reduce_sum_(diag)
            if cfg.target_kl is not None and float(diag[0]) > 1.5 * cfg.target_kl:
                stop = True
                break
            gn = apply_gradients(model, optimizer, loss, cfg.max_grad_norm, comm)
            n_steps += 1
            if n_local:
                sums["policy_loss"] += float(pg_loss.detach())
                sums["value_loss"] += float(v_loss.detach())
                sums["entropy"] += float(entropy.detach())
            sums["approx_kl"] += float(diag[0])
            sums["clip_fraction"] += float(diag[1])
            sums["grad_norm"] += gn
        if stop:
            break
    stats = {k: v / max(n_steps, 1) for k, v in sums.items()}
    stats["minibatch_steps"] = float(n_steps)
    stats["explained_variance"] = explained_variance(old_v, ret_f)
    return stats
