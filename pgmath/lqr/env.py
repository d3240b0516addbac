"""A gymnasium environment backed by an :class:`~pgmath.lqr.LQR`.

Registered id (by :func:`register_envs`, which importing this module calls once)::

    pgmath/LQR-v0    max_episode_steps = 200;  gymnasium.make("pgmath/LQR-v0", system=…)
                     (default: :func:`pgmath.lqr.example_system`)

Observation xₜ ``Box(n,)`` (float64), action uₜ ``Box(m,)`` (float64, unbounded: the agent's
Gaussian policy adds its own noise σε), reward −cₜ = −(xₜᵀQxₜ + uₜᵀRuₜ), next state
xₜ₊₁ = A xₜ + B uₜ, x₀ ~ N(0, Σ₀) from ``self.np_random``. Never ``terminated``; gymnasium's
TimeLimit sets ``truncated`` at ``max_episode_steps``. The discount γ is the agent's: the
system's ``gamma``/``sigma`` define the exact C(K) of :meth:`pgmath.lqr.LQR.cost`, which the
empirical discounted cost of a policy u = −Kx + σε run in this environment estimates (with the
truncation at T steps: :meth:`pgmath.lqr.LQR.finite_horizon_cost` is its exact mean).

``import pgmath.lqr`` registers it when gymnasium is installed; without gymnasium, importing
this module raises an ImportError naming ``pip install 'pgmath[mdp]'``.

Checked by: tests/test_lqr.py::test_env_passes_check_env and
tests/test_lqr.py::test_env_discounted_cost_matches_the_exact_finite_horizon_cost.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pgmath.optional import extra_error

try:
    import gymnasium
    from gymnasium import spaces
except ImportError as exc:
    raise extra_error("mdp", "pgmath.lqr.env", exc) from exc

from pgmath.lqr.examples import example_system
from pgmath.lqr.system import LQR

__all__ = ["ENV_IDS", "LQREnv", "register_envs"]

#: Environment ids registered by :func:`register_envs`.
ENV_IDS: tuple[str, ...] = ("pgmath/LQR-v0",)


class LQREnv(gymnasium.Env):
    """A gymnasium ``Env`` stepping x' = Ax + Bu with reward −(xᵀQx + uᵀRu) (NumPy, float64).

    Args:
      system: the LQR (default :func:`pgmath.lqr.example_system`).
      render_mode: None or "ansi" (the state as text).
    """

    metadata: dict[str, Any] = {"render_modes": ["ansi"], "render_fps": 10}  # noqa: RUF012

    def __init__(self, system: LQR | None = None, render_mode: str | None = None) -> None:
        system = example_system() if system is None else system
        if not isinstance(system, LQR):
            raise ValueError(f"system must be a pgmath.lqr.LQR, got {type(system).__name__}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or one of {self.metadata['render_modes']}, got {render_mode!r}")
        self.system = system
        self.render_mode = render_mode
        as_np = lambda t: t.detach().cpu().double().numpy()  # noqa: E731
        self._A, self._B, self._Q, self._R = as_np(system.A), as_np(system.B), as_np(system.Q), as_np(system.R)
        evals, evecs = np.linalg.eigh(as_np(system.Sigma0))
        self._L = evecs * np.sqrt(np.clip(evals, 0.0, None))
        n, m = system.state_dim, system.action_dim
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(n,), dtype=np.float64)
        self.action_space = spaces.Box(-np.inf, np.inf, shape=(m,), dtype=np.float64)
        self._x: np.ndarray | None = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self._x = self._L @ self.np_random.standard_normal(self._L.shape[1])
        return self._x.copy(), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._x is None:
            raise RuntimeError("call reset() before step()")
        u = np.asarray(action, dtype=np.float64).reshape(-1)
        if u.shape != self.action_space.shape or not np.isfinite(u).all():
            raise ValueError(f"action must be a finite array of shape {self.action_space.shape}, got {action!r}")
        x = self._x
        cost = float(x @ self._Q @ x + u @ self._R @ u)
        self._x = self._A @ x + self._B @ u
        return self._x.copy(), -cost, False, False, {"cost": cost}

    def render(self) -> str | None:
        if self.render_mode == "ansi":
            return "x = " + np.array2string(self._x, precision=4) if self._x is not None else "x = (not reset)"
        return None


def register_envs() -> None:
    """Register :data:`ENV_IDS` with gymnasium; calling it again does nothing (idempotent)."""
    if "pgmath/LQR-v0" not in gymnasium.registry:
        gymnasium.register(id="pgmath/LQR-v0", entry_point="pgmath.lqr.env:LQREnv", max_episode_steps=200)


register_envs()
