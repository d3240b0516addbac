"""The training loop shared by REINFORCE, A2C and PPO, with exact checkpoint/resume.

One iteration (an "update"):

1. set the learning rate (linear annealing: lr · (1 − step / total_steps), CleanRL's schedule);
2. collect a batch with the current policy (fixed ``n_steps`` per env for A2C/PPO, whole
   episodes for REINFORCE), observation/reward statistics frozen;
3. merge the batch into the observation/reward statistics (all ranks' data);
4. the algorithm's update (:mod:`pgmath.agents.reinforce`, :mod:`~pgmath.agents.a2c`,
   :mod:`~pgmath.agents.ppo`);
5. log, and every ``save_every`` updates write ``last.pt``.

Randomness: no global RNG is used. From ``np.random.SeedSequence(seed)`` come independent seeds
for the network init, the minibatch permutations (the same on every rank) and the action sampling
(one per rank); sub-env i of rank r is reset with seed ``seed + r·num_envs + i`` and then draws
from its own ``np_random``. So a run is a deterministic function of (config, seed, world size) on
CPU, and — because a checkpoint stores every generator's state and every sub-env's state — a run
stopped after any update and resumed is identical to one that never stopped
(``tests/test_agents.py::test_resume_is_exact``).
"""

from __future__ import annotations

import collections
import math
import pathlib
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from pgmath.agents.a2c import a2c_update
from pgmath.agents.checkpoint import (
    bytes_to_tensor,
    load_checkpoint,
    save_checkpoint,
    tensor_to_bytes,
)
from pgmath.agents.config import AgentConfig
from pgmath.agents.envs import env_snapshots, make_vector_env, space_dims
from pgmath.agents.logger import RunLogger, plot_learning_curve
from pgmath.agents.networks import ActorCritic
from pgmath.agents.normalize import ObsNormalizer, RewardScaler
from pgmath.agents.ppo import ppo_update
from pgmath.agents.reinforce import reinforce_update
from pgmath.agents.rollout import Collector
from pgmath.agents.update import set_lr

__all__ = ["TrainResult", "Trainer", "train"]


def _seeds(seed: int, rank: int) -> dict[str, int]:
    ss = np.random.SeedSequence(seed)
    init, shuffle = (int(x) for x in ss.generate_state(2, dtype=np.uint32))
    action = int(np.random.SeedSequence([seed, rank, 1]).generate_state(1, dtype=np.uint32)[0])
    return {"init": init, "shuffle": shuffle, "action": action}


def _max_episode_steps(cfg: AgentConfig) -> int | None:
    if cfg.max_episode_steps is not None:
        return cfg.max_episode_steps
    if isinstance(cfg.env_id, str):
        try:
            return gym.spec(cfg.env_id).max_episode_steps
        except Exception:
            return None
    return None


