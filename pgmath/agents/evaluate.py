"""Evaluating a policy: K full episodes, mean and standard deviation of the (unscaled) return.

With several envs stepping in lockstep, "the first K episodes to finish" over-represents short
episodes. As Stable-Baselines3's ``evaluate_policy``, env i therefore contributes exactly
⌊(K + i) / n⌋ episodes (n envs), fixed in advance, so every counted episode is an unbiased draw.
The policy acts greedily by default (argmax / Gaussian mean; ``deterministic=False`` samples);
observations are normalised with the training statistics, frozen.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from pgmath.agents.checkpoint import load_checkpoint
from pgmath.agents.config import AgentConfig
from pgmath.agents.envs import make_vector_env, space_dims
from pgmath.agents.networks import ActorCritic
from pgmath.agents.normalize import ObsNormalizer

__all__ = ["evaluate", "load_agent"]


def load_agent(
    path: str | os.PathLike, device: str | torch.device = "cpu"
) -> tuple[AgentConfig, ActorCritic, ObsNormalizer | None]:
    """(config, model, observation normaliser) of a checkpoint written by ``pgmath train``."""
    state = load_checkpoint(path, map_location=device)
    cfg = AgentConfig.from_dict(state["config"])
    envs = make_vector_env(cfg.env_id, 1, max_episode_steps=cfg.max_episode_steps)
    try:
        obs_dim, act_dim, discrete, _, _ = space_dims(envs)
    finally:
        envs.close()
    critic = "critic.0.weight" in state["model"]
    model = ActorCritic(
        obs_dim, act_dim, discrete, hidden=cfg.hidden, activation=cfg.activation,
        ortho_init=cfg.ortho_init, log_std_init=cfg.log_std_init, critic=critic,
        generator=torch.Generator(),
    )
    model.load_state_dict(state["model"])
    model.to(device).eval()
    obs_norm = None
    if state.get("obs_norm") is not None:
        obs_norm = ObsNormalizer((obs_dim,), clip=cfg.clip_obs, device=device)
        obs_norm.load_state_dict(state["obs_norm"])
    return cfg, model, obs_norm


def evaluate(
    model: ActorCritic,
    env_id: str,
    *,
    episodes: int,
    seed: int = 10_000,
    obs_norm: ObsNormalizer | None = None,
    deterministic: bool = True,
    num_envs: int = 10,
    max_episode_steps: int | None = None,
    device: str | torch.device | None = None,
) -> np.ndarray:
    """Returns of ``episodes`` episodes of ``model`` on fresh envs seeded ``seed + i``."""
    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
        raise ValueError(f"episodes must be a positive integer, got {episodes!r}")
    n = min(num_envs, episodes)
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    envs = make_vector_env(env_id, n, max_episode_steps=max_episode_steps)
    _, _, _, low, high = space_dims(envs)
    gen = torch.Generator(device=dev).manual_seed(seed)
    targets = np.array([(episodes + i) // n for i in range(n)])
    counts = np.zeros(n, dtype=np.int64)
    running = np.zeros(n)
    returns: list[float] = []
    obs, _ = envs.reset(seed=seed)
    try:
        # step until every env has finished its quota of episodes
        while (counts < targets).any():
            with torch.no_grad():
                x = torch.as_tensor(np.asarray(obs, dtype=np.float32), device=dev).reshape(n, -1)
                if obs_norm is not None:
                    x = obs_norm(x)
                a = model.sample(model.policy_params(x), gen, deterministic=deterministic).cpu().numpy()
            if low is not None:
                a = np.clip(a, low, high)
            obs, r, term, trunc, _ = envs.step(a)
            running += r
            for i in np.flatnonzero(np.logical_or(term, trunc)):
                if counts[i] < targets[i]:
                    returns.append(float(running[i]))
                    counts[i] += 1
                running[i] = 0.0
    finally:
        envs.close()
    return np.asarray(returns)
