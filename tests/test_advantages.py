"""GAE, λ-returns and advantage normalisation (pgmath.advantages): hand-computed examples, low
precision dtypes, every backend on T = 100 000 and on non-finite input, gradients and devices.

fast == reference on generated rollouts (every backend), λ = 0 → δ, λ = 1 → G − V, the λ-return
recursion, the normalisation's moments and definition, and the bad inputs are spec properties
(pgmath.specs.advantages), run by tests/test_specs.py."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given

from pgmath import gae, gae_reference, normalize_advantages
from pgmath.rollouts import random_rollout
from pgmath.scan import numba_available
from pgmath.testing.strategies import rollouts

BACKENDS = ["torch"] + (["numba"] if numba_available() else [])


@given(ro=rollouts(dtypes=(torch.float32, torch.float16, torch.bfloat16)))
def test_gae_low_precision_dtypes(ro):
    args = (ro.rewards, ro.values, ro.next_values, ro.terminated, ro.truncated)
    out = gae(*args, gamma=ro.gamma, lam=ro.lam)
    assert out.dtype == ro.rewards.dtype
    ref = gae_reference(*(x.double() for x in args[:3]), ro.terminated, ro.truncated, gamma=ro.gamma, lam=ro.lam)
    tol = {torch.float32: 1e-4, torch.float16: 5e-2, torch.bfloat16: 3e-1}[ro.rewards.dtype]
    torch.testing.assert_close(out.double(), ref, rtol=tol, atol=tol * (1 + ref.abs().max().item()))


def test_gae_hand_computed():
    """A 4-step rollout by hand: episode terminates after step 1, truncated after step 2."""
    r = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64)
    v = torch.tensor([0.5, 0.25, 1.0, 2.0], dtype=torch.float64)
    nv = torch.tensor([0.25, 9.0, 7.0, 5.0], dtype=torch.float64)  # 9: ignored (terminal); 7: final obs
    term = torch.tensor([False, True, False, False])
    trunc = torch.tensor([False, False, True, False])
    g, lam = 0.5, 0.5
    d0 = 1 + g * 0.25 - 0.5  # 0.625
    d1 = 2 - 0.25  # 1.75 (terminal: no bootstrap)
    d2 = 3 + g * 7 - 1  # 5.5 (truncated: bootstrap from the real final observation)
    d3 = 4 + g * 5 - 2  # 4.5 (rollout end)
    want = torch.tensor([d0 + g * lam * d1, d1, d2, d3], dtype=torch.float64)
    for backend in ["reference", *BACKENDS]:
        torch.testing.assert_close(gae(r, v, nv, term, trunc, gamma=g, lam=lam, backend=backend), want)


@pytest.mark.parametrize("backend", BACKENDS)
def test_gae_long_sequence_no_overflow(backend):
    """T = 100 000 with γλ = 0.99·0.95 in float64, exact to 1e-10 (no (γλ)^-t rescaling)."""
    g = torch.Generator().manual_seed(3)
    ro = random_rollout(100_000, (), p_terminate=0.0, p_truncate=0.0, generator=g)
    ref = gae_reference(*ro, gamma=0.99, lam=0.95)
    torch.testing.assert_close(gae(*ro, gamma=0.99, lam=0.95, backend=backend), ref, rtol=0, atol=1e-10)


def test_gae_gradient_flows_through_torch_path():
    g = torch.Generator().manual_seed(4)
    ro = random_rollout(30, (2,), generator=g)
    v = ro.values.clone().requires_grad_(True)
    adv = gae(ro.rewards, v, ro.next_values, ro.terminated, ro.truncated, gamma=0.9, lam=0.8)
    adv.sum().backward()
    assert v.grad is not None and torch.isfinite(v.grad).all()


def test_gae_on_device(device):
    g = torch.Generator().manual_seed(5)
    ro = random_rollout(600, (3,), generator=g)
    out = gae(*(x.to(device) for x in ro), gamma=0.99, lam=0.95)
    assert out.device.type == torch.device(device).type
    torch.testing.assert_close(out.cpu(), gae_reference(*ro, gamma=0.99, lam=0.95))


# --- normalisation ----------------------------------------------------------------------------


def test_normalize_masked_ignores_masked_nan():
    x = torch.tensor([1.0, 2.0, float("nan"), 3.0], dtype=torch.float64)
    m = torch.tensor([True, True, False, True])
    y = normalize_advantages(x, m, eps=0.0)
    torch.testing.assert_close(y, torch.tensor([-1.0, 0.0, 0.0, 1.0], dtype=torch.float64))


@pytest.mark.parametrize("backend", ["reference", *BACKENDS])
@pytest.mark.parametrize("name", ["rewards", "values", "next_values"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_gae_non_finite_input_named_by_every_backend(backend, name, bad):
    """The fused numba kernel checks finiteness in its own pass; every path names the argument."""
    g = torch.Generator().manual_seed(6)
    ro = random_rollout(50, (70,), generator=g)._asdict()
    ro[name] = ro[name].clone()
    ro[name][17, 3] = bad
    with pytest.raises(ValueError, match=name):
        gae(*ro.values(), gamma=0.9, lam=0.9, backend=backend)
    if name != "values":
        with pytest.raises(ValueError, match=name):
            pgmath_returns(ro, backend)


def pgmath_returns(ro, backend):
    from pgmath import discounted_returns

    return discounted_returns(ro["rewards"], ro["terminated"], ro["truncated"], gamma=0.9,
                              next_values=ro["next_values"], backend=backend)
