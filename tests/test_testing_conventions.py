"""The convention adapters: a correct implementation written in each convention passes.

Each implementation below is written from its library's documented semantics, independently of
pgmath's code (plain loops over NumPy arrays or tensors). If an adapter translated a rollout
wrongly (a misplaced episode start, a missing truncation bootstrap, a transposed batch), these
correct implementations would fail their check.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import pgmath
from pgmath.testing import check_gae, check_returns, make_rollout, to_rlax, to_sb3, to_torchrl
from pgmath.testing.conventions import rlax_lambda_position, to_numpy

N = 50  # property-based examples per check in this file


# --- correct implementations in foreign conventions -------------------------------------------


def sb3_gae(rewards, values, episode_starts, last_values, dones, *, gamma, lam):
    """Stable-Baselines3 RolloutBuffer.compute_returns_and_advantage, re-typed as a function."""
    T = rewards.shape[0]
    adv = np.zeros_like(rewards)
    last = 0.0
    for step in reversed(range(T)):
        if step == T - 1:
            nnt, nv = 1.0 - dones.astype(rewards.dtype), last_values
        else:
            nnt, nv = 1.0 - episode_starts[step + 1], values[step + 1]
        delta = rewards[step] + gamma * nv * nnt - values[step]
        last = delta + gamma * lam * nnt * last
        adv[step] = last
    return adv, adv + values


def rlax_gae(r_t, discount_t, lambda_, values):
    """rlax.truncated_generalized_advantage_estimation for one sequence."""
    delta = r_t + discount_t * values[1:] - values[:-1]
    adv = np.zeros_like(delta)
    acc = 0.0
    for t in reversed(range(len(delta))):
        acc = delta[t] + discount_t[t] * lambda_ * acc
        adv[t] = acc
    return adv


def rlax_gae_values_third(r_t, discount_t, values, lam):
    return rlax_gae(r_t, discount_t, lam, values)


def torchrl_gae(gamma, lmbda, state_value, next_state_value, reward, done, terminated):
    """TorchRL's functional generalized_advantage_estimate (time at dim −2)."""
    not_done = (~done).to(reward.dtype)
    not_term = (~terminated).to(reward.dtype)
    adv = torch.empty_like(reward)
    prev = torch.zeros_like(reward[..., 0, :])
    for t in reversed(range(reward.shape[-2])):
        delta = reward[..., t, :] + gamma * not_term[..., t, :] * next_state_value[..., t, :] - state_value[..., t, :]
        prev = delta + gamma * lmbda * not_done[..., t, :] * prev
        adv[..., t, :] = prev
    return adv, adv + state_value


def rlax_returns(r_t, discount_t, v_t):
    """rlax.discounted_returns: G_t = r_t + discount_t G_{t+1}, G_T = v_t[-1]."""
    g = v_t[-1]
    out = np.zeros_like(r_t)
    for t in reversed(range(len(r_t))):
        g = r_t[t] + discount_t[t] * g
        out[t] = g
    return out


def torchrl_returns(gamma, next_state_value, reward, done, terminated):
    """TorchRL's td1_return_estimate with terminated (bootstrap at done-but-not-terminated)."""
    not_done = (~done).to(reward.dtype)
    g_disc = gamma * (~terminated).to(reward.dtype)
    out = torch.empty_like(reward)
    g = next_state_value[..., -1, :]
    for t in reversed(range(reward.shape[-2])):
        follow = (1 - not_done[..., t, :]) * next_state_value[..., t, :] + not_done[..., t, :] * g
        g = reward[..., t, :] + g_disc[..., t, :] * follow
        out[..., t, :] = g
    return out


def gae_numpy_pgmath(rewards, values, next_values, terminated, truncated, *, gamma, lam):
    """The pgmath convention, but written for NumPy arrays."""
    delta = rewards + gamma * (1 - terminated) * next_values - values
    cont = 1.0 - (terminated | truncated)
    adv = np.zeros_like(rewards)
    a = np.zeros_like(rewards[0])
    for t in reversed(range(len(rewards))):
        a = delta[t] + gamma * lam * (cont[t] if t < len(rewards) - 1 else 0.0) * a
        adv[t] = a
    return adv


# --- the checks accept them -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fn", "convention", "arrays"),
    [
        (pgmath.gae, "pgmath", None),
        (gae_numpy_pgmath, "pgmath", "numpy"),
        (sb3_gae, "sb3", None),
        (rlax_gae, "rlax", None),
        (rlax_gae_values_third, "rlax", None),
        (torchrl_gae, "torchrl", None),
    ],
    ids=["pgmath", "pgmath-numpy", "sb3", "rlax", "rlax-values-third", "torchrl"],
)
def test_correct_gae_in_every_convention_passes(fn, convention, arrays):
    report = check_gae(fn, convention=convention, arrays=arrays, max_examples=N)
    assert report.examples >= N and len(report.edge_cases) == 13
    assert report.convention == convention


@pytest.mark.parametrize(
    ("fn", "convention"),
    [(pgmath.discounted_returns, "pgmath"), (rlax_returns, "rlax"), (torchrl_returns, "torchrl")],
    ids=["pgmath", "rlax", "torchrl"],
)
@pytest.mark.parametrize("bootstrap", [True, False])
def test_correct_returns_in_every_convention_pass(fn, convention, bootstrap):
    check_returns(fn, convention=convention, bootstrap=bootstrap, max_examples=N)


def test_returns_without_bootstrap_rejects_a_bootstrapping_function():
    def boots(rewards, terminated, truncated, *, gamma, next_values=None):
        ones = torch.ones_like(rewards)
        return pgmath.discounted_returns(rewards, terminated, truncated, gamma=gamma, next_values=ones)

    with pytest.raises(AssertionError, match="check_returns"):
        check_returns(boots, bootstrap=False, max_examples=N)


