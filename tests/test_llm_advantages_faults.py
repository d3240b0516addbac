"""Fault-catching tests for ``pgmath/llm/advantages.py`` (issue 14, mutation testing).

Every function against a plain Python loop on small hand-made inputs: GRPO group advantages
(unbiased std, ε, the mean-only variant, constant and near-constant groups), RLOO, the token
rewards on right-/left-padded and empty rows, REINFORCE++ batch-normalised returns and token GAE
over responses with gaps in the mask; and the refused arguments.
"""

from __future__ import annotations

import math

import pytest
import torch

from pgmath.llm.advantages import (
    batch_normalized_returns,
    group_advantages,
    last_token_index,
    rloo_advantages,
    token_gae,
    token_rewards,
)

F64 = torch.float64
REWARDS = torch.tensor([[1.0, 0.0, 0.5, 2.0], [3.0, 3.0, 3.0, 3.0], [-1.0, 4.0, 0.0, 0.0]], dtype=F64)


def _group_by_hand(rows, normalize_std, eps):
    out = []
    for vals in rows:  # over groups
        K = len(vals)
        if all(v == vals[0] for v in vals):
            out.append([0.0] * K)
            continue
        mean = sum(vals) / K
        std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (K - 1))
        scale = std + eps if normalize_std else 1.0
        out.append([(v - mean) / scale for v in vals])
    return torch.tensor(out, dtype=F64)


@pytest.mark.parametrize(("normalize_std", "eps"), [(True, 1e-6), (True, 0.5), (False, 1e-6), (True, 0)])
def test_group_advantages_by_hand(normalize_std, eps):
    out = group_advantages(REWARDS, normalize_std=normalize_std, eps=eps)
    want = _group_by_hand(REWARDS.tolist(), normalize_std, eps)
    assert torch.allclose(out, want, atol=1e-14, rtol=0), (out, want)
    assert out.dtype == F64
    assert torch.equal(group_advantages(REWARDS), group_advantages(REWARDS, normalize_std=True, eps=1e-6))


def test_near_constant_float32_group_keeps_the_order():
    r = torch.tensor([[1000.0, 1000.0, 1000.0, 1000.0 + 2 ** -13]], dtype=torch.float32)
    for adv in (group_advantages(r), group_advantages(r, normalize_std=False), rloo_advantages(r)):
        assert adv[0, 3] > 0 and (adv[0, :3] < 0).all() and adv.dtype == torch.float32


def test_rloo_advantages_by_hand():
    out = rloo_advantages(REWARDS)
    for g, vals in enumerate(REWARDS.tolist()):  # over groups
        for k in range(4):  # over held-out responses
            others = [v for j, v in enumerate(vals) if j != k]
            want = 0.0 if len(set(vals)) == 1 else vals[k] - sum(others) / 3
            assert out[g, k].item() == pytest.approx(want, abs=1e-14)
    two = rloo_advantages(torch.tensor([[1.0, 3.0]], dtype=F64))
    assert torch.equal(two, torch.tensor([[-2.0, 2.0]], dtype=F64))


@pytest.mark.parametrize(("rewards", "kw", "match"), [
    (REWARDS[0], {}, "rewards"), (torch.zeros(0, 3, dtype=F64), {}, "rewards"),
    (torch.zeros(3, 1, dtype=F64), {}, "rewards"), (REWARDS, {"eps": -1.0}, "eps"),
    (REWARDS, {"eps": True}, "eps"), (REWARDS, {"eps": "1"}, "eps"),
])
def test_group_functions_refuse_bad_input(rewards, kw, match):
    with pytest.raises(ValueError, match=match):
        group_advantages(rewards, **kw)
    if not kw:
        with pytest.raises(ValueError, match=match):
            rloo_advantages(rewards)


MASK = torch.tensor([[1, 1, 1, 0, 0], [0, 0, 1, 1, 1], [0, 0, 0, 0, 0], [1, 0, 1, 1, 0]], dtype=torch.bool)


def test_token_rewards_on_the_last_real_token():
    scores = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=F64)
    assert torch.equal(last_token_index(MASK), torch.tensor([2, 4, -1, 3]))
    r = token_rewards(scores, MASK)
    want = torch.zeros(4, 5, dtype=F64)
    want[0, 2], want[1, 4], want[3, 3] = 1.0, 2.0, 4.0
    assert torch.equal(r, want)
    pen = torch.full((4, 5), 0.25, dtype=F64)
    pen[~MASK] = float("nan")  # never read outside the mask
    r2 = token_rewards(scores, MASK, kl_penalty=pen)
    assert torch.equal(r2, want - 0.25 * MASK.to(F64))
    with pytest.raises(ValueError, match="scores"):
        token_rewards(scores[:3], MASK)
    with pytest.raises(ValueError, match="kl_penalty"):
        token_rewards(scores, MASK, kl_penalty=torch.zeros(4, 4, dtype=F64))
    with pytest.raises(ValueError, match="mask"):
        token_rewards(scores, MASK[0])


