"""Fault-catching tests for ``pgmath/distributions.py`` (issue 14, mutation testing).

Every other test uses ``[B, A]`` inputs; the API is ``[*B, A]``: a reduction over the wrong axis,
a mask applied to the wrong entries or a Gaussian summed over a batch axis is caught here, on
``[2, 3, A]`` inputs, against plain Python loops over the entries.
"""

from __future__ import annotations

import math

import pytest
import torch

from pgmath.distributions import (
    categorical_entropy,
    categorical_log_prob,
    gaussian_entropy,
    gaussian_log_prob,
)

F64 = torch.float64


def _logits(shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return 3.0 * torch.randn(*shape, generator=g, dtype=F64)


def _row_log_softmax(row, allowed):
    m = max(z for z, ok in zip(row, allowed) if ok)
    lse = m + math.log(sum(math.exp(z - m) for z, ok in zip(row, allowed) if ok))
    return [z - lse if ok else -math.inf for z, ok in zip(row, allowed)]


def _mask(shape, seed=1):
    g = torch.Generator().manual_seed(seed)
    m = torch.rand(*shape, generator=g) < 0.6
    m[..., 1] = True  # every row allows an action
    return m


@pytest.mark.parametrize("masked", [False, True])
def test_categorical_log_prob_and_entropy_on_a_3d_batch_by_hand(masked):
    z = _logits((2, 3, 4))
    m = _mask((2, 3, 4)) if masked else None
    g = torch.Generator().manual_seed(5)
    a = torch.randint(0, 4, (2, 3), generator=g)
    if masked:
        a = torch.where(m.gather(-1, a.unsqueeze(-1)).squeeze(-1), a, torch.ones_like(a))
    lp = categorical_log_prob(z, a, m)
    ent = categorical_entropy(z, m)
    assert lp.shape == (2, 3) and ent.shape == (2, 3)
    for i in range(2):  # over the outer batch axis
        for j in range(3):  # over the inner batch axis
            allowed = m[i, j].tolist() if masked else [True] * 4
            ls = _row_log_softmax(z[i, j].tolist(), allowed)
            assert lp[i, j].item() == pytest.approx(ls[int(a[i, j])], abs=1e-13)
            h = -sum(math.exp(x) * x for x in ls if x > -math.inf)
            assert ent[i, j].item() == pytest.approx(h, abs=1e-13)


def test_masked_entropy_gradient_is_finite_and_ignores_masked_logits():
    z = _logits((2, 3, 4)).requires_grad_()
    m = _mask((2, 3, 4))
    z_nan = z.detach().clone()
    z_nan[~m] = float("nan")  # masked logits may hold anything
    assert torch.allclose(categorical_entropy(z_nan, m), categorical_entropy(z.detach(), m), atol=0, rtol=0)
    categorical_entropy(z, m).sum().backward()
    assert torch.isfinite(z.grad).all()
    assert (z.grad[~m] == 0).all()
    # ∂H/∂z_b = −π_b (log π_b + H) on the allowed actions
    with torch.no_grad():
        logp = torch.log_softmax(z.masked_fill(~m, -math.inf), -1)
        p = logp.exp()
        h = -(p * torch.where(m, logp, torch.zeros_like(logp))).sum(-1, keepdim=True)
        want = torch.where(m, -p * (logp + h), torch.zeros_like(p))
    assert torch.allclose(z.grad, want, atol=1e-12, rtol=0)


def test_categorical_log_prob_is_stable_for_extreme_logits_and_refuses_bad_actions():
    z = torch.tensor([[1e4, 0.0, -1e4]], dtype=F64)
    assert categorical_log_prob(z, torch.tensor([0])).item() == 0.0
    assert categorical_log_prob(z, torch.tensor([1])).item() == -1e4
    assert categorical_entropy(z).item() == pytest.approx(0.0, abs=1e-300)
    with pytest.raises(ValueError, match="actions"):
        categorical_log_prob(z, torch.tensor([3]))
    with pytest.raises(ValueError, match="actions"):
        categorical_log_prob(z, torch.tensor([-1]))
    assert categorical_log_prob(z, torch.tensor([2])).item() == pytest.approx(-2e4)
    with pytest.raises(ValueError, match="mask"):
        categorical_log_prob(z, torch.tensor([0]), torch.tensor([[False, True, True]]))
    with pytest.raises(ValueError, match="mask"):
        categorical_entropy(z, torch.tensor([[False, False, False]]))


@pytest.mark.parametrize("state_independent", [False, True])
def test_gaussian_log_prob_and_entropy_on_a_3d_batch_by_hand(state_independent):
    g = torch.Generator().manual_seed(3)
    mean = torch.randn(2, 3, 2, generator=g, dtype=F64)
    log_std = 0.5 * torch.randn(*((2,) if state_independent else (2, 3, 2)), generator=g, dtype=F64)
    a = torch.randn(2, 3, 2, generator=g, dtype=F64)
    lp = gaussian_log_prob(mean, log_std, a)
    assert lp.shape == (2, 3)
    full = log_std.expand(2, 3, 2)
    for i in range(2):  # over the outer batch axis
        for j in range(3):  # over the inner batch axis
            want = 0.0
            for d in range(2):  # over the action dimensions
                s = math.exp(full[i, j, d].item())
                x = (a[i, j, d].item() - mean[i, j, d].item()) / s
                want += -0.5 * x * x - math.log(s) - 0.5 * math.log(2 * math.pi)
            assert lp[i, j].item() == pytest.approx(want, abs=1e-12)
    ent = gaussian_entropy(full)
    assert ent.shape == (2, 3)
    for i in range(2):  # over the outer batch axis
        for j in range(3):  # over the inner batch axis
            want = sum(full[i, j, d].item() + 0.5 * math.log(2 * math.pi * math.e) for d in range(2))
            assert ent[i, j].item() == pytest.approx(want, abs=1e-12)


def test_gaussian_shapes_are_refused():
    mean = torch.zeros(3, 2, dtype=F64)
    with pytest.raises(ValueError, match="log_std"):
        gaussian_log_prob(mean, torch.zeros(3, dtype=F64), mean)
    with pytest.raises(ValueError, match="actions"):
        gaussian_log_prob(mean, torch.zeros(2, dtype=F64), torch.zeros(2, 2, dtype=F64))
    with pytest.raises(ValueError, match="mean"):
        gaussian_log_prob(torch.tensor(0.0, dtype=F64), torch.tensor(0.0, dtype=F64), torch.tensor(0.0, dtype=F64))
    with pytest.raises(ValueError, match="log_std"):
        gaussian_entropy(torch.tensor(0.0, dtype=F64))


def test_unbatched_logits_and_a_row_without_allowed_actions():
    z = torch.tensor([0.5, -1.0, 2.0], dtype=F64)  # [A]: *B = ()
    ls = _row_log_softmax(z.tolist(), [True] * 3)
    assert categorical_log_prob(z, torch.tensor(2)).item() == pytest.approx(ls[2], abs=1e-14)
    assert categorical_entropy(z).item() == pytest.approx(-sum(math.exp(x) * x for x in ls), abs=1e-14)
    with pytest.raises(ValueError, match=r"^logits must have a non-empty last"):
        categorical_entropy(torch.zeros(2, 3, 0, dtype=F64))
    with pytest.raises(ValueError, match=r"^logits must have a non-empty last"):
        categorical_entropy(torch.tensor(0.0, dtype=F64))
    mask = torch.tensor([[True, False, True], [False, False, False]])
    with pytest.raises(ValueError, match="mask allows no action"):
        categorical_entropy(torch.zeros(2, 3, dtype=F64), mask)


@pytest.mark.parametrize(("call", "match"), [
    (lambda: categorical_entropy(torch.zeros(2, 3, dtype=torch.long)), r"^logits must"),
    (lambda: categorical_entropy(torch.tensor([[0.0, float("nan")]], dtype=F64)), r"^logits contains"),
    (lambda: categorical_entropy(torch.tensor([[0.0, float("nan")]], dtype=F64), torch.tensor([[True, True]])),
     r"^logits contains"),
    (lambda: categorical_entropy(torch.zeros(2, 3, dtype=F64), torch.ones(2, 2, dtype=torch.bool)), r"^mask"),
    (lambda: gaussian_log_prob(torch.zeros(2, dtype=torch.long), torch.zeros(2, dtype=F64), torch.zeros(2, dtype=F64)),
     r"^mean must"),
    (lambda: gaussian_log_prob(torch.zeros(2, dtype=F64), torch.zeros(2, dtype=torch.long), torch.zeros(2, dtype=F64)),
     r"^log_std must"),
    (lambda: gaussian_log_prob(torch.zeros(2, dtype=F64), torch.zeros(2, dtype=F64), torch.zeros(2, dtype=torch.long)),
     r"^actions must"),
    (lambda: gaussian_entropy(torch.zeros(2, dtype=torch.long)), r"^log_std must"),
])
def test_bad_input_names_its_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()
