"""Collecting time-major rollouts ``[T, N]`` from a gymnasium vector env in the core's conventions.

For step t of sub-env n (see :mod:`pgmath.returns` for the conventions and :mod:`pgmath.agents.envs`
for the SAME_STEP autoreset this relies on):

* ``obs[t]`` the (normalised) observation sₜ the policy saw, ``actions[t]``, ``log_probs[t]`` =
  log π_old(aₜ|sₜ), ``values[t]`` = V(sₜ);
* ``rewards[t]`` = rₜ (scaled when reward scaling is on), ``terminated[t]`` / ``truncated[t]``;
* ``next_values[t]`` = V(sₜ₊₁): ``values[t+1]`` inside an episode, V(``final_obs``) — the value of
  the real final observation — where the episode was truncated, and V(s_T) of the observation
  after the last step at t = T−1. Where the episode terminated it holds ``values[t+1]`` (the
  reset observation's value), which GAE multiplies by 0.

Only the actor runs while stepping; log π_old and the critic's values are computed once per
rollout on the stored (normalised) observations, the real final observations of truncated
episodes and the observation after the last step.

:meth:`Collector.collect_steps` gathers a fixed T steps per env (A2C, PPO).
:meth:`Collector.collect_episodes` gathers whole episodes for REINFORCE: every env runs until it
has taken at least ``n_steps`` steps *and* finished its current episode; steps after that are
padding (``valid`` false). Whether an episode is kept is decided when it starts (by the steps
before it), never by its own length, so the kept episodes are unbiased samples. The envs are reset
at the start of every such batch, so each kept episode starts fresh under the current policy.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from gymnasium.vector import VectorEnv

from pgmath.agents.networks import ActorCritic
from pgmath.agents.normalize import ObsNormalizer, RewardScaler

__all__ = ["Collector", "Episode", "RolloutBuffer"]


@dataclass
class RolloutBuffer:
    """The agents' rollout buffer: one batch, time-major ``[T, N]`` (``obs`` ``[T, N, obs_dim]``,
    continuous actions ``[T, N, D]``), with the network outputs the update needs.

    Not to be confused with :class:`pgmath.rollouts.Rollout`, the input of the core formulas.
    """

    obs: torch.Tensor
    actions: torch.Tensor
    log_probs: torch.Tensor
    values: torch.Tensor
    next_values: torch.Tensor
    rewards: torch.Tensor
    terminated: torch.Tensor
    truncated: torch.Tensor
    valid: torch.Tensor | None = None  # REINFORCE padding mask (None: every entry is valid)
    raw_obs: torch.Tensor | None = None  # [T*N, obs_dim] unnormalised, for the normaliser update
    env_steps: int = 0  # environment steps taken (including padding)

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.rewards.shape)  # type: ignore[return-value]


@dataclass
class Episode:
    """A finished episode: its (unscaled) return, its length, which env ran it, how it ended."""

    ret: float
    length: int
    env: int
    terminated: bool
    t: int = 0  # the rollout step at which it ended


@dataclass
class Collector:
    """Steps a vector env with a policy; holds the per-env state between rollouts.

    State (all part of a checkpoint): the current raw observation of every env, the running
    episode return/length of every env, and the reward scaler's return accumulators.
    """

    envs: VectorEnv
    model: ActorCritic
    generator: torch.Generator
    device: torch.device
    obs_norm: ObsNormalizer | None = None
    reward_scaler: RewardScaler | None = None
    action_low: np.ndarray | None = None
    action_high: np.ndarray | None = None
    obs: np.ndarray | None = None
    ep_return: np.ndarray = field(default_factory=lambda: np.zeros(0))
    ep_length: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def __post_init__(self) -> None:
        n = self.envs.num_envs
        if self.ep_return.shape != (n,):
            self.ep_return = np.zeros(n, dtype=np.float64)
            self.ep_length = np.zeros(n, dtype=np.int64)

    @property
    def num_envs(self) -> int:
        return self.envs.num_envs

    def reset(self, seed: int | None = None) -> None:
        """Reset every env (seeding env i with ``seed + i`` when given)."""
        self.obs, _ = self.envs.reset(seed=seed)
        self.ep_return[:] = 0.0
        self.ep_length[:] = 0
        if self.reward_scaler is not None:
            self.reward_scaler.returns.zero_()

    # -- one step -----------------------------------------------------------------------------
    def _to_tensor(self, obs: np.ndarray) -> torch.Tensor:
        t = torch.as_tensor(np.asarray(obs, dtype=np.float32), device=self.device)
        return t.reshape(t.shape[0], -1)

    def _normalize(self, raw: torch.Tensor) -> torch.Tensor:
        return self.obs_norm(raw) if self.obs_norm is not None else raw

    def _env_action(self, action: torch.Tensor) -> np.ndarray:
        a = action.cpu().numpy()
        if self.action_low is not None:
            a = np.clip(a, self.action_low, self.action_high)
        return a

    def _alloc(self, T: int):
        N = self.num_envs
        dev = self.device
        obs_dim = self.model.actor[0].in_features
        f32 = torch.float32
        p_dim = self.model.action_dim
        act_shape = (T, N) if self.model.discrete else (T, N, p_dim)
        return {
            "obs": torch.zeros((T, N, obs_dim), dtype=f32, device=dev),
            "raw_obs": torch.zeros((T, N, obs_dim), dtype=f32, device=dev),
            "params": torch.zeros((T, N, p_dim), dtype=f32, device=dev),
            "actions": torch.zeros(act_shape, dtype=torch.long if self.model.discrete else f32, device=dev),
            "rewards": torch.zeros((T, N), dtype=f32, device=dev),
            "terminated": torch.zeros((T, N), dtype=torch.bool, device=dev),
            "truncated": torch.zeros((T, N), dtype=torch.bool, device=dev),
            "final": [],  # (t, env indices, real final observations) of truncated episodes
        }

    def _step(self, buf: dict, t: int, episodes: list[Episode], record: np.ndarray | None) -> np.ndarray:
        """Take one vector step, write row t of ``buf``; return the done flags ``[N]``.

        Only the actor runs per step; log π_old(aₜ|sₜ) and the critic's values are computed for
        the whole rollout at once in :meth:`_finish` (same numbers, fewer calls).
        """
        model = self.model
        with torch.no_grad():
            raw = self._to_tensor(self.obs)
            x = self._normalize(raw)
            params = model.policy_params(x)
            action = model.sample(params, self.generator)
            buf["raw_obs"][t] = raw
            buf["obs"][t] = x
            buf["params"][t] = params
            buf["actions"][t] = action
        obs, reward, term, trunc, info = self.envs.step(self._env_action(action))
        done = np.logical_or(term, trunc)
        r = torch.as_tensor(np.asarray(reward, dtype=np.float32), device=self.device)
        if self.reward_scaler is not None:
            r = self.reward_scaler.scale(r, torch.as_tensor(done, device=self.device))
        buf["rewards"][t] = r
        buf["terminated"][t] = torch.as_tensor(term, device=self.device)
        buf["truncated"][t] = torch.as_tensor(trunc, device=self.device)
        if trunc.any():  # keep the real final observation: V(final_obs) bootstraps GAE
            idx = np.flatnonzero(trunc)
            final = np.stack([np.asarray(info["final_obs"][i], dtype=np.float32) for i in idx])
            buf["final"].append((t, idx, final))
        self.ep_return += np.asarray(reward, dtype=np.float64)
        self.ep_length += 1
        if done.any():
            for i in np.flatnonzero(done):
                if record is None or record[i]:
                    episodes.append(Episode(float(self.ep_return[i]), int(self.ep_length[i]), int(i),
                                            bool(term[i]), t))
                self.ep_return[i] = 0.0
                self.ep_length[i] = 0
        self.obs = obs
        return done

    def _finish(self, buf: dict, T: int, valid: torch.Tensor | None, env_steps: int,
                cut: np.ndarray | None = None) -> RolloutBuffer:
        """Log-probabilities and values of the whole rollout; assemble the :class:`RolloutBuffer`.

        ``cut``: envs whose episode the batch cap stopped after step T−1 (REINFORCE); they are
        marked truncated there and bootstrap from the observation that followed.
        """
        N = self.num_envs
        model = self.model
        obs = buf["obs"][:T]
        flat = obs.reshape(T * N, -1)
        finals = buf["final"]
        extra = [self._normalize(self._to_tensor(f)) for _, _, f in finals]
        last = self._normalize(self._to_tensor(self.obs))
        with torch.no_grad():
            params = buf["params"][:T].reshape(T * N, -1)
            actions = buf["actions"][:T].reshape(T * N, *buf["actions"].shape[2:])
            log_probs = model.log_prob(params, actions).reshape(T, N)
            v_all = model.value(torch.cat([flat, *extra, last], 0))
        values = v_all[: T * N].reshape(T, N)
        last_v = v_all[-N:]
        next_values = torch.cat([values[1:], last_v.unsqueeze(0)], 0)
        trunc = buf["truncated"][:T].clone()
        off = T * N
        for t, idx, _f in finals:  # V(real final observation) where an episode was truncated
            next_values[t, torch.as_tensor(idx, device=self.device)] = v_all[off:off + len(idx)]
            off += len(idx)
        if cut is not None and cut.any():
            c = torch.as_tensor(cut, device=self.device)
            trunc[T - 1] |= c
            next_values[T - 1] = torch.where(c, last_v, next_values[T - 1])
        return RolloutBuffer(
            obs=obs, actions=buf["actions"][:T], log_probs=log_probs, values=values,
            next_values=next_values, rewards=buf["rewards"][:T], terminated=buf["terminated"][:T],
            truncated=trunc, valid=valid, raw_obs=buf["raw_obs"][:T].reshape(T * N, -1),
            env_steps=env_steps,
        )

    # -- batches ------------------------------------------------------------------------------
    def collect_steps(self, T: int) -> tuple[RolloutBuffer, list[Episode]]:
        """T steps of every env (A2C, PPO)."""
        if self.obs is None:
            raise RuntimeError("call reset() before collecting")
        buf = self._alloc(T)
        episodes: list[Episode] = []
        # forward in time: t = 0, …, T-1
        for t in range(T):
            self._step(buf, t, episodes, None)
        return self._finish(buf, T, None, T * self.num_envs), episodes

    def collect_episodes(self, n_steps: int, max_steps: int) -> tuple[RolloutBuffer, list[Episode]]:
        """Whole episodes: each env runs until >= ``n_steps`` steps and the end of an episode.

        ``max_steps`` caps the batch length; an episode still running then is cut (marked
        truncated, bootstrapped from the critic when there is one).
        """
        self.reset()
        N = self.num_envs
        T_max = max(int(max_steps), int(n_steps))
        buf = self._alloc(T_max)
        valid = torch.zeros((T_max, N), dtype=torch.bool, device=self.device)
        active = np.ones(N, dtype=bool)
        taken = np.zeros(N, dtype=np.int64)
        episodes: list[Episode] = []
        t = 0
        done = np.zeros(N, dtype=bool)
        # forward in time until every env has finished its last kept episode
        while active.any() and t < T_max:
            valid[t] = torch.as_tensor(active, device=self.device)
            done = self._step(buf, t, episodes, active.copy())
            taken += active
            active &= ~(done & (taken >= n_steps))
            t += 1
        running = active & ~done  # episodes the cap cut short (not ended by the env)
        return self._finish(buf, t, valid[:t], t * N, cut=running), episodes