def _returns_by_hand(rewards, mask, gamma):
    out = [[0.0] * len(row) for row in rewards]
    for b, (row, keep) in enumerate(zip(rewards, mask)):  # over responses
        G = 0.0
        for t in reversed(range(len(row))):  # backward over tokens; gaps are skipped
            if keep[t]:
                G = row[t] + gamma * G
                out[b][t] = G
    return out


@pytest.mark.parametrize("gamma", [1.0, 0.9])
def test_batch_normalized_returns_by_hand(gamma):
    g = torch.Generator().manual_seed(0)
    rewards = torch.randn(4, 5, generator=g, dtype=F64)
    rewards[~MASK] = float("nan")
    out = batch_normalized_returns(rewards, MASK, gamma=gamma, eps=1e-8)
    G = _returns_by_hand(rewards.tolist(), MASK.tolist(), gamma)
    sel = [G[b][t] for b in range(4) for t in range(5) if MASK[b, t]]
    mean = sum(sel) / len(sel)
    std = math.sqrt(sum((x - mean) ** 2 for x in sel) / (len(sel) - 1))
    for b in range(4):  # over responses
        for t in range(5):  # over tokens
            want = (G[b][t] - mean) / (std + 1e-8) if MASK[b, t] else 0.0
            assert out[b, t].item() == pytest.approx(want, abs=1e-12), (b, t)
    with pytest.raises(ValueError, match="mask"):
        batch_normalized_returns(rewards, torch.zeros(4, 5, dtype=torch.bool).index_fill_(1, torch.tensor([0]), False))
    one = torch.zeros(4, 5, dtype=torch.bool)
    one[0, 0] = True
    with pytest.raises(ValueError, match="at least 2"):
        batch_normalized_returns(rewards, one)
    with pytest.raises(ValueError, match="gamma"):
        batch_normalized_returns(rewards, MASK, gamma=1.5)


@pytest.mark.parametrize(("gamma", "lam"), [(1.0, 0.95), (0.9, 0.5), (0.8, 1.0), (1.0, 0.0)])
def test_token_gae_by_hand(gamma, lam):
    g = torch.Generator().manual_seed(1)
    rewards = torch.randn(4, 5, generator=g, dtype=F64)
    values = torch.randn(4, 5, generator=g, dtype=F64)
    rewards[~MASK] = float("nan")
    values[~MASK] = float("inf")
    adv, ret = token_gae(rewards, values, MASK, gamma=gamma, lam=lam)
    for b in range(4):  # over responses
        steps = [t for t in range(5) if MASK[b, t]]
        A_next, want = 0.0, {}
        for i in reversed(range(len(steps))):  # backward over the response tokens
            t = steps[i]
            v_next = values[b, steps[i + 1]].item() if i + 1 < len(steps) else 0.0
            delta = rewards[b, t].item() + gamma * v_next - values[b, t].item()
            A_next = delta + gamma * lam * A_next
            want[t] = A_next
        for t in range(5):  # over tokens
            a = want.get(t, 0.0)
            assert adv[b, t].item() == pytest.approx(a, abs=1e-12), (b, t)
            r = a + values[b, t].item() if t in want else 0.0
            assert ret[b, t].item() == pytest.approx(r, abs=1e-12), (b, t)
    with pytest.raises(ValueError, match="lam"):
        token_gae(rewards, values, MASK, lam=-0.1)
    with pytest.raises(ValueError, match="values"):
        token_gae(rewards, values[:, :4], MASK)
    bad = values.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="values"):
        token_gae(rewards, bad, MASK)


def test_reference_defaults_match_the_fast_function():
    from pgmath.llm.advantages import group_advantages_reference, rloo_advantages_reference

    torch.testing.assert_close(group_advantages_reference(REWARDS), group_advantages(REWARDS), rtol=0, atol=1e-14)
    torch.testing.assert_close(rloo_advantages_reference(REWARDS), rloo_advantages(REWARDS), rtol=0, atol=1e-14)


