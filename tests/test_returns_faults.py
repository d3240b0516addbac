"""Fault-catching tests for ``pgmath/returns.py`` (issue 14, mutation testing).

Discounted returns and TD errors on ``[T, B1, B2]`` rollouts with terminations, truncations and
the rollout's end, for every backend, against a plain Python loop per (b1, b2) column.
"""

from __future__ import annotations

import pytest
import torch

from pgmath.returns import discounted_returns, episode_stops, td_errors

F64 = torch.float64
T, B1, B2 = 7, 2, 3


def _rollout(seed=0):
    g = torch.Generator().manual_seed(seed)
    r = torch.randn(T, B1, B2, generator=g, dtype=F64)
    nv = torch.randn(T, B1, B2, generator=g, dtype=F64)
    v = torch.randn(T, B1, B2, generator=g, dtype=F64)
    term = torch.rand(T, B1, B2, generator=g) < 0.2
    trunc = (torch.rand(T, B1, B2, generator=g) < 0.2) & ~term
    return r, v, nv, term, trunc


def _returns_by_hand(r, nv, term, trunc, gamma, use_nv):
    out = torch.zeros_like(r)
    for i in range(B1):  # over the first batch axis
        for j in range(B2):  # over the second batch axis
            G = 0.0
            for t in reversed(range(T)):  # backward in time
                if term[t, i, j]:
                    G = r[t, i, j].item()
                elif trunc[t, i, j] or t == T - 1:
                    G = r[t, i, j].item() + (gamma * nv[t, i, j].item() if use_nv else 0.0)
                else:
                    G = r[t, i, j].item() + gamma * G
                out[t, i, j] = G
    return out


@pytest.mark.parametrize("backend", ["torch", "numba", "reference", "auto"])
@pytest.mark.parametrize("use_nv", [False, True])
@pytest.mark.parametrize("gamma", [0.9, 1.0, 0.0])
def test_discounted_returns_by_hand(backend, use_nv, gamma):
    r, _, nv, term, trunc = _rollout()
    out = discounted_returns(r, term, trunc, gamma=gamma, next_values=nv if use_nv else None,
                             backend=backend)
    want = _returns_by_hand(r, nv, term, trunc, gamma, use_nv)
    assert out.shape == r.shape and out.dtype == F64
    torch.testing.assert_close(out, want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_discounted_returns_keep_the_input_dtype(dtype):
    r, _, nv, term, trunc = _rollout()
    out = discounted_returns(r.to(dtype), term, trunc, gamma=0.9, next_values=nv.to(dtype), backend="torch")
    assert out.dtype == dtype
    want = _returns_by_hand(r.to(dtype).double(), nv.to(dtype).double(), term, trunc, 0.9, True)
    tol = {torch.float32: 1e-5, torch.float16: 1e-2, torch.bfloat16: 5e-2}[dtype]
    torch.testing.assert_close(out.double(), want, rtol=tol, atol=tol)


def test_episode_stops_marks_ends_and_the_last_step():
    term = torch.tensor([True, False, False, False])
    trunc = torch.tensor([False, False, True, False])
    assert torch.equal(episode_stops(term.clone(), trunc.clone()), torch.tensor([True, False, True, True]))


def test_td_errors_by_hand():
    r, v, nv, term, _ = _rollout(1)
    out = td_errors(r, v, nv, term, gamma=0.8)
    want = r + 0.8 * (~term).to(F64) * nv - v
    torch.testing.assert_close(out, want, rtol=0, atol=1e-15)
    # truncation does not enter
    for i in range(B1):  # over the first batch axis
        for j in range(B2):  # over the second batch axis
            for t in range(T):  # over time
                d = r[t, i, j].item() + (0.0 if term[t, i, j] else 0.8 * nv[t, i, j].item()) - v[t, i, j].item()
                assert out[t, i, j].item() == pytest.approx(d, abs=1e-14)
    with pytest.raises(ValueError, match=r"^gamma"):
        td_errors(r, v, nv, term, gamma=1.1)


@pytest.mark.parametrize("backend", ["torch", "numba", "reference"])
def test_discounted_returns_refuse_bad_input(backend):
    r, _, nv, term, trunc = _rollout()
    with pytest.raises(ValueError, match=r"^gamma"):
        discounted_returns(r, term, trunc, gamma=-0.1, backend=backend)
    bad = r.clone()
    bad[2, 0, 1] = float("nan")
    with pytest.raises(ValueError, match="rewards"):
        discounted_returns(bad, term, trunc, gamma=0.9, backend=backend)
    bad_nv = nv.clone()
    bad_nv[1, 1, 1] = float("inf")
    with pytest.raises(ValueError, match="next_values"):
        discounted_returns(r, term, trunc, gamma=0.9, next_values=bad_nv, backend=backend)
    with pytest.raises(ValueError, match="truncated"):
        discounted_returns(r, term, trunc[:-1], gamma=0.9, backend=backend)


@pytest.mark.parametrize("use_nv", [False, True])
def test_half_precision_returns_are_accumulated_in_float32(use_nv):
    """2000 rewards of 0.1 in float16, γ = 1: accumulated in float16 the sum stalls (spacing 0.125
    above 128); in float32 it is 2000 · 0.0999755859375 (float16's 0.1), rounded once."""
    T = 2000
    r = torch.full((T, 1), 0.1, dtype=torch.float16)
    f = torch.zeros(T, 1, dtype=torch.bool)
    nv = torch.zeros(T, 1, dtype=torch.float16) if use_nv else None
    out = discounted_returns(r, f, f, gamma=1.0, next_values=nv, backend="torch")
    assert out.dtype == torch.float16
    assert out[0, 0].item() == pytest.approx(T * 0.0999755859375, rel=1e-3)


def test_reference_names_gamma():
    from pgmath.returns import discounted_returns_reference

    r, _, _, term, trunc = _rollout()
    with pytest.raises(ValueError, match=r"^gamma"):
        discounted_returns_reference(r, term, trunc, gamma=1.5)
