"""Policy-gradient, PPO and value losses (pgmath.losses): hand-computed values, arbitrary clip ranges,
NaN in masked entries, and the bad-input row failing for a function that stops validating.

The spec properties (analytic gradients, values by direct summation, detached constants,
gradcheck, bad inputs) run in tests/test_specs.py (pgmath.specs.losses)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from pgmath import policy_gradient_loss, ppo_clip_loss, value_loss
from pgmath.specs import SPECS, all_properties
from pgmath.specs.losses import ppo_analytic_grad
from pgmath.verification import VerifyContext

F64 = torch.float64


@given(seed=st.integers(0, 10_000), eps=st.floats(0.05, 0.5), high=st.none() | st.floats(0.05, 0.6),
       dual=st.none() | st.floats(1.5, 5.0), masked=st.booleans())
def test_ppo_gradient_is_piecewise(seed, eps, high, dual, masked):
    """Arbitrary clip ranges (the spec's analytic_gradient property runs three fixed settings)."""
    g = torch.Generator().manual_seed(seed)
    N = 64
    old = torch.randn(N, dtype=F64, generator=g)
    lp = (old + 0.7 * torch.randn(N, dtype=F64, generator=g)).requires_grad_(True)
    adv = torch.randn(N, dtype=F64, generator=g)
    mask = (torch.rand(N, generator=g) < 0.6) if masked else None
    if mask is not None and not mask.any():
        mask[0] = True
    loss, info = ppo_clip_loss(lp, old, adv, clip_eps=eps, clip_eps_high=high, dual_clip=dual, mask=mask)
    (grad,) = torch.autograd.grad(loss, lp)
    ratio = (lp.detach() - old).exp()
    n = N if mask is None else int(mask.sum())
    want = ppo_analytic_grad(ratio, adv, eps, high if high is not None else eps, dual, n)
    if mask is not None:
        want = torch.where(mask, want, torch.zeros_like(want))
    torch.testing.assert_close(grad, want, rtol=1e-12, atol=1e-15)
    assert 0.0 <= float(info["clip_fraction"]) <= 1.0


def test_ppo_value_at_ratio_one_is_minus_mean_advantage():
    adv = torch.tensor([1.0, -2.0, 4.0], dtype=F64)
    lp = torch.zeros(3, dtype=F64)
    loss, info = ppo_clip_loss(lp, lp, adv)
    assert float(loss) == pytest.approx(-1.0)
    assert float(info["clip_fraction"]) == 0.0 and float(info["approx_kl"]) == 0.0


def test_ppo_clip_binds_only_in_the_direction_of_improvement():
    """ρ = 2, ε = 0.2: A > 0 is clipped (gradient 0), A < 0 is not (gradient −ρA/n ≠ 0)."""
    lp = torch.log(torch.tensor([2.0, 2.0], dtype=F64)).requires_grad_(True)
    old = torch.zeros(2, dtype=F64)
    adv = torch.tensor([1.0, -1.0], dtype=F64)
    loss, info = ppo_clip_loss(lp, old, adv)
    (grad,) = torch.autograd.grad(loss, lp)
    torch.testing.assert_close(grad, torch.tensor([0.0, 1.0], dtype=F64))  # −ρA/n = −2·(−1)/2
    assert float(info["clipped_fraction"]) == 0.5 and float(info["clip_fraction"]) == 1.0


def test_dual_clip_bounds_negative_advantage():
    lp = torch.log(torch.tensor([10.0], dtype=F64)).requires_grad_(True)
    old = torch.zeros(1, dtype=F64)
    adv = torch.tensor([-1.0], dtype=F64)
    loss, info = ppo_clip_loss(lp, old, adv, dual_clip=3.0)
    assert float(loss.detach()) == pytest.approx(3.0)  # objective max(min(−10, −1.2), −3) = −3
    (grad,) = torch.autograd.grad(loss, lp)
    assert float(grad) == 0.0 and float(info["dual_clip_fraction"]) == 1.0


def test_clip_higher_is_asymmetric():
    lp = torch.log(torch.tensor([1.25, 0.75], dtype=F64))
    old = torch.zeros(2, dtype=F64)
    adv = torch.tensor([1.0, -1.0], dtype=F64)
    # ε_low = 0.2, ε_high = 0.28: ρ = 1.25 < 1.28 is unclipped, ρ = 0.75 < 0.8 is clipped
    loss, _ = ppo_clip_loss(lp, old, adv, clip_eps=0.2, clip_eps_high=0.28)
    assert float(loss) == pytest.approx(-(1.25 - 0.8) / 2)


def test_masked_nan_does_not_leak():
    lp = torch.tensor([0.1, float("nan"), 0.2], dtype=F64, requires_grad=True)
    adv = torch.tensor([1.0, float("nan"), -1.0], dtype=F64)
    m = torch.tensor([True, False, True])
    loss, _ = ppo_clip_loss(lp, lp.detach(), adv, mask=m)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(lp.grad).all()
    assert torch.isfinite(policy_gradient_loss(lp, adv, m))
    assert torch.isfinite(value_loss(lp, adv, mask=m))


def test_value_loss_by_hand():
    v = torch.tensor([1.0, 2.0], dtype=F64)
    R = torch.tensor([0.0, 4.0], dtype=F64)
    assert float(value_loss(v, R)) == pytest.approx(0.5 * (1 + 4) / 2)
    old = torch.tensor([1.5, 1.0], dtype=F64)
    # clipped: v_clip = [1.5 + clip(-0.5), 1 + clip(1)] = [1.3, 1.2] with ε = 0.2
    # max((1−0)², (1.3−0)²) = 1.69; max((2−4)², (1.2−4)²) = 7.84
    assert float(value_loss(v, R, old_values=old, clip_eps=0.2)) == pytest.approx(0.5 * (1.69 + 7.84) / 2)


def test_bad_input_row_fails_for_a_function_that_stops_validating():
    """A PPO loss that silently clamps clip_eps instead of refusing it fails the bad-input row
    (only the clip_eps cases), while pgmath's passes it."""
    row = next(p for p in all_properties(SPECS["ppo_clip_loss"]) if p.name == "bad_input")

    def lax(log_probs, old_log_probs, advantages, *, clip_eps=0.2, **kw):
        return ppo_clip_loss(log_probs, old_log_probs, advantages, clip_eps=min(max(clip_eps, 1e-3), 0.9), **kw)

    ctx = VerifyContext(quick=True)
    outcome = row.run(lax, ctx)
    assert not outcome.passed
    assert all(f.startswith("clip_eps") for f in outcome.data["failures"]), outcome.data
    assert len(outcome.data["failures"]) == 3  # clip_eps 0, < 0 and 1
    assert row.run(ppo_clip_loss, ctx).passed
