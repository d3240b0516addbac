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


# --------------------------------------------------------------------------------------------
# issue 14, second pass: bad input names its argument, exact_policy_gradient's argument handling

F64 = torch.float64


def _tiny_parts():
    """A 3-state, 2-action MDP with state 2 terminal (P, R, mu0, terminal)."""
    P = torch.zeros(3, 2, 3, dtype=F64)
    P[0, 0, 1], P[0, 1, 0] = 1.0, 1.0
    P[1, 0, 2], P[1, 1, 0] = 1.0, 1.0
    P[2, :, 2] = 1.0
    R = torch.tensor([[1.0, 0.0], [2.0, -1.0], [0.0, 0.0]], dtype=F64)
    mu0 = torch.tensor([1.0, 0.0, 0.0], dtype=F64)
    terminal = torch.tensor([False, False, True])
    return P, R, mu0, terminal


def _bad(**changes):
    P, R, mu0, terminal = _tiny_parts()
    parts = {"P": P, "R": R, "gamma": 0.9, "mu0": mu0, "terminal": terminal}
    parts.update(changes)
    return parts


def _row_not_summing_to_one():
    P = _tiny_parts()[0].clone()
    P[0, 0, 1] = 0.9
    return P


@pytest.mark.parametrize(("changes", "match"), [
    ({"P": torch.zeros(0, 1, 0, dtype=F64)}, r"^P must have shape \[S, A, S\]"),
    ({"P": torch.zeros(1, 0, 1, dtype=F64)}, r"^P must have shape \[S, A, S\]"),
    ({"P": torch.ones(3, 2, dtype=F64)}, r"^P must have shape \[S, A, S\]"),
    ({"P": torch.ones(3, 2, 3, dtype=torch.bool)}, r"^P must hold real numbers"),
    ({"P": [["a"]]}, r"^P must be a tensor or an array"),
    ({"P": torch.full((3, 2, 3), float("nan"), dtype=F64)}, r"^P contains"),
    ({"P": _row_not_summing_to_one()},
     r"^P must sum to 1 over its last axis \(P\[s, a, :\] is the distribution of the next state\)"),
    ({"R": torch.ones(3, 2, dtype=torch.bool)}, r"^R must hold real numbers"),
    ({"R": torch.ones(2, 2, dtype=F64)}, r"^R must have shape"),
    ({"R": torch.full((3, 2), float("inf"), dtype=F64)}, r"^R contains"),
    ({"gamma": 1.5}, r"^gamma"),
    ({"mu0": torch.ones(3, dtype=torch.bool)}, r"^mu0 must hold real numbers"),
    ({"mu0": ["x", "y", "z"]}, r"^mu0 must be a tensor or an array"),
    ({"mu0": torch.tensor([float("nan"), 0.0, 0.0], dtype=F64)}, r"^mu0 contains"),
    ({"mu0": torch.tensor([0.5, 0.4, 0.0], dtype=F64)},
     r"^mu0 must sum to 1 over its last axis \(the initial-state distribution\)"),
    ({"mu0": torch.tensor([0.5, 0.0, 0.5], dtype=F64)}, r"^mu0 must put zero probability"),
    ({"terminal": torch.tensor([0, 0, 2])}, r"^terminal"),
    ({"terminal": [True, False]}, r"^terminal must have shape"),
    ({"terminal": [False, True, False]}, r"^terminal states must be absorbing"),
])
def test_bad_input_names_its_argument(changes, match):
    parts = _bad(**changes)
    with pytest.raises(ValueError, match=match):
        TabularMDP(parts["P"], parts["R"], parts["gamma"], parts["mu0"], parts["terminal"])


def test_default_terminal_is_none_of_the_states_on_the_mdps_device():
    P, R, mu0, _ = _tiny_parts()
    P = P.clone()
    P[2, :, :] = 0.0
    P[2, :, 0] = 1.0  # no terminal state now: state 2 returns to 0
    m = TabularMDP(P, R.clone().index_fill_(0, torch.tensor([2]), 0.0), 0.9, mu0)
    assert m.terminal.dtype == torch.bool and tuple(m.terminal.shape) == (3,)
    assert not m.terminal.any() and m.terminal.device == m.device
    assert m.device == P.device and m.to(dtype=torch.float32).terminal.dtype == torch.bool
    # array-likes are accepted (on the CPU) and give the same MDP
    P0, R0, _, _ = _tiny_parts()
    m2 = TabularMDP(P0.tolist(), R0.tolist(), 0.9, mu0.tolist(), [0, 0, 1])
    assert m2.device == torch.device("cpu") and torch.equal(m2.terminal, torch.tensor([False, False, True]))


def test_stuck_states_are_listed_in_the_gamma_one_error():
    P, R, mu0, terminal = _tiny_parts()
    m = TabularMDP(P, R, 1.0, mu0, terminal)
    pi = torch.tensor([[0.0, 1.0], [0.0, 1.0], [0.5, 0.5]], dtype=F64)  # 0 ↔ 0 and 1 → 0: never ends
    with pytest.raises(ValueError, match=r"from state\(s\) \[0, 1\] the policy never reaches"):
        m.state_values(pi)
    P2 = P.clone()
    P2[:, :, :] = 0.0
    P2[:, :, 2] = 1.0
    m_none = TabularMDP(P2[:2, :, :2].clone().fill_(0.5), R[:2], 1.0, mu0[:2])
    with pytest.raises(ValueError, match="no terminal states"):
        m_none.state_values(torch.full((2, 2), 0.5, dtype=F64))


