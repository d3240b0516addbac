"""Fault-catching tests for ``pgmath/advantages.py`` (issue 14, mutation testing).

GAE and λ-returns on ``[T, B1, B2]`` rollouts with terminations, truncations and the rollout's
end, for every backend, against a plain Python loop per column; ``normalize_advantages`` by
hand (masked and not, unbiased std, ε) and its refused arguments.
"""

from __future__ import annotations

import math

import pytest
import torch

from pgmath.advantages import gae, lambda_returns, normalize_advantages

F64 = torch.float64
T, B1, B2 = 7, 2, 3


def _rollout(seed=0):
    g = torch.Generator().manual_seed(seed)
    r = torch.randn(T, B1, B2, generator=g, dtype=F64)
    v = torch.randn(T, B1, B2, generator=g, dtype=F64)
    nv = torch.randn(T, B1, B2, generator=g, dtype=F64)
    term = torch.rand(T, B1, B2, generator=g) < 0.2
    trunc = (torch.rand(T, B1, B2, generator=g) < 0.2) & ~term
    return r, v, nv, term, trunc


def _gae_by_hand(r, v, nv, term, trunc, gamma, lam):
    out = torch.zeros_like(r)
    for i in range(B1):  # over the first batch axis
        for j in range(B2):  # over the second batch axis
            a = 0.0
            for t in reversed(range(T)):  # backward in time
                delta = r[t, i, j].item() + (0.0 if term[t, i, j] else gamma * nv[t, i, j].item()) - v[t, i, j].item()
                ends = term[t, i, j] or trunc[t, i, j] or t == T - 1
                a = delta + (0.0 if ends else gamma * lam * a)
                out[t, i, j] = a
    return out


