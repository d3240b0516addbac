"""Tests that kill the faults mutation testing found unchecked in ``pgmath/mdp/tabular.py``
(``tools/mutation.py``, ``docs/mutation.md``): ``to()``/``with_gamma()`` losing the terminal
states or the dtype, the softmax's max shift taken over the wrong axis or added instead of
subtracted, and ``state_action_occupancy`` ignoring ``normalized``."""

from __future__ import annotations

import pytest
import torch

from pgmath.mdp import TabularMDP
from pgmath.mdp.canonical import short_corridor
from pgmath.mdp.tabular import softmax


def test_to_keeps_terminal_states_dtype_and_values():
    m = short_corridor()
    for moved in (m.to(), m.to(dtype=torch.float32), m.to(device="cpu")):
        assert torch.equal(moved.terminal, m.terminal)
        pi = torch.full((m.num_states, m.num_actions), 0.5, dtype=moved.dtype)
        torch.testing.assert_close(moved.state_values(pi).double(), m.state_values(pi.double()),
                                   rtol=1e-5, atol=1e-5)
    assert m.to(dtype=torch.float32).dtype == torch.float32
    assert m.to().dtype == m.dtype


def test_with_gamma_keeps_terminal_states_and_dtype():
    m = short_corridor().to(dtype=torch.float32)
    w = m.with_gamma(0.5)
    assert w.gamma == 0.5 and w.dtype == torch.float32 and torch.equal(w.terminal, m.terminal)


def test_softmax_shifts_by_each_row_maximum():
    # rows far apart: a shift by the global maximum (or + max) underflows/overflows a row
    x = torch.tensor([[1000.0, 999.0], [-1000.0, -1001.0]], dtype=torch.float64)
    want = torch.softmax(x, -1)
    torch.testing.assert_close(softmax(x), want)
    x3 = torch.tensor([[[800.0, 0.0, -5.0], [-900.0, -901.0, -899.0]]], dtype=torch.float64)
    torch.testing.assert_close(softmax(x3), torch.softmax(x3, -1))  # [*B, A], last axis


def test_policy_is_a_row_softmax_with_extreme_logits():
    m = short_corridor()
    logits = torch.tensor([[1000.0, 999.0], [-1000.0, -1001.0], [0.0, 0.0], [5.0, -5.0]],
                          dtype=torch.float64)
    torch.testing.assert_close(m.policy(logits), torch.softmax(logits, -1))


@pytest.mark.parametrize("normalized", [False, True])
def test_state_action_occupancy_respects_normalized(normalized):
    m = short_corridor().with_gamma(0.9)
    pi = torch.tensor([[0.3, 0.7]] * m.num_states, dtype=torch.float64)
    d = m.discounted_occupancy(pi, normalized=normalized)
    torch.testing.assert_close(m.state_action_occupancy(pi, normalized=normalized), d[:, None] * pi)
    if normalized:
        assert float(m.state_action_occupancy(pi, normalized=True).sum()) == pytest.approx(1.0)


def test_to_is_a_tabular_mdp():
    assert isinstance(short_corridor().to(), TabularMDP)


def _nine_action_mdp() -> TabularMDP:
    g = torch.Generator().manual_seed(0)
    S, A = 3, 9
    P = torch.rand(S, A, S, generator=g, dtype=torch.float64)
    P = P / P.sum(-1, keepdim=True)
    R = torch.randn(S, A, generator=g, dtype=torch.float64)
    return TabularMDP(P, R, 0.9, torch.full((S,), 1 / S, dtype=torch.float64))


def _policy_with_sum_error(mdp: TabularMDP, err: float) -> torch.Tensor:
    pi = torch.full((mdp.num_states, mdp.num_actions), 1 / mdp.num_actions, dtype=torch.float64)
    pi[:, 0] += err
    return pi.to(torch.float32)


def test_validate_policy_slack_is_that_of_the_given_dtype_times_root_num_actions():
    """float32 slack τ = √eps(float32) ≈ 3.5e-4, scaled by √A = 3: a row sum off by 2.5 τ is
    accepted, by 3.5 τ refused (catches the slack taken from the MDP's float64, divided by √A,
    or scaled by A/2 or A^1.5)."""
    mdp = _nine_action_mdp()
    tau = float(torch.finfo(torch.float32).eps) ** 0.5
    ok = mdp.validate_policy(_policy_with_sum_error(mdp, 2.5 * tau))
    assert ok.dtype == mdp.dtype  # cast to the MDP's dtype
    with pytest.raises(ValueError, match="pi must sum to 1"):
        mdp.validate_policy(_policy_with_sum_error(mdp, 3.5 * tau))
