"""The episode sampler (pgmath.mdp.sampler) and the occupancy chi-square test (pgmath.mdp.goodness_of_fit).

Statistical tests: every chi-square / z test below rejects at level α = 1e-3 (false-alarm rate
per test 0.1%), runs with a fixed seed (so it is deterministic, never flaky), and the power tests
show that deliberately wrong samplers are rejected at the same level.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import binom, norm

import pgmath.mdp.sampler as sampler_mod
from pgmath.mdp import (
    Episodes,
    TabularMDP,
    gridworld,
    occupancy_chi_square,
    random_mdp,
    sample_episodes,
    sample_episodes_reference,
    short_corridor,
    steps_for_tolerance,
)

F64 = torch.float64
ALPHA = 1e-3


def _gen(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def _case(seed: int = 0, K: int = 0, gamma: float = 0.9):
    g = _gen(seed)
    mdp = random_mdp(6, 3, generator=g, gamma=gamma, num_terminal=K)
    pi = mdp.policy(torch.randn(6, 3, generator=g, dtype=F64))
    return mdp, pi


def _fit(ep, mdp, pi, max_steps, seed=123, gamma=0.8, by="transition"):
    return occupancy_chi_square(ep, mdp, pi, max_steps=max_steps, gamma=gamma, generator=_gen(seed), by=by)


# ------------------------------------------------------------------ layout
def test_layout_and_padding_conventions():
    mdp = gridworld()
    pi = torch.full((16, 4), 0.25, dtype=F64)
    ep = sample_episodes(mdp, pi, 500, 30, generator=_gen(1))
    T, N = ep.states.shape
    assert N == 500 and T <= 30
    for x in (ep.actions, ep.rewards, ep.next_states, ep.terminated, ep.truncated, ep.log_probs, ep.valid):
        assert x.shape == (T, N)
    assert ep.states.dtype == ep.actions.dtype == ep.next_states.dtype == torch.long
    assert ep.terminated.dtype == ep.truncated.dtype == ep.valid.dtype == torch.bool
    assert ep.rewards.dtype == ep.log_probs.dtype == F64
    t = torch.arange(T)[:, None]
    assert torch.equal(ep.valid, t < ep.lengths[None])
    v = ep.valid
    # chaining, rewards, log-probs and supports on valid steps
    assert torch.equal(ep.states[1:][v[1:]], ep.next_states[:-1][v[1:]])
    assert torch.equal(ep.rewards[v], mdp.R[ep.states, ep.actions][v])
    torch.testing.assert_close(ep.log_probs[v], torch.log(pi[ep.states, ep.actions])[v], rtol=0, atol=0)
    assert bool((mdp.P[ep.states, ep.actions, ep.next_states][v] > 0).all())
    assert not bool(mdp.terminal[ep.states][v].any())
    # every episode ends exactly once: terminated at its last step, or truncated at the cap
    ends = (ep.terminated | ep.truncated).sum(0)
    assert bool((ends == 1).all())
    last = ep.lengths - 1
    assert bool((ep.terminated | ep.truncated)[last, torch.arange(N)].all())
    assert not bool(ep.truncated[:-1].any())
    assert bool((ep.truncated[-1] <= (ep.lengths == 30)).all())
    assert bool((ep.terminated & ep.truncated).sum() == 0)
    # padding: stay in the terminal state, action 0, reward 0, log-prob 0, no flags
    pad = ~v
    assert bool(pad.any())
    assert bool(mdp.terminal[ep.states[pad]].all()) and torch.equal(ep.states[pad], ep.next_states[pad])
    assert bool((ep.actions[pad] == 0).all()) and bool((ep.rewards[pad] == 0).all())
    assert bool((ep.log_probs[pad] == 0).all())
    assert not bool((ep.terminated | ep.truncated)[pad].any())


def test_continuing_mdp_is_truncated_at_the_cap():
    mdp, pi = _case()
    ep = sample_episodes(mdp, pi, 50, 17, generator=_gen(0))
    assert ep.num_steps == 17 and bool(ep.valid.all()) and bool(ep.truncated[-1].all())
    assert not bool(ep.terminated.any())


def test_same_seed_same_episodes_and_reference_layout_matches():
    mdp, pi = _case(K=1)
    a = sample_episodes(mdp, pi, 100, 20, generator=_gen(5))
    b = sample_episodes(mdp, pi, 100, 20, generator=_gen(5))
    assert all(torch.equal(x, y) for x, y in zip(a.__dict__.values(), b.__dict__.values()))
    ref = sample_episodes_reference(mdp, pi, 50, 20, seed=5)
    assert ref.states.shape[1] == 50 and ref.states.dtype == torch.long
    v = ref.valid
    assert torch.equal(v, torch.arange(ref.num_steps)[:, None] < ref.lengths[None])
    assert bool(((ref.terminated | ref.truncated).sum(0) == 1).all())
    assert bool(mdp.terminal[ref.states[~v]].all()) and bool((ref.rewards[~v] == 0).all())


def test_log_probs_are_differentiable_in_pi():
    mdp, pi = _case(K=1)
    pi = pi.clone().requires_grad_(True)
    ep = sample_episodes(mdp, pi, 64, 10, generator=_gen(2))
    (g,) = torch.autograd.grad(ep.log_probs.sum(), pi)
    counts = torch.zeros(6, 3, dtype=F64).index_put_(
        (ep.states[ep.valid], ep.actions[ep.valid]), torch.ones(int(ep.valid.sum()), dtype=F64), accumulate=True
    )
    torch.testing.assert_close(g, counts / pi.detach(), rtol=1e-12, atol=0)


def test_runs_on_device(device):
    mdp, pi = _case(K=1)
    ep = sample_episodes(mdp, pi, 256, 20, generator=_gen(0, device), device=device)
    assert ep.states.device.type == device.type and ep.rewards.device.type == device.type


# ------------------------------------------------------------------ the categorical draws
@st.composite
def _rows(draw):
    K, n = draw(st.integers(1, 5)), draw(st.integers(1, 40))
    g = _gen(draw(st.integers(0, 2**31 - 1)))
    p = torch.rand(K, n, generator=g, dtype=F64)
    p[torch.rand(K, n, generator=g, dtype=F64) < draw(st.sampled_from([0.0, 0.5, 0.9]))] = 0.0
    p[:, draw(st.integers(0, n - 1))] += 1e-3  # every row keeps some mass
    return p / p.sum(-1, keepdim=True)


@settings(max_examples=40)
@given(p=_rows())
def test_alias_tables_reproduce_the_probabilities(p):
    K, n = p.shape
    prob, alias = sampler_mod._alias_tables(p)
    prob, alias = prob.view(K, n), alias.view(K, n)
    # Pr(j) = (prob[j] + Σ_{i: alias[i] = j} (1 - prob[i])) / n
    implied = prob.clone().scatter_add_(1, alias, 1 - prob) / n
    torch.testing.assert_close(implied, p, rtol=0, atol=1e-14)
    assert not bool(((p == 0) & (prob > 0)).any())


@settings(max_examples=25)
@given(p=_rows())
@pytest.mark.parametrize("limit", [None, 0], ids=["alias", "searchsorted"])
def test_row_sampler_on_a_uniform_grid_matches_the_probabilities(limit, p):
    """Deterministic: M evenly spaced u give each column a share within n/M of its probability."""
    K, n = p.shape
    M = 4096
    u = (torch.arange(M, dtype=F64) + 0.5) / M
    with pytest.MonkeyPatch.context() as mp:
        if limit is not None:
            mp.setattr(sampler_mod, "_ALIAS_LIMIT", limit)
        rs = sampler_mod._RowSampler(p)
    assert (rs.flat is None) == (limit is None)
    for k in range(K):  # rows one at a time
        j = rs.draw(torch.full((M,), k, dtype=torch.long), u)
        freq = torch.bincount(j, minlength=n).to(F64) / M
        assert float((freq - p[k]).abs().max()) <= (n + 1) / M
        assert not bool((p[k][j] == 0).any())


# ------------------------------------------------------------------ distribution (chi-square)
# S = 6, A = 3: the joint table needs S (A S)² = 1944, the two-stage tables 6·3² and 18·6²
@pytest.mark.parametrize("limit", [None, 1000, 0], ids=["joint-alias", "two-stage-alias", "searchsorted"])
@pytest.mark.parametrize("K", [0, 2])
def test_state_action_frequencies_match_exact_occupancy(monkeypatch, limit, K):
    if limit is not None:
        monkeypatch.setattr(sampler_mod, "_ALIAS_LIMIT", limit)
        assert 6 * (3 * 6) ** 2 > limit >= (18 * 6**2 if limit else 0)
    mdp, pi = _case(seed=3, K=K)
    T = 30  # any cap works: the expected counts use the occupancy truncated at T
    ep = sample_episodes(mdp, pi, 20_000, T, generator=_gen(10 + K))
    for by in ("state_action", "transition"):
        res = _fit(ep, mdp, pi, T, by=by)
        assert res.dof >= 10
        assert res.p_value > ALPHA, (by, res)


def test_gridworld_and_short_corridor_frequencies_match_exact_occupancy():
    for mdp, pi in ((gridworld(), torch.full((16, 4), 0.25, dtype=F64)),
                    (short_corridor(), torch.tensor([[0.41, 0.59]] * 4, dtype=F64))):
        ep = sample_episodes(mdp, pi, 40_000, 400, generator=_gen(4))
        res = _fit(ep, mdp, pi, 400, gamma=0.9)
        assert res.p_value > ALPHA, res


def test_reference_sampler_matches_exact_occupancy():
    mdp, pi = _case(seed=8, K=2)
    ep = sample_episodes_reference(mdp, pi, 3000, 40, seed=0)
    assert _fit(ep, mdp, pi, 40, gamma=0.6).p_value > ALPHA


def _columns(ep: Episodes, sl: slice) -> Episodes:
    return Episodes(**{k: (v[sl] if k == "lengths" else v[:, sl]) for k, v in ep.__dict__.items()})


def test_chi_square_is_calibrated():
    """Under the null, Pr(p < 0.1) = 0.1: 200 replicates stay in the 99.9% binomial interval."""
    mdp, pi = _case(seed=6, K=1)
    reps, n = 200, 500
    ep = sample_episodes(mdp, pi, reps * n, 30, generator=_gen(1000))
    # independent episodes, so disjoint column blocks are independent replicates
    pvals = [_fit(_columns(ep, slice(r * n, (r + 1) * n)), mdp, pi, 30, seed=5000 + r, gamma=0.5).p_value
             for r in range(reps)]
    lo, hi = binom.interval(0.999, reps, 0.1)
    assert lo <= sum(p < 0.1 for p in pvals) <= hi


def _wrong_dynamics(mdp: TabularMDP, eps: float) -> TabularMDP:
    S = mdp.num_states
    live = ~mdp.terminal
    P = mdp.P.clone()
    P[live] = (1 - eps) * P[live] + eps / S
    return TabularMDP(P, mdp.R, mdp.gamma, mdp.mu0, mdp.terminal)


def test_wrong_samplers_are_rejected():
    """Power: three plausible sampler bugs give p < α = 1e-3 with the sample size used above."""
    mdp, pi = _case(seed=3, K=2)
    T, N = 30, 40_000
    # 1. slightly wrong dynamics (5% of every row replaced by a uniform draw)
    ep = sample_episodes(_wrong_dynamics(mdp, 0.05), pi, N, T, generator=_gen(20))
    assert _fit(ep, mdp, pi, T).p_value < ALPHA
    # 2. actions drawn from a perturbed policy (e.g. temperature bug: π^0.8 renormalized)
    warm = pi**0.8 / (pi**0.8).sum(-1, keepdim=True)
    ep = sample_episodes(mdp, warm, N, T, generator=_gen(21))
    assert _fit(ep, mdp, pi, T).p_value < ALPHA
    assert _fit(ep, mdp, pi, T, by="state_action").p_value < ALPHA
    # 3. off-by-one bookkeeping: aₜ recorded next to sₜ₊₁
    ep = sample_episodes(mdp, pi, N, T, generator=_gen(22))
    shifted = ep.__class__(**{**ep.__dict__, "states": ep.next_states})
    assert _fit(shifted, mdp, pi, T).p_value < ALPHA


def test_observing_an_impossible_pair_gives_p_zero():
    mdp = gridworld()
    pi = torch.full((16, 4), 0.25, dtype=F64)
    ep = sample_episodes(mdp, pi, 2000, 200, generator=_gen(0))
    bad = ep.__class__(**{**ep.__dict__, "states": torch.zeros_like(ep.states)})  # terminal cell 0
    assert _fit(bad, mdp, pi, 200, gamma=0.5).p_value == 0.0


# ------------------------------------------------------------------ unbiased returns
def _z_test(x: torch.Tensor, mean: float) -> float:
    z = (float(x.mean()) - mean) / (float(x.std()) / math.sqrt(x.numel()))
    return 2 * norm.sf(abs(z))


def test_bootstrapped_returns_are_unbiased_even_when_truncated():
    mdp, pi = _case(seed=2, gamma=0.9)
    V = mdp.state_values(pi)
    J = float(mdp.mu0 @ V)
    ep = sample_episodes(mdp, pi, 100_000, 5, generator=_gen(7))  # heavy truncation, γ^5 = 0.59
    assert _z_test(ep.returns(0.9, final_values=V), J) > ALPHA
    # power: without the bootstrap the truncated returns are visibly biased
    assert _z_test(ep.returns(0.9), J) < ALPHA


def test_terminating_episodes_give_unbiased_returns_and_agree_with_core_returns():
    from pgmath import discounted_returns

    mdp = short_corridor()
    pi = torch.tensor([[0.41, 0.59]] * 4, dtype=F64)
    J = float(mdp.objective(torch.log(pi)))
    ep = sample_episodes(mdp, pi, 20_000, 2000, generator=_gen(8))
    assert not bool(ep.truncated.any())
    G = ep.returns(1.0)
    assert _z_test(G, J) > ALPHA
    # the padding convention works with the core recursion: G₀ of the core == per-episode return
    G_core = discounted_returns(ep.rewards, ep.terminated, ep.truncated, gamma=1.0)
    torch.testing.assert_close(G_core[0], G, rtol=0, atol=1e-9)
    assert bool((G_core[~ep.valid] == 0).all())


def test_steps_for_tolerance():
    mdp, _ = _case(gamma=0.9)
    T = steps_for_tolerance(mdp, 1e-6)
    bound = float(mdp.R.abs().max()) / (1 - 0.9)
    assert 0.9**T * bound <= 1e-6 < 0.9 ** (T - 1) * bound
    with pytest.raises(ValueError, match="gamma"):
        steps_for_tolerance(short_corridor(), 1e-6)
    with pytest.raises(ValueError, match="tol"):
        steps_for_tolerance(mdp, 0.0)