@pytest.mark.parametrize("backend", ["torch", "numba", "reference", "auto"])
@pytest.mark.parametrize(("gamma", "lam"), [(0.9, 0.8), (1.0, 1.0), (0.99, 0.0), (0.5, 0.95)])
def test_gae_and_lambda_returns_by_hand(backend, gamma, lam):
    r, v, nv, term, trunc = _rollout()
    adv = gae(r, v, nv, term, trunc, gamma=gamma, lam=lam, backend=backend)
    want = _gae_by_hand(r, v, nv, term, trunc, gamma, lam)
    assert adv.shape == r.shape and adv.dtype == F64
    torch.testing.assert_close(adv, want, rtol=0, atol=1e-12)
    lr = lambda_returns(r, v, nv, term, trunc, gamma=gamma, lam=lam, backend=backend)
    torch.testing.assert_close(lr, want + v, rtol=0, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_gae_keeps_the_input_dtype(dtype):
    r, v, nv, term, trunc = _rollout()
    out = gae(r.to(dtype), v.to(dtype), nv.to(dtype), term, trunc, gamma=0.9, lam=0.8, backend="torch")
    assert out.dtype == dtype
    want = _gae_by_hand(*(x.to(dtype).double() for x in (r, v, nv)), term, trunc, 0.9, 0.8)
    tol = {torch.float32: 1e-5, torch.float16: 2e-2, torch.bfloat16: 1e-1}[dtype]
    torch.testing.assert_close(out.double(), want, rtol=tol, atol=tol)


@pytest.mark.parametrize("backend", ["torch", "numba", "reference"])
def test_gae_refuses_bad_input(backend):
    r, v, nv, term, trunc = _rollout()
    with pytest.raises(ValueError, match="values is required"):
        gae(r, None, nv, term, trunc, gamma=0.9, lam=0.9, backend=backend)
    with pytest.raises(ValueError, match="next_values is required"):
        gae(r, v, None, term, trunc, gamma=0.9, lam=0.9, backend=backend)
    with pytest.raises(ValueError, match="gamma"):
        gae(r, v, nv, term, trunc, gamma=2.0, lam=0.9, backend=backend)
    with pytest.raises(ValueError, match="lam"):
        gae(r, v, nv, term, trunc, gamma=0.9, lam=-1.0, backend=backend)
    bad = v.clone()
    bad[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="values"):
        gae(r, bad, nv, term, trunc, gamma=0.9, lam=0.9, backend=backend)


def _normalize_by_hand(x, mask, eps):
    sel = [a for a, keep in zip(x, mask) if keep]
    mean = sum(sel) / len(sel)
    std = math.sqrt(sum((a - mean) ** 2 for a in sel) / (len(sel) - 1))
    return [(a - mean) / (std + eps) if keep else 0.0 for a, keep in zip(x, mask)]


@pytest.mark.parametrize("eps", [1e-8, 0.5, 0.0])
def test_normalize_advantages_by_hand(eps):
    x = torch.tensor([[1.0, -2.0, 0.5], [3.0, float("nan"), 0.25]], dtype=F64)
    mask = torch.tensor([[True, True, False], [True, False, True]])
    out = normalize_advantages(x, mask, eps=eps)
    want = _normalize_by_hand(x.flatten().tolist(), mask.flatten().tolist(), eps)
    assert out.shape == x.shape and out.dtype == F64
    for o, w in zip(out.flatten().tolist(), want):  # over entries
        assert o == pytest.approx(w, abs=1e-14)
    full = torch.tensor([[1.0, -2.0, 0.5], [3.0, 7.0, 0.25]], dtype=F64)
    out = normalize_advantages(full, eps=eps)
    want = _normalize_by_hand(full.flatten().tolist(), [True] * 6, eps)
    for o, w in zip(out.flatten().tolist(), want):  # over entries
        assert o == pytest.approx(w, abs=1e-14)
    assert torch.equal(normalize_advantages(full), normalize_advantages(full, None, 1e-8))


def test_normalize_advantages_refuses_bad_input():
    x = torch.tensor([1.0, 2.0, 3.0], dtype=F64)
    with pytest.raises(ValueError, match="eps"):
        normalize_advantages(x, eps=-1e-3)
    with pytest.raises(ValueError, match="at least 2"):
        normalize_advantages(x[:1])
    with pytest.raises(ValueError, match="at least 2 entries to normalize, got 1"):
        normalize_advantages(x, torch.tensor([False, True, False]))
    with pytest.raises(ValueError, match="adv"):
        normalize_advantages(torch.tensor([1.0, float("nan")], dtype=F64))
    # two selected entries are enough
    out = normalize_advantages(x, torch.tensor([True, False, True]), eps=0.0)
    torch.testing.assert_close(out, torch.tensor([-1 / math.sqrt(2), 0.0, 1 / math.sqrt(2)], dtype=F64))


def _zeros_rollout(T=4, B=2):
    z = torch.zeros(T, B, dtype=torch.float64)
    f = torch.zeros(T, B, dtype=torch.bool)
    return z, f


@pytest.mark.parametrize(("gamma", "lam", "name"), [(1.5, 0.9, "gamma"), (0.9, -0.1, "lam")])
def test_gae_names_gamma_and_lam_when_out_of_range(gamma, lam, name):
    z, f = _zeros_rollout()
    with pytest.raises(ValueError, match=rf"^{name} must lie in \[0, 1\]"):
        gae(z, z, z, f, f, gamma=gamma, lam=lam)


def test_normalize_advantages_names_adv_and_mask():
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    with pytest.raises(ValueError, match=r"^adv "):
        normalize_advantages(torch.tensor(1.0, dtype=torch.float64))  # 0-dim: not time-major
    with pytest.raises(ValueError, match=r"^adv "):
        normalize_advantages(torch.ones(5, 3, dtype=torch.int64))  # not a float tensor
    nan = x.clone()
    nan[2, 1] = float("nan")
    with pytest.raises(ValueError, match=r"^adv contains"):
        normalize_advantages(nan)
    m = torch.ones(5, 3, dtype=torch.bool)
    with pytest.raises(ValueError, match=r"^adv contains"):
        normalize_advantages(nan, m)  # NaN at a selected entry
    m[2, 1] = False
    assert torch.isfinite(normalize_advantages(nan, m)).all()  # … but not at a masked-out one
    with pytest.raises(ValueError, match=r"^mask "):
        normalize_advantages(x, torch.ones(4, 3, dtype=torch.bool))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_normalize_advantages_returns_the_input_dtype(dtype):
    x = torch.randn(6, 4, generator=torch.Generator().manual_seed(1)).to(dtype)
    assert normalize_advantages(x).dtype == dtype
    assert normalize_advantages(x, torch.ones(6, 4, dtype=torch.bool)).dtype == dtype
