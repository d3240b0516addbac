"""Bad input to pgmath.mdp gives a ValueError that names the argument."""

from __future__ import annotations

import math

import pytest
import torch

from pgmath.mdp import (
    LinearSoftmaxPolicy,
    TabularMDP,
    bandit,
    chain,
    finite_horizon,
    gridworld,
    occupancy_chi_square,
    random_mdp,
    sample_episodes,
    short_corridor_features,
)

F64 = torch.float64


def _good():
    P = torch.zeros(3, 2, 3, dtype=F64)
    P[0, 0, 1] = P[0, 1, 2] = 1.0
    P[1, :, 2] = 1.0
    P[2, :, 2] = 1.0
    R = torch.tensor([[1.0, 0.0], [2.0, -1.0], [0.0, 0.0]], dtype=F64)
    mu0 = torch.tensor([0.5, 0.5, 0.0], dtype=F64)
    term = torch.tensor([False, False, True])
    return {"P": P, "R": R, "gamma": 1.0, "mu0": mu0, "terminal": term}


def _with(**changes):
    kw = _good()
    kw.update(changes)
    return kw


def _bad_P_row():
    P = _good()["P"].clone()
    P[0, 0, 1] = 0.9
    return P


def _negative_P():
    P = _good()["P"].clone()
    P[0, 0, 0], P[0, 0, 1] = -0.5, 1.5
    return P


def _nan(x):
    x = x.clone()
    x.view(-1)[0] = math.nan
    return x


def _not_absorbing():
    P = _good()["P"].clone()
    P[2, 0, 2], P[2, 0, 0] = 0.5, 0.5
    return P


def _terminal_reward():
    R = _good()["R"].clone()
    R[2, 1] = 1.0
    return R


CASES = [
    ("P", _with(P=torch.ones(3, 2, 2, dtype=F64) / 2)),
    ("P", _with(P=torch.ones(3, 2, dtype=F64))),
    ("P", _with(P=_bad_P_row())),
    ("P", _with(P=_negative_P())),
    ("P", _with(P=_nan(_good()["P"]))),
    ("P", _with(P="not an array")),
    ("R", _with(R=torch.zeros(3, 3, dtype=F64))),
    ("R", _with(R=_nan(_good()["R"]))),
    ("gamma", _with(gamma=1.5)),
    ("gamma", _with(gamma=-0.1)),
    ("gamma", _with(gamma=math.nan)),
    ("mu0", _with(mu0=torch.tensor([1.0, 0.0], dtype=F64))),
    ("mu0", _with(mu0=torch.tensor([0.5, 0.6, 0.0], dtype=F64))),
    ("mu0", _with(mu0=torch.tensor([1.5, -0.5, 0.0], dtype=F64))),
    ("mu0", _with(mu0=torch.tensor([0.0, 0.5, 0.5], dtype=F64))),  # mass on a terminal state
    ("terminal", _with(terminal=torch.tensor([False, True]))),
    ("terminal", _with(terminal=torch.tensor([0, 0, 2]))),
    ("terminal", _with(P=_not_absorbing())),
    ("terminal", _with(R=_terminal_reward())),
]


@pytest.mark.parametrize("name,kwargs", CASES)
def test_constructor_rejects_bad_input(name, kwargs):
    with pytest.raises(ValueError, match=name):
        TabularMDP(**kwargs)


def test_constructor_accepts_good_input_and_numpy_lists():
    mdp = TabularMDP(**_good())
    assert mdp.num_states == 3 and mdp.num_actions == 2 and mdp.dtype == F64
    kw = {k: (v.tolist() if isinstance(v, torch.Tensor) else v) for k, v in _good().items()}
    assert torch.equal(TabularMDP(**kw).P, mdp.P)
    with pytest.raises(ValueError, match="dtype"):
        TabularMDP(**_good(), dtype=torch.int64)