def _linear_fn(features):
    def fn(params):
        theta = params if isinstance(params, torch.Tensor) else params[0]
        return torch.softmax(features @ theta, -1)
    return fn


def test_exact_policy_gradient_argument_handling():
    P, R, mu0, terminal = _tiny_parts()
    m = TabularMDP(P, R, 0.9, mu0, terminal)
    feats = torch.randn(3, 2, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    fn = _linear_fn(feats)
    theta = torch.tensor([0.3, -0.2], dtype=F64)
    # a parameter the policy does not use gets a zero gradient (not an error)
    unused = torch.tensor([1.0, 2.0, 3.0], dtype=F64)
    for method in ("theorem", "autograd"):  # over the two methods
        g, g_unused = m.exact_policy_gradient(fn, (theta, unused), method=method)
        torch.testing.assert_close(g, m.exact_policy_gradient(fn, theta, method=method))
        assert torch.equal(g_unused, torch.zeros(3, dtype=F64))
    # argument names in the errors
    with pytest.raises(ValueError, match=r"^params must"):
        m.exact_policy_gradient(fn, torch.tensor([1, 2]))
    with pytest.raises(ValueError, match=r"^params\[1\] must"):
        m.exact_policy_gradient(fn, (theta, torch.tensor([1, 2])))
    with pytest.raises(ValueError, match=r"^policy_fn\(params\) must"):
        m.exact_policy_gradient(lambda p: 2.0 * torch.softmax(feats @ p, -1), theta)
    with pytest.raises(ValueError, match=r"^logits must"):
        m.exact_policy_gradient([[0.0, 0.0]] * 3)
    with pytest.raises(ValueError, match=r"params must be None"):
        m.exact_policy_gradient(torch.zeros(3, 2, dtype=F64), theta)
    with pytest.raises(ValueError, match=r"params must be given"):
        m.exact_policy_gradient(fn)
    with pytest.raises(ValueError, match="method"):
        m.exact_policy_gradient(torch.zeros(3, 2, dtype=F64), method="Autograd")


def test_exact_policy_gradient_computes_in_the_mdps_dtype():
    P, R, mu0, terminal = _tiny_parts()
    m = TabularMDP(P, R, 0.9, mu0, terminal)
    logits32 = torch.tensor([[0.3, -0.1], [0.7, 0.2], [0.0, 0.0]], dtype=torch.float32)
    want = m.exact_policy_gradient(logits32.double())
    for method in ("theorem", "autograd"):  # over the two methods
        got = m.exact_policy_gradient(logits32, method=method)
        assert got.dtype == F64
        torch.testing.assert_close(got, want, rtol=0, atol=1e-13)


def test_array_likes_become_tables_of_the_requested_dtype():
    P, R, mu0, terminal = _tiny_parts()
    m = TabularMDP(P.tolist(), R.tolist(), 0.9, mu0.tolist(), terminal.tolist(), dtype=torch.float32)
    assert m.P.dtype == m.R.dtype == m.mu0.dtype == torch.float32


def test_one_action_rows_get_the_plain_slack():
    """A single-action row off by 1.2 τ is refused (the slack is τ · √max(1, A) = τ for A = 1)."""
    P = torch.zeros(2, 1, 2, dtype=F64)
    P[0, 0, 1] = 1.0
    P[1, 0, 1] = 1.0
    m = TabularMDP(P, torch.tensor([[1.0], [0.0]], dtype=F64), 0.9, torch.tensor([1.0, 0.0], dtype=F64),
                   [False, True])
    tau = float(torch.finfo(F64).eps) ** 0.5
    m.validate_policy(torch.tensor([[1.0 - 0.8 * tau], [1.0]], dtype=F64))
    with pytest.raises(ValueError, match="pi must sum to 1"):
        m.validate_policy(torch.tensor([[1.0 - 1.2 * tau], [1.0]], dtype=F64))


def test_a_stuck_state_next_to_a_terminating_one_is_found():
    """State 1 reaches the terminal state, state 0 (which 1 can move to) never leaves itself: the
    reachability search must follow edges backwards from the terminal states only (directed)."""
    P, R, mu0, terminal = _tiny_parts()
    m = TabularMDP(P, R, 1.0, mu0, terminal)
    pi = torch.tensor([[0.0, 1.0], [0.5, 0.5], [0.5, 0.5]], dtype=F64)
    with pytest.raises(ValueError, match=r"from state\(s\) \[0\] the policy never reaches"):
        m.state_values(pi)


def test_policy_and_objective_name_their_arguments_and_keep_the_mdps_dtype():
    P, R, mu0, terminal = _tiny_parts()
    m = TabularMDP(P, R, 0.9, mu0, terminal)
    assert m.policy(torch.zeros(3, 2, dtype=torch.float32)).dtype == F64
    with pytest.raises(ValueError, match=r"^logits must"):
        m.policy(torch.zeros(3, 2, dtype=torch.long))
    with pytest.raises(ValueError, match=r"^logits must"):
        m.objective([[0.0, 0.0]] * 3)
    with pytest.raises(ValueError, match=r"^policy_fn\(params\) must"):
        m.objective(lambda p: 2.0 * torch.softmax(p, -1), torch.zeros(3, 2, dtype=F64))
