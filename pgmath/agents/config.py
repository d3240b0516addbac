"""Hyperparameters of the agents: one dataclass, each field an implementation detail with its source.

Every field carries a help text (shown by ``pgmath train ALGO --help``) and the algorithms it
applies to. :mod:`pgmath.agents.presets` fills it per algorithm and environment; command-line
flags override the preset. ``docs/agents/details.md`` explains each option, its default and the
paper or code it comes from.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from pgmath.validation import validate_positive, validate_unit_interval

__all__ = ["ALGOS", "AgentConfig", "hyperparameter_fields"]

ALGOS: tuple[str, ...] = ("reinforce", "a2c", "ppo")
_ALL = frozenset(ALGOS)
_AC = frozenset({"a2c", "ppo"})
_PPO = frozenset({"ppo"})


def _opt(default: Any, help: str, algos: frozenset[str] = _ALL, **kw: Any) -> Any:
    return field(default=default, metadata={"help": help, "algos": algos, **kw})


@dataclass
class AgentConfig:
    """Everything that defines a training run (what a checkpoint stores and ``--resume`` reuses)."""

    algo: str = _opt("ppo", "reinforce, a2c or ppo", cli=False)
    env_id: str = _opt("CartPole-v1", "gymnasium environment id", cli=False)
    total_steps: int = _opt(100_000, "environment steps to train for (all ranks together)", cli=False)
    seed: int = _opt(0, "seed of the environments, the network init and all sampling", cli=False)
    device: str = _opt("cpu", "torch device of the networks and the update", cli=False)

    # --- environments -------------------------------------------------------------------
    num_envs: int = _opt(4, "parallel environments (per rank)")
    async_envs: bool = _opt(False, "AsyncVectorEnv (one process per env) instead of SyncVectorEnv")
    max_episode_steps: int | None = _opt(None, "override the env's time limit (truncation)")
    n_steps: int = _opt(
        128,
        "steps per env per rollout (REINFORCE: at least this many per env; episodes are completed)",
    )

    # --- returns and advantages ---------------------------------------------------------------
    gamma: float = _opt(0.99, "discount γ")
    gae_lambda: float = _opt(0.95, "GAE λ (1 = n-step Monte-Carlo advantage)", _AC)
    norm_adv: bool = _opt(
        True, "normalise advantages (PPO: per minibatch; A2C/REINFORCE: per batch)"
    )
    baseline: bool = _opt(True, "REINFORCE: learn a value baseline b(s) = V(s)", frozenset({"reinforce"}))

    # --- observation and reward normalisation ---------------------------------------------
    norm_obs: bool = _opt(False, "normalise observations by running mean/std")
    norm_reward: bool = _opt(False, "scale rewards by the running std of the discounted return")
    clip_obs: float = _opt(10.0, "clip normalised observations to [-c, c]")
    clip_reward: float = _opt(10.0, "clip scaled rewards to [-c, c]")

    # --- optimiser ------------------------------------------------------------------------------
    optimizer: str = _opt("adam", "adam or rmsprop", choices=("adam", "rmsprop"))
    lr: float = _opt(2.5e-4, "learning rate")
    anneal_lr: bool = _opt(True, "decay the learning rate linearly to 0 over total_steps")
    adam_eps: float = _opt(1e-5, "ε of Adam / RMSprop")
    rmsprop_alpha: float = _opt(0.99, "RMSprop smoothing constant α")
    max_grad_norm: float | None = _opt(0.5, "clip the global gradient norm (none = off)")

    # --- losses -----------------------------------------------------------------------------------
    ent_coef: float = _opt(0.01, "entropy bonus coefficient")
    vf_coef: float = _opt(0.5, "value-loss coefficient", frozenset({"reinforce", "a2c", "ppo"}))
    clip_coef: float = _opt(0.2, "PPO ratio clip ε", _PPO)
    vf_clip: float | None = _opt(None, "PPO value clipping ε (none = off)", _PPO)
    update_epochs: int = _opt(4, "passes over each batch (REINFORCE/A2C: gradient steps per batch)")
    num_minibatches: int = _opt(4, "minibatches per epoch", _PPO)
    target_kl: float | None = _opt(
        None, "PPO: stop the update when approx KL > 1.5 × target (none = off)", _PPO
    )

    # --- network --------------------------------------------------------------------------------
    hidden: tuple[int, ...] = _opt((64, 64), "hidden layer sizes of the actor and the critic", nargs="+")
    activation: str = _opt("tanh", "tanh or relu", choices=("tanh", "relu"))
    ortho_init: bool = _opt(True, "orthogonal init (gain √2 hidden, 0.01 policy, 1 value), zero biases")
    log_std_init: float = _opt(0.0, "initial log σ of the Gaussian policy (continuous actions)")

    # --- evaluation -----------------------------------------------------------------------------
    eval_deterministic: bool = _opt(True, "evaluate with the greedy action (argmax / mean)")

    def validate(self) -> AgentConfig:
        """Raise ``ValueError`` naming the first bad field; return ``self``."""
        if self.algo not in ALGOS:
            raise ValueError(f"algo must be one of {ALGOS}, got {self.algo!r}")
        for name in ("total_steps", "num_envs", "n_steps", "update_epochs", "num_minibatches"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if self.max_episode_steps is not None and self.max_episode_steps < 1:
            raise ValueError(f"max_episode_steps must be >= 1 or None, got {self.max_episode_steps}")
        validate_unit_interval(self.gamma, "gamma")
        validate_unit_interval(self.gae_lambda, "gae_lambda")
        validate_unit_interval(self.rmsprop_alpha, "rmsprop_alpha")
        for name in ("lr", "adam_eps", "clip_obs", "clip_reward", "clip_coef"):
            validate_positive(getattr(self, name), name)
        for name in ("max_grad_norm", "vf_clip", "target_kl"):
            if getattr(self, name) is not None:
                validate_positive(getattr(self, name), name)
        for name in ("ent_coef", "vf_coef", "log_std_init"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError(f"{name} must be a finite number, got {v!r}")
        if self.ent_coef < 0 or self.vf_coef < 0:
            raise ValueError("ent_coef and vf_coef must be >= 0")
        if self.clip_coef >= 1:
            raise ValueError(f"clip_coef must be < 1, got {self.clip_coef}")
        if self.optimizer not in ("adam", "rmsprop"):
            raise ValueError(f"optimizer must be 'adam' or 'rmsprop', got {self.optimizer!r}")
        if self.activation not in ("tanh", "relu"):
            raise ValueError(f"activation must be 'tanh' or 'relu', got {self.activation!r}")
        if not self.hidden or any(isinstance(h, bool) or not isinstance(h, int) or h < 1 for h in self.hidden):
            raise ValueError(f"hidden must be a non-empty list of positive integers, got {self.hidden!r}")
        if self.algo == "ppo" and (self.num_envs * self.n_steps) % self.num_minibatches:
            raise ValueError(
                f"num_minibatches ({self.num_minibatches}) must divide the batch "
                f"num_envs * n_steps = {self.num_envs * self.n_steps}"
            )
        return self

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["hidden"] = list(self.hidden)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AgentConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown config field(s): {sorted(unknown)}")
        d = dict(d)
        if "hidden" in d:
            d["hidden"] = tuple(int(h) for h in d["hidden"])
        return cls(**d)

    def replace(self, **changes: Any) -> AgentConfig:
        return dataclasses.replace(self, **changes)


def hyperparameter_fields(algo: str) -> list[dataclasses.Field]:
    """The fields that ``pgmath train ALGO`` exposes as flags."""
    return [
        f
        for f in dataclasses.fields(AgentConfig)
        if f.metadata.get("cli", True) and algo in f.metadata["algos"]
    ]
