"""Tests of pgmath.llm's functions: reference vs fast, gradcheck, hypothesis, pitfalls, bad input."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from pgmath.kl import kl_estimate
from pgmath.llm import (
    AGGREGATION_MODES,
    aggregate_token_loss,
    aggregation_weights,
    batch_normalized_returns,
    group_advantages,
    group_advantages_reference,
    kl_loss,
    kl_penalty,
    rloo_advantages,
    rloo_advantages_reference,
    token_gae,
    token_kl,
    token_log_probs,
    token_log_probs_reference,
    token_policy_loss,
    token_rewards,
)

F64 = torch.float64


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _random_mask(B: int, L: int, g: torch.Generator, *, first_false: bool = True) -> torch.Tensor:
    m = torch.rand(B, L, generator=g) < 0.7
    if first_false:
        m[:, 0] = False
    return m


# ---------------------------------------------------------------------------------------------
# token_log_probs


@given(
    B=st.integers(1, 4), L=st.integers(1, 6), V=st.integers(1, 7), seed=st.integers(0, 10_000)
)
def test_token_log_probs_matches_reference(B, L, V, seed):
    g = _gen(seed)
    logits = torch.randn(B, L, V, dtype=F64, generator=g) * 3
    tokens = torch.randint(0, V, (B, L), generator=g)
    mask = _random_mask(B, L, g)
    fast = token_log_probs(logits, tokens, mask)
    ref = token_log_probs_reference(logits, tokens, mask)
    torch.testing.assert_close(fast, ref, rtol=0, atol=1e-12)
    assert bool((fast[~mask] == 0).all())


def test_token_log_probs_gradcheck():
    g = _gen(0)
    logits = torch.randn(2, 5, 4, dtype=F64, generator=g, requires_grad=True)
    tokens = torch.randint(0, 4, (2, 5), generator=g)
    mask = torch.tensor([[0, 1, 1, 0, 1], [0, 0, 1, 1, 1]], dtype=torch.bool)
    assert torch.autograd.gradcheck(lambda z: token_log_probs(z, tokens, mask), (logits,))


class _PrefixModel(torch.nn.Module):
    """A deterministic causal 'LM': logits at t depend on tokens[≤t] only (a cumulative sum)."""

    def __init__(self, V: int, g: torch.Generator):
        super().__init__()
        self.emb = torch.randn(V, V, dtype=F64, generator=g)

    def forward(self, tokens):  # [B, T] -> [B, T, V]
        return self.emb[tokens].cumsum(1) / torch.arange(1, tokens.shape[1] + 1, dtype=F64).view(1, -1, 1)


def test_off_by_one_is_caught():
    """token t's log-prob must come from the logits computed on tokens[<t] (the prefix only)."""
    g = _gen(1)
    V, B, L = 5, 3, 6
    model = _PrefixModel(V, g)
    tokens = torch.randint(0, V, (B, L), generator=g)
    mask = torch.ones(B, L, dtype=torch.bool)
    mask[:, 0] = False
    # the definition: run the model on the prefix tokens[:, :t] and read its last position
    expected = torch.zeros(B, L, dtype=F64)
    for t in range(1, L):
        last = model(tokens[:, :t])[:, -1]
        expected[:, t] = torch.log_softmax(last, -1).gather(1, tokens[:, t : t + 1]).squeeze(1)
    got = token_log_probs(model(tokens), tokens, mask)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)
    # the classic bug: gather with the same position's logits (which already saw the token)
    wrong = torch.log_softmax(model(tokens), -1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    assert (wrong[mask] - expected[mask]).abs().max() > 0.1


def test_token_log_probs_nan_in_unused_rows_does_not_leak():
    g = _gen(2)
    logits = torch.randn(2, 5, 4, dtype=F64, generator=g)
    tokens = torch.tensor([[1, 2, 3, 0, -100], [0, 1, 2, 3, 1]])
    mask = torch.tensor([[0, 1, 1, 0, 0], [0, 0, 1, 1, 1]], dtype=torch.bool)
    logits[0, 2:] = math.nan  # rows 2..4 of sample 0 predict tokens 3, 4 which are masked out
    logits[:, -1] = math.inf  # the last row predicts nothing
    logits.requires_grad_(True)
    out = token_log_probs(logits, tokens, mask)
    assert bool(torch.isfinite(out).all())
    out.sum().backward()
    assert bool(torch.isfinite(logits.grad).all())
    assert bool((logits.grad[0, 2:] == 0).all())


def test_token_log_probs_nan_in_used_row_raises():
    logits = torch.zeros(1, 3, 4, dtype=F64)
    logits[0, 1, 2] = math.nan
    with pytest.raises(ValueError, match="logits"):
        token_log_probs(logits, torch.tensor([[0, 1, 2]]), torch.tensor([[0, 0, 1]]))


def test_token_log_probs_low_precision():
    g = _gen(3)
    logits = torch.randn(3, 6, 50, dtype=F64, generator=g) * 4
    tokens = torch.randint(0, 50, (3, 6), generator=g)
    exact = token_log_probs(logits, tokens)
    for dt in (torch.float32, torch.bfloat16):
        out = token_log_probs(logits.to(dt), tokens)
        assert out.dtype == dt
        out32 = token_log_probs(logits.to(dt), tokens, dtype=torch.float32)
        # the only bf16 error left is the rounding of the logits themselves (≤ 2⁻⁸ relative)
        tol = 1e-5 if dt == torch.float32 else 0.15
        assert (out32.double() - exact).abs().max() < tol


def test_token_log_probs_bad_input():
    lg = torch.zeros(2, 3, 4)
    tok = torch.zeros(2, 3, dtype=torch.long)
    with pytest.raises(ValueError, match="logits"):
        token_log_probs(torch.zeros(2, 3), tok)
    with pytest.raises(ValueError, match="logits"):
        token_log_probs(torch.zeros(2, 3, 4, dtype=torch.long), tok)
    with pytest.raises(ValueError, match="tokens"):
        token_log_probs(lg, tok.float())
    with pytest.raises(ValueError, match="tokens"):
        token_log_probs(lg, torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="tokens"):
        token_log_probs(lg, torch.full((2, 3), 4))
    with pytest.raises(ValueError, match=r"mask\[:, 0\]"):
        token_log_probs(lg, tok, torch.ones(2, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="mask"):
        token_log_probs(lg, tok, torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="mask"):
        token_log_probs(lg, tok, torch.full((2, 3), 2))
    # out-of-range ids are fine where masked out (HF's -100 labels, pad ids)
    out = token_log_probs(lg, torch.tensor([[0, 1, -100], [0, 3, 9]]), torch.tensor([[0, 1, 0], [0, 1, 0]]))
    torch.testing.assert_close(out, torch.tensor([[0.0, -math.log(4), 0.0], [0.0, -math.log(4), 0.0]]))


# ---------------------------------------------------------------------------------------------
# aggregate_token_loss


def _aggregate_by_hand(loss, mask, mode, C=None):
    """The definitions, as loops over responses and tokens."""
    rows = [b for b in range(loss.shape[0]) if bool(mask[b].any())]
    n_tok = int(mask.sum())
    total = 0.0
    for b in rows:
        toks = [float(loss[b, t]) for t in range(loss.shape[1]) if bool(mask[b, t])]
        if mode == "token-mean":
            total += sum(toks) / n_tok
        elif mode == "seq-mean-token-sum":
            total += sum(toks) / len(rows)
        elif mode == "seq-mean-token-mean":
            total += sum(toks) / len(toks) / len(rows)
        else:
            total += sum(toks) / C / len(rows)
    return total


@given(B=st.integers(1, 5), L=st.integers(1, 7), seed=st.integers(0, 10_000), mode=st.sampled_from(AGGREGATION_MODES))
def test_aggregate_matches_definition(B, L, seed, mode):
    g = _gen(seed)
    loss = torch.randn(B, L, dtype=F64, generator=g)
    mask = _random_mask(B, L, g, first_false=False)
    if not bool(mask.any()):
        mask[0, 0] = True
    C = 7.0 if mode == "seq-mean-token-sum-norm" else None
    got = aggregate_token_loss(loss, mask, mode, normalizer=C)
    assert abs(float(got) - _aggregate_by_hand(loss, mask, mode, C)) < 1e-12


def test_aggregate_length_bias_of_each_mode():
    """Two responses, lengths 1 and 4: the weight on one token and on each whole response."""
    mask = torch.tensor([[1, 0, 0, 0], [1, 1, 1, 1]], dtype=torch.bool)
    C = 8.0
    expected = {  # (weight of a token of the short one, of the long one)
        "token-mean": (1 / 5, 1 / 5),
        "seq-mean-token-sum": (1 / 2, 1 / 2),
        "seq-mean-token-mean": (1 / 2, 1 / 8),
        "seq-mean-token-sum-norm": (1 / 16, 1 / 16),
    }
    for mode, (w_short, w_long) in expected.items():
        loss = torch.zeros(2, 4, dtype=F64, requires_grad=True)
        aggregate_token_loss(loss, mask, mode, normalizer=C if mode.endswith("norm") else None).backward()
        assert loss.grad[0, 0] == pytest.approx(w_short, abs=1e-15)
        assert loss.grad[1].tolist() == pytest.approx([w_long] * 4, abs=1e-15)
        w = aggregation_weights(mask, mode, normalizer=C if mode.endswith("norm") else None, dtype=F64)
        torch.testing.assert_close(w, loss.grad, rtol=0, atol=0)
    # the length bias in one line: a long response's total weight relative to a short one's
    ratio = {m: 4 * wl / ws for m, (ws, wl) in expected.items()}
    assert ratio == {"token-mean": 4.0, "seq-mean-token-sum": 4.0, "seq-mean-token-mean": 1.0,
                     "seq-mean-token-sum-norm": 4.0}


@pytest.mark.parametrize("mode", AGGREGATION_MODES)
def test_aggregate_invariant_to_padding_width_and_nan_in_pads(mode):
    g = _gen(4)
    loss = torch.randn(3, 5, dtype=F64, generator=g)
    mask = torch.tensor([[1, 1, 0, 0, 0], [1, 1, 1, 1, 1], [0, 1, 1, 0, 0]], dtype=torch.bool)
    C = 10.0 if mode.endswith("norm") else None
    base = aggregate_token_loss(loss, mask, mode, normalizer=C)
    padded = torch.cat([loss, torch.full((3, 4), math.nan, dtype=F64)], 1).requires_grad_(True)
    pmask = torch.cat([mask, torch.zeros(3, 4, dtype=torch.bool)], 1)
    out = aggregate_token_loss(padded, pmask, mode, normalizer=C)
    assert float(out.detach()) == pytest.approx(float(base.detach()), abs=1e-14)
    out.backward()
    assert bool(torch.isfinite(padded.grad).all())
    # a dummy all-pad row (padding the batch) changes nothing either
    extra = torch.cat([loss, torch.full((1, 5), math.nan, dtype=F64)], 0)
    emask = torch.cat([mask, torch.zeros(1, 5, dtype=torch.bool)], 0)
    assert float(aggregate_token_loss(extra, emask, mode, normalizer=C)) == pytest.approx(float(base), abs=1e-14)


@pytest.mark.parametrize("mode", AGGREGATION_MODES)
def test_micro_batch_split_with_global_denominator(mode):
    g = _gen(5)
    loss = torch.randn(6, 7, dtype=F64, generator=g)
    mask = _random_mask(6, 7, g)
    mask[:, 1] = True
    full = aggregate_token_loss(loss, mask, mode, normalizer=9.0 if mode.endswith("norm") else None)
    if mode == "token-mean":
        kw = {"normalizer": float(mask.sum())}
    elif mode == "seq-mean-token-sum-norm":
        kw = {"normalizer": 9.0, "num_sequences": 6}
    else:
        kw = {"num_sequences": 6}
    parts = [aggregate_token_loss(loss[i : i + 2], mask[i : i + 2], mode, **kw) for i in (0, 2, 4)]
    assert float(sum(parts)) == pytest.approx(float(full), abs=1e-13)


def test_micro_batch_split_with_local_denominator_is_wrong():
    """The pitfall: averaging per-micro-batch token means is not the batch's token mean."""
    loss = torch.tensor([[0.0, 1.0, 1.0, 1.0], [0.0, 5.0, 0.0, 0.0]], dtype=F64)
    mask = torch.tensor([[0, 1, 1, 1], [0, 1, 0, 0]], dtype=torch.bool)
    full = aggregate_token_loss(loss, mask, "token-mean")  # (1+1+1+5)/4 = 2
    local = sum(aggregate_token_loss(loss[i : i + 1], mask[i : i + 1], "token-mean") for i in (0, 1)) / 2
    assert float(full) == 2.0 and float(local) == 3.0


def test_aggregate_empty_response_rows():
    loss = torch.tensor([[1.0, 2.0], [math.nan, math.nan]], dtype=F64)
    mask = torch.tensor([[1, 1], [0, 0]], dtype=torch.bool)
    for mode in ("token-mean", "seq-mean-token-sum", "seq-mean-token-mean"):
        out = aggregate_token_loss(loss, mask, mode)
        assert math.isfinite(float(out))
    assert float(aggregate_token_loss(loss, mask, "seq-mean-token-mean")) == 1.5
    empty = torch.zeros(2, 2, dtype=torch.bool)
    with pytest.raises(ValueError, match="no tokens"):
        aggregate_token_loss(loss, empty, "token-mean")
    x = torch.ones(2, 2, dtype=F64, requires_grad=True)
    out = aggregate_token_loss(x, empty, "token-mean", normalizer=10.0)
    assert float(out.detach()) == 0.0 and out.requires_grad


def test_aggregate_bad_input():
    loss = torch.zeros(2, 3)
    mask = torch.ones(2, 3, dtype=torch.bool)
    with pytest.raises(ValueError, match="mode"):
        aggregate_token_loss(loss, mask, "mean")
    with pytest.raises(ValueError, match="normalizer"):
        aggregate_token_loss(loss, mask, "seq-mean-token-sum-norm")
    with pytest.raises(ValueError, match="normalizer"):
        aggregate_token_loss(loss, mask, "token-mean", normalizer=0.0)
    with pytest.raises(ValueError, match="normalizer"):
        aggregate_token_loss(loss, mask, "seq-mean-token-mean", normalizer=3.0)
    with pytest.raises(ValueError, match="num_sequences"):
        aggregate_token_loss(loss, mask, "token-mean", num_sequences=3)
    with pytest.raises(ValueError, match="mask"):
        aggregate_token_loss(loss, torch.ones(2, 4, dtype=torch.bool), "token-mean")
    with pytest.raises(ValueError, match="loss"):
        aggregate_token_loss(torch.zeros(6), torch.ones(6, dtype=torch.bool), "token-mean")
    bad = loss.clone()
    bad[0, 0] = math.nan
    with pytest.raises(ValueError, match="loss"):
        aggregate_token_loss(bad, mask, "token-mean")


# ---------------------------------------------------------------------------------------------
# group / RLOO advantages

_rewards = st.tuples(st.integers(1, 5), st.integers(2, 6), st.integers(0, 10_000), st.booleans())


def _make_rewards(G, K, seed, discrete):
    g = _gen(seed)
    if discrete:  # few distinct values: constant groups happen
        return torch.randint(0, 2, (G, K), generator=g).to(F64) * 0.1
    return torch.randn(G, K, dtype=F64, generator=g)


@given(_rewards, st.booleans())
def test_group_advantages_matches_reference(args, normalize_std):
    r = _make_rewards(*args)
    fast = group_advantages(r, normalize_std=normalize_std)
    ref = group_advantages_reference(r, normalize_std=normalize_std)
    torch.testing.assert_close(fast, ref, rtol=1e-10, atol=1e-10)


@given(_rewards)
def test_rloo_matches_reference(args):
    r = _make_rewards(*args)
    torch.testing.assert_close(rloo_advantages(r), rloo_advantages_reference(r), rtol=1e-10, atol=1e-12)


def test_group_advantages_worked_example():
    r = torch.tensor([[1.0, 0.0, 0.0, 0.0]], dtype=F64)
    # mean 1/4, unbiased std sqrt((9/16 + 3/16)/3) = 1/2
    torch.testing.assert_close(group_advantages(r, eps=0.0), torch.tensor([[1.5, -0.5, -0.5, -0.5]], dtype=F64))
    torch.testing.assert_close(group_advantages(r, normalize_std=False), torch.tensor([[0.75, -0.25, -0.25, -0.25]], dtype=F64))
    torch.testing.assert_close(rloo_advantages(r), torch.tensor([[1.0, -1 / 3, -1 / 3, -1 / 3]], dtype=F64))


@pytest.mark.parametrize(
    "fn",
    [group_advantages, group_advantages_reference, rloo_advantages, rloo_advantages_reference,
     lambda r: group_advantages(r, normalize_std=False)],
)
def test_group_of_one_raises_in_every_path(fn):
    with pytest.raises(ValueError, match="K >= 2"):
        fn(torch.tensor([[1.0], [0.0]]))


@pytest.mark.parametrize(
    "fn", [group_advantages, group_advantages_reference, rloo_advantages, rloo_advantages_reference]
)
def test_constant_group_gives_exact_zero(fn):
    # 0.1 * 3 / 3 != 0.1 in floating point: a naive (r - mean) / (std + eps) gives ~1e-11, not 0
    r = torch.tensor([[0.1, 0.1, 0.1], [1.0, 0.0, 1.0]], dtype=F64)
    out = fn(r)
    assert bool((out[0] == 0).all())
    assert bool((out[1] != 0).all())
    assert bool(torch.isfinite(out).all())


def test_advantages_bad_input():
    for fn in (group_advantages, rloo_advantages, group_advantages_reference):
        with pytest.raises(ValueError, match="rewards"):
            fn(torch.zeros(4))
        with pytest.raises(ValueError, match="rewards"):
            fn(torch.tensor([[1.0, math.nan]]))
        with pytest.raises(ValueError, match="rewards"):
            fn(torch.zeros(0, 3))
        with pytest.raises(ValueError, match="rewards"):
            fn(torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="eps"):
        group_advantages(torch.zeros(2, 3), eps=-1.0)


# ---------------------------------------------------------------------------------------------
# token rewards, REINFORCE++ returns, token GAE


def test_token_rewards_last_real_token():
    # right-padded, left-padded (prompt first), and an empty row
    mask = torch.tensor([[0, 1, 1, 1, 0, 0], [0, 0, 0, 1, 1, 0], [0, 0, 0, 0, 0, 0]], dtype=torch.bool)
    scores = torch.tensor([1.0, 2.0, 3.0], dtype=F64)
    r = token_rewards(scores, mask)
    expected = torch.zeros(3, 6, dtype=F64)
    expected[0, 3] = 1.0
    expected[1, 4] = 2.0
    torch.testing.assert_close(r, expected, rtol=0, atol=0)
    # the pitfall: index mask.sum(1) is the first pad of a right-padded response starting at 0,
    # and simply wrong here
    naive = mask.sum(1)
    assert naive.tolist() != [3, 4]
    pen = torch.full((3, 6), 0.5, dtype=F64)
    r2 = token_rewards(scores, mask, kl_penalty=pen)
    torch.testing.assert_close(r2, expected - 0.5 * mask.to(F64))


def _gae_by_hand(rewards, values, mask, gamma, lam):
    B, L = rewards.shape
    adv = torch.zeros(B, L, dtype=F64)
    for b in range(B):
        idx = [t for t in range(L) if bool(mask[b, t])]
        a_next, v_next = 0.0, 0.0
        # backward over the response tokens of row b
        for t in reversed(idx):
            delta = float(rewards[b, t]) + gamma * v_next - float(values[b, t])
            a_next = delta + gamma * lam * a_next
            adv[b, t] = a_next
            v_next = float(values[b, t])
    return adv


@given(B=st.integers(1, 4), L=st.integers(1, 7), seed=st.integers(0, 10_000),
       gamma=st.floats(0, 1), lam=st.floats(0, 1),
       backend=st.sampled_from(["auto", "torch", "numba", "reference"]))
def test_token_gae_matches_loop(B, L, seed, gamma, lam, backend):
    g = _gen(seed)
    rewards = torch.randn(B, L, dtype=F64, generator=g)
    values = torch.randn(B, L, dtype=F64, generator=g)
    mask = _random_mask(B, L, g, first_false=False)  # gaps included
    adv, ret = token_gae(rewards, values, mask, gamma=gamma, lam=lam, backend=backend)
    torch.testing.assert_close(adv, _gae_by_hand(rewards, values, mask, gamma, lam), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(ret, torch.where(mask, adv + values, torch.zeros_like(adv)))


def test_token_gae_lambda_one_is_reward_to_go_minus_value():
    mask = torch.tensor([[0, 0, 1, 1, 1, 0]], dtype=torch.bool)
    scores = torch.tensor([1.0], dtype=F64)
    pen = torch.tensor([[9.0, 9.0, 0.1, 0.2, 0.3, 9.0]], dtype=F64)
    r = token_rewards(scores, mask, kl_penalty=pen)
    v = torch.tensor([[7.0, 7.0, 0.5, 0.25, 0.125, 7.0]], dtype=F64)
    adv, _ = token_gae(r, v, mask, gamma=1.0, lam=1.0)
    togo = [1.0 - 0.6, 1.0 - 0.5, 1.0 - 0.3]
    torch.testing.assert_close(adv[0, 2:5], torch.tensor(togo, dtype=F64) - v[0, 2:5])
    assert bool((adv[0, [0, 1, 5]] == 0).all())


def test_batch_normalized_returns():
    g = _gen(7)
    rewards = torch.randn(4, 5, dtype=F64, generator=g)
    mask = _random_mask(4, 5, g)
    mask[:, 1] = True
    out = batch_normalized_returns(rewards, mask, gamma=0.9)
    G = torch.zeros(4, 5, dtype=F64)
    for b in range(4):
        acc = 0.0
        for t in reversed(range(5)):  # backward; masked positions are skipped
            if bool(mask[b, t]):
                acc = float(rewards[b, t]) + 0.9 * acc
                G[b, t] = acc
    vals = G[mask]
    expected = torch.where(mask, (G - vals.mean()) / (vals.std() + 1e-8), torch.zeros_like(G))
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-12)


def test_token_functions_bad_input():
    m = torch.ones(2, 3, dtype=torch.bool)
    with pytest.raises(ValueError, match="scores"):
        token_rewards(torch.zeros(3), m)
    with pytest.raises(ValueError, match="gamma"):
        token_gae(torch.zeros(2, 3), torch.zeros(2, 3), m, gamma=1.5)
    with pytest.raises(ValueError, match="lam"):
        token_gae(torch.zeros(2, 3), torch.zeros(2, 3), m, lam=-0.1)
    with pytest.raises(ValueError, match="values"):
        token_gae(torch.zeros(2, 3), torch.zeros(2, 4), m)
    bad = torch.zeros(2, 3)
    bad[0, 1] = math.nan
    with pytest.raises(ValueError, match="rewards"):
        token_gae(bad, torch.zeros(2, 3), m)


# ---------------------------------------------------------------------------------------------
# KL placement and the token policy loss


def test_token_kl_and_penalty():
    g = _gen(8)
    lp = torch.randn(2, 4, dtype=F64, generator=g).requires_grad_(True)
    ref = torch.randn(2, 4, dtype=F64, generator=g)
    mask = torch.tensor([[0, 1, 1, 0], [0, 1, 1, 1]], dtype=torch.bool)
    lp_nan = lp.detach().clone()
    lp_nan[0, 3] = math.nan
    for est in ("k1", "k2", "k3"):
        k = token_kl(lp, ref, mask, est)
        torch.testing.assert_close(k[mask], kl_estimate(lp[mask], ref[mask], est))
        assert bool((k[~mask] == 0).all())
        assert bool(torch.isfinite(token_kl(lp_nan, ref, mask, est)).all())
    pen = kl_penalty(lp, ref, mask, coef=0.1)
    assert not pen.requires_grad
    torch.testing.assert_close(pen, 0.1 * token_kl(lp, ref, mask, "k1").detach())
    with pytest.raises(ValueError, match="coef"):
        kl_penalty(lp, ref, mask, coef=0.0)
    with pytest.raises(ValueError, match="estimator"):
        token_kl(lp, ref, mask, "k4")
    # the loss term's gradient w.r.t. log π: k1 → w, k2 → w·ℓ, k3 → w·(1 − e^{−ℓ})
    w = aggregation_weights(mask, "token-mean", dtype=F64)
    ell = (lp - ref).detach()
    for est, dk in (("k1", torch.ones_like(ell)), ("k2", ell), ("k3", 1 - torch.exp(-ell))):
        (grad,) = torch.autograd.grad(kl_loss(lp, ref, mask, estimator=est), lp)
        torch.testing.assert_close(grad, w * dk, rtol=1e-12, atol=1e-14)


def _ppo_by_hand(lp, old, adv, mask, w, eps_lo, eps_hi, dual):
    total = 0.0
    for b in range(lp.shape[0]):
        for t in range(lp.shape[1]):
            if not bool(mask[b, t]):
                continue
            rho = torch.exp(lp[b, t] - old[b, t])
            a = adv[b, t]
            o = torch.minimum(rho * a, rho.clamp(1 - eps_lo, 1 + eps_hi) * a)
            if dual is not None and a < 0:
                o = torch.maximum(o, dual * a)
            total = total - w[b, t] * o
    return total


@pytest.mark.parametrize("mode", AGGREGATION_MODES)
@pytest.mark.parametrize("clip", [(0.2, None, None), (0.2, 0.28, None), (0.2, 0.28, 2.0)])
def test_token_policy_loss_matches_per_token_loop(mode, clip):
    eps_lo, eps_hi, dual = clip
    g = _gen(9)
    lp = torch.randn(3, 6, dtype=F64, generator=g).requires_grad_(True)
    old = lp.detach() + 0.5 * torch.randn(3, 6, dtype=F64, generator=g)  # many clips bind
    adv = torch.randn(3, 6, dtype=F64, generator=g) * 2
    mask = torch.tensor([[0, 1, 1, 1, 0, 0], [0, 0, 1, 1, 1, 1], [0, 1, 0, 1, 0, 1]], dtype=torch.bool)
    C = 6.0 if mode.endswith("norm") else None
    loss, info = token_policy_loss(lp, old, adv, mask, mode=mode, normalizer=C,
                                   clip_eps=eps_lo, clip_eps_high=eps_hi, dual_clip=dual)
    w = aggregation_weights(mask, mode, normalizer=C, dtype=F64)
    lp2 = lp.detach().clone().requires_grad_(True)
    ref = _ppo_by_hand(lp2, old, adv, mask, w, eps_lo, eps_hi or eps_lo, dual)
    assert float(loss.detach()) == pytest.approx(float(ref.detach()), abs=1e-13)
    (g1,) = torch.autograd.grad(loss, lp)
    (g2,) = torch.autograd.grad(ref, lp2)
    torch.testing.assert_close(g1, g2, rtol=1e-12, atol=1e-14)
    assert 0 < float(info["clip_fraction"]) < 1


def test_token_policy_loss_response_advantages_and_nan_pads():
    g = _gen(10)
    lp = torch.randn(2, 5, dtype=F64, generator=g)
    old = lp + 0.1
    adv_seq = torch.tensor([1.0, -2.0], dtype=F64)
    mask = torch.tensor([[0, 1, 1, 0, 0], [0, 0, 1, 1, 1]], dtype=torch.bool)
    a, _ = token_policy_loss(lp, old, adv_seq, mask)
    b, _ = token_policy_loss(lp, old, adv_seq.unsqueeze(1).expand(2, 5), mask)
    assert float(a) == float(b)
    lp_nan = lp.clone()
    lp_nan[0, 3:] = math.nan
    lp_nan.requires_grad_(True)
    c, _ = token_policy_loss(lp_nan, old, adv_seq, mask)
    c.backward()
    assert float(c.detach()) == pytest.approx(float(a.detach()), abs=1e-14)
    assert bool(torch.isfinite(lp_nan.grad).all())


def test_on_policy_loss_gradient_is_policy_gradient():
    """With old = log π (ratio 1) the gradient is −Σ w Â ∇log π, for every mode."""
    g = _gen(11)
    lp = torch.randn(3, 4, dtype=F64, generator=g).requires_grad_(True)
    adv = torch.randn(3, dtype=F64, generator=g)
    mask = torch.tensor([[0, 1, 1, 1], [0, 1, 0, 0], [0, 1, 1, 0]], dtype=torch.bool)
    for mode in AGGREGATION_MODES:
        C = 3.0 if mode.endswith("norm") else None
        loss, _ = token_policy_loss(lp, lp.detach(), adv, mask, mode=mode, normalizer=C)
        (grad,) = torch.autograd.grad(loss, lp)
        w = aggregation_weights(mask, mode, normalizer=C, dtype=F64)
        torch.testing.assert_close(grad, -w * adv.unsqueeze(1), rtol=1e-12, atol=1e-15)


# ---------------------------------------------------------------------------------------------
# gradcheck of the differentiable paths, and every function on each available device


def test_gradchecks():
    g = _gen(12)
    mask = torch.tensor([[0, 1, 1, 1, 0], [0, 0, 1, 1, 1]], dtype=torch.bool)
    x = torch.randn(2, 5, dtype=F64, generator=g, requires_grad=True)
    y = torch.randn(2, 5, dtype=F64, generator=g, requires_grad=True)
    ref = torch.randn(2, 5, dtype=F64, generator=g)
    for mode in AGGREGATION_MODES:
        C = 4.0 if mode.endswith("norm") else None
        assert torch.autograd.gradcheck(lambda z, m=mode, c=C: aggregate_token_loss(z, mask, m, normalizer=c), (x,))
    for est in ("k1", "k2", "k3"):
        assert torch.autograd.gradcheck(lambda z, e=est: kl_loss(z, ref, mask, estimator=e), (x,))
    assert torch.autograd.gradcheck(
        lambda r, v: token_gae(r, v, mask, gamma=0.9, lam=0.8, backend="torch")[0], (x, y)
    )
    old = x.detach() + 0.05 * torch.randn(2, 5, dtype=F64, generator=g)  # away from the clip kinks
    adv = torch.randn(2, dtype=F64, generator=g)
    assert torch.autograd.gradcheck(
        lambda z: token_policy_loss(z, old, adv, mask, clip_eps=0.2, clip_eps_high=0.28)[0], (x,)
    )


def test_functions_on_device(device):
    g = _gen(13)
    logits = torch.randn(3, 6, 9, generator=g)
    tokens = torch.randint(0, 9, (3, 6), generator=g)
    mask = torch.tensor([[0, 1, 1, 1, 0, 0], [0, 0, 1, 1, 1, 1], [0, 1, 0, 0, 0, 0]], dtype=torch.bool)
    rewards = torch.randn(4, 5, generator=g)
    values = torch.randn(3, 6, generator=g)

    def run(dev):
        lp = token_log_probs(logits.to(dev), tokens.to(dev), mask.to(dev))
        m = mask.to(dev)
        r = token_rewards(torch.tensor([1.0, 0.0, 2.0], device=dev), m,
                          kl_penalty=kl_penalty(lp, 0.5 * lp, m, coef=0.1))
        adv, _ = token_gae(r, values.to(dev), m, gamma=1.0, lam=0.9)
        loss, _ = token_policy_loss(lp, lp.detach() - 0.1, adv, m, mode="seq-mean-token-mean")
        return [lp, r, adv, loss, group_advantages(rewards.to(dev)), rloo_advantages(rewards.to(dev)),
                batch_normalized_returns(r, m), kl_loss(lp, 0.5 * lp, m)]

    for a, b in zip(run(device), run(torch.device("cpu"))):
        assert a.device.type == device.type
        torch.testing.assert_close(a.cpu(), b, rtol=1e-5, atol=1e-6)
