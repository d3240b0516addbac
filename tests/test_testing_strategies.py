"""The Hypothesis strategies of pgmath.testing draw what they promise.

Rollouts must be *realistic*: inside an episode next_values[t] == values[t+1]; where an episode
ended, next_values[t] is the final observation's value, which the generator makes distinct from
the reset observation's values[t+1] often enough to catch a wrong bootstrap.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.special
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import pgmath
from pgmath.testing import logit_batches, make_rollout, reward_groups, rollouts, tabular_mdps
from pgmath.testing.strategies import batch_shapes

FAST = settings(max_examples=60, deadline=None, derandomize=True)


@FAST
@given(rollouts(dtypes=(torch.float64, torch.float32)))
def test_rollouts_are_realistic(case):
    T, B = case.T, case.batch_shape
    assert 1 <= T <= 10
    for name in ("rewards", "values", "next_values", "terminated", "truncated"):
        assert tuple(getattr(case, name).shape) == (T, *B)
    assert case.terminated.dtype == torch.bool and case.truncated.dtype == torch.bool
    assert case.rewards.dtype in (torch.float64, torch.float32)
    ended = case.done
    # inside an episode the next value is the next step's value
    inside = ~ended[:-1]
    assert torch.equal(case.next_values[:-1][inside], case.values[1:][inside])
    # the observation after the last step: its value is next_values[-1] unless the episode ended
    assert torch.equal(case.last_values[~ended[-1]], case.next_values[-1][~ended[-1]])
    assert tuple(case.last_values.shape) == B and tuple(case.first_episode_start.shape) == B
    assert 0.0 <= case.gamma <= 1.0 and 0.0 <= case.lam <= 1.0
    # quarter grid: exact in float32
    assert torch.equal(case.rewards * 4, torch.round(case.rewards * 4))


def test_rollouts_draw_truncations_with_a_distinct_bootstrap():
    """Over a derandomized run, truncations inside the rollout occur and their final-observation
    value differs from the reset observation's value (else a wrong bootstrap would go unseen)."""
    seen = {"trunc_inside": 0, "distinct": 0, "both": 0, "batched": 0}

    @settings(max_examples=200, deadline=None, derandomize=True)
    @given(rollouts())
    def run(case):
        inner = case.truncated[:-1] & ~case.terminated[:-1]
        seen["trunc_inside"] += int(inner.any())
        seen["distinct"] += int((case.next_values[:-1][inner] != case.values[1:][inner]).any())
        seen["both"] += int((case.terminated & case.truncated).any())
        seen["batched"] += int(len(case.batch_shape) > 0)

    run()
    assert all(v >= 10 for v in seen.values()), seen


def test_rollouts_respect_flags_and_bounds():
    @FAST
    @given(rollouts(truncations=False, min_T=3, max_T=4, batch_shape=st.just((2,)), value_bound=1.0))
    def run(case):
        assert not bool(case.truncated.any())
        assert 3 <= case.T <= 4 and case.batch_shape == (2,)
        assert float(case.rewards.abs().max()) <= 1.0

    run()


def test_make_rollout_builds_the_bootstrap_and_rejects_bad_shapes():
    case = make_rollout(
        [[1.0], [2.0], [3.0]], [[10.0], [11.0], [12.0], [13.0]], [[90.0], [91.0], [92.0]],
        [[0], [2], [1]], gamma=0.9, lam=0.8,
    )
    assert case.next_values[:, 0].tolist() == [11.0, 91.0, 92.0]  # truncated at 1, terminated at 2
    assert case.values[:, 0].tolist() == [10.0, 11.0, 12.0]
    assert case.last_values.tolist() == [13.0]
    assert case.truncated[:, 0].tolist() == [False, True, False]
    with pytest.raises(ValueError, match="obs_values"):
        make_rollout([[1.0]], [[1.0]], [[1.0]], [[0]], gamma=0.9, lam=0.9)


