"""Gymnasium vector environments for the agents, and snapshots of their exact state.

Autoreset: pgmath's agents use gymnasium 1.x's ``AutoresetMode.SAME_STEP``. When sub-env i
ends an episode at step t (terminated or truncated), ``step`` returns

* ``terminated[i]`` / ``truncated[i]`` and the reward of that last transition,
* ``info["final_obs"][i]`` = the real final observation sₜ₊₁ (used to bootstrap a truncated
  episode: ``next_values[t] = V(final_obs)``),
* ``obs[i]`` = the first observation of the next episode (already reset).

So every step is one real transition and no step has to be masked (the default NEXT_STEP mode
would instead return the final observation and reset on the *following* step, whose transition
is fake and must be dropped). Both ``SyncVectorEnv`` and ``AsyncVectorEnv`` support it.

Snapshots (for an exact ``--resume``): every sub-env is wrapped in :class:`Snapshot`, whose
``pgmath_snapshot()`` pickles the wrapped env — the simulator state, its ``np_random``
generator, the ``TimeLimit`` step counter. A vector env rebuilt from the snapshots continues the
same trajectories. This works for environments whose state pickles (all of gymnasium's classic
control: CartPole, Acrobot, Pendulum, MountainCar); Box2D (LunarLander) and MuJoCo simulators do
not pickle, and :func:`env_snapshots` returns ``None`` for them — resuming then restarts the
episodes (see ``docs/agents/details.md``, "Resume").
"""

from __future__ import annotations

import pickle
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv, VectorEnv

__all__ = ["Snapshot", "env_snapshots", "make_vector_env", "space_dims"]


class Snapshot(gym.Wrapper):
    """Adds ``pgmath_snapshot()``: the pickled state of the wrapped env."""

    def pgmath_snapshot(self) -> bytes:
        return pickle.dumps(self.env)


class _Make:
    """Picklable env factory (AsyncVectorEnv sends it to the worker processes)."""

    def __init__(self, env_id: str, kwargs: dict[str, Any]) -> None:
        self.env_id, self.kwargs = env_id, kwargs

    def __call__(self) -> gym.Env:
        return Snapshot(gym.make(self.env_id, **self.kwargs))


class _Restore:
    def __init__(self, blob: bytes) -> None:
        self.blob = blob

    def __call__(self) -> gym.Env:
        return Snapshot(pickle.loads(self.blob))


def make_vector_env(
    env_id: str,
    num_envs: int,
    *,
    async_envs: bool = False,
    max_episode_steps: int | None = None,
    snapshots: list[bytes] | None = None,
    env_kwargs: dict[str, Any] | None = None,
) -> VectorEnv:
    """A vector env in SAME_STEP autoreset mode (not yet reset unless rebuilt from ``snapshots``).

    ``env_id`` may also be a callable returning a ``gymnasium.Env`` (used by the tests to plug in
    a scripted environment).
    """
    kwargs = dict(env_kwargs or {})
    if max_episode_steps is not None:
        kwargs["max_episode_steps"] = int(max_episode_steps)
    if snapshots is not None:
        if len(snapshots) != num_envs:
            raise ValueError(f"snapshots holds {len(snapshots)} envs, expected num_envs={num_envs}")
        fns = [_Restore(b) for b in snapshots]
    elif callable(env_id):
        fns = [_MakeFrom(env_id, kwargs) for _ in range(num_envs)]
    else:
        fns = [_Make(env_id, kwargs) for _ in range(num_envs)]
    cls = AsyncVectorEnv if async_envs else SyncVectorEnv
    return cls(fns, autoreset_mode=AutoresetMode.SAME_STEP)


class _MakeFrom:
    def __init__(self, factory: Any, kwargs: dict[str, Any]) -> None:
        self.factory, self.kwargs = factory, kwargs

    def __call__(self) -> gym.Env:
        env = self.factory()
        if "max_episode_steps" in self.kwargs:
            env = gym.wrappers.TimeLimit(env, self.kwargs["max_episode_steps"])
        return Snapshot(env)


def env_snapshots(envs: VectorEnv) -> list[bytes] | None:
    """The pickled state of every sub-env, or ``None`` when some sub-env cannot be pickled."""
    try:
        return list(envs.call("pgmath_snapshot"))
    except Exception:  # unpicklable simulator (Box2D, MuJoCo): resume cannot be exact
        return None


def space_dims(envs: VectorEnv) -> tuple[int, int, bool, np.ndarray | None, np.ndarray | None]:
    """(obs_dim, action_dim, discrete, low, high) of the single env's spaces."""
    obs_space = envs.single_observation_space
    act_space = envs.single_action_space
    if not isinstance(obs_space, gym.spaces.Box):
        raise ValueError(f"only Box observation spaces are supported, got {obs_space}")
    obs_dim = int(np.prod(obs_space.shape))
    if isinstance(act_space, gym.spaces.Discrete):
        if int(act_space.start) != 0:
            raise ValueError(f"Discrete action spaces must start at 0, got start={act_space.start}")
        return obs_dim, int(act_space.n), True, None, None
    if isinstance(act_space, gym.spaces.Box) and len(act_space.shape) == 1:
        return obs_dim, int(act_space.shape[0]), False, act_space.low, act_space.high
    raise ValueError(f"only Discrete and 1-D Box action spaces are supported, got {act_space}")
