"""Agents, unit level: running statistics, configuration and presets, networks, sampling, PPO's
early stop and learning-rate schedule."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from pgmath.agents import ALGO_DEFAULTS, ENV_PRESETS, AgentConfig, preset, resolve_config, train
from pgmath.agents.networks import ActorCritic
from pgmath.agents.normalize import ObsNormalizer, RewardScaler, RunningMeanStd
from pgmath.agents.ppo import ppo_update
from pgmath.agents.rollout import RolloutBuffer

# --------------------------------------------------------------------------------------------
# running statistics

def _batches(seed=0):
    rng = np.random.default_rng(seed)
    # different sizes and a shifted mean, so the δ² term of the merge matters
    return [rng.normal(loc=3.0 * i, scale=1.0 + i, size=(k, 3)) for i, k in enumerate([1, 7, 50, 2])]


def test_running_mean_std_merge_equals_moments_of_the_concatenation():
    rms = RunningMeanStd((3,), initial_count=0.0)
    xs = _batches()
    for x in xs:
        rms.update(torch.as_tensor(x))
    allx = np.concatenate(xs)
    np.testing.assert_allclose(rms.mean.numpy(), allx.mean(0), rtol=0, atol=1e-12)
    np.testing.assert_allclose(rms.var.numpy(), allx.var(0), rtol=1e-12, atol=1e-12)
    assert rms.count == len(allx)
    # power: without the between-batch term δ²nk/n' the variance would be far off
    pooled = sum(len(x) * x.var(0) for x in xs) / len(allx)
    assert np.abs(pooled - allx.var(0)).min() > 1.0


def test_running_mean_std_matches_stable_baselines3():
    sb3 = pytest.importorskip("stable_baselines3.common.running_mean_std")
    ref = sb3.RunningMeanStd(shape=(3,))  # also starts from count 1e-4, mean 0, var 1
    rms = RunningMeanStd((3,))
    for x in _batches(1):
        ref.update(x)
        rms.update(torch.as_tensor(x))
    np.testing.assert_allclose(rms.mean.numpy(), ref.mean, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(rms.var.numpy(), ref.var, rtol=1e-12, atol=1e-12)


def test_running_mean_std_rejects_bad_batches():
    rms = RunningMeanStd((2,))
    with pytest.raises(ValueError, match="shape"):
        rms.update(torch.zeros(3, 3))
    with pytest.raises(ValueError, match="empty"):
        rms.update(torch.zeros(0, 2))
    with pytest.raises(ValueError, match="NaN"):
        rms.update(torch.tensor([[0.0, float("nan")]]))


def test_obs_normalizer_standardises_and_clips():
    norm = ObsNormalizer((2,), clip=2.0)
    norm.rms = RunningMeanStd((2,), initial_count=0.0)
    norm.update(torch.tensor([[0.0, 10.0], [2.0, 30.0]], dtype=torch.float64))  # mean (1, 20), var (1, 100)
    out = norm(torch.tensor([[3.0, 20.0], [1.0, 100.0]]))
    torch.testing.assert_close(out, torch.tensor([[2.0, 0.0], [0.0, 2.0]]), atol=1e-6, rtol=0)


def test_reward_scaler_discounted_return_resets_at_episode_ends():
    g = 0.5
    sc = RewardScaler(2, g, clip=100.0)
    r = [torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.0])]
    done = [torch.tensor([False, True]), torch.tensor([False, False]), torch.tensor([True, False])]
    out = [sc.scale(ri, di) for ri, di in zip(r, done)]
    # frozen statistics (var = 1): rewards pass through unscaled before the first commit
    for o, ri in zip(out, r):
        torch.testing.assert_close(o, ri, atol=1e-4, rtol=0)
    expected = torch.tensor([1.0, 2.0, 1.5, 2.0, 1.75, 3.0], dtype=torch.float64)  # env1 reset after t=0
    torch.testing.assert_close(sc.pending(), expected)
    sc.commit()
    assert sc.rms.count == pytest.approx(6 + 1e-4)
    assert sc.returns.tolist() == [0.0, 3.0]  # env 0's episode ended at the last step
    scaled = sc.scale(torch.tensor([4.0, 4.0]), torch.tensor([False, False]))
    torch.testing.assert_close(scaled, torch.tensor([4.0, 4.0]) / float(torch.sqrt(sc.rms.var + 1e-8)))


# --------------------------------------------------------------------------------------------
# configuration

@pytest.mark.parametrize(
    "field,value",
    [("gamma", 1.5), ("gae_lambda", -0.1), ("lr", 0.0), ("num_envs", 0), ("n_steps", 2.5),
     ("num_minibatches", 3), ("clip_coef", 1.0), ("max_grad_norm", -1.0), ("target_kl", 0.0),
     ("optimizer", "sgd"), ("activation", "gelu"), ("hidden", ()), ("ent_coef", float("nan"))],
)
def test_bad_hyperparameters_name_the_field(field, value):
    with pytest.raises(ValueError, match=field if field != "num_minibatches" else "num_minibatches"):
        resolve_config("ppo", "CartPole-v1", {field: value, "num_envs": 4 if field != "num_envs" else 0,
                                              "n_steps": 128 if field != "n_steps" else value})


def test_unknown_algorithm_and_field():
    with pytest.raises(ValueError, match="algo"):
        resolve_config("dqn", "CartPole-v1")
    with pytest.raises(ValueError, match="unknown config field"):
        AgentConfig.from_dict({"learning_rate": 1.0})


def test_presets_layer_and_flags_override():
    cfg = resolve_config("ppo", "Acrobot-v1", {"lr": 1e-3, "max_grad_norm": "none", "ent_coef": None})
    p = ENV_PRESETS["ppo"]["Acrobot-v1"]
    assert cfg.lr == 1e-3 and cfg.max_grad_norm is None  # flags win ("none" switches off)
    assert cfg.num_envs == p["num_envs"] and cfg.ent_coef == p["ent_coef"]  # None = not given
    assert cfg.clip_coef == ALGO_DEFAULTS["ppo"]["clip_coef"]  # the algorithm's default below
    a2c = resolve_config("a2c", "SomeUnknownEnv-v0")
    assert a2c.n_steps == ALGO_DEFAULTS["a2c"]["n_steps"] and a2c.optimizer == "rmsprop"
    assert preset("ppo", "CartPole-v1")["total_steps"] == 100_000
    assert AgentConfig.from_dict(cfg.to_dict()) == cfg


# --------------------------------------------------------------------------------------------
# networks

def test_network_init_uses_only_its_generator():
    state = torch.random.get_rng_state()
    a = ActorCritic(4, 2, True, generator=torch.Generator().manual_seed(5))
    b = ActorCritic(4, 2, True, generator=torch.Generator().manual_seed(5))
    c = ActorCritic(4, 2, True, ortho_init=False, generator=torch.Generator().manual_seed(5))
    assert torch.equal(torch.random.get_rng_state(), state)  # the global RNG was not touched
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)
    # orthogonal init: rows (or columns) orthonormal up to the gain; biases zero
    w = a.actor[2].weight.detach().double()
    torch.testing.assert_close(w @ w.T, 2.0 * torch.eye(64, dtype=torch.float64), atol=1e-5, rtol=0)
    head = a.actor[4].weight.detach().double()
    torch.testing.assert_close(head @ head.T, 1e-4 * torch.eye(2, dtype=torch.float64), atol=1e-9, rtol=0)
    assert not a.actor[0].bias.any()
    assert c.actor[0].bias.abs().max() > 0  # the default init draws biases


def test_gaussian_head_log_prob_and_entropy_match_torch_distributions():
    m = ActorCritic(3, 2, False, log_std_init=-0.5, generator=torch.Generator().manual_seed(0))
    obs = torch.randn(5, 3, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        mean = m.policy_params(obs)
        a = m.sample(mean, torch.Generator().manual_seed(2))
        ref = torch.distributions.Normal(mean, m.log_std.exp())
        torch.testing.assert_close(m.log_prob(mean, a), ref.log_prob(a).sum(-1))
        torch.testing.assert_close(m.entropy(mean), ref.entropy().sum(-1))


def test_categorical_sampling_follows_the_softmax():
    """χ² goodness of fit, false-alarm rate 1e-3 (fixed seed: deterministic); a uniform sampler fails."""
    m = ActorCritic(1, 3, True, generator=torch.Generator().manual_seed(0))
    logits = torch.tensor([[0.0, 1.0, -1.0]]).expand(30_000, 3)
    a = m.sample(logits, torch.Generator().manual_seed(7))
    counts = torch.bincount(a, minlength=3).numpy()
    p = torch.softmax(logits[0], -1).numpy()
    assert stats.chisquare(counts, p * counts.sum()).pvalue > 1e-3
    assert stats.chisquare(np.full(3, 10_000), p * 30_000).pvalue < 1e-3  # power
    assert torch.equal(m.sample(logits[:2], None, deterministic=True), torch.tensor([1, 1]))


# --------------------------------------------------------------------------------------------
# PPO update mechanics

def _toy_batch(T=8, N=4, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    kw = {"generator": g, "dtype": dtype}
    term = torch.rand(T, N, generator=g) < 0.1
    trunc = (torch.rand(T, N, generator=g) < 0.05) & ~term
    return RolloutBuffer(
        obs=torch.randn(T, N, 3, **kw), actions=torch.randint(0, 2, (T, N), generator=g),
        log_probs=torch.full((T, N), math.log(0.5), dtype=dtype), values=torch.randn(T, N, **kw),
        next_values=torch.randn(T, N, **kw), rewards=torch.randn(T, N, **kw), terminated=term,
        truncated=trunc,
    )


def test_ppo_early_stop_on_target_kl():
    cfg = resolve_config("ppo", "CartPole-v1", {"num_envs": 4, "n_steps": 8, "num_minibatches": 4,
                                                "update_epochs": 3, "lr": 1e-2})

    def run(target_kl):
        m = ActorCritic(3, 2, True, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            m.actor[-1].weight.zero_()  # π(·|s) uniform: the stored log-probs log ½ are exact
        opt = torch.optim.Adam(m.parameters(), lr=1e-2)
        return ppo_update(m, opt, _toy_batch(), cfg.replace(target_kl=target_kl),
                          shuffle_generator=torch.Generator().manual_seed(0))

    assert run(None)["minibatch_steps"] == 12
    # the first minibatch sees KL = 0 (nothing changed yet), the second one a positive KL
    assert run(1e-12)["minibatch_steps"] == 1
    assert run(1e3)["minibatch_steps"] == 12


def test_learning_rate_annealing_schedule():
    cfg = resolve_config("ppo", "CartPole-v1", {"num_envs": 2, "n_steps": 16, "num_minibatches": 2,
                                                "update_epochs": 1, "total_steps": 128, "lr": 1e-3})
    res = train(cfg, None)
    lrs = [r["lr"] for r in res.rows]
    assert lrs == pytest.approx([1e-3 * (1 - 32 * i / 128) for i in range(4)], rel=1e-12)
    flat = train(cfg.replace(anneal_lr=False), None)
    assert {r["lr"] for r in flat.rows} == {1e-3}


# tiny networks: one torch thread per test (fixture in conftest.py)
pytestmark = pytest.mark.usefixtures("one_thread")


# --------------------------------------------------------------------------------------------
# Update direction: one update raises the surrogate objective and moves the policy towards the
# positive-advantage actions (a flipped sign of the policy loss fails both).

def _direction_batch(T=16, N=4, seed=3):
    """Action 1 earns +1, action 0 earns −1; every step terminates (advantage = reward − V)."""
    g = torch.Generator().manual_seed(seed)
    actions = torch.randint(0, 2, (T, N), generator=g)
    rewards = actions.to(torch.float32) * 2 - 1
    zeros = torch.zeros(T, N)
    return RolloutBuffer(
        obs=torch.randn(T, N, 3, generator=g), actions=actions,
        log_probs=torch.full((T, N), math.log(0.5)), values=zeros, next_values=zeros,
        rewards=rewards, terminated=torch.ones(T, N, dtype=torch.bool),
        truncated=torch.zeros(T, N, dtype=torch.bool),
    )


def _surrogate_and_p1(model, batch):
    with torch.no_grad():
        params = model.policy_params(batch.obs.reshape(-1, 3))
        logp = model.log_prob(params, batch.actions.reshape(-1))
        adv = batch.rewards.reshape(-1)  # V ≡ 0 at the start: the advantages the update sees
        p1 = model.log_prob(params, torch.ones_like(batch.actions.reshape(-1))).exp().mean()
    return float((adv * logp).mean()), float(p1)


@pytest.mark.parametrize("algo", ["ppo", "a2c"])
def test_one_update_raises_the_surrogate_and_favours_positive_advantages(algo):
    from pgmath.agents.a2c import a2c_update

    cfg = resolve_config(algo, "CartPole-v1", {"num_envs": 4, "n_steps": 16, "lr": 1e-2,
                                               "ent_coef": 0.0})
    m = ActorCritic(3, 2, True, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        m.actor[-1].weight.zero_()  # π uniform: the stored log-probs log ½ are exact
        m.actor[-1].bias.zero_()
    batch = _direction_batch()
    before, p1_before = _surrogate_and_p1(m, batch)
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    if algo == "ppo":
        ppo_update(m, opt, batch, cfg, shuffle_generator=torch.Generator().manual_seed(0))
    else:
        a2c_update(m, opt, batch, cfg)
    after, p1_after = _surrogate_and_p1(m, batch)
    assert after > before + 1e-4, (before, after)
    assert p1_after > p1_before + 1e-3, (p1_before, p1_after)
