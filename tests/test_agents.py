"""Agents: episode ends under gymnasium 1.x autoreset, training smoke runs, determinism, exact
resume, the command line. Learning targets are in ``benchmarks/agents.py``, not here.

The scripted environment makes every episode end predictably: observation ``[k, e]`` where k is
the number of steps taken in the current episode and e the episode's index (per sub-env); the
reward of the step taken from ``[k, e]`` is ``k + 1``. Even-numbered episodes *terminate* when k
reaches ``term_len``; odd-numbered ones run until a ``TimeLimit`` truncates them. A probe critic
V([k, e]) = 100 e + k tells every observation apart, so a bootstrap from the reset observation
instead of the real final one shows up as a wrong number.
"""

from __future__ import annotations

import math
import re

import gymnasium as gym
import numpy as np
import pytest
import torch

from pgmath.agents import ENV_PRESETS, evaluate, load_agent, resolve_config, train
from pgmath.agents.a2c import advantages_and_returns
from pgmath.agents.logger import TIMING_COLUMNS, read_csv
from pgmath.agents.train import Trainer
from pgmath.cli import main


class ScriptedEnv(gym.Env):
    def __init__(self, term_len: int = 3, lens: tuple[int, ...] | None = None) -> None:
        self.observation_space = gym.spaces.Box(-1e6, 1e6, shape=(2,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.term_len = term_len
        self.lens = lens  # terminal length of episode e: lens[e % len(lens)] (overrides term_len)
        self.k = 0
        self.e = -1

    def _obs(self) -> np.ndarray:
        return np.array([self.k, self.e], dtype=np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.k, self.e = 0, self.e + 1
        return self._obs(), {}

    def step(self, action):
        r = float(self.k + 1)
        self.k += 1
        if self.lens is not None:
            term = self.k >= self.lens[self.e % len(self.lens)]
        else:
            term = self.e % 2 == 0 and self.k >= self.term_len
        return self._obs(), r, bool(term), False, {}


class Scripted:
    """Picklable factory (AsyncVectorEnv sends it to its workers)."""

    def __init__(self, **kw):
        self.kw = kw

    def __call__(self):
        return ScriptedEnv(**self.kw)


def probe_critic() -> torch.nn.Sequential:
    """V([k, e]) = 100 e + k."""
    lin = torch.nn.Linear(2, 1)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, 100.0]]))
        lin.bias.zero_()
    return torch.nn.Sequential(lin)


def _v(k, e):
    return 100.0 * e + k


def _scripted_trainer(algo="ppo", *, env_kw=None, async_envs=False, max_episode_steps=5, num_envs=2,
                      n_steps=12):
    cfg = resolve_config(algo, "Scripted", {
        "num_envs": num_envs, "n_steps": n_steps, "async_envs": async_envs,
        "max_episode_steps": max_episode_steps, "total_steps": 10_000, "num_minibatches": 1,
    })
    tr = Trainer(cfg, env_factory=Scripted(**(env_kw or {})))
    tr.model.critic = probe_critic()
    return tr


@pytest.mark.parametrize("async_envs", [False, True], ids=["sync", "async"])
def test_rollout_episode_ends_terminated_vs_truncated(async_envs):
    """Terminated: no bootstrap; truncated: next_values = V(real final obs), never V(reset obs)."""
    tr = _scripted_trainer(async_envs=async_envs)
    try:
        tr.start()
        batch, episodes = tr.collector.collect_steps(12)
    finally:
        tr.close()
    T, N = batch.shape
    assert (T, N) == (12, 2)
    # each env: episode 0 terminates after 3 steps, episode 1 is truncated at 5, episode 2 ...
    k, e = 0, 0
    for t in range(T):
        for n in range(N):
            assert batch.obs[t, n].tolist() == [k, e]
            assert batch.rewards[t, n].item() == k + 1
            assert batch.values[t, n].item() == _v(k, e)
        k += 1
        term = e % 2 == 0 and k == 3
        trunc = e % 2 == 1 and k == 5
        assert batch.terminated[t].tolist() == [term] * N
        assert batch.truncated[t].tolist() == [trunc] * N
        if trunc:  # bootstrap from the real final observation [5, e], not from [0, e + 1]
            assert batch.next_values[t].tolist() == [_v(5, e)] * N
        elif not term:
            assert batch.next_values[t].tolist() == [_v(k, e)] * N
        if term or trunc:
            k, e = 0, e + 1
    # λ = 0 advantages are the TD errors with these conventions
    cfg = tr.cfg.replace(gamma=0.5, gae_lambda=0.0)
    adv, _ = advantages_and_returns(batch, cfg)
    t_trunc, t_term = 7, 2  # step 8 of the run truncates episode 1 (k: 4 -> 5); step 3 terminates ep. 0
    assert batch.truncated[t_trunc, 0] and batch.terminated[t_term, 0]
    assert adv[t_trunc, 0].item() == pytest.approx(5 + 0.5 * _v(5, 1) - _v(4, 1))
    assert adv[t_term, 0].item() == pytest.approx(3 - _v(2, 0))
    # the finished episodes, with their unscaled returns
    rec = sorted((ep.env, ep.length, ep.ret, ep.terminated) for ep in episodes)
    per_env = [(3, 6.0, True), (5, 15.0, False), (3, 6.0, True)]
    assert rec == sorted((n, *x) for n in range(N) for x in per_env)


