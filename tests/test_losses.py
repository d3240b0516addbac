"""Policy-gradient, PPO and value losses (pgmath.losses): gradients against analytic forms."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from pgmath import categorical_log_prob, policy_gradient_loss, ppo_clip_loss, value_loss
from pgmath.core_checks import ppo_analytic_grad

F64 = torch.float64


@given(seed=st.integers(0, 10_000), eps=st.floats(0.05, 0.5), high=st.none() | st.floats(0.05, 0.6),
       dual=st.none() | st.floats(1.5, 5.0), masked=st.booleans())
def test_ppo_gradient_is_piecewise(seed, eps, high, dual, masked):
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


def test_pg_loss_gradient_is_score_times_advantage():
    z = torch.randn(10, 3, dtype=F64, requires_grad=True)
    a = torch.randint(0, 3, (10,))
    adv = torch.randn(10, dtype=F64)
    (grad,) = torch.autograd.grad(policy_gradient_loss(categorical_log_prob(z, a), adv), z)
    score = torch.nn.functional.one_hot(a, 3).to(F64) - torch.softmax(z.detach(), -1)
    torch.testing.assert_close(grad, -adv[:, None] * score / 10)


def test_advantages_are_detached():
    lp = torch.zeros(3, dtype=F64, requires_grad=True)
    adv = torch.ones(3, dtype=F64, requires_grad=True)
    policy_gradient_loss(lp, adv).backward()
    assert adv.grad is None


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


def test_gradcheck_losses():
    lp = torch.randn(8, dtype=F64, requires_grad=True)
    old = lp.detach() + 0.05 * torch.randn(8, dtype=F64)
    adv = torch.randn(8, dtype=F64)
    assert torch.autograd.gradcheck(lambda x: ppo_clip_loss(x, old, adv, clip_eps_high=0.3, dual_clip=2.0)[0], (lp,))
    assert torch.autograd.gradcheck(lambda x: value_loss(x, adv, old_values=old, clip_eps=0.5), (lp,))


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda z: ppo_clip_loss(z, z, z, clip_eps=-0.1), "clip_eps"),
        (lambda z: ppo_clip_loss(z, z, z, clip_eps=1.0), "clip_eps"),
        (lambda z: ppo_clip_loss(z, z, z, clip_eps_high=0.0), "clip_eps_high"),
        (lambda z: ppo_clip_loss(z, z, z, dual_clip=0.5), "dual_clip"),
        (lambda z: ppo_clip_loss(z, z[:2], z), "old_log_probs"),
        (lambda z: ppo_clip_loss(z, z, z, mask=torch.zeros(3, dtype=torch.bool)), "mask"),
        (lambda z: policy_gradient_loss(z, z.unsqueeze(0)), "advantages"),
        (lambda z: policy_gradient_loss(z, z, mask=torch.tensor([1, 2, 0])), "mask"),
        (lambda z: value_loss(z, z, clip_eps=0.2), "old_values"),
        (lambda z: value_loss(z, z.clone().fill_(float("inf"))), "returns"),
        (lambda z: policy_gradient_loss(z[:0], z[:0]), "log_probs"),
    ],
)
def test_loss_bad_input(call, name):
    with pytest.raises(ValueError, match=name):
        call(torch.zeros(3, dtype=F64))
