"""Fault-catching tests for ``pgmath/losses.py`` (issue 14, mutation testing).

Each test pins a behaviour that a deliberate fault (a mutant of ``tools/mutation.py``) changes
and that the spec suite did not pin: masked means over the selected entries only, NaN in
masked-out entries reaching neither value nor gradient, every PPO diagnostic on a hand-computed
batch (masked), the clip boundaries, the dual clip and the clipped value loss. Expected values
are computed independently with plain Python loops over the entries.
"""

from __future__ import annotations

import math

import pytest
import torch

from pgmath.losses import masked_mean, policy_gradient_loss, ppo_clip_loss, value_loss

F64 = torch.float64


def _t(x, **kw):
    return torch.tensor(x, dtype=F64, **kw)


def test_masked_mean_divides_by_the_selected_count_and_ignores_nan():
    x = _t([[1.0, float("nan"), 3.0], [5.0, 7.0, float("inf")]])
    m = torch.tensor([[True, False, True], [False, True, False]])
    assert masked_mean(x, m).item() == pytest.approx((1 + 3 + 7) / 3, abs=1e-15)
    assert masked_mean(_t([2.0, 4.0]), None).item() == 3.0
    with pytest.raises(ValueError, match="selects no entries"):
        masked_mean(_t([1.0, 2.0]), torch.tensor([False, False]))
    # float16: a sum over 10⁵ entries of 1.0 overflows float16, the mean must not
    big = torch.ones(100_000, dtype=torch.float16)
    assert masked_mean(big, torch.ones(100_000, dtype=torch.bool)).item() == 1.0
    assert masked_mean(big, None).item() == 1.0
    assert masked_mean(big, None).dtype == torch.float16
    assert masked_mean(big, torch.ones(100_000, dtype=torch.bool)).dtype == torch.float16
    with pytest.raises(ValueError, match=r"^mask"):
        masked_mean(_t([1.0, 2.0]), torch.tensor([True, False, True]))


def test_policy_gradient_loss_masked_value_and_gradient_with_nan_outside():
    lp = _t([-1.0, float("nan"), -2.0, -0.5]).requires_grad_()
    adv = _t([2.0, float("nan"), -1.0, 4.0])
    m = torch.tensor([True, False, True, True])
    loss = policy_gradient_loss(lp, adv, m)
    expected = -((-1.0 * 2.0) + (-2.0 * -1.0) + (-0.5 * 4.0)) / 3
    assert loss.item() == pytest.approx(expected, abs=1e-15)
    loss.backward()
    assert torch.equal(lp.grad, _t([-2.0 / 3, 0.0, 1.0 / 3, -4.0 / 3]))
    # unmasked: the sign and the mean over all entries
    lp2 = _t([-1.0, -3.0]).requires_grad_()
    out = policy_gradient_loss(lp2, _t([1.0, 1.0]))
    assert out.item() == 2.0
    out.backward()
    assert torch.equal(lp2.grad, _t([-0.5, -0.5]))


def _ppo_by_hand(lp, old, adv, mask, eps_low, eps_high, dual):
    """Plain loop: objective, gradient w.r.t. lp and the diagnostics over the selected entries."""
    obj, grad, n = [], [], 0
    outside = binds = duals = 0
    kl = ratio_sum = 0.0
    for a, b, A, keep in zip(lp, old, adv, mask):
        if not keep:
            grad.append(0.0)
            continue
        n += 1
        r = math.exp(a - b)
        unclipped, clipped = r * A, min(max(r, 1 - eps_low), 1 + eps_high) * A
        o = min(unclipped, clipped)
        g = r * A if unclipped <= clipped else 0.0
        bound = (A > 0 and r > 1 + eps_high) or (A < 0 and r < 1 - eps_low)
        if dual is not None and A < 0 and o < dual * A:
            o, g = dual * A, 0.0
            duals += 1
        obj.append(o)
        grad.append(g)
        outside += r > 1 + eps_high or r < 1 - eps_low
        binds += bound
        kl += (r - 1) - (a - b)
        ratio_sum += r
    info = {"clip_fraction": outside / n, "clipped_fraction": binds / n, "dual_clip_fraction": duals / n,
            "approx_kl": kl / n, "ratio_mean": ratio_sum / n}
    return -sum(obj) / n, [-x / n for x in grad], info