# --- what the adapters hand over --------------------------------------------------------------


def _case():
    # env 0: truncated at t=1 (final value 91 ≠ reset value 11), env 1: terminated at t=2 (last)
    return make_rollout(
        [[1.0, 1.5], [2.0, 2.5], [3.0, 3.5]],
        [[10.0, 20.0], [11.0, 21.0], [12.0, 22.0], [13.0, 23.0]],
        [[90.0, 80.0], [91.0, 81.0], [92.0, 82.0]],
        [[0, 0], [2, 0], [0, 1]],
        gamma=0.5, lam=0.9, first_episode_start=[True, False],
    )


def test_to_sb3_folds_the_truncation_bootstrap_and_shifts_episode_starts():
    x = to_sb3(_case())
    assert x["rewards"][:, 0].tolist() == [1.0, 2.0 + 0.5 * 91.0, 3.0]
    assert x["rewards"][:, 1].tolist() == [1.5, 2.5, 3.5]  # a termination folds nothing
    assert x["episode_starts"].tolist() == [[1.0, 0.0], [0.0, 0.0], [1.0, 0.0]]
    assert x["last_values"].tolist() == [13.0, 23.0]  # env 1: the reset observation's value
    assert x["dones"].tolist() == [False, True]


def test_to_rlax_discounts_and_bootstrap_values():
    x = to_rlax(_case())
    assert x["discount_t"][:, 0].tolist() == [0.5, 0.0, 0.5]  # the inner truncation is folded
    assert x["r_t"][:, 0].tolist() == [1.0, 2.0 + 0.5 * 91.0, 3.0]
    assert x["discount_t"][:, 1].tolist() == [0.5, 0.5, 0.0]
    assert x["values"][:, 0].tolist() == [10.0, 11.0, 12.0, 13.0]  # values[T] = next_values[T-1]
    assert x["values"][:, 1].tolist() == [20.0, 21.0, 22.0, 23.0]  # ignored after a termination


def test_to_torchrl_is_batch_major():
    x = to_torchrl(_case())
    assert tuple(x["reward"].shape) == (2, 3, 1)
    assert x["reward"][1, :, 0].tolist() == [1.5, 2.5, 3.5]
    assert x["done"][0, :, 0].tolist() == [False, True, False]
    assert x["terminated"][0, :, 0].tolist() == [False, False, False]


def test_rlax_argument_order_is_read_from_the_signature():
    assert rlax_lambda_position(rlax_gae) == 2
    assert rlax_lambda_position(rlax_gae_values_third) == 3
    assert rlax_lambda_position(np.add) == 2  # not inspectable: rlax's own order


def test_to_numpy_accepts_tensors_arrays_lists_and_rejects_integers():
    a, eps = to_numpy(torch.ones(2, dtype=torch.float32, requires_grad=True))
    assert a.dtype == np.float64 and eps == float(torch.finfo(torch.float32).eps)
    assert to_numpy([1.0, 2.0])[0].tolist() == [1.0, 2.0]
    with pytest.raises(AssertionError, match="floating-point"):
        to_numpy(np.array([1, 2]))


# --- failures are reported, not crashed on ----------------------------------------------------


def test_a_crashing_function_is_reported_with_its_input():
    def broken(rewards, values, next_values, terminated, truncated, *, gamma, lam):
        raise RuntimeError("boom")

    with pytest.raises(AssertionError, match=r"your function raised RuntimeError: boom") as info:
        check_gae(broken, max_examples=5)
    assert "rewards" in str(info.value) and isinstance(info.value.__cause__, RuntimeError)


def test_a_wrong_shape_is_reported():
    def flat(rewards, values, next_values, terminated, truncated, *, gamma, lam):
        return pgmath.gae(rewards, values, next_values, terminated, truncated, gamma=gamma, lam=lam).reshape(-1, 1)

    with pytest.raises(AssertionError, match=r"has shape .* expected"):
        check_gae(flat, max_examples=20)


def test_a_nondeterministic_function_is_reported_as_such():
    calls = [0]

    def flaky(rewards, values, next_values, terminated, truncated, *, gamma, lam):
        calls[0] += 1
        adv = pgmath.gae(rewards, values, next_values, terminated, truncated, gamma=gamma, lam=lam)
        return adv + (1.0 if calls[0] % 7 == 3 else 0.0)

    with pytest.raises(AssertionError):
        check_gae(flaky, max_examples=30)


def test_float32_implementation_is_judged_in_float32():
    def gae32(rewards, values, next_values, terminated, truncated, *, gamma, lam):
        f = torch.float32
        return pgmath.gae_reference(rewards.to(f), values.to(f), next_values.to(f), terminated, truncated,
                                    gamma=gamma, lam=lam)

    check_gae(gae32, max_examples=N)  # float32 output: float32 tolerance
    with pytest.raises(AssertionError, match="disagrees"):  # but a float32-sized error in float64 fails
        check_gae(lambda *a, **k: pgmath.gae(*a, **k) * (1 + 1e-6), max_examples=N)


def test_unknown_convention_and_arrays_are_value_errors():
    with pytest.raises(ValueError, match="convention must be one of"):
        check_gae(pgmath.gae, convention="openai")
    with pytest.raises(ValueError, match="arrays"):
        check_gae(pgmath.gae, arrays="jax")
    with pytest.raises(ValueError, match="convention must be one of"):
        check_returns(pgmath.discounted_returns, convention="sb3")
