"""Agents built from pgmath's core formulas: REINFORCE, A2C and PPO on gymnasium.

Nothing here re-implements a return, an advantage or a loss: the agents call
:func:`pgmath.discounted_returns`, :func:`pgmath.lambda_returns` (GAE),
:func:`pgmath.normalize_advantages`, :func:`pgmath.policy_gradient_loss`,
:func:`pgmath.ppo_clip_loss`, :func:`pgmath.value_loss` and the categorical / Gaussian
log-probabilities and entropies. This package adds what an agent needs around them: vector
environments with correct episode ends (:mod:`~pgmath.agents.envs`, :mod:`~pgmath.agents.rollout`),
networks, normalisers, the training loop with exact checkpoint/resume
(:mod:`~pgmath.agents.train`), data-parallel PPO (:mod:`~pgmath.agents.distributed`), evaluation
and the ``pgmath train`` / ``pgmath eval`` commands.

    from pgmath.agents import resolve_config, train, evaluate
    cfg = resolve_config("ppo", "CartPole-v1", {"seed": 1})
    result = train(cfg, "runs/ppo-cartpole")
    returns = evaluate(result.model, cfg.env_id, episodes=100)
"""

from pgmath.optional import extra_error

try:
    import gymnasium  # noqa: F401  (an optional dependency: say which extra brings it)
except ImportError as exc:
    raise extra_error("agents", "pgmath.agents", exc) from exc

from pgmath.agents.config import ALGOS, AgentConfig
from pgmath.agents.evaluate import evaluate, load_agent
from pgmath.agents.presets import ALGO_DEFAULTS, ENV_PRESETS, preset, resolve_config
from pgmath.agents.train import Trainer, TrainResult, train

__all__ = [
    "ALGOS",
    "ALGO_DEFAULTS",
    "ENV_PRESETS",
    "AgentConfig",
    "TrainResult",
    "Trainer",
    "evaluate",
    "load_agent",
    "preset",
    "resolve_config",
    "train",
]