def test_policy_methods_reject_bad_policies():
    mdp = TabularMDP(**_good())
    with pytest.raises(ValueError, match="pi"):
        mdp.state_values(torch.ones(3, 3, dtype=F64) / 3)
    with pytest.raises(ValueError, match="pi"):
        mdp.state_values(torch.tensor([[0.6, 0.6], [0.5, 0.5], [0.5, 0.5]], dtype=F64))
    with pytest.raises(ValueError, match="pi"):
        mdp.action_values(torch.tensor([[1.5, -0.5], [0.5, 0.5], [0.5, 0.5]], dtype=F64))
    with pytest.raises(ValueError, match="pi"):
        mdp.discounted_occupancy(torch.ones(3, 2, dtype=torch.int64))
    with pytest.raises(ValueError, match="logits"):
        mdp.objective(_nan(torch.zeros(3, 2, dtype=F64)))
    with pytest.raises(ValueError, match="logits"):
        mdp.exact_policy_gradient(torch.zeros(2, 2, dtype=F64))
    with pytest.raises(ValueError, match="method"):
        mdp.exact_policy_gradient(torch.zeros(3, 2, dtype=F64), method="magic")
    with pytest.raises(ValueError, match="params"):
        mdp.objective(lambda th: torch.full((3, 2), 0.5, dtype=F64))
    with pytest.raises(ValueError, match="params"):
        mdp.objective(torch.zeros(3, 2, dtype=F64), torch.zeros(1, dtype=F64))
    with pytest.raises(ValueError, match="policy_fn"):
        mdp.objective(lambda th: torch.ones(3, 2, dtype=F64), torch.zeros(1, dtype=F64))


def test_parameterization_and_canonical_reject_bad_input():
    with pytest.raises(ValueError, match="features"):
        LinearSoftmaxPolicy(torch.zeros(3, 2, dtype=F64))
    with pytest.raises(ValueError, match="theta"):
        LinearSoftmaxPolicy(short_corridor_features(2))(torch.zeros(3, dtype=F64))
    with pytest.raises(ValueError, match="num_params"):
        short_corridor_features(3)
    with pytest.raises(ValueError, match="means"):
        bandit([])
    with pytest.raises(ValueError, match=r"^n must"):
        chain(1)
    with pytest.raises(ValueError, match="slip"):
        chain(4, slip=1.5)
    with pytest.raises(ValueError, match="gamma"):
        chain(4, gamma=2.0)
    with pytest.raises(ValueError, match="terminals"):
        gridworld(terminals=[(4, 0)])
    with pytest.raises(ValueError, match="start"):
        gridworld(start=[(0, 0)])
    with pytest.raises(ValueError, match="generator"):
        random_mdp(3, 2, generator=None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="num_terminal"):
        random_mdp(3, 2, generator=torch.Generator(), num_terminal=3)
    with pytest.raises(ValueError, match="horizon"):
        finite_horizon(chain(3), 0)


def test_sampler_and_test_reject_bad_input():
    mdp = TabularMDP(**_good())
    pi = torch.full((3, 2), 0.5, dtype=F64)
    g = torch.Generator()
    with pytest.raises(ValueError, match="num_episodes"):
        sample_episodes(mdp, pi, 0, 10, generator=g)
    with pytest.raises(ValueError, match="max_steps"):
        sample_episodes(mdp, pi, 10, 0, generator=g)
    with pytest.raises(ValueError, match="generator"):
        sample_episodes(mdp, pi, 10, 10, generator=1234)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="pi"):
        sample_episodes(mdp, torch.full((3, 2), 0.7, dtype=F64), 10, 10, generator=g)
    ep = sample_episodes(mdp, pi, 10, 10, generator=g)
    with pytest.raises(ValueError, match="gamma"):
        occupancy_chi_square(ep, mdp, pi, max_steps=10, gamma=1.0, generator=g)
    with pytest.raises(ValueError, match="by"):
        occupancy_chi_square(ep, mdp, pi, max_steps=10, gamma=0.5, generator=g, by="state")



def test_a_bfloat16_policy_is_valid_for_the_retrace_fixed_point_at_gamma_one():
    """A bfloat16 π (rows sum to 1 within bfloat16's rounding) given to a float64 MDP with γ = 1:
    validated in bfloat16's precision, renormalised after the cast (the solve re-validated it in
    float64 and refused it: |sum − 1| = 2⁻⁹)."""
    from pgmath.mdp import retrace_fixed_point
    from pgmath.mdp.canonical import random_mdp

    mdp = random_mdp(4, 3, generator=torch.Generator().manual_seed(0), num_terminal=1).with_gamma(1.0)
    pi = torch.tensor([[0.3, 0.3, 0.4], [0.1, 0.2, 0.7], [1 / 3, 1 / 3, 1 / 3], [0.55, 0.15, 0.3]],
                      dtype=torch.float64).to(torch.bfloat16)
    assert float((pi.double().sum(-1) - 1).abs().max()) > 1e-4  # the rounding alone breaks the sums
    q = retrace_fixed_point(mdp, pi, pi)
    exact = pi.double() / pi.double().sum(-1, keepdim=True)
    want = retrace_fixed_point(mdp, exact, exact)
    torch.testing.assert_close(q, want, rtol=1e-12, atol=1e-12)