def test_rollout_to_changes_dtype_and_keeps_flags():
    case = make_rollout([1.0, 2.0], [0.0, 1.0, 2.0], [5.0, 6.0], [0, 3], gamma=0.5, lam=0.5)
    c32 = case.to(torch.float32)
    assert c32.rewards.dtype == torch.float32 and c32.terminated.dtype == torch.bool
    assert c32.terminated.tolist() == [False, True] and c32.truncated.tolist() == [False, True]
    assert "Rollout(T=2" in repr(c32)


@FAST
@given(batch_shapes())
def test_batch_shapes(shape):
    assert len(shape) <= 2 and all(1 <= s <= 2 for s in shape)


@FAST
@given(logit_batches())
def test_logit_batches(b):
    assert b.logits.shape == b.ref_logits.shape and b.logits.shape[:-1] == b.actions.shape
    assert bool(b.mask.any())
    assert bool((b.log_probs <= 1e-12).all()) and bool((b.ref_log_probs <= 1e-12).all())
    logp = scipy.special.log_softmax(b.logits.numpy(), -1)
    expected = np.take_along_axis(logp, b.actions.numpy()[..., None], -1)[..., 0]
    np.testing.assert_allclose(b.log_probs.numpy(), expected, rtol=1e-12, atol=1e-12)
    assert b.advantages.shape == b.actions.shape
    assert "LogitBatch(shape=" in repr(b)


@FAST
@given(reward_groups())
def test_reward_groups(r):
    assert r.dim() == 2 and r.shape[1] >= 2 and r.dtype == torch.float64


@settings(max_examples=40, deadline=None, derandomize=True)
@given(tabular_mdps())
def test_tabular_mdps_are_valid_and_solvable(mdp):
    S, A = mdp.num_states, mdp.num_actions
    assert 2 <= S <= 5 and 1 <= A <= 3
    pi = torch.full((S, A), 1.0 / A, dtype=torch.float64)
    v = mdp.state_values(pi)
    assert bool(torch.isfinite(v).all())
    assert bool((v[mdp.terminal] == 0).all())


def test_tabular_mdps_episodic_allows_gamma_one():
    gammas = []

    @settings(max_examples=40, deadline=None, derandomize=True)
    @given(tabular_mdps(episodic=True, gammas=st.just(1.0)))
    def run(mdp):
        gammas.append(mdp.gamma)
        pi = torch.full((mdp.num_states, mdp.num_actions), 1.0 / mdp.num_actions, dtype=torch.float64)
        assert bool(torch.isfinite(mdp.state_values(pi)).all())
        assert bool(mdp.terminal.any())

    run()
    assert gammas and set(gammas) == {1.0}
    assert np.isfinite(gammas).all()


def test_one_rollout_type_unpacks_into_the_recursions():
    """A Rollout (drawn, hand-made or random) iterates over exactly its five tensors, so
    ``gae(*ro, …)`` is the explicit call; its harness fields ride along and survive ``.to()``."""
    from pgmath.rollouts import TENSOR_FIELDS, Rollout, random_rollout
    from pgmath.testing import RolloutCase

    ro = random_rollout(6, (2,), generator=torch.Generator().manual_seed(3))
    explicit = pgmath.gae(ro.rewards, ro.values, ro.next_values, ro.terminated, ro.truncated, gamma=0.9, lam=0.8)
    assert torch.equal(pgmath.gae(*ro, gamma=0.9, lam=0.8), explicit)
    assert len(ro) == 5 and list(ro.as_dict()) == list(TENSOR_FIELDS) and ro[3] is ro.terminated
    assert torch.equal(ro.last_values, ro.next_values[-1]) and bool(ro.first_episode_start.all())
    case = make_rollout([[1.0], [2.0]], [[0.0], [1.0], [2.0]], [[5.0], [6.0]], [[0], [2]], gamma=0.5, lam=0.7)
    assert isinstance(case, Rollout) and RolloutCase is Rollout
    c32 = case.to(torch.float32)
    assert (c32.gamma, c32.lam, c32.label) == (0.5, 0.7, "") and c32.last_values.dtype == torch.float32
    assert [x.dtype for x in c32] == [torch.float32] * 3 + [torch.bool] * 2
