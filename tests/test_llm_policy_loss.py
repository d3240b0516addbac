"""pgmath.llm.policy_loss: the objectives beyond the spec's properties (run by tests/test_specs.py):
the paper-level identities written out on small hand-checkable batches, and the old PPO path."""

import math

import pytest
import torch

from pgmath.llm import OBJECTIVES, POLICY_AGGREGATIONS, policy_loss, token_policy_loss

F64 = torch.float64


def _batch():
    lp = torch.tensor([[-0.5, -1.0, -0.2], [-2.0, -0.1, -1.1]], dtype=F64)
    old = torch.tensor([[-0.9, -0.8, -0.2], [-1.0, -0.6, -1.3]], dtype=F64)
    adv = torch.tensor([[1.0, 1.0, 1.0], [-0.5, -0.5, -0.5]], dtype=F64)
    mask = torch.tensor([[True, True, False], [True, True, True]])
    return lp, old, adv, mask


@pytest.mark.parametrize("mode", ["token-mean", "seq-mean-token-sum", "seq-mean-token-mean"])
def test_ppo_equals_token_policy_loss(mode):
    lp, old, adv, mask = _batch()
    got, _ = policy_loss(lp, old, adv, mask, objective="ppo", aggregation=mode, clip_eps_high=0.28, dual_clip=3.0)
    want, _ = token_policy_loss(lp, old, adv, mask, mode=mode, clip_eps_high=0.28, dual_clip=3.0)
    assert torch.allclose(got, want, atol=1e-12)


def test_gspo_sequence_ratio_by_hand():
    """Row 0 (two tokens, Â = 1): s = exp((0.4 − 0.2)/2) = e^0.1 = 1.105 inside [0.8, 1.2] → ℓ = −s;
    row 1 (three tokens, Â = −0.5): s = exp((−1 + 0.5 + 0.2)/3) = e^−0.1 = 0.905 → ℓ = 0.5·s."""
    lp, old, adv, mask = _batch()
    got, _ = policy_loss(lp, old, adv, mask, objective="gspo", aggregation="seq-mean-token-mean")
    assert math.isclose(float(got), (-math.exp(0.1) + 0.5 * math.exp(-0.1)) / 2, rel_tol=1e-12)


def test_cispo_gradient_never_zero_where_ppo_clips():
    """ρ = e^0.4 > 1.2 with Â > 0: PPO's gradient is 0 there, CISPO's is −w·1.2·Â."""
    lp, old, adv, mask = _batch()
    for objective, want in (("ppo", 0.0), ("cispo", -1.2 / 5)):
        x = lp.clone().requires_grad_()
        loss, _ = policy_loss(x, old, adv, mask, objective=objective)
        loss.backward()
        assert math.isclose(float(x.grad[0, 0]), want, abs_tol=1e-12), objective


def test_gmpo_log_space_clip_by_hand():
    """Row 0, Â = 1 > 0: log r = (0.4, −0.2) → clipped to (0.2, −0.2), ratio exp(0) = 1 → ℓ = −1."""
    lp, old, adv, mask = _batch()
    m0 = mask.clone()
    m0[1] = False
    got, _ = policy_loss(lp, old, adv, m0, objective="gmpo", aggregation="seq-mean-token-mean")
    assert math.isclose(float(got), -1.0, rel_tol=1e-12)


@pytest.mark.parametrize("objective", OBJECTIVES)
@pytest.mark.parametrize("aggregation", POLICY_AGGREGATIONS)
def test_every_setting_is_finite_with_nan_pads(objective, aggregation):
    lp, old, adv, mask = _batch()
    kw = {"normalizer": 4.0} if aggregation.endswith("norm") else {}
    nan = torch.where(mask, lp, torch.full_like(lp, math.nan)).requires_grad_()
    loss, info = policy_loss(nan, old, adv, mask, objective=objective, aggregation=aggregation, **kw)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(nan.grad).all() and 0 <= float(info["clip_fraction"]) <= 1


def test_all_masked_batch_is_refused():
    lp, old, adv, mask = _batch()
    with pytest.raises(ValueError, match="mask"):
        policy_loss(lp, old, adv, torch.zeros_like(mask), aggregation="token-sum")
