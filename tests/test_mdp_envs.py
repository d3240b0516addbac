"""Gymnasium environments of pgmath.mdp.envs."""

from __future__ import annotations

import math
import warnings

import gymnasium
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from scipy.stats import norm

from pgmath.mdp import gridworld, random_mdp, short_corridor
from pgmath.mdp.envs import ENV_IDS, TabularEnv, register_envs

F64 = torch.float64


def _tabular_kwargs():
    return {"mdp": random_mdp(5, 3, generator=torch.Generator().manual_seed(0), num_terminal=1)}


@pytest.mark.parametrize(
    "env_id,kwargs",
    [
        ("pgmath/ShortCorridor-v0", {}),
        ("pgmath/GridWorld-v0", {}),
        ("pgmath/GridWorld-v0", {"rows": 3, "cols": 5, "slip": 0.1, "render_mode": "ansi"}),
        ("pgmath/Tabular-v0", None),
    ],
)
def test_registered_envs_pass_gymnasium_check_env(env_id, kwargs):
    register_envs()
    env = gymnasium.make(env_id, **(kwargs if kwargs is not None else _tabular_kwargs()))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a checker warning is a failure
        check_env(env.unwrapped, skip_render_check=False)
    env.close()


def test_register_is_idempotent_and_module_syntax_works():
    register_envs()
    register_envs()
    assert all(i in gymnasium.registry for i in ENV_IDS)
    env = gymnasium.make("pgmath.mdp.envs:pgmath/ShortCorridor-v0")
    assert env.spec is not None and env.spec.max_episode_steps == 1000
    obs, _ = env.reset(seed=0)
    assert obs == 0  # the corridor starts in its left-most state


def test_short_corridor_dynamics_match_the_book():
    env = gymnasium.make("pgmath/ShortCorridor-v0").unwrapped
    env.reset(seed=0)
    LEFT, RIGHT = 0, 1
    assert env.step(LEFT)[0] == 0  # left in the first state: no movement
    assert env.step(RIGHT)[0] == 1
    assert env.step(RIGHT)[0] == 0  # reversed in the second state
    env.step(RIGHT)
    assert env.step(LEFT)[0] == 2  # reversed in the second state
    obs, reward, terminated, truncated, _ = env.step(RIGHT)
    assert (obs, reward, terminated, truncated) == (3, -1.0, True, False)


def test_env_returns_match_exact_value():
    """Monte-Carlo mean return of the env vs J from the solver: two-sided z test at α = 1e-3, fixed seed."""
    mdp = short_corridor()
    env = TabularEnv(mdp)
    rng = np.random.default_rng(0)
    p = 0.59
    returns = []
    env.reset(seed=123)
    for _ in range(2000):  # episodes
        env.reset()
        G, done = 0.0, False
        while not done:  # steps until the goal
            _, r, done, _, _ = env.step(int(rng.random() < p))
            G += r
        returns.append(G)
    x = np.asarray(returns)
    J = float(mdp.objective(torch.log(torch.tensor([[1 - p, p]] * 4, dtype=F64))))
    z = (x.mean() - J) / (x.std(ddof=1) / math.sqrt(x.size))
    assert 2 * norm.sf(abs(z)) > 1e-3


def test_bad_arguments():
    with pytest.raises(ValueError, match="mdp"):
        TabularEnv("not an mdp")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="render_mode"):
        TabularEnv(gridworld(), render_mode="human")
    env = TabularEnv(gridworld())
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action"):
        env.step(7)
