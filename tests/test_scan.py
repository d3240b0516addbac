"""The generic reverse scan yₜ = xₜ + cₜ yₜ₊₁: every backend against the reference loop."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal
import torch
from hypothesis import given
from hypothesis import strategies as st

from pgmath import discounted_cumsum, discounted_cumsum_reference
from pgmath.scan import block_size, numba_available

BACKENDS = ["torch"] + (["numba"] if numba_available() else [])


@given(
    T=st.integers(1, 700),
    n=st.integers(1, 5),
    seed=st.integers(0, 10_000),
    zero_rate=st.sampled_from([0.0, 0.05, 0.5]),
)
@pytest.mark.parametrize("backend", BACKENDS)
def test_scan_matches_reference(backend, T, n, seed, zero_rate):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(T, n, dtype=torch.float64, generator=g)
    c = torch.rand(T, n, dtype=torch.float64, generator=g) * 1.2  # also c > 1 (growth)
    c = torch.where(torch.rand(T, n, generator=g) < zero_rate, torch.zeros_like(c), c)
    ref = discounted_cumsum_reference(x, c)
    out = discounted_cumsum(x, c, backend=backend)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)


def test_scan_is_lfilter_for_constant_discount():
    """With cₜ = γ everywhere the scan is scipy's discounted-cumsum filter (the known trick)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=513)
    gamma = 0.97
    want = scipy.signal.lfilter([1.0], [1.0, -gamma], x[::-1])[::-1]
    for backend in BACKENDS:
        out = discounted_cumsum(torch.from_numpy(x.copy()), torch.full((513,), gamma, dtype=torch.float64), backend=backend)
        np.testing.assert_allclose(out.numpy(), want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_scan_low_precision_keeps_dtype(dtype):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(300, 3, generator=g)
    c = torch.full((300, 3), 0.9)
    ref = discounted_cumsum_reference(x.double(), c.double())
    out = discounted_cumsum(x.to(dtype), c.to(dtype))
    assert out.dtype == dtype
    tol = {torch.float32: 1e-5, torch.float16: 2e-2, torch.bfloat16: 1e-1}[dtype]
    torch.testing.assert_close(out.double(), ref, rtol=tol, atol=tol)


def test_scan_torch_path_is_differentiable():
    x = torch.randn(100, 2, dtype=torch.float64, requires_grad=True,
                    generator=torch.Generator().manual_seed(0))
    c = torch.full((100, 2), 0.8, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: discounted_cumsum(x, c), (x,))


def test_block_scan_uses_fewer_steps_than_T():
    assert block_size(100_000) < 400
    assert block_size(10) == 8


def test_numba_backend_refuses_autograd():
    if not numba_available():
        pytest.skip("numba not installed")
    x = torch.randn(10, requires_grad=True, generator=torch.Generator().manual_seed(1))
    with pytest.raises(ValueError, match="numba"):
        discounted_cumsum(x, torch.ones(10), backend="numba")


def test_scan_bad_input():
    with pytest.raises(ValueError, match="discounts"):
        discounted_cumsum(torch.zeros(4, 2), torch.zeros(4))
    with pytest.raises(ValueError, match="x"):
        discounted_cumsum(torch.zeros(0, 2), torch.zeros(0, 2))
    with pytest.raises(ValueError, match="backend"):
        discounted_cumsum(torch.zeros(3), torch.zeros(3), backend="cuda-magic")


def test_scan_on_device(device):
    x = torch.randn(257, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2)).to(device)
    c = torch.full_like(x, 0.9)
    out = discounted_cumsum(x, c)
    assert out.device == x.device
    torch.testing.assert_close(out.cpu(), discounted_cumsum_reference(x.cpu(), c.cpu()))


def test_numba_kernels_leave_torch_thread_count_alone():
    """numba's OpenMP layer must not reset torch's thread count (it slowed torch code 5–50x)."""
    if not numba_available():
        pytest.skip("numba not installed")
    import pgmath

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        x = torch.randn(50, 300, generator=torch.Generator().manual_seed(3))
        discounted_cumsum(x, torch.full_like(x, 0.9), backend="numba")
        f = torch.zeros(50, 300, dtype=torch.bool)
        pgmath.gae(x, x, x, f, f, gamma=0.9, lam=0.9, backend="numba")
        pgmath.discounted_returns(x, f, f, gamma=0.9, backend="numba")
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