@pytest.mark.parametrize("dual", [None, 3.0])
def test_ppo_clip_loss_value_gradient_and_every_diagnostic_on_a_masked_batch(dual):
    # ratios: e^{0.5} (above 1+ε_high), e^{-0.5} (below 1-ε_low), e^{0.05} (inside), e^{2}
    # with Â < 0 (ρÂ far below c·Â: the dual clip binds), a NaN entry masked out, e^{0.3}
    # with Â < 0, and an entry masked out
    lp = [0.5, -0.5, 0.05, 2.0, float("nan"), 0.3, 0.1]
    old = [0.0, 0.0, 0.0, 0.0, float("nan"), 0.0, 0.0]
    adv = [1.0, -2.0, 3.0, -1.5, float("nan"), -1.0, 2.0]
    mask = [True, True, True, True, False, True, False]
    eps_low, eps_high = 0.2, 0.28
    lpt = _t(lp).requires_grad_()
    loss, info = ppo_clip_loss(lpt, _t(old), _t(adv), clip_eps=eps_low, clip_eps_high=eps_high,
                               dual_clip=dual, mask=torch.tensor(mask))
    want, grad, want_info = _ppo_by_hand(lp, old, adv, mask, eps_low, eps_high, dual)
    assert loss.item() == pytest.approx(want, abs=1e-14)
    loss.backward()
    assert torch.allclose(lpt.grad, _t(grad), atol=1e-14, rtol=0), (lpt.grad, grad)
    for key, value in want_info.items():  # over the diagnostics
        assert info[key].item() == pytest.approx(value, abs=1e-6), key
        assert not info[key].requires_grad
    assert want_info["dual_clip_fraction"] == (0.2 if dual else 0.0)


def test_ppo_clip_boundaries_are_not_clipped_and_defaults_are_symmetric():
    # exactly at the clip edges the unclipped branch is active (ρ ∈ [1 − ε, 1 + ε])
    lp = torch.log(_t([1.25, 0.75])).requires_grad_()
    loss, info = ppo_clip_loss(lp, _t([0.0, 0.0]), _t([1.0, -1.0]), clip_eps=0.25)
    assert info["clip_fraction"].item() == 0.0 and info["clipped_fraction"].item() == 0.0
    loss.backward()
    assert torch.allclose(lp.grad, _t([-1.25 / 2, 0.75 / 2]), atol=1e-15, rtol=0)
    # clip_eps_high defaults to clip_eps: ρ = 1.21 > 1.2 is clipped with the default 0.2
    _, info = ppo_clip_loss(torch.log(_t([1.21])), _t([0.0]), _t([1.0]))
    assert info["clipped_fraction"].item() == 1.0
    _, info = ppo_clip_loss(torch.log(_t([1.21])), _t([0.0]), _t([1.0]), clip_eps_high=0.3)
    assert info["clipped_fraction"].item() == 0.0
    # a zero advantage contributes a constant 0, also with an overflowing ratio
    lp = _t([200.0, 0.0]).requires_grad_()
    loss, info = ppo_clip_loss(lp, _t([0.0, 0.0]), _t([0.0, 1.0]))
    loss.backward()
    assert loss.item() == -0.5 and torch.equal(lp.grad, _t([0.0, -0.5]))
    # Â = 0: the clip never "binds" (no gradient is removed by it), whatever the ratio
    _, info = ppo_clip_loss(_t([200.0, -200.0, 0.0]), _t([0.0, 0.0, 0.0]), _t([0.0, 0.0, 1.0]))
    assert info["clipped_fraction"].item() == 0.0 and info["clip_fraction"].item() == pytest.approx(2 / 3)


@pytest.mark.parametrize(("call", "match"), [
    (lambda: policy_gradient_loss(torch.zeros(0, dtype=F64), torch.zeros(0, dtype=F64)), r"^log_probs is empty"),
    (lambda: policy_gradient_loss(_t([float("nan")]), _t([1.0])), r"^log_probs contains"),
    (lambda: policy_gradient_loss(_t([0.0]), _t([float("nan")])), r"^advantages contains"),
    (lambda: ppo_clip_loss(torch.zeros(0, dtype=F64), torch.zeros(0, dtype=F64), torch.zeros(0, dtype=F64)),
     r"^log_probs is empty"),
    (lambda: ppo_clip_loss(_t([0.0]), _t([float("inf")]), _t([1.0])), r"^old_log_probs contains"),
    (lambda: value_loss(torch.zeros(0, dtype=F64), torch.zeros(0, dtype=F64)), r"^values is empty"),
    (lambda: value_loss(_t([0.0]), _t([0.0]), old_values=_t([float("nan")])), r"^old_values contains"),
    (lambda: masked_mean(torch.tensor([1, 2]), None), r"^x must"),
])
def test_bad_input_names_its_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"clip_eps": 1.0}, r"^clip_eps must be < 1"), ({"clip_eps": 0.0}, r"^clip_eps must be > 0"),
    ({"dual_clip": 1.0}, r"^dual_clip must be > 1"), ({"dual_clip": 0.5}, r"^dual_clip must be > 1"),
    ({"dual_clip": -1.0}, r"^dual_clip must be > 0"),
    ({"clip_eps_high": 0.0}, r"^clip_eps_high must be > 0"),
])
def test_ppo_clip_refuses_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ppo_clip_loss(_t([0.0]), _t([0.0]), _t([1.0]), **kwargs)


