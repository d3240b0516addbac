"""Gymnasium environments backed by a :class:`~pgmath.mdp.TabularMDP`.

Registered ids (by :func:`register_envs`, which importing this module calls once)::

    pgmath/ShortCorridor-v0   Sutton & Barto Example 13.1      max_episode_steps = 1000
    pgmath/GridWorld-v0       the 4 × 4 grid of Figure 4.1     max_episode_steps = 1000
                              (kwargs of :func:`pgmath.mdp.gridworld` pass through)
    pgmath/Tabular-v0         any MDP: ``gymnasium.make("pgmath/Tabular-v0", mdp=mdp)``

Observations are state indices (``Discrete(S)``), actions ``Discrete(A)``, the reward of a step
is R[s, a] and ``terminated`` is true when the next state is terminal. Gymnasium's TimeLimit
wrapper sets ``truncated`` at ``max_episode_steps``; that cut biases discounted returns unless
the episode terminates first (see :mod:`pgmath.mdp.sampler`). For exact statistics use
:func:`pgmath.mdp.sample_episodes`, which is also much faster; these environments exist so
that gymnasium-based agents can run on MDPs with known exact values and gradients.

``import pgmath.mdp`` registers them (it imports this module when gymnasium is installed);
``gymnasium.make("pgmath.mdp.envs:pgmath/GridWorld-v0")`` imports this module (and so registers)
on demand; ``pgmath.mdp.envs.register_envs()`` registers again after a registry reset. Without
gymnasium, importing this module raises an ImportError naming ``pip install 'pgmath[mdp]'``.

Checked by: tests/test_mdp_envs.py (``gymnasium.utils.env_checker.check_env``; empirical
returns of the env match the exact values).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pgmath.optional import extra_error

try:
    import gymnasium
    from gymnasium import spaces
except ImportError as exc:
    raise extra_error("mdp", "pgmath.mdp.envs", exc) from exc

from pgmath.mdp.canonical import gridworld, short_corridor
from pgmath.mdp.tabular import TabularMDP

__all__ = ["ENV_IDS", "GridWorldEnv", "ShortCorridorEnv", "TabularEnv", "register_envs"]

#: Environment ids registered by :func:`register_envs`.
ENV_IDS: tuple[str, ...] = ("pgmath/ShortCorridor-v0", "pgmath/GridWorld-v0", "pgmath/Tabular-v0")


class TabularEnv(gymnasium.Env):
    """A gymnasium ``Env`` that steps a :class:`TabularMDP` (on the CPU, with ``self.np_random``).

    Args:
      mdp: the MDP.
      render_mode: None or "ansi" (a one-line text description of the state).
    """

    metadata: dict[str, Any] = {"render_modes": ["ansi"], "render_fps": 4}  # noqa: RUF012

    def __init__(self, mdp: TabularMDP, render_mode: str | None = None) -> None:
        if not isinstance(mdp, TabularMDP):
            raise ValueError(f"mdp must be a pgmath.mdp.TabularMDP, got {type(mdp).__name__}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or one of {self.metadata['render_modes']}, got {render_mode!r}")
        self.mdp = mdp
        self.render_mode = render_mode
        self._P = mdp.P.detach().cpu().double().numpy()
        self._R = mdp.R.detach().cpu().double().numpy()
        self._mu0 = mdp.mu0.detach().cpu().double().numpy()
        self._terminal = mdp.terminal.cpu().numpy()
        self.observation_space = spaces.Discrete(mdp.num_states)
        self.action_space = spaces.Discrete(mdp.num_actions)
        self._state: int | None = None

    def _sample(self, p: np.ndarray) -> int:
        return int(self.np_random.choice(p.shape[0], p=p / p.sum()))

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
        super().reset(seed=seed)
        self._state = self._sample(self._mu0)
        return self._state, {}

    def step(self, action: Any) -> tuple[int, float, bool, bool, dict[str, Any]]:
        if self._state is None:
            raise RuntimeError("call reset() before step()")
        if not self.action_space.contains(action):
            raise ValueError(f"action must be in {self.action_space}, got {action!r}")
        s, a = self._state, int(action)
        s2 = self._sample(self._P[s, a])
        self._state = s2
        return s2, float(self._R[s, a]), bool(self._terminal[s2]), False, {}

    def render(self) -> str | None:
        if self.render_mode == "ansi":
            return f"state {self._state}" + (" (terminal)" if self._state is not None and self._terminal[self._state] else "")
        return None


class ShortCorridorEnv(TabularEnv):
    """Short corridor with switched actions (Sutton & Barto Example 13.1); actions 0 = left, 1 = right."""

    def __init__(self, render_mode: str | None = None) -> None:
        super().__init__(short_corridor(), render_mode=render_mode)


class GridWorldEnv(TabularEnv):
    """:func:`pgmath.mdp.gridworld` as an environment (default: the 4 × 4 grid of Figure 4.1)."""

    def __init__(self, render_mode: str | None = None, **gridworld_kwargs: Any) -> None:
        self.rows = int(gridworld_kwargs.get("rows", 4))
        self.cols = int(gridworld_kwargs.get("cols", 4))
        super().__init__(gridworld(**gridworld_kwargs), render_mode=render_mode)

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        lines = []
        for r in range(self.rows):  # top row first
            cells = []
            for c in range(self.cols):  # left to right
                s = r * self.cols + c
                cells.append("A" if s == self._state else ("T" if self._terminal[s] else "."))
            lines.append(" ".join(cells))
        return "\n".join(lines)


def register_envs() -> None:
    """Register :data:`ENV_IDS` with gymnasium; calling it again does nothing (idempotent)."""
    specs = {
        "pgmath/ShortCorridor-v0": ("pgmath.mdp.envs:ShortCorridorEnv", 1000),
        "pgmath/GridWorld-v0": ("pgmath.mdp.envs:GridWorldEnv", 1000),
        "pgmath/Tabular-v0": ("pgmath.mdp.envs:TabularEnv", None),
    }
    for env_id, (entry_point, max_steps) in specs.items():
        if env_id not in gymnasium.registry:
            gymnasium.register(id=env_id, entry_point=entry_point, max_episode_steps=max_steps)


register_envs()