def test_token_rewards_keep_the_scores_dtype_and_name_their_arguments():
    scores = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float32)
    pen = torch.full((4, 5), 0.25, dtype=F64)
    assert token_rewards(scores, MASK, kl_penalty=pen).dtype == torch.float32
    with pytest.raises(ValueError, match=r"^scores must"):
        token_rewards(torch.tensor([1, 2, 3, 4]), MASK)
    with pytest.raises(ValueError, match=r"^kl_penalty has shape"):
        token_rewards(scores, MASK, kl_penalty=torch.zeros(4, 4, dtype=F64))


def test_token_gae_one_token_responses_defaults_and_mixed_dtypes():
    g = torch.Generator().manual_seed(3)
    rewards = torch.randn(3, 4, generator=g, dtype=F64)
    values = torch.randn(3, 4, generator=g, dtype=F64)
    one = torch.zeros(3, 4, dtype=torch.bool)
    one[0, 1] = one[1, 3] = one[2, 0] = True  # every response is one token long
    adv, ret = token_gae(rewards, values, one)
    want = torch.where(one, rewards - values, torch.zeros_like(rewards))  # δ = r − V, nothing after
    torch.testing.assert_close(adv, want, rtol=0, atol=1e-15)
    torch.testing.assert_close(ret, torch.where(one, rewards, torch.zeros_like(rewards)), rtol=0, atol=1e-15)
    # the default λ is 0.95 (γ = 1)
    for a, b in zip(token_gae(rewards, values, MASK[:3, :4]), token_gae(rewards, values, MASK[:3, :4], lam=0.95)):
        assert torch.equal(a, b)
    # float32 values with float64 rewards: computed in the rewards' dtype
    adv32, _ = token_gae(rewards, values.float(), MASK[:3, :4])
    adv64, _ = token_gae(rewards, values.float().double(), MASK[:3, :4])
    assert adv32.dtype == F64
    torch.testing.assert_close(adv32, adv64, rtol=0, atol=1e-15)


@pytest.mark.parametrize(("call", "match"), [
    (lambda r, v: token_gae(r.long(), v, MASK), r"^rewards must"),
    (lambda r, v: token_gae(r, v.long(), MASK), r"^values must"),
    (lambda r, v: token_gae(r, v, MASK, gamma=2.0), r"^gamma"),
    (lambda r, v: token_gae(r, v, MASK, lam=2.0), r"^lam"),
    (lambda r, v: batch_normalized_returns(r.long(), MASK), r"^rewards must"),
    (lambda r, v: batch_normalized_returns(r, MASK, gamma=2.0), r"^gamma"),
    (lambda r, v: batch_normalized_returns(r, MASK, backend="nope"), r"backend"),
])
def test_token_functions_name_their_arguments(call, match):
    r = torch.zeros(4, 5, dtype=F64)
    with pytest.raises(ValueError, match=match):
        call(r, r.clone())


def test_batch_normalized_returns_passes_eps_and_backend_on():
    g = torch.Generator().manual_seed(4)
    rewards = torch.randn(4, 5, generator=g, dtype=F64)
    a = batch_normalized_returns(rewards, MASK, gamma=0.9, eps=0.5)
    b = batch_normalized_returns(rewards, MASK, gamma=0.9, eps=0.5, backend="reference")
    torch.testing.assert_close(a, b, rtol=0, atol=1e-14)
    c = batch_normalized_returns(rewards, MASK, gamma=0.9)  # eps = 1e-8: a different scale
    assert not torch.allclose(a, c)


def test_half_precision_groups_keep_their_dtype_and_constant_groups_are_exactly_zero():
    from pgmath.llm.advantages import rloo_advantages_reference

    r16 = REWARDS.to(torch.float16)
    assert group_advantages(r16).dtype == torch.float16 and rloo_advantages(r16).dtype == torch.float16
    tenth = torch.full((1, 4), 0.1, dtype=F64)  # (0.1 + 0.1 + 0.1) / 3 != 0.1 in floating point
    assert torch.equal(rloo_advantages_reference(tenth), torch.zeros(1, 4, dtype=F64))
    assert torch.equal(rloo_advantages(tenth), torch.zeros(1, 4, dtype=F64))


@pytest.mark.parametrize(("call", "match"), [
    (lambda: group_advantages(torch.tensor([[1, 2]])), r"^rewards must"),
    (lambda: token_rewards(torch.zeros(4, dtype=F64), MASK.to(torch.int64) * 2), r"^mask"),
    (lambda: token_gae(torch.zeros(4, 5, dtype=F64), torch.zeros(4, 5, dtype=F64), MASK, backend="nope"),
     r"backend"),
])
def test_more_arguments_are_named(call, match):
    with pytest.raises(ValueError, match=match):
        call()