class Trainer:
    """The state of a run: environments, networks, optimiser, normalisers, generators, counters.

    Args:
      cfg: the configuration (validated here).
      comm: a :class:`pgmath.agents.distributed.Comm` for data-parallel PPO, or None.
      env_factory: optional callable returning a ``gymnasium.Env``, used instead of
        ``gym.make(cfg.env_id)`` (tests plug scripted environments in here).
    """

    def __init__(self, cfg: AgentConfig, *, comm=None, env_factory: Callable[[], gym.Env] | None = None,
                 snapshots: list[bytes] | None = None) -> None:
        self.cfg = cfg.validate()
        self.comm = comm
        self.rank = comm.rank if comm is not None else 0
        self.world = comm.world_size if comm is not None else 1
        if self.world > 1 and cfg.algo != "ppo":
            raise ValueError(f"data-parallel training is implemented for ppo only, not {cfg.algo!r}")
        dev = torch.device(cfg.device)
        if dev.type == "cuda" and comm is not None and dev.index is None:
            dev = torch.device("cuda", comm.local_rank())
        self.device = dev
        seeds = _seeds(cfg.seed, self.rank)
        self.env_factory = env_factory
        self.envs = make_vector_env(
            env_factory if env_factory is not None else cfg.env_id, cfg.num_envs,
            async_envs=cfg.async_envs, max_episode_steps=cfg.max_episode_steps, snapshots=snapshots,
        )
        obs_dim, act_dim, discrete, low, high = space_dims(self.envs)
        critic = cfg.algo != "reinforce" or cfg.baseline
        init_gen = torch.Generator().manual_seed(seeds["init"])
        self.model = ActorCritic(
            obs_dim, act_dim, discrete, hidden=cfg.hidden, activation=cfg.activation,
            ortho_init=cfg.ortho_init, log_std_init=cfg.log_std_init, critic=critic,
            generator=init_gen,
        ).to(dev)
        if cfg.optimizer == "adam":  # the fused kernel: one pass over all parameters (CPU and CUDA)
            self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.lr, eps=cfg.adam_eps, fused=True)
        else:
            self.optimizer = torch.optim.RMSprop(
                self.model.parameters(), lr=cfg.lr, alpha=cfg.rmsprop_alpha, eps=cfg.adam_eps
            )
        self.obs_norm = ObsNormalizer((obs_dim,), clip=cfg.clip_obs, device=dev) if cfg.norm_obs else None
        self.reward_scaler = (
            RewardScaler(cfg.num_envs, cfg.gamma, clip=cfg.clip_reward, device=dev) if cfg.norm_reward else None
        )
        self.action_gen = torch.Generator(device=dev).manual_seed(seeds["action"])
        self.shuffle_gen = torch.Generator().manual_seed(seeds["shuffle"])
        self.collector = Collector(
            self.envs, self.model, self.action_gen, dev, self.obs_norm, self.reward_scaler, low, high
        )
        self.update = 0
        self.global_step = 0
        self.episode_rows = 0
        self.recent: collections.deque[float] = collections.deque(maxlen=100)
        self.recent_len: collections.deque[int] = collections.deque(maxlen=100)
        self.elapsed = 0.0
        ep_cap = _max_episode_steps(cfg)
        self.max_batch_steps = cfg.n_steps + (ep_cap if ep_cap else 10 * cfg.n_steps)

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        """Reset the environments with the run's seeds (a fresh run)."""
        self.collector.reset(seed=self.cfg.seed + self.rank * self.cfg.num_envs)

    def close(self) -> None:
        self.envs.close()

    @property
    def steps_per_update(self) -> int:
        return self.cfg.num_envs * self.cfg.n_steps * self.world

    # -- one update -----------------------------------------------------------------------------
    def _gather(self, x: torch.Tensor) -> torch.Tensor:
        return self.comm.all_gather_cat(x) if self.comm is not None else x

    def iteration(self) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Collect one batch and update; return the progress row and the finished episodes."""
        cfg = self.cfg
        t0 = time.perf_counter()
        lr = cfg.lr * max(0.0, 1.0 - self.global_step / cfg.total_steps) if cfg.anneal_lr else cfg.lr
        set_lr(self.optimizer, lr)
        if cfg.algo == "reinforce":
            batch, episodes = self.collector.collect_episodes(cfg.n_steps, self.max_batch_steps)
        else:
            batch, episodes = self.collector.collect_steps(cfg.n_steps)
        # statistics for the next rollouts (this batch keeps the ones it was collected with)
        if self.obs_norm is not None:
            raw = batch.raw_obs
            if batch.valid is not None:
                raw = raw.reshape(*batch.shape, -1)[batch.valid]
            self.obs_norm.update(self._gather(raw))
        if self.reward_scaler is not None:
            self.reward_scaler.commit(self._gather(self.reward_scaler.pending()))
        if cfg.algo == "ppo":
            stats = ppo_update(self.model, self.optimizer, batch, cfg,
                               shuffle_generator=self.shuffle_gen, comm=self.comm)
        elif cfg.algo == "a2c":
            stats = a2c_update(self.model, self.optimizer, batch, cfg)
        else:
            stats = reinforce_update(self.model, self.optimizer, batch, cfg)
        steps = batch.env_steps * self.world
        per_t = self.cfg.num_envs * self.world  # environment steps per rollout step
        ep_rows = [
            {"step": self.global_step + (e.t + 1) * per_t, "rank": self.rank, "env": e.env,
             "return": e.ret, "length": e.length, "terminated": int(e.terminated)}
            for e in episodes
        ]
        self.global_step += steps
        self.update += 1
        if self.comm is not None:
            ep_rows = [r for part in self.comm.all_gather_object(ep_rows) for r in part]
        for r in ep_rows:
            self.recent.append(r["return"])
            self.recent_len.append(r["length"])
        self.episode_rows += len(ep_rows)
        dt = time.perf_counter() - t0
        self.elapsed += dt
        row = {
            "update": self.update, "step": self.global_step, "time_s": self.elapsed,
            "steps_per_s": steps / dt if dt > 0 else float("nan"), "lr": lr,
            "return_mean100": float(np.mean(self.recent)) if self.recent else float("nan"),
            "return_batch": float(np.mean([r["return"] for r in ep_rows])) if ep_rows else float("nan"),
            "length_mean100": float(np.mean(self.recent_len)) if self.recent_len else float("nan"),
            "episodes": self.episode_rows,
            **stats,
        }
        return row, ep_rows

    # -- checkpoints ----------------------------------------------------------------------------
    def _rank_state(self) -> dict[str, Any]:
        snaps = env_snapshots(self.envs)
        c = self.collector
        return {
            "action_rng": self.action_gen.get_state(),
            "obs": torch.as_tensor(np.asarray(c.obs)).clone(),
            "ep_return": torch.as_tensor(c.ep_return).clone(),
            "ep_length": torch.as_tensor(c.ep_length).clone(),
            "reward_returns": self.reward_scaler.returns.cpu().clone() if self.reward_scaler else None,
            "envs": [bytes_to_tensor(b) for b in snaps] if snaps is not None else None,
        }

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue (collective: every rank must call it)."""
        mine = self._rank_state()
        ranks = self.comm.all_gather_object(mine) if self.comm is not None else [mine]
        return {
            "config": self.cfg.to_dict(),
            "world_size": self.world,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "obs_norm": self.obs_norm.state_dict() if self.obs_norm else None,
            "reward_rms": self.reward_scaler.state_dict() if self.reward_scaler else None,
            "shuffle_rng": self.shuffle_gen.get_state(),
            "progress": {
                "update": self.update, "global_step": self.global_step,
                "episode_rows": self.episode_rows, "elapsed": self.elapsed,
                "recent": list(self.recent), "recent_len": list(self.recent_len),
            },
            "ranks": ranks,
        }

    def load_state_dict(self, state: dict[str, Any]) -> bool:
        """Restore a checkpoint. Returns True when the environments were restored exactly."""
        if state["world_size"] != self.world:
            raise ValueError(
                f"the checkpoint was written by {state['world_size']} rank(s); resume with as many "
                f"(this run has {self.world})"
            )
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.obs_norm is not None:
            self.obs_norm.load_state_dict(state["obs_norm"])
        if self.reward_scaler is not None:
            self.reward_scaler.load_state_dict(state["reward_rms"])
        self.shuffle_gen.set_state(state["shuffle_rng"])
        p = state["progress"]
        self.update, self.global_step = int(p["update"]), int(p["global_step"])
        self.episode_rows, self.elapsed = int(p["episode_rows"]), float(p["elapsed"])
        self.recent.clear()
        self.recent.extend(p["recent"])
        self.recent_len.clear()
        self.recent_len.extend(p["recent_len"])
        mine = state["ranks"][self.rank]
        self.action_gen.set_state(mine["action_rng"])
        exact = mine["envs"] is not None
        if exact:
            self.envs.close()
            self.envs = make_vector_env(
                self.cfg.env_id, self.cfg.num_envs, async_envs=self.cfg.async_envs,
                snapshots=[tensor_to_bytes(t) for t in mine["envs"]],
            )
            c = self.collector
            c.envs = self.envs
            c.obs = mine["obs"].numpy().copy()
            c.ep_return[:] = mine["ep_return"].numpy()
            c.ep_length[:] = mine["ep_length"].numpy()
            if self.reward_scaler is not None:
                self.reward_scaler.returns = mine["reward_returns"].to(self.device, torch.float64).clone()
        else:
            warnings.warn(
                f"{self.cfg.env_id}: the environment state could not be saved; resuming with fresh "
                "episodes (the run continues, but not exactly as if it had not stopped)",
                stacklevel=2,
            )
            self.collector.reset(seed=self.cfg.seed + self.rank * self.cfg.num_envs + 7919 * self.update)
        return exact