def test_rollout_bootstraps_the_last_step_from_the_next_observation():
    tr = _scripted_trainer(max_episode_steps=100, env_kw={"term_len": 50})
    try:
        tr.start()
        batch, _ = tr.collector.collect_steps(4)
        batch2, _ = tr.collector.collect_steps(1)
    finally:
        tr.close()
    assert batch.next_values[-1].tolist() == [_v(4, 0)] * 2
    assert batch2.obs[0, 0].tolist() == [4, 0]  # the next rollout continues the episode


def test_reinforce_batches_hold_whole_episodes():
    """Every kept episode starts at its reset and ends at its end; padding is masked."""
    lens = (2, 7, 3, 1, 4)
    tr = _scripted_trainer("reinforce", max_episode_steps=None, n_steps=5, env_kw={"lens": lens},
                           num_envs=3)
    try:
        tr.start()
        for _ in range(2):  # the second batch starts from freshly reset envs as well
            batch, episodes = tr.collector.collect_episodes(5, max_steps=100)
            _T, N = batch.shape
            for n in range(N):
                v = batch.valid[:, n]
                n_valid = int(v.sum())
                assert v[:n_valid].all() and not v[n_valid:].any()  # valid prefix, then padding
                assert n_valid >= 5
                assert batch.obs[0, n, 0].item() == 0  # starts at an episode start
                ends = (batch.terminated[:n_valid, n] | batch.truncated[:n_valid, n]).nonzero()
                assert ends[-1].item() == n_valid - 1  # ...and stops at an episode end
                for t in ends[:-1, 0].tolist():  # the next kept step starts a new episode
                    assert batch.obs[t + 1, n, 0].item() == 0
                # the padding's episode-end flags never reach the kept steps' returns
                assert batch.terminated[:n_valid, n].sum() == len(ends)
            assert sum(ep.length for ep in episodes) == int(batch.valid.sum())
    finally:
        tr.close()


def test_reinforce_cap_truncates_and_bootstraps():
    tr = _scripted_trainer("reinforce", max_episode_steps=None, n_steps=2, env_kw={"lens": (50,)},
                           num_envs=1)
    try:
        tr.start()
        batch, episodes = tr.collector.collect_episodes(2, max_steps=6)
    finally:
        tr.close()
    assert batch.shape == (6, 1) and bool(batch.valid.all())
    assert batch.truncated[-1, 0] and not batch.terminated.any()
    # collect_episodes resets the envs itself: this is the env's episode 1
    assert batch.obs[0, 0].tolist() == [0, 1]
    assert batch.next_values[-1, 0].item() == _v(6, 1)
    assert episodes == []  # a cut episode is not a finished one


