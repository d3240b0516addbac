"""Off-policy targets (pgmath.offpolicy): V-trace, Retrace(λ), Tree-backup, Q(λ), per-decision IS.

The spec layer (tests/test_specs.py) runs every property, wrong variant and bad input of
``pgmath.specs.offpolicy``; here: Hypothesis over every episode-end pattern (fast == reference for
every backend), hand-computed values, the names of bad arguments, autograd, and the harness checks
``check_vtrace`` / ``check_retrace`` (the references pass in every convention, wrong variants and
the convention differences are reported).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pgmath
from pgmath.specs import SPECS
from pgmath.testing import check_retrace, check_vtrace
from pgmath.testing.checks.offpolicy import offpolicy_cases

F64 = torch.float64
BACKENDS = ["auto", "torch", *(["numba"] if pgmath.scan.numba_available() else [])]
CLIPS = st.sampled_from([0.0, 0.5, 1.0, 2.0])


def _close(a, b, tol=1e-10):
    return float((torch.as_tensor(a) - torch.as_tensor(b)).abs().max()) <= tol * max(1.0, float(torch.as_tensor(b).abs().max()))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=offpolicy_cases(max_T=12), backend=st.sampled_from(BACKENDS), rho_bar=CLIPS, c_bar=CLIPS,
       pg=st.one_of(st.none(), CLIPS))
def test_vtrace_fast_equals_reference_on_every_episode_end_pattern(case, backend, rho_bar, c_bar, pg):
    ro, lr = case.rollout, case.log_rhos
    kw = {"gamma": ro.gamma, "lam": ro.lam, "rho_bar": rho_bar, "c_bar": c_bar, "pg_rho_bar": pg}
    got = pgmath.vtrace(lr, *ro, **kw, backend=backend)
    want = pgmath.vtrace_reference(lr, *ro, **kw)
    assert _close(got[0], want[0]) and _close(got[1], want[1])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=offpolicy_cases(max_T=12), backend=st.sampled_from(BACKENDS))
def test_q_targets_fast_equal_reference_on_every_episode_end_pattern(case, backend):
    ro, lr = case.rollout, case.log_rhos
    kw = {"gamma": ro.gamma, "lam": ro.lam}
    assert _close(pgmath.retrace(lr, *ro, **kw, backend=backend), pgmath.retrace_reference(lr, *ro, **kw))
    lp = -lr.abs()
    assert _close(pgmath.tree_backup(lp, *ro, **kw, backend=backend), pgmath.tree_backup_reference(lp, *ro, **kw))
    assert _close(pgmath.q_lambda(*ro, **kw, backend=backend), pgmath.q_lambda_reference(*ro, **kw))
    lr1 = lr.clamp(min=-2.0, max=1.0)
    args = (lr1, ro.rewards, ro.next_values, ro.terminated, ro.truncated)
    assert _close(pgmath.per_decision_is_returns(*args, gamma=ro.gamma, backend=backend),
                  pgmath.per_decision_is_returns_reference(*args, gamma=ro.gamma))


def _two_episodes():
    """T = 4: an episode truncated after t = 1 (real final value 5), then one terminated at t = 3."""
    r = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=F64)
    v = torch.tensor([0.5, 1.0, 1.5, 2.0], dtype=F64)
    nv = torch.tensor([1.0, 5.0, 2.0, 9.0], dtype=F64)
    term = torch.tensor([False, False, False, True])
    trunc = torch.tensor([False, True, False, False])
    return r, v, nv, term, trunc


def test_vtrace_hand_computed():
    r, v, nv, term, trunc = _two_episodes()
    lr = torch.log(torch.tensor([2.0, 0.5, 1.0, 0.25], dtype=F64))
    g, lam = 0.5, 0.8
    vs, pg = pgmath.vtrace(lr, r, v, nv, term, trunc, gamma=g, lam=lam, rho_bar=1.5, c_bar=1.0)
    w = [1.5, 0.5, 1.0, 0.25]  # min(ρ̄, ρ)
    c = [lam * 1.0, lam * 0.5, lam * 1.0, lam * 0.25]  # λ min(c̄, ρ)
    d = [1 + g * 1.0 - 0.5, 2 + g * 5.0 - 1.0, 3 + g * 2.0 - 1.5, 4 - 2.0]
    a3 = w[3] * d[3]
    a2 = w[2] * d[2] + g * c[2] * a3
    a1 = w[1] * d[1]  # truncated: the trace stops, the bootstrap V' = 5 stays in δ₁
    a0 = w[0] * d[0] + g * c[0] * a1
    want_vs = [0.5 + a0, 1.0 + a1, 1.5 + a2, 2.0 + a3]
    assert torch.allclose(vs, torch.tensor(want_vs, dtype=F64), atol=1e-12)
    u = [1.5, 0.5, 1.0, 0.25]  # pg clip defaults to ρ̄
    want_pg = [u[0] * (1 + g * want_vs[1] - 0.5), u[1] * (2 + g * 5.0 - 1.0),
               u[2] * (3 + g * want_vs[3] - 1.5), u[3] * (4 - 2.0)]
    assert torch.allclose(pg, torch.tensor(want_pg, dtype=F64), atol=1e-12)


def test_retrace_hand_computed_uses_the_next_steps_trace():
    r, q, nv, term, trunc = _two_episodes()
    lr = torch.log(torch.tensor([0.25, 0.5, 4.0, 0.5], dtype=F64))
    g, lam = 0.5, 0.8
    got = pgmath.retrace(lr, r, q, nv, term, trunc, gamma=g, lam=lam)
    c = [lam * min(1.0, x) for x in (0.25, 0.5, 4.0, 0.5)]
    G3 = 4.0
    G2 = 3 + g * (2.0 + c[3] * (G3 - 2.0))
    G1 = 2 + g * 5.0
    G0 = 1 + g * (1.0 + c[1] * (G1 - 1.0))  # c₁, the ratio of the *next* action, not c₀
    assert torch.allclose(got, torch.tensor([G0, G1, G2, G3], dtype=F64), atol=1e-12)


def test_tree_backup_and_q_lambda_are_retrace_with_other_traces():
    r, q, nv, term, trunc = _two_episodes()
    pi = torch.tensor([0.3, 0.6, 0.9, 0.2], dtype=F64)
    tb = pgmath.tree_backup(pi.log(), r, q, nv, term, trunc, gamma=0.9, lam=1.0)
    assert torch.allclose(tb, pgmath.retrace(pi.log(), r, q, nv, term, trunc, gamma=0.9, lam=1.0))  # ρ = π ≤ 1
    zero = torch.zeros(4, dtype=F64)
    assert torch.allclose(pgmath.q_lambda(r, q, nv, term, trunc, gamma=0.9, lam=0.7),
                          pgmath.retrace(zero, r, q, nv, term, trunc, gamma=0.9, lam=0.7))


def test_pdis_hand_computed():
    r, _, nv, term, trunc = _two_episodes()
    rho = torch.tensor([2.0, 0.5, 1.5, 0.25], dtype=F64)
    got = pgmath.per_decision_is_returns(rho.log(), r, nv, term, trunc, gamma=0.5)
    G3 = 0.25 * 4.0
    G2 = 1.5 * (3 + 0.5 * G3)
    G1 = 0.5 * (2 + 0.5 * 5.0)
    G0 = 2.0 * (1 + 0.5 * G1)
    assert torch.allclose(got, torch.tensor([G0, G1, G2, G3], dtype=F64), atol=1e-12)


def test_zero_probability_target_action_is_allowed():
    """log ρ = −inf (π(aₜ|sₜ) = 0): ρ = 0 weights the step out and cuts the trace — no NaN."""
    r, v, nv, term, trunc = _two_episodes()
    lr = torch.tensor([0.0, -math.inf, 0.0, 0.0], dtype=F64)
    for backend in BACKENDS:
        vs, pg = pgmath.vtrace(lr, r, v, nv, term, trunc, gamma=0.9, backend=backend)
        assert torch.isfinite(vs).all() and torch.isfinite(pg).all()
        assert vs[1] == v[1] and pg[1] == 0.0
        assert torch.isfinite(pgmath.retrace(lr, r, v, nv, term, trunc, gamma=0.9, backend=backend)).all()


@pytest.mark.parametrize(("kwargs", "name"), [
    ({"rho_bar": -1.0}, "rho_bar"), ({"c_bar": -0.5}, "c_bar"), ({"pg_rho_bar": -1.0}, "pg_rho_bar"),
    ({"rho_bar": float("nan")}, "rho_bar"), ({"lam": 2.0}, "lam"), ({"gamma": -0.1}, "gamma"),
])
def test_vtrace_bad_scalars_name_the_argument(kwargs, name):
    r, v, nv, term, trunc = _two_episodes()
    kw = {"gamma": 0.9, **kwargs}
    for fn in (pgmath.vtrace, pgmath.vtrace_reference):
        with pytest.raises(ValueError, match=name):
            fn(torch.zeros(4, dtype=F64), r, v, nv, term, trunc, **kw)


@pytest.mark.parametrize("position", range(4))
def test_non_finite_and_misshaped_tensors_name_the_argument(position):
    names = ["log_rhos", "rewards", "values", "next_values"]
    r, v, nv, term, trunc = _two_episodes()
    args = [torch.zeros(4, dtype=F64), r, v, nv]
    bad = list(args)
    bad[position] = args[position].clone()
    bad[position][2] = float("nan")
    with pytest.raises(ValueError, match=names[position]):
        pgmath.vtrace(*bad, term, trunc, gamma=0.9)
    short = list(args)
    short[position] = args[position][:3]
    with pytest.raises(ValueError, match=names[position]):
        pgmath.vtrace(*short, term, trunc, gamma=0.9)
    qnames = ["log_rhos", "rewards", "q_values", "next_values"]
    with pytest.raises(ValueError, match=qnames[position]):
        pgmath.retrace(*bad, term, trunc, gamma=0.9)


def test_infinite_ratio_is_refused():
    r, v, nv, term, trunc = _two_episodes()
    lr = torch.tensor([0.0, math.inf, 0.0, 0.0], dtype=F64)
    for fn in (pgmath.vtrace, pgmath.retrace, pgmath.retrace_reference):
        with pytest.raises(ValueError, match=r"log_rhos.*behaviour policy"):
            fn(lr, r, v, nv, term, trunc, gamma=0.9)
    with pytest.raises(ValueError, match="target_log_probs"):
        pgmath.tree_backup(torch.full((4,), 0.5, dtype=F64), r, v, nv, term, trunc, gamma=0.9)


def test_vtrace_is_differentiable_and_float32_matches():
    r, v, nv, term, trunc = _two_episodes()
    v = v.clone().requires_grad_(True)
    lr = torch.tensor([0.3, -0.2, 0.1, 0.0], dtype=F64, requires_grad=True)
    vs, pg = pgmath.vtrace(lr, r, v, nv, term, trunc, gamma=0.9, lam=0.9)
    (vs.sum() + pg.sum()).backward()
    assert torch.isfinite(v.grad).all() and torch.isfinite(lr.grad).all()
    out32 = pgmath.vtrace(lr.detach().float(), r.float(), v.detach().float(), nv.float(), term, trunc, gamma=0.9,
                          lam=0.9)
    assert out32[0].dtype == torch.float32
    assert torch.allclose(out32[0].double(), vs.detach(), atol=1e-5)


def test_long_sequence_is_exact():
    g = torch.Generator().manual_seed(3)
    T = 20_000
    r, v, nv = (torch.randn(T, 2, dtype=F64, generator=g) for _ in range(3))
    lr = 0.5 * torch.randn(T, 2, dtype=F64, generator=g)
    f = torch.zeros(T, 2, dtype=torch.bool)
    for backend in BACKENDS:
        got = pgmath.vtrace(lr, r, v, nv, f, f, gamma=0.999, lam=1.0, rho_bar=2.0, c_bar=2.0, backend=backend)
        want = pgmath.trace_recursion_reference(lr.exp().clamp(max=2.0) * (r + 0.999 * nv - v),
                                                lr.exp().clamp(max=2.0), f, f, gamma=0.999) + v
        assert torch.isfinite(got[0]).all() and _close(got[0], want, 1e-9)


# ---------------------------------------------------------------------------------------------
# the harness checks


def test_checks_accept_the_references_in_the_pgmath_convention():
    assert check_vtrace(pgmath.vtrace_reference, max_examples=15).examples == 15
    check_vtrace(pgmath.vtrace, rho_bar=1.5, c_bar=0.7, pg_rho_bar=2.0, lam=0.9, max_examples=15)
    check_vtrace(lambda *a, **k: pgmath.vtrace(*a, **k)[0], max_examples=10)  # value targets alone
    check_retrace(pgmath.retrace_reference, max_examples=15)


def test_check_vtrace_names_the_wrong_variant():
    wrong = SPECS["vtrace"].variant("vtrace_pg_uses_vs").fn
    with pytest.raises(AssertionError) as info:
        check_vtrace(lambda *a, **k: tuple(wrong(*a, **k)), max_examples=50)
    msg = str(info.value)
    assert "policy-gradient advantages" in msg and "vtrace_pg_uses_vs" in msg


def test_check_retrace_rejects_the_index_shift():
    wrong = SPECS["retrace"].variant("retrace_trace_current_step").fn
    with pytest.raises(AssertionError, match="retrace_trace_current_step"):
        check_retrace(wrong, max_examples=50)


def test_check_settings_are_validated():
    with pytest.raises(ValueError, match="convention"):
        check_vtrace(pgmath.vtrace, convention="sb3")
    with pytest.raises(ValueError, match="c_bar"):
        check_vtrace(pgmath.vtrace, convention="rlax", c_bar=0.5)
    with pytest.raises(ValueError, match="pg_target"):
        check_vtrace(pgmath.vtrace, pg_target="other")


def _rlax_style_vtrace(v_tm1, v_t, r_t, discount_t, rho_tm1, lambda_=1.0, clip_rho_threshold=1.0,
                       clip_pg_rho_threshold=1.0):
    """A NumPy transcription of rlax's V-trace conventions (λ-mixed advantage bootstrap)."""
    rho = np.asarray(rho_tm1)
    c = np.minimum(1.0, rho) * lambda_
    td = np.minimum(clip_rho_threshold, rho) * (r_t + discount_t * v_t - v_tm1)
    err, acc = np.zeros_like(td), 0.0
    for t in range(len(td) - 1, -1, -1):
        acc = td[t] + discount_t[t] * c[t] * acc
        err[t] = acc
    vs = err + v_tm1
    boot = np.concatenate([lambda_ * vs[1:] + (1 - lambda_) * v_tm1[1:], v_t[-1:]])
    pg = np.minimum(clip_pg_rho_threshold, rho) * (r_t + discount_t * boot - v_tm1)

    class Out:
        errors, pg_advantage = err, pg

    return Out()


