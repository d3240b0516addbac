"""Tests of pgmath.llm's functions that no spec property states: hand-worked examples, the
pitfall of local denominators, empty micro-batches, dtypes, finite-difference gradchecks, devices.

The formulas themselves — every function against its reference loop and its definition, on
generated inputs, the pitfalls that have a wrong variant, and bad input — are checked by the
``llm`` specs (``pgmath/specs/llm_*.py``) through ``tests/test_specs.py``.
"""

from __future__ import annotations

import math

import pytest
import torch

from pgmath.llm import (
    AGGREGATION_MODES,
    aggregate_token_loss,
    batch_normalized_returns,
    group_advantages,
    group_advantages_reference,
    kl_loss,
    kl_penalty,
    rloo_advantages,
    token_gae,
    token_log_probs,
    token_policy_loss,
    token_rewards,
)

F64 = torch.float64


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------------------------------------
# token_log_probs


def test_token_log_probs_gradcheck():
    g = _gen(0)
    logits = torch.randn(2, 5, 4, dtype=F64, generator=g, requires_grad=True)
    tokens = torch.randint(0, 4, (2, 5), generator=g)
    mask = torch.tensor([[0, 1, 1, 0, 1], [0, 0, 1, 1, 1]], dtype=torch.bool)
    assert torch.autograd.gradcheck(lambda z: token_log_probs(z, tokens, mask), (logits,))


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


def test_token_log_probs_ignores_ids_outside_the_mask():
    """Out-of-range ids are fine where masked out (HF's −100 labels, pad ids): uniform logits
    give −log 4 on the scored tokens and 0 elsewhere."""
    lg = torch.zeros(2, 3, 4)
    out = token_log_probs(lg, torch.tensor([[0, 1, -100], [0, 3, 9]]), torch.tensor([[0, 1, 0], [0, 1, 0]]))
    torch.testing.assert_close(out, torch.tensor([[0.0, -math.log(4), 0.0], [0.0, -math.log(4), 0.0]]))


# ---------------------------------------------------------------------------------------------
# aggregate_token_loss


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


# ---------------------------------------------------------------------------------------------
# group / RLOO advantages


def test_group_advantages_worked_example():
    r = torch.tensor([[1.0, 0.0, 0.0, 0.0]], dtype=F64)
    # mean 1/4, unbiased std sqrt((9/16 + 3/16)/3) = 1/2
    torch.testing.assert_close(group_advantages(r, eps=0.0), torch.tensor([[1.5, -0.5, -0.5, -0.5]], dtype=F64))
    torch.testing.assert_close(group_advantages(r, normalize_std=False), torch.tensor([[0.75, -0.25, -0.25, -0.25]], dtype=F64))
    torch.testing.assert_close(rloo_advantages(r), torch.tensor([[1.0, -1 / 3, -1 / 3, -1 / 3]], dtype=F64))


def test_group_advantages_eps_must_be_non_negative():
    # the group specs bind ε = 1e-6 (the harness signature fn(rewards)), so ε's own check is here
    for fn in (group_advantages, group_advantages_reference):
        with pytest.raises(ValueError, match="eps"):
            fn(torch.zeros(2, 3), eps=-1.0)


# ---------------------------------------------------------------------------------------------
# the token policy loss's diagnostics


def test_token_policy_loss_reports_clip_fraction():
    """info["clip_fraction"]: the share of response tokens whose ratio lies outside
    [1 − ε_low, 1 + ε_high], counted by hand (the loss itself is checked by its spec)."""
    g = _gen(9)
    lp = torch.randn(3, 6, dtype=F64, generator=g)
    old = lp + 0.5 * torch.randn(3, 6, dtype=F64, generator=g)
    adv = torch.randn(3, 6, dtype=F64, generator=g)
    mask = torch.tensor([[0, 1, 1, 1, 0, 0], [0, 0, 1, 1, 1, 1], [0, 1, 0, 1, 0, 1]], dtype=torch.bool)
    _, info = token_policy_loss(lp, old, adv, mask, clip_eps=0.2, clip_eps_high=0.28)
    ratios = [math.exp(float(lp[b, t] - old[b, t])) for b in range(3) for t in range(6) if bool(mask[b, t])]
    outside = sum(1 for r in ratios if r < 0.8 or r > 1.28)
    assert 0 < outside < len(ratios)
    assert float(info["clip_fraction"]) == pytest.approx(outside / len(ratios), abs=1e-12)


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