def test_stored_log_probs_and_values_match_the_update_inputs():
    """What the update recomputes on the stored (normalised) observations equals what was sampled."""
    cfg = resolve_config("ppo", "CartPole-v1", {"num_envs": 2, "n_steps": 32, "norm_obs": True,
                                                 "norm_reward": True, "total_steps": 10_000})
    tr = Trainer(cfg)
    try:
        tr.start()
        tr.iteration()
        tr.iteration()  # the normaliser statistics are no longer the initial ones
        assert tr.obs_norm.rms.count > 100
        batch, _ = tr.collector.collect_steps(32)
    finally:
        tr.close()
    with torch.no_grad():
        obs = batch.obs.reshape(-1, batch.obs.shape[-1])
        params = tr.model.policy_params(obs)
        logp = tr.model.log_prob(params, batch.actions.reshape(-1))
        assert torch.allclose(logp, batch.log_probs.reshape(-1), atol=1e-6, rtol=0)
        assert torch.allclose(tr.model.value(obs), batch.values.reshape(-1), atol=1e-6, rtol=0)
        assert torch.equal(tr.obs_norm(batch.raw_obs), obs)
    assert not torch.equal(batch.raw_obs, obs)


# --------------------------------------------------------------------------------------------
# training runs

_TINY = {
    "ppo": {"num_envs": 2, "n_steps": 32, "num_minibatches": 2, "update_epochs": 2},
    "a2c": {"num_envs": 2, "n_steps": 8},
    "reinforce": {"num_envs": 2, "n_steps": 16},
}


@pytest.mark.parametrize("algo", ["reinforce", "a2c", "ppo"])
@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"], ids=["discrete", "continuous"])
def test_smoke_train(algo, env_id):
    steps = 256 if env_id == "CartPole-v1" else 400
    cfg = resolve_config(algo, env_id, {**_TINY[algo], "total_steps": steps, "max_episode_steps": 50,
                                        "norm_obs": True})
    res = train(cfg, None)
    assert res.global_step >= steps
    assert res.episodes, "no episode finished"
    for r in res.rows:
        for key in ("policy_loss", "entropy"):
            assert math.isfinite(r[key])
    assert all(bool(torch.isfinite(p).all()) for p in res.model.parameters())
    if env_id == "Pendulum-v1":  # the Gaussian's log σ is a trained parameter
        assert not torch.equal(res.model.log_std.detach(), torch.zeros(1))
    rets = evaluate(res.model, env_id, episodes=3, obs_norm=res.obs_norm, max_episode_steps=50)
    assert rets.shape == (3,)


def test_reinforce_without_baseline_has_no_critic():
    cfg = resolve_config("reinforce", "CartPole-v1", {**_TINY["reinforce"], "baseline": False,
                                                       "total_steps": 64})
    res = train(cfg, None)
    assert not res.model.has_critic and res.global_step >= 64


def _curve(res):
    return [{k: v for k, v in r.items() if k not in TIMING_COLUMNS} for r in res.rows]


def test_same_seed_same_learning_curve():
    over = {**_TINY["ppo"], "total_steps": 512, "norm_obs": True, "norm_reward": True}
    a = train(resolve_config("ppo", "CartPole-v1", {**over, "seed": 3}), None)
    b = train(resolve_config("ppo", "CartPole-v1", {**over, "seed": 3}), None)
    c = train(resolve_config("ppo", "CartPole-v1", {**over, "seed": 4}), None)
    assert _curve(a) == _curve(b)
    assert a.episodes == b.episodes
    for p, q in zip(a.model.parameters(), b.model.parameters()):
        assert torch.equal(p, q)
    assert a.episodes != c.episodes  # the seed matters (power of the check above)


def _files_equal(d1, d2, name, skip=()):
    r1, r2 = read_csv(d1 / name), read_csv(d2 / name)
    assert len(r1) == len(r2) > 0
    for x, y in zip(r1, r2):
        assert {k: v for k, v in x.items() if k not in skip} == {k: v for k, v in y.items() if k not in skip}


@pytest.mark.parametrize(
    "algo,extra",
    [
        ("ppo", {"norm_obs": True, "norm_reward": True}),
        ("ppo", {"async_envs": True}),
        ("a2c", {"norm_obs": True}),
        ("reinforce", {}),
    ],
    ids=["ppo-norm", "ppo-async", "a2c", "reinforce"],
)
def test_resume_is_exact(tmp_path, algo, extra):
    """N steps in one go == N/2, stop, --resume: the same episodes, log rows and parameters."""
    over = {**_TINY[algo], "total_steps": 512, "max_episode_steps": 20, **extra}
    cfg = resolve_config(algo, "CartPole-v1", over)
    one, two = tmp_path / "one", tmp_path / "two"
    train(cfg, one, save_every=1000)
    half = train(cfg, two, stop_after=256, save_every=1000)
    assert 256 <= half.global_step < 512
    res = train(cfg, two, resume=True)
    assert res.exact_resume is True
    _files_equal(one, two, "episodes.csv")
    _files_equal(one, two, "progress.csv", skip=TIMING_COLUMNS)
    s1 = torch.load(one / "final.pt", weights_only=True)
    s2 = torch.load(two / "final.pt", weights_only=True)
    for k in s1["model"]:
        assert torch.equal(s1["model"][k], s2["model"][k]), k
    assert torch.equal(s1["ranks"][0]["action_rng"], s2["ranks"][0]["action_rng"])


