"""Stable-Baselines3's RolloutBuffer.compute_returns_and_advantage, checked by check_gae("sb3").

SB3 bootstraps a timeout in its collection loop (``rewards[idx] += gamma * V(terminal_obs)`` where
``TimeLimit.truncated``) and then runs GAE in the buffer with ``episode_starts``; the sb3
convention folds the bootstrap into the reward the same way, so the buffer's own method is what is
checked, advantages and returns (= λ-returns) both, in SB3's float32 storage.
Result (docs/testing/sb3.md): it passes.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

sb3_buffers = pytest.importorskip("stable_baselines3.common.buffers")
spaces = pytest.importorskip("gymnasium.spaces")

from pgmath.testing import check_gae  # noqa: E402


def _buffer(T, n_envs, gamma, lam):
    return sb3_buffers.RolloutBuffer(
        T, spaces.Box(-1.0, 1.0, (1,), np.float32), spaces.Discrete(2), device="cpu",
        gae_lambda=lam, gamma=gamma, n_envs=n_envs,
    )


def sb3_rollout_buffer_gae(rewards, values, episode_starts, last_values, dones, *, gamma, lam):
    """Fill a real RolloutBuffer step by step and call its compute_returns_and_advantage."""
    T, n_envs = rewards.shape
    buf = _buffer(T, n_envs, gamma, lam)
    for t in range(T):
        buf.add(np.zeros((n_envs, 1), np.float32), np.zeros(n_envs, np.int64), rewards[t],
                episode_starts[t], torch.as_tensor(values[t]), torch.zeros(n_envs))
    buf.compute_returns_and_advantage(last_values=torch.as_tensor(last_values), dones=dones)
    return buf.advantages, buf.returns


def test_sb3_rollout_buffer_passes_check_gae():
    report = check_gae(sb3_rollout_buffer_gae, convention="sb3")
    assert report.examples >= 100 and len(report.edge_cases) == 13


def test_sb3_rollout_buffer_filled_one_slot_late_is_rejected():
    """Power on the real code path: storing the *current* step's done as episode_start (the
    RoboVerse#814 bug) makes the same buffer fail the check."""

    def filled_late(rewards, values, episode_starts, last_values, dones, *, gamma, lam):
        starts_late = np.concatenate([episode_starts[1:], dones[None].astype(episode_starts.dtype)], 0)
        return sb3_rollout_buffer_gae(rewards, values, starts_late, last_values, dones, gamma=gamma, lam=lam)

    with pytest.raises(AssertionError, match=r"disagrees with pgmath\.gae_reference"):
        check_gae(filled_late, convention="sb3", max_examples=50)