@dataclass
class TrainResult:
    """What :func:`train` returns."""

    config: AgentConfig
    model: ActorCritic
    rows: list[dict[str, Any]] = field(default_factory=list)  # progress rows of this process
    episodes: list[dict[str, Any]] = field(default_factory=list)  # finished episodes (this process)
    out_dir: pathlib.Path | None = None
    global_step: int = 0
    obs_norm: ObsNormalizer | None = None
    exact_resume: bool | None = None


def train(
    cfg: AgentConfig,
    out_dir: str | pathlib.Path | None = None,
    *,
    resume: bool = False,
    stop_after: int | None = None,
    save_every: int | None = None,
    progress: bool = False,
    tensorboard: bool = True,
    comm=None,
    env_factory: Callable[[], gym.Env] | None = None,
    callback: Callable[[Trainer, dict[str, Any]], None] | None = None,
) -> TrainResult:
    """Train ``cfg.algo`` on ``cfg.env_id`` until ``cfg.total_steps`` environment steps.

    Args:
      cfg: configuration (see :func:`pgmath.agents.presets.resolve_config`).
      out_dir: run directory for logs, checkpoints and the learning curve (None: nothing written).
      resume: continue from ``out_dir/last.pt`` (its configuration is used; ``cfg.total_steps``
        may extend the run, which changes the learning-rate schedule if annealing is on).
      stop_after: stop (with a checkpoint) once this many steps are done, to be resumed later.
      save_every: write ``last.pt`` every this many updates (default: about 20 times per run).
      progress: show a progress bar (rank 0).
      tensorboard: also write TensorBoard events when ``torch.utils.tensorboard`` is importable.
      comm: :class:`pgmath.agents.distributed.Comm` for data-parallel PPO.
      env_factory: a callable returning the ``gymnasium.Env`` (instead of ``gym.make``).
      callback: called after every update with the trainer and the progress row.
    """
    out = pathlib.Path(out_dir) if out_dir is not None else None
    state = None
    if resume:
        if out is None:
            raise ValueError("out_dir is required to resume")
        state = load_checkpoint(out / "last.pt")
        saved = AgentConfig.from_dict(state["config"])
        cfg = saved.replace(total_steps=cfg.total_steps, device=cfg.device)
    trainer = Trainer(cfg, comm=comm, env_factory=env_factory)
    exact = None
    if state is not None:
        exact = trainer.load_state_dict(state)
    else:
        trainer.start()
    rank0 = trainer.rank == 0
    n_updates = math.ceil(cfg.total_steps / trainer.steps_per_update)
    if save_every is None:
        save_every = max(1, n_updates // 20)
    logger = RunLogger(
        out, total_steps=cfg.total_steps, initial_step=trainer.global_step,
        keep_updates=trainer.update, keep_episodes=trainer.episode_rows,
        progress=progress, tensorboard=tensorboard, enabled=rank0,
    )
    if out is not None and rank0:
        import json

        (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
    result = TrainResult(cfg, trainer.model, out_dir=out, obs_norm=trainer.obs_norm, exact_resume=exact)

    def checkpoint(*names: str) -> None:
        st = trainer.state_dict()  # collective: every rank takes part
        if out is not None and rank0:
            for name in names:
                save_checkpoint(out / name, st)

    try:
        while trainer.global_step < cfg.total_steps:
            if stop_after is not None and trainer.global_step >= stop_after:
                break
            row, eps = trainer.iteration()
            logger.log_episodes(eps)
            logger.log_update(row)
            result.rows.append(row)
            result.episodes.extend(eps)
            if callback is not None:
                callback(trainer, row)
            if out is not None and trainer.update % save_every == 0:
                checkpoint("last.pt")
        if out is not None:
            done = trainer.global_step >= cfg.total_steps
            checkpoint("last.pt", *(["final.pt"] if done else []))
    finally:
        logger.close()
        trainer.close()
    if out is not None and rank0:
        plot_learning_curve(out / "episodes.csv", out / "learning_curve.png",
                            title=f"{cfg.algo.upper()} on {cfg.env_id} (seed {cfg.seed})")
    result.global_step = trainer.global_step
    return result

