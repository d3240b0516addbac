"""Discounted returns and TD errors (pgmath.returns): hand-computed examples, flag types and bad
scalars / flags.

fast == reference on generated rollouts (every backend) and the returns summed by their
definition (γ = 0 included) are spec properties (pgmath.specs.returns), run by
tests/test_specs.py."""

from __future__ import annotations

import pytest
import torch

from pgmath import discounted_returns, td_errors
from pgmath.scan import numba_available

BACKENDS = ["torch"] + (["numba"] if numba_available() else [])


def test_returns_gamma_one_is_undiscounted_sum_to_episode_end():
    r = torch.arange(1.0, 7.0, dtype=torch.float64)  # 1..6
    term = torch.tensor([False, False, True, False, False, False])
    trunc = torch.zeros(6, dtype=torch.bool)
    out = discounted_returns(r, term, trunc, gamma=1.0)
    torch.testing.assert_close(out, torch.tensor([6.0, 5.0, 3.0, 15.0, 11.0, 6.0], dtype=torch.float64))


def test_returns_bootstrap_at_truncation_and_rollout_end():
    r = torch.tensor([1.0, 1.0, 1.0, 1.0], dtype=torch.float64)
    nv = torch.tensor([0.0, 10.0, 0.0, 20.0], dtype=torch.float64)
    term = torch.zeros(4, dtype=torch.bool)
    trunc = torch.tensor([False, True, False, False])
    out = discounted_returns(r, term, trunc, gamma=0.5, next_values=nv)
    # episode [0,1] cut after 1: G1 = 1 + .5*10 = 6, G0 = 1 + .5*6 = 4; rollout end: G3 = 1 + .5*20 = 11, G2 = 6.5
    torch.testing.assert_close(out, torch.tensor([4.0, 6.0, 6.5, 11.0], dtype=torch.float64))
    # without next_values the cut episodes bootstrap from 0
    out0 = discounted_returns(r, term, trunc, gamma=0.5)
    torch.testing.assert_close(out0, torch.tensor([1.5, 1.0, 1.5, 1.0], dtype=torch.float64))


def test_terminated_wins_over_truncated():
    r = torch.tensor([1.0, 1.0], dtype=torch.float64)
    both = torch.tensor([True, False])
    out = discounted_returns(r, both, both, gamma=0.9, next_values=torch.full((2,), 100.0, dtype=torch.float64))
    assert float(out[0]) == 1.0


def test_td_errors_by_hand():
    r = torch.tensor([1.0, 2.0], dtype=torch.float64)
    v = torch.tensor([0.5, 1.5], dtype=torch.float64)
    nv = torch.tensor([1.5, 3.0], dtype=torch.float64)
    term = torch.tensor([False, True])
    torch.testing.assert_close(td_errors(r, v, nv, term, gamma=0.9),
                               torch.tensor([1 + 0.9 * 1.5 - 0.5, 2 - 1.5], dtype=torch.float64))


def test_flags_accept_0_1_numbers():
    r = torch.ones(3, dtype=torch.float64)
    term_int = torch.tensor([0, 1, 0])
    term_f = torch.tensor([0.0, 1.0, 0.0])
    trunc = torch.zeros(3, dtype=torch.bool)
    a = discounted_returns(r, term_int, trunc, gamma=0.9)
    b = discounted_returns(r, term_f, trunc, gamma=0.9)
    c = discounted_returns(r, term_int.bool(), trunc, gamma=0.9)
    torch.testing.assert_close(a, c)
    torch.testing.assert_close(b, c)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"gamma": -0.1}, "gamma"),
        ({"gamma": 1.5}, "gamma"),
        ({"gamma": float("inf")}, "gamma"),
        ({"gamma": 0.9, "next_values": torch.zeros(5)}, "next_values"),
    ],
)
def test_returns_bad_scalars(kwargs, name):
    r = torch.zeros(4, 2)
    f = torch.zeros(4, 2, dtype=torch.bool)
    with pytest.raises(ValueError, match=name):
        discounted_returns(r, f, f, **kwargs)


def test_returns_bad_flags_and_values():
    r = torch.zeros(4, 2)
    f = torch.zeros(4, 2, dtype=torch.bool)
    with pytest.raises(ValueError, match="terminated"):
        discounted_returns(r, torch.full((4, 2), 2), f, gamma=0.9)
    with pytest.raises(ValueError, match="truncated"):
        discounted_returns(r, f, f.T, gamma=0.9)
    bad = r.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="rewards"):
        discounted_returns(bad, f, f, gamma=0.9)
    with pytest.raises(ValueError, match="rewards"):
        discounted_returns(torch.zeros(0), torch.zeros(0, dtype=torch.bool), torch.zeros(0, dtype=torch.bool), gamma=0.9)
    with pytest.raises(ValueError, match="values"):
        td_errors(r, torch.zeros(4, 3), r, f, gamma=0.9)