def test_rlax_convention_and_its_lambda_mixed_advantage():
    """rlax's layout passes (truncations folded into r_t); its λ-mixed advantage is a convention
    difference: accepted and noted by default, and named as such with pg_target='vtrace'."""
    report = check_vtrace(_rlax_style_vtrace, convention="rlax", max_examples=20)
    assert any("convention difference" in n for n in report.notes)
    with pytest.raises(AssertionError, match="convention difference, not a bug"):
        check_vtrace(_rlax_style_vtrace, convention="rlax", pg_target="vtrace", max_examples=50)


def _torchrl_style_vtrace(gamma, log_pi, log_mu, state_value, next_state_value, reward, done, terminated,
                          rho_thresh=1.0, c_thresh=1.0):
    """TorchRL's layout ([N, T, 1]) over pgmath.vtrace, with γ rounded to float32 on request."""
    def tm(x):
        return x.squeeze(-1).transpose(0, 1)

    trunc = tm(done) & ~tm(terminated)
    vs, pg = pgmath.vtrace(tm(log_pi - log_mu), tm(reward), tm(state_value), tm(next_state_value), tm(terminated),
                           trunc, gamma=gamma, rho_bar=rho_thresh, c_bar=c_thresh)
    return pg.transpose(0, 1).unsqueeze(-1), vs.transpose(0, 1).unsqueeze(-1)


def test_torchrl_convention_and_the_float32_discount_diagnosis():
    check_vtrace(_torchrl_style_vtrace, convention="torchrl", max_examples=20)

    def float32_gamma(gamma, *args, **kwargs):
        return _torchrl_style_vtrace(float(np.float32(gamma)), *args, **kwargs)

    with pytest.raises(AssertionError, match="γ rounded to float32"):
        check_vtrace(float32_gamma, convention="torchrl", max_examples=50)
