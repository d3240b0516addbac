"""Stable-Baselines3: ``RolloutBuffer.compute_returns_and_advantage`` (GAE and λ-returns).

Bridge: the ``"sb3"`` convention of :mod:`pgmath.testing.conventions` (``episode_starts``,
``last_values``, ``dones``; a timeout's bootstrap folded into the reward as SB3's collection loop
does); the adapter fills a real ``RolloutBuffer`` step by step with ``add`` and calls its own
``compute_returns_and_advantage`` — SB3 stores in float32.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pgmath.testing.adapters import Entry

DISTRIBUTION = "stable-baselines3"


def rollout_buffer_gae(rewards: Any, values: Any, episode_starts: Any, last_values: Any, dones: Any, *,
                       gamma: float, lam: float) -> tuple[Any, Any]:
    """Fill a real SB3 ``RolloutBuffer`` and return its ``(advantages, returns)``."""
    import torch
    from gymnasium import spaces
    from stable_baselines3.common.buffers import RolloutBuffer

    T, n_envs = rewards.shape
    buf = RolloutBuffer(T, spaces.Box(-1.0, 1.0, (1,), np.float32), spaces.Discrete(2), device="cpu",
                        gae_lambda=lam, gamma=gamma, n_envs=n_envs)
    for t in range(T):
        buf.add(np.zeros((n_envs, 1), np.float32), np.zeros(n_envs, np.int64), rewards[t], episode_starts[t],
                torch.as_tensor(values[t]), torch.zeros(n_envs))
    buf.compute_returns_and_advantage(last_values=torch.as_tensor(last_values), dones=dones)
    return buf.advantages, buf.returns


def entries() -> list[Entry]:
    import stable_baselines3  # noqa: F401  (missing library → ImportError)

    return [Entry("stable_baselines3.common.buffers.RolloutBuffer.compute_returns_and_advantage", "check_gae",
                  {"convention": "sb3"}, rollout_buffer_gae,
                  "convention 'sb3'; a real RolloutBuffer filled with add(), then its own method")]
