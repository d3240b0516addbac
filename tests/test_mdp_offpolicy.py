"""Exact V-trace / Retrace fixed points and n-step operators (pgmath.mdp.offpolicy), and the
sampled targets of pgmath.offpolicy unbiased for the n-step operators (statistical rows of
pgmath.mdp.verify: Hotelling T² at α = 1e-3, fixed seeds, power stated by min_detectable_bias)."""

from __future__ import annotations

import pytest
import torch

from pgmath.mdp import (
    random_mdp,
    retrace_fixed_point,
    retrace_operator,
    vtrace_fixed_point,
    vtrace_operator,
    vtrace_target_policy,
)
from pgmath.mdp import verify as mdp_verify
from pgmath.verification import VerifyContext

F64 = torch.float64


def _case(seed: int, gamma: float = 0.9, num_terminal: int = 1):
    g = torch.Generator().manual_seed(seed)
    mdp = random_mdp(6, 3, generator=g, gamma=gamma, num_terminal=num_terminal)
    pi = mdp.policy(1.5 * torch.randn(6, 3, generator=g, dtype=F64))
    mu = mdp.policy(1.5 * torch.randn(6, 3, generator=g, dtype=F64))
    return mdp, pi, mu, g


@pytest.mark.parametrize(("gamma", "num_terminal"), [(0.9, 0), (1.0, 2), (0.99, 1)])
@pytest.mark.parametrize("rho_bar", [0.3, 1.0, 3.0])
def test_vtrace_fixed_point_is_value_of_clipped_policy(gamma, num_terminal, rho_bar):
    mdp, pi, mu, _ = _case(0, gamma, num_terminal)
    V = vtrace_fixed_point(mdp, pi, mu, rho_bar=rho_bar, c_bar=0.5)
    w = torch.minimum(rho_bar * mu, pi)
    assert float((V - mdp.state_values(w / w.sum(-1, keepdim=True))).abs().max()) <= 1e-10
    assert float((vtrace_target_policy(mdp, pi, mu, rho_bar=rho_bar) - w / w.sum(-1, keepdim=True)).abs().max()) <= 1e-15
    # the fixed point of the full operator, whatever c̄ and λ
    for c_bar, lam in ((0.0, 1.0), (1.0, 0.5), (5.0, 1.0)):
        RV = vtrace_operator(mdp, pi, mu, V, rho_bar=rho_bar, c_bar=c_bar, lam=lam)
        assert float((RV - V).abs().max()) <= 1e-10


@pytest.mark.parametrize("lam", [0.0, 0.6, 1.0])
def test_retrace_fixed_point_is_q_pi(lam):
    for gamma, K in ((0.9, 0), (1.0, 2)):
        mdp, pi, mu, _ = _case(1, gamma, K)
        Q = retrace_fixed_point(mdp, pi, mu, lam=lam)
        assert float((Q - mdp.action_values(pi)).abs().max()) <= 1e-10
        assert float((retrace_operator(mdp, pi, mu, Q, lam=lam) - Q).abs().max()) <= 1e-10


def test_n_step_operators_match_their_definitions():
    """Rₙ summed term by term with explicit matrix powers; n → ∞ equals the solve."""
    mdp, pi, mu, g = _case(2)
    V = torch.randn(6, generator=g, dtype=F64) * (~mdp.terminal)
    ratio = pi / mu
    rho, c = ratio.clamp(max=1.0), 0.8 * ratio.clamp(max=0.5)
    live = (~mdp.terminal).to(F64)
    delta = (mu * rho * (mdp.R + mdp.gamma * torch.einsum("sat,t->sa", mdp.P, V) - V[:, None])).sum(-1) * live
    C = torch.einsum("sa,sat->st", mu * c, mdp.P) * live[:, None] * live[None, :]
    want = V + sum(mdp.gamma**t * torch.linalg.matrix_power(C, t) @ delta for t in range(3))
    got = vtrace_operator(mdp, pi, mu, V, rho_bar=1.0, c_bar=0.5, lam=0.8, steps=3)
    assert float((got - want).abs().max()) <= 1e-12
    full = vtrace_operator(mdp, pi, mu, V, rho_bar=1.0, c_bar=0.5, lam=0.8)
    assert float((vtrace_operator(mdp, pi, mu, V, rho_bar=1.0, c_bar=0.5, lam=0.8, steps=400) - full).abs().max()) <= 1e-10
    Q = torch.randn(6, 3, generator=g, dtype=F64)
    assert float((retrace_operator(mdp, pi, mu, Q, steps=0) - Q * live[:, None]).abs().max()) == 0.0
    assert float((retrace_operator(mdp, pi, mu, Q, steps=600) - retrace_operator(mdp, pi, mu, Q)).abs().max()) <= 1e-10


def test_bad_inputs_name_the_argument():
    mdp, pi, mu, _ = _case(3)
    with pytest.raises(ValueError, match="rho_bar"):
        vtrace_fixed_point(mdp, pi, mu, rho_bar=-1.0)
    with pytest.raises(ValueError, match="c_bar"):
        vtrace_fixed_point(mdp, pi, mu, c_bar=-1.0)
    bad_mu = mu.clone()
    bad_mu[0] = torch.tensor([1.0, 0.0, 0.0], dtype=F64)
    with pytest.raises(ValueError, match="mu"):
        vtrace_fixed_point(mdp, pi, bad_mu)
    with pytest.raises(ValueError, match="mu"):
        retrace_fixed_point(mdp, pi, bad_mu)
    with pytest.raises(ValueError, match="lam"):
        retrace_operator(mdp, pi, mu, torch.zeros(6, 3, dtype=F64), lam=2.0)


CTX = VerifyContext(quick=True)


def test_sampled_vtrace_targets_unbiased_and_biased_variant_rejected():
    """α = 1e-3 per test; the row reports the power (min detectable bias at power 0.9)."""
    assert mdp_verify.verify_vtrace_targets_unbiased(CTX).passed
    assert mdp_verify.verify_vtrace_unclipped_rejected(CTX).passed


def test_vtrace_row_rejects_targets_that_ignore_lambda():
    from pgmath.offpolicy import vtrace

    def no_lambda(*args, lam, **kwargs):  # λ ignored: the traces are not the operator's
        return vtrace(*args, lam=1.0, **kwargs)

    assert not mdp_verify.verify_vtrace_targets_unbiased(CTX, no_lambda).passed


def test_sampled_retrace_targets_unbiased_and_wrong_trace_rejected():
    from pgmath.offpolicy import retrace

    assert mdp_verify.verify_retrace_targets_unbiased(CTX).passed

    def no_lambda(*args, lam, **kwargs):
        return retrace(*args, lam=1.0, **kwargs)

    assert not mdp_verify.verify_retrace_targets_unbiased(CTX, no_lambda).passed