def test_resume_without_restoring_state_diverges(tmp_path):
    """Power of test_resume_is_exact: a resume that reseeds the envs gives different episodes."""
    cfg = resolve_config("ppo", "CartPole-v1", {**_TINY["ppo"], "total_steps": 512, "max_episode_steps": 20})
    one, two = tmp_path / "one", tmp_path / "two"
    train(cfg, one, save_every=1000)
    train(cfg, two, stop_after=256, save_every=1000)
    st = torch.load(two / "last.pt", weights_only=True)
    st["ranks"][0]["envs"] = None  # what an unpicklable simulator leaves
    torch.save(st, two / "last.pt")
    with pytest.warns(UserWarning, match="not exactly"):
        res = train(cfg, two, resume=True)
    assert res.exact_resume is False
    assert read_csv(one / "episodes.csv") != read_csv(two / "episodes.csv")


# --------------------------------------------------------------------------------------------
# command line

def test_cli_train_resume_and_eval(tmp_path, capsys):
    out = tmp_path / "run"
    common = ["train", "ppo", "--env", "CartPole-v1", "--steps", "512", "--seed", "1", "--out", str(out),
              "--no-progress", "--num-envs", "2", "--n-steps", "64", "--num-minibatches", "2", "--lr", "0.001",
              "--no-anneal-lr", "--max-grad-norm", "none"]
    assert main([*common, "--stop-after", "256"]) == 0
    assert (out / "last.pt").is_file() and not (out / "final.pt").exists()
    # --resume needs only the run directory: the checkpoint's configuration and budget are used
    assert main(["train", "ppo", "--out", str(out), "--resume", "--no-progress"]) == 0
    for name in ("progress.csv", "episodes.csv", "learning_curve.png", "config.json", "final.pt"):
        assert (out / name).is_file(), name
    cfg, _model, _ = load_agent(out / "final.pt")
    assert cfg.lr == 0.001 and cfg.max_grad_norm is None and cfg.anneal_lr is False
    # flags override, the rest is the preset
    assert cfg.num_envs == 2 and cfg.update_epochs == ENV_PRESETS["ppo"]["CartPole-v1"]["update_epochs"]
    rows = read_csv(out / "progress.csv")
    assert [int(r["update"]) for r in rows] == list(range(1, 5))
    capsys.readouterr()
    assert main(["eval", str(out / "final.pt"), "--episodes", "4"]) == 0
    text = capsys.readouterr().out
    assert re.search(r"return over 4 episodes: -?\d+\.\d+ ± \d+\.\d+", text), text


def test_cli_rejects_bad_flags(tmp_path, capsys):
    assert main(["train", "ppo", "--gamma", "1.5", "--out", str(tmp_path)]) == 2
    assert "gamma" in capsys.readouterr().err
    assert main(["train", "ppo", "--out", str(tmp_path / "none"), "--resume"]) == 2
    assert main(["eval", str(tmp_path / "missing.pt")]) == 2


@pytest.mark.gpu
def test_train_on_cuda():
    cfg = resolve_config("ppo", "CartPole-v1", {**_TINY["ppo"], "total_steps": 256, "device": "cuda"})
    res = train(cfg, None)
    assert all(p.is_cuda for p in res.model.parameters())
    cfg = resolve_config("ppo", "Pendulum-v1", {**_TINY["ppo"], "total_steps": 256, "device": "cuda",
                                                 "norm_obs": True, "norm_reward": True})
    res = train(cfg, None)
    assert all(p.is_cuda for p in res.model.parameters())


# tiny networks: one torch thread per test (fixture in conftest.py)
pytestmark = pytest.mark.usefixtures("one_thread")