def test_ppo_dual_clip_just_above_one_is_accepted():
    loss, info = ppo_clip_loss(_t([-3.0]), _t([0.0]), _t([-1.0]), dual_clip=1.01)
    assert info["dual_clip_fraction"].item() == 0.0  # ρ = e^{-3}: clip(ρ)Â = −0.8 > −1.01
    assert loss.item() == pytest.approx(0.8, abs=1e-15)


@pytest.mark.parametrize("masked", [False, True])
def test_value_loss_clipped_by_hand(masked):
    v = [1.0, 2.0, -1.0, float("nan") if masked else 0.5]
    old = [0.0, 2.5, -1.2, float("nan") if masked else 0.0]
    ret = [3.0, 0.0, -1.0, float("nan") if masked else 1.0]
    mask = [True, True, True, not masked]
    eps = 0.3
    vt = _t(v).requires_grad_()
    loss = value_loss(vt, _t(ret), old_values=_t(old), clip_eps=eps,
                      mask=torch.tensor(mask) if masked else None)
    terms, grads = [], []
    for x, o, r, keep in zip(v, old, ret, mask):
        if not keep:
            grads.append(0.0)
            continue
        vc = o + min(max(x - o, -eps), eps)
        a, b = (x - r) ** 2, (vc - r) ** 2
        terms.append(max(a, b))
        # gradient of ½ max(a, b): the unclipped branch when it is the larger one, else the
        # clipped branch's (zero where the clip binds)
        if a >= b:
            grads.append(x - r)
        else:
            grads.append((vc - r) if abs(x - o) < eps else 0.0)
    n = len(terms)
    assert loss.item() == pytest.approx(0.5 * sum(terms) / n, abs=1e-14)
    loss.backward()
    assert torch.allclose(vt.grad, _t(grads) / n, atol=1e-14, rtol=0), (vt.grad, grads)
    # unclipped: ½ mean (V − R)² over the selected entries
    plain = value_loss(_t(v), _t(ret), mask=torch.tensor(mask) if masked else None)
    sel = [(x - r) ** 2 for x, r, keep in zip(v, ret, mask) if keep]
    assert plain.item() == pytest.approx(0.5 * sum(sel) / len(sel), abs=1e-14)


def test_value_loss_needs_old_values_with_clip_eps_and_a_positive_eps():
    with pytest.raises(ValueError, match="old_values"):
        value_loss(_t([1.0]), _t([0.0]), clip_eps=0.2)
    with pytest.raises(ValueError, match=r"^clip_eps must be > 0"):
        value_loss(_t([1.0]), _t([0.0]), old_values=_t([0.0]), clip_eps=0.0)
    with pytest.raises(ValueError, match=r"^returns contains"):
        value_loss(_t([1.0]), _t([float("nan")]))
    with pytest.raises(ValueError, match=r"^old_values has shape"):
        value_loss(_t([1.0]), _t([0.0]), old_values=_t([0.0, 1.0]), clip_eps=0.2)
    # old_values without clip_eps is accepted and ignored
    assert value_loss(_t([1.0]), _t([0.0]), old_values=_t([5.0])).item() == 0.5


def test_dual_clip_at_exact_equality_does_not_bind():
    """ρ = c exactly with Â < 0: ρÂ = cÂ, the dual clip is not counted as binding (strict <, as
    for the other clips) and the gradient is that of the unclipped branch."""
    lp = torch.log(_t([2.0])).requires_grad_()
    assert math.exp(lp.item()) == 2.0
    loss, info = ppo_clip_loss(lp, _t([0.0]), _t([-1.0]), dual_clip=2.0)
    loss.backward()
    assert info["dual_clip_fraction"].item() == 0.0 and loss.item() == 2.0
    assert lp.grad.item() == pytest.approx(2.0, abs=1e-15)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_ppo_diagnostics_are_float32_and_accurate_for_half_inputs(dtype):
    lr = torch.tensor([0.01, -0.02, 0.015, 0.0], dtype=dtype)
    zero = torch.zeros(4, dtype=dtype)
    _, info = ppo_clip_loss(lr, zero, torch.ones(4, dtype=dtype))
    for key, value in info.items():  # over the diagnostics
        assert value.dtype == torch.float32, key
    x = lr.double()
    want_kl = float((torch.expm1(x) - x).mean())
    assert info["approx_kl"].item() == pytest.approx(want_kl, rel=1e-4)
    # each ratio is exp of the half log-ratio, rounded to the input dtype; the mean is float32
    eps = torch.finfo(dtype).eps
    assert info["ratio_mean"].item() == pytest.approx(float(torch.exp(x).mean()), rel=eps)
