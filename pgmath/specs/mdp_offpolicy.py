"""Specs of the exact off-policy fixed points and the natural gradient on tabular MDPs (area ``"mdp"``).

    V-trace fixed point:  Σₐ min(ρ̄μ, π)(R + γPV − V) = 0  ⇔  V = V^{π_ρ̄},  π_ρ̄ ∝ min(ρ̄μ, π)
    Retrace fixed point:  Q = R + γ P Σ_b π(b|·) Q(·, b)  ⇔  Q = Q^π   (any λ, μ)
    Fisher information:   F = Σₛ d̄(s) Σₐ π(a|s) ∇log π ∇log πᵀ,  d̄ = d / Σd   (normalised occupancy)
    natural gradient:     F⁺∇J;  tabular softmax: Σd · (A^π − rowmean A^π) = A^π/(1 − γ) + const(s)

Sources: Espeholt et al. (ICML 2018), Theorem 1; Munos et al. (NeurIPS 2016), Theorem 1; Kakade
(NeurIPS 2001), Theorem 1; Agarwal, Kakade, Lee & Mahajan (JMLR 2021), §5.3.

Every property compares an implementation with an independent computation: policy evaluation
of π_ρ̄ (built here), iterating the V-trace / Retrace operators of :mod:`pgmath.mdp.offpolicy` to
convergence, the state solve of Q^π, the Hessian of the mean KL by autograd, the closed-form
Fisher blocks, the advantage table times Σd, and F w = ∇J with ∇J by autograd. The statistical
checks (sampled V-trace / Retrace targets unbiased for the n-step operators, NPG against the
Agarwal et al. bound, the TRPO step) are rows of :mod:`pgmath.mdp.verify`.

Tolerances: :data:`TOL` = 1e-9 absolute (the iterative references stop at 1e-12 sweeps); the
closed forms are met to ≈ 1e-13 (tests/test_mdp_offpolicy.py, tests/test_mdp_natural.py
check them at 1e-10).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from pgmath.mdp import LinearSoftmaxPolicy, TabularMDP, random_mdp
from pgmath.mdp.natural import (
    fisher_information,
    fisher_information_reference,
    natural_gradient,
    natural_gradient_reference,
    policy_table,
)
from pgmath.mdp.offpolicy import (
    retrace_fixed_point,
    retrace_fixed_point_reference,
    retrace_operator,
    vtrace_fixed_point,
    vtrace_fixed_point_reference,
    vtrace_operator,
)
from pgmath.mdp.tabular import softmax
from pgmath.specs.spec import (
    BadInput,
    Call,
    Property,
    Spec,
    WrongVariant,
    max_abs_error,
    outcome_within,
)
from pgmath.verification import Outcome, VerifyContext

__all__ = ["FAMILY", "TOL", "offpolicy_suite"]

F64 = torch.float64
TOL = 1e-9

#: (S, A, γ, terminal states) of the suites: continuing and episodic (γ = 1 included).
_CASES = ((5, 3, 0.9, 0), (6, 2, 1.0, 2), (4, 4, 0.5, 1), (7, 3, 0.95, 0))
#: (ρ̄, c̄) pairs: clipping active, c̄ ≠ ρ̄ (so that a c̄-dependent fixed point shows).
_CLIPS = ((1.0, 0.5), (0.6, 1.0), (2.0, 0.3))


def offpolicy_suite(ctx: VerifyContext, offset: int) -> list[tuple[TabularMDP, torch.Tensor, torch.Tensor]]:
    """(mdp, π, μ) on ``ctx.device``: random MDPs, π and μ softmax of 1.5·N(0, 1) logits."""
    g = ctx.generator(offset)
    out = []
    for S, A, gamma, K in _CASES[:3] if ctx.quick else _CASES:
        mdp = random_mdp(S, A, generator=g, gamma=gamma, num_terminal=K)
        pi = softmax(1.5 * torch.randn(S, A, generator=g, device=g.device, dtype=F64))
        mu = softmax(1.5 * torch.randn(S, A, generator=g, device=g.device, dtype=F64))
        out.append((mdp, pi, mu))
    return out


def _clipped_policy(pi: torch.Tensor, mu: torch.Tensor, rho_bar: float) -> torch.Tensor:
    w = torch.minimum(rho_bar * mu, pi)
    return w / w.sum(-1, keepdim=True)


# ---------------------------------------------------------------------------------------------
# V-trace fixed point


def _vt_policy_evaluation(impl: Callable, ctx: VerifyContext) -> Outcome:
    """== V of π_ρ̄ ∝ min(ρ̄μ, π) by the library's policy evaluation (Espeholt et al., Thm 1)."""
    err = 0.0
    for mdp, pi, mu in offpolicy_suite(ctx, 31):
        for rho_bar, c_bar in _CLIPS:
            want = mdp.state_values(_clipped_policy(pi, mu, rho_bar))
            err = max(err, max_abs_error(impl(mdp, pi, mu, rho_bar=rho_bar, c_bar=c_bar), want))
    return outcome_within(err, TOL)


def _iterate(op: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, tol: float = 1e-13,
             max_iter: int = 20_000) -> torch.Tensor:
    for _ in range(max_iter):
        x_new = op(x)
        if float((x_new - x).abs().max()) <= tol:
            return x_new
        x = x_new
    return x


def _vt_operator_iteration(impl: Callable, ctx: VerifyContext) -> Outcome:
    """== the limit of V ← R₃V (the 3-step V-trace operator with c̄, λ = 0.8), iterated from V = 0."""
    err = 0.0
    for mdp, pi, mu in offpolicy_suite(ctx, 32):
        for rho_bar, c_bar in _CLIPS:
            def op(V, m=mdp, p=pi, u=mu, r=rho_bar, c=c_bar):
                return vtrace_operator(m, p, u, V, rho_bar=r, c_bar=c, lam=0.8, steps=3)
            want = _iterate(op, torch.zeros(mdp.num_states, dtype=F64, device=mdp.device))
            err = max(err, max_abs_error(impl(mdp, pi, mu, rho_bar=rho_bar, c_bar=c_bar), want))
    return outcome_within(err, TOL)


def _vt_limits(impl: Callable, ctx: VerifyContext) -> Outcome:
    """ρ̄ ≥ max π/μ: == V^π (no clipping);  ρ̄ ≤ min π/μ: == V^μ (everything clipped)."""
    err = 0.0
    for mdp, pi, mu in offpolicy_suite(ctx, 33):
        ratio = pi / mu
        big, small = float(ratio.max()) * 1.01, float(ratio.min()) * 0.99
        err = max(err, max_abs_error(impl(mdp, pi, mu, rho_bar=big), mdp.state_values(pi)))
        err = max(err, max_abs_error(impl(mdp, pi, mu, rho_bar=small), mdp.state_values(mu)))
    return outcome_within(err, TOL)


def _vt_td_residual(impl: Callable, ctx: VerifyContext) -> Outcome:
    """E_μ[ρ (r + γV(s') − V(s)) | s] = Σₐ μ min(ρ̄, π/μ)(R + γPV − V) = 0 on non-terminal s; V = 0 on terminal s."""
    err = 0.0
    for mdp, pi, mu in offpolicy_suite(ctx, 34):
        for rho_bar, c_bar in _CLIPS:
            V = impl(mdp, pi, mu, rho_bar=rho_bar, c_bar=c_bar)
            td = mdp.R + mdp.gamma * torch.einsum("sat,t->sa", mdp.P, V) - V[:, None]
            res = (mu * torch.clamp(pi / mu, max=rho_bar) * td).sum(-1)
            err = max(err, float(torch.where(mdp.terminal, V, res).abs().max()))
    return outcome_within(err, TOL, "max |expected ρ-weighted TD error|")


def vtrace_fp_ratio_normalised(mdp, pi, mu, *, rho_bar=1.0, c_bar=1.0):
    """π_ρ̄ ∝ min(ρ̄, π/μ): the clipped *ratio* normalised, the factor μ(a|s) dropped."""
    w = torch.clamp(pi / mu, max=rho_bar)
    return mdp.state_values(w / w.sum(-1, keepdim=True))


def vtrace_fp_not_renormalised(mdp, pi, mu, *, rho_bar=1.0, c_bar=1.0):
    """The sub-stochastic min(ρ̄μ, π) evaluated as if it were a policy (rows not renormalised)."""
    w = torch.minimum(rho_bar * mu, pi)
    live = ~mdp.terminal
    M = torch.eye(int(live.sum()), dtype=F64, device=mdp.device) - mdp.gamma * torch.einsum(
        "sa,sat->st", w, mdp.P)[live][:, live]
    V = torch.zeros(mdp.num_states, dtype=F64, device=mdp.device)
    V[live] = torch.linalg.solve(M, (w * mdp.R).sum(-1)[live])
    return V


def vtrace_fp_target_value(mdp, pi, mu, *, rho_bar=1.0, c_bar=1.0):
    """V^π: the clipping's effect on the fixed point ignored."""
    return mdp.state_values(pi)


def vtrace_fp_trace_clip(mdp, pi, mu, *, rho_bar=1.0, c_bar=1.0):
    """π ∝ min(c̄μ, π): the trace clip c̄ taken for the one that sets the fixed point."""
    return mdp.state_values(_clipped_policy(pi, mu, c_bar))


def _small(device: torch.device) -> TabularMDP:
    return random_mdp(3, 2, generator=torch.Generator(device=device).manual_seed(0), num_terminal=1)


def _table(device: torch.device, rows) -> torch.Tensor:
    return torch.tensor(rows, dtype=F64, device=device)


_HALF = [[0.5, 0.5]] * 3
_UNCOVERED = [[1.0, 0.0], [0.5, 0.5], [0.5, 0.5]]
_PI_EDGE = [[0.3, 0.7], [0.5, 0.5], [0.5, 0.5]]


def _vt_bad_inputs() -> tuple[BadInput, ...]:
    m, t = _small, _table
    return (
        BadInput("rho_bar < 0", lambda f, d: f(m(d), t(d, _HALF), t(d, _HALF), rho_bar=-1.0), "rho_bar"),
        BadInput("c_bar < 0", lambda f, d: f(m(d), t(d, _HALF), t(d, _HALF), c_bar=-0.5), "c_bar"),
        BadInput("mu = 0 where pi > 0", lambda f, d: f(m(d), t(d, _PI_EDGE), t(d, _UNCOVERED)), "mu"),
        BadInput("pi rows that do not sum to 1", lambda f, d: f(m(d), t(d, [[0.9, 0.9]] * 3), t(d, _HALF)), "pi"),
    )


def _offpolicy_inputs(kind: str):
    """Calls on small random MDPs (:func:`pgmath.testing.strategies.tabular_mdps`): π and μ the
    softmax of quarter-integer logits in [−3, 3], with ρ̄ ∈ {0.5, 1, 2}, c̄ ∈ {0.3, 1} (V-trace) or
    λ ∈ {0, 0.5, 1} (Retrace)."""
    import numpy as np
    from hypothesis import strategies as st
    from hypothesis.extra.numpy import arrays

    from pgmath.testing.strategies import tabular_mdps

    def calls(mdp: TabularMDP):
        table = arrays(np.float64, (mdp.num_states, mdp.num_actions),
                       elements=st.integers(-12, 12).map(lambda i: i / 4))
        pair = st.tuples(table, table)
        if kind == "vtrace":
            knobs = st.tuples(st.sampled_from((0.5, 1.0, 2.0)), st.sampled_from((0.3, 1.0)))
            return st.tuples(pair, knobs).map(lambda x: Call(
                (mdp, softmax(torch.as_tensor(x[0][0])), softmax(torch.as_tensor(x[0][1]))),
                {"rho_bar": x[1][0], "c_bar": x[1][1]}))
        return st.tuples(pair, st.sampled_from((0.0, 0.5, 1.0))).map(lambda x: Call(
            (mdp, softmax(torch.as_tensor(x[0][0])), softmax(torch.as_tensor(x[0][1]))), {"lam": x[1]}))

    return tabular_mdps().flatmap(calls)


VTRACE_FIXED_POINT = Spec(
    name="vtrace_fixed_point",
    title="V-trace fixed point (exact)",
    area="mdp",
    formula="Σₐ min(ρ̄μ(a|s), π(a|s))(R + γPV − V)(s, a) = 0  ⇔  V = V^{π_ρ̄},  π_ρ̄ ∝ min(ρ̄μ, π)",
    source="Espeholt et al., 'IMPALA' (ICML 2018), §4.1, Theorem 1 and Remark 1",
    function=vtrace_fixed_point,
    reference=vtrace_fixed_point_reference,
    implementations={"solve": vtrace_fixed_point, "reference": vtrace_fixed_point_reference},
    properties=(
        Property("policy_evaluation", "== V^{π_ρ̄} by policy evaluation, π_ρ̄ ∝ min(ρ̄μ, π) (Thm 1)",
                 _vt_policy_evaluation),
        Property("operator_iteration", "== lim V ← R₃V (3-step V-trace operator, c̄, λ = 0.8)",
                 _vt_operator_iteration),
        Property("limits", "ρ̄ ≥ max π/μ → V^π;  ρ̄ ≤ min π/μ → V^μ", _vt_limits),
        Property("td_residual", "E_μ[ρ̃ δ | s] = 0 at the fixed point", _vt_td_residual),
    ),
    wrong_variants=(
        WrongVariant("vtrace_fp_ratio_normalised", "π_ρ̄ ∝ min(ρ̄, π/μ): the clipped ratio normalised, μ dropped",
                     "derivation (Theorem 1 read as clipping the ratio alone)", vtrace_fp_ratio_normalised),
        WrongVariant("vtrace_fp_not_renormalised", "min(ρ̄μ, π) evaluated as a policy without renormalising",
                     "derivation", vtrace_fp_not_renormalised),
        WrongVariant("vtrace_fp_target_value", "the fixed point taken as V^π whatever ρ̄",
                     "Espeholt et al. (2018), §4.1 (the statement V-trace 'learns V^π' holds only for "
                     "ρ̄ = ∞ / on-policy)", vtrace_fp_target_value),
        WrongVariant("vtrace_fp_trace_clip", "π ∝ min(c̄μ, π): c̄ taken for the clip that sets the fixed point",
                     "derivation (Espeholt et al. 2018, Remark after Thm 1: c̄ only sets the contraction speed)",
                     vtrace_fp_trace_clip),
    ),
    bad_inputs=_vt_bad_inputs(),
    inputs=lambda: _offpolicy_inputs("vtrace"),
    tolerance=1e-8,
    doc="docs/mdp/offpolicy.md",
)

# ---------------------------------------------------------------------------------------------
# Retrace fixed point

_LAMS = (0.0, 0.7, 1.0)


def _rt_action_values(impl: Callable, ctx: VerifyContext) -> Outcome:
    """== Q^π from the library's state solve (TabularMDP.action_values), every λ."""
    err = 0.0
    for mdp, pi, mu in offpolicy_suite(ctx, 35):
        for lam in _LAMS:
            err = max(err, max_abs_error(impl(mdp, pi, mu, lam=lam), mdp.action_values(pi)))
    return outcome_within(err, TOL)


def _rt_operator_iteration(impl: Callable, ctx: VerifyContext) -> Outcome:
    """== the limit of Q ← R₃Q (3-step Retrace(λ) operator under μ), iterated from Q = 0."""
    err = 0.0
    for mdp, pi, mu in offpolicy_suite(ctx, 36):
        for lam in _LAMS:
            def op(Q, m=mdp, p=pi, u=mu, la=lam):
                return retrace_operator(m, p, u, Q, lam=la, steps=3)
            want = _iterate(op, torch.zeros(mdp.num_states, mdp.num_actions, dtype=F64, device=mdp.device))
            err = max(err, max_abs_error(impl(mdp, pi, mu, lam=lam), want))
    return outcome_within(err, TOL)


def _rt_bellman(impl: Callable, ctx: VerifyContext) -> Outcome:
    """Q − R − γ P (π·Q) = 0 on non-terminal (s, a); Q = 0 on terminal states."""
    err = 0.0
    for mdp, pi, mu in offpolicy_suite(ctx, 37):
        Q = impl(mdp, pi, mu)
        res = Q - mdp.R - mdp.gamma * torch.einsum("sat,t->sa", mdp.P, (pi * Q).sum(-1))
        err = max(err, float(torch.where(mdp.terminal[:, None], Q, res).abs().max()))
    return outcome_within(err, TOL, "max |Bellman residual|")


def retrace_fp_behaviour_value(mdp, pi, mu, *, lam=1.0):
    """Q^μ: the bootstrap E_π Q(s', ·) taken under the behaviour policy."""
    return mdp.action_values(mu)


def retrace_fp_truncated_policy(mdp, pi, mu, *, lam=1.0):
    """Q of π ∝ min(μ, π): the V-trace clipping (ρ̄ = 1) carried over to Retrace."""
    return mdp.action_values(_clipped_policy(pi, mu, 1.0))


def retrace_fp_state_values(mdp, pi, mu, *, lam=1.0):
    """Q(s, a) = R(s, a) + γ V^π(s): the next-state expectation replaced by the current state's value."""
    return mdp.R + mdp.gamma * mdp.state_values(pi)[:, None]


def _rt_bad_inputs() -> tuple[BadInput, ...]:
    m, t = _small, _table
    return (
        BadInput("lam > 1", lambda f, d: f(m(d), t(d, _HALF), t(d, _HALF), lam=1.5), "lam"),
        BadInput("mu = 0 where pi > 0", lambda f, d: f(m(d), t(d, _PI_EDGE), t(d, _UNCOVERED)), "mu"),
        BadInput("NaN in mu", lambda f, d: f(m(d), t(d, _HALF), t(d, [[float("nan")] * 2] * 3)), "mu"),
    )


RETRACE_FIXED_POINT = Spec(
    name="retrace_fixed_point",
    title="Retrace(λ) fixed point (exact)",
    area="mdp",
    formula="R Q = Q + (I − γK)⁻¹ δ(Q) = Q  ⇔  δ(Q) = 0  ⇔  Q = R + γ P Σ_b π(b|·) Q(·, b) = Q^π",
    source="Munos, Stepleton, Harutyunyan & Bellemare (NeurIPS 2016), eq. (3)–(4), Theorem 1",
    function=retrace_fixed_point,
    reference=retrace_fixed_point_reference,
    implementations={"solve": retrace_fixed_point, "reference": retrace_fixed_point_reference},
    properties=(
        Property("action_values", "== Q^π (state solve), λ ∈ {0, 0.7, 1}", _rt_action_values),
        Property("operator_iteration", "== lim Q ← R₃Q (3-step Retrace(λ) operator under μ)",
                 _rt_operator_iteration),
        Property("bellman", "Bellman residual Q − R − γP(π·Q) = 0", _rt_bellman),
    ),
    wrong_variants=(
        WrongVariant("retrace_fp_behaviour_value", "Q^μ: the bootstrap expectation taken under μ",
                     "derivation (the on-policy target used off-policy)", retrace_fp_behaviour_value),
        WrongVariant("retrace_fp_truncated_policy", "Q of π ∝ min(μ, π): V-trace's clipped policy",
                     "derivation (Retrace truncates only the traces, not the target)", retrace_fp_truncated_policy),
        WrongVariant("retrace_fp_state_values", "Q(s, a) = R + γV^π(s): current state bootstrapped",
                     "derivation", retrace_fp_state_values),
    ),
    bad_inputs=_rt_bad_inputs(),
    inputs=lambda: _offpolicy_inputs("retrace"),
    tolerance=1e-8,
    doc="docs/mdp/offpolicy.md",
)

# ---------------------------------------------------------------------------------------------
# Fisher information


def _logit_suite(ctx: VerifyContext, offset: int) -> list[tuple[TabularMDP, torch.Tensor]]:
    g = ctx.generator(offset)
    return [(mdp, 1.5 * torch.randn(mdp.num_states, mdp.num_actions, generator=g, device=g.device, dtype=F64))
            for mdp, _, _ in offpolicy_suite(ctx, offset + 1)]


def _mean_kl_hessian(mdp: TabularMDP, theta: torch.Tensor, policy=None) -> torch.Tensor:
    """∇²_θ' Σₛ d̄(s) KL(π_θ(·|s) ‖ π_θ'(·|s)) at θ' = θ, by autograd (d̄ and π_θ held fixed)."""
    pi = policy_table(mdp, theta, policy).detach()
    d = mdp.discounted_occupancy(pi, normalized=True)

    def kl(flat: torch.Tensor) -> torch.Tensor:
        new = policy_table(mdp, flat.reshape(theta.shape), policy)
        return (d[:, None] * pi * (torch.log(pi) - torch.log(new))).sum()

    return torch.autograd.functional.hessian(kl, theta.detach().reshape(-1).clone())


def _fi_kl_hessian(impl: Callable, ctx: VerifyContext) -> Outcome:
    err = 0.0
    for mdp, theta in _logit_suite(ctx, 41):
        err = max(err, max_abs_error(impl(mdp, theta), _mean_kl_hessian(mdp, theta)))
    return outcome_within(err, TOL)


def _fi_blocks(impl: Callable, ctx: VerifyContext) -> Outcome:
    """Tabular softmax: block diagonal, block s = d̄(s)(diag π(·|s) − π(·|s)π(·|s)ᵀ)."""
    err = 0.0
    for mdp, theta in _logit_suite(ctx, 43):
        pi = mdp.policy(theta)
        d = mdp.discounted_occupancy(pi, normalized=True)
        want = torch.block_diag(*[d[s] * (torch.diag(pi[s]) - torch.outer(pi[s], pi[s]))
                                  for s in range(mdp.num_states)])
        err = max(err, max_abs_error(impl(mdp, theta), want))
    return outcome_within(err, TOL)


def _fi_linear_softmax(impl: Callable, ctx: VerifyContext) -> Outcome:
    """Linear softmax x(s, a)·θ: F = Σₛ d̄ Σₐ π (x − x̄ₛ)(x − x̄ₛ)ᵀ, x̄ₛ = Σₐ π x; and == the KL Hessian."""
    g = ctx.generator(45)
    err = 0.0
    for mdp, _ in _logit_suite(ctx, 46):
        x = torch.randn(mdp.num_states, mdp.num_actions, 3, generator=g, device=g.device, dtype=F64)
        policy, theta = LinearSoftmaxPolicy(x), torch.randn(3, generator=g, device=g.device, dtype=F64)
        pi = policy(theta)
        d = mdp.discounted_occupancy(pi, normalized=True)
        centred = x - (pi[:, :, None] * x).sum(1, keepdim=True)
        want = torch.einsum("sa,sai,saj->ij", d[:, None] * pi, centred, centred)
        got = impl(mdp, theta, policy=policy)
        err = max(err, max_abs_error(got, want), max_abs_error(got, _mean_kl_hessian(mdp, theta, policy)))
    return outcome_within(err, TOL)


def fisher_unnormalised_occupancy(mdp, theta, *, policy=None):
    """States weighted by the unnormalised d(s) = Σₜ γᵗ Pr(sₜ = s) (Σd = 1/(1 − γ)), not d̄."""
    pi = policy_table(mdp, theta, policy).detach()
    scale = mdp.discounted_occupancy(pi).sum()
    return scale * fisher_information(mdp, theta, policy=policy)


def fisher_score_without_normaliser(mdp, theta, *, policy=None):
    """Score ∇log π taken as ∇h (the logits' gradient): tabular blocks d̄(s) diag π(·|s)."""
    pi = policy_table(mdp, theta, policy).detach()
    d = mdp.discounted_occupancy(pi, normalized=True)
    return torch.diag((d[:, None] * pi).reshape(-1))


def fisher_uniform_actions(mdp, theta, *, policy=None):
    """Actions averaged uniformly, Σₛ d̄(s) (1/|A|) Σₐ ψψᵀ, instead of under π(a|s)."""
    from pgmath.mdp.natural import score_jacobian

    pi = policy_table(mdp, theta, policy).detach()
    d = mdp.discounted_occupancy(pi, normalized=True)
    psi = score_jacobian(mdp, theta, policy=policy).reshape(pi.numel(), -1)
    w = (d[:, None] * torch.full_like(pi, 1 / mdp.num_actions)).reshape(-1)
    return psi.T @ (w[:, None] * psi)


def _theta_bad_inputs() -> tuple[BadInput, ...]:
    m = _small
    return (
        BadInput("theta of the wrong shape", lambda f, d: f(m(d), torch.zeros(3, 3, dtype=F64, device=d)), "theta"),
        BadInput("NaN theta", lambda f, d: f(m(d), torch.full((3, 2), float("nan"), dtype=F64, device=d)), "theta"),
        BadInput("integer theta", lambda f, d: f(m(d), torch.zeros(3, 2, dtype=torch.long, device=d)), "theta"),
    )


def _logit_inputs():
    import numpy as np
    from hypothesis import strategies as st
    from hypothesis.extra.numpy import arrays

    from pgmath.testing.strategies import tabular_mdps

    def calls(mdp: TabularMDP):
        table = arrays(np.float64, (mdp.num_states, mdp.num_actions),
                       elements=st.integers(-12, 12).map(lambda i: i / 4))
        return table.map(lambda x: Call((mdp, torch.as_tensor(x))))

    return tabular_mdps().flatmap(calls)


FISHER_INFORMATION = Spec(
    name="fisher_information",
    title="Fisher information (exact, normalised d̄)",
    area="mdp",
    formula="F = Σₛ d̄(s) Σₐ π(a|s) ∇log π(a|s) ∇log π(a|s)ᵀ,  d̄ = d / Σₛ d(s)",
    source="Kakade, 'A Natural Policy Gradient' (NeurIPS 2001), §3; Agarwal et al. (JMLR 2021), §5.3 "
           "(normalised occupancy)",
    function=fisher_information,
    reference=fisher_information_reference,
    implementations={"closed_form": fisher_information, "reference": fisher_information_reference},
    properties=(
        Property("kl_hessian", "== ∇² of the d̄-weighted mean KL at θ (autograd)", _fi_kl_hessian),
        Property("blocks", "tabular: block s = d̄(s)(diag π − ππᵀ)", _fi_blocks),
        Property("linear_softmax", "linear softmax: Σ d̄ π (x − x̄)(x − x̄)ᵀ == KL Hessian", _fi_linear_softmax),
    ),
    wrong_variants=(
        WrongVariant("fisher_unnormalised_occupancy", "states weighted by the unnormalised d (Σd = 1/(1 − γ))",
                     "derivation (two conventions: Kakade 2001 weighs by the unnormalised ρ^π, Agarwal "
                     "et al. 2021 normalise by (1 − γ))", fisher_unnormalised_occupancy),
        WrongVariant("fisher_score_without_normaliser", "score taken as ∇h: F = diag(d̄π), −ππᵀ missing",
                     "derivation", fisher_score_without_normaliser),
        WrongVariant("fisher_uniform_actions", "actions averaged uniformly instead of under π",
                     "derivation", fisher_uniform_actions),
    ),
    bad_inputs=_theta_bad_inputs(),
    inputs=_logit_inputs,
    tolerance=1e-10,
    doc="docs/mdp/natural_gradient.md",
)

# ---------------------------------------------------------------------------------------------
# natural gradient


def _ng_advantage(impl: Callable, ctx: VerifyContext) -> Outcome:
    """Tabular softmax: == L (A^π − rowmean A^π), L = Σd; and L = 1/(1 − γ) without terminal states."""
    err = 0.0
    for mdp, theta in _logit_suite(ctx, 51):
        pi = mdp.policy(theta)
        A = mdp.advantages(pi)
        L = float(mdp.discounted_occupancy(pi).sum())
        if not bool(mdp.terminal.any()):
            err = max(err, abs(L - 1 / (1 - mdp.gamma)))
        err = max(err, max_abs_error(impl(mdp, theta), L * (A - A.mean(-1, keepdim=True))))
    return outcome_within(err, TOL)


def _ng_normal_equations(impl: Callable, ctx: VerifyContext) -> Outcome:
    """F w = ∇J (∇J by autograd through the solve of J) and w ⊥ null(F) (Σₐ w(s, a) = 0: minimum norm)."""
    err = 0.0
    for mdp, theta in _logit_suite(ctx, 53):
        w = impl(mdp, theta)
        g = mdp.exact_policy_gradient(theta, method="autograd")
        F = fisher_information_reference(mdp, theta)
        err = max(err, max_abs_error((F @ w.reshape(-1)).reshape(g.shape), g), float(w.sum(-1).abs().max()))
    return outcome_within(err, TOL)


def _ng_linear_softmax(impl: Callable, ctx: VerifyContext) -> Outcome:
    """Linear softmax: F w = ∇J (autograd) and w in the range of F."""
    g = ctx.generator(55)
    err = 0.0
    for mdp, _ in _logit_suite(ctx, 56):
        x = torch.randn(mdp.num_states, mdp.num_actions, 3, generator=g, device=g.device, dtype=F64)
        policy, theta = LinearSoftmaxPolicy(x), torch.randn(3, generator=g, device=g.device, dtype=F64)
        w = impl(mdp, theta, policy=policy)
        grad = mdp.exact_policy_gradient(policy, theta, method="autograd")
        F = fisher_information_reference(mdp, theta, policy=policy)
        err = max(err, max_abs_error(F @ w, grad))
    return outcome_within(err, TOL)


def ng_unnormalised_fisher(mdp, theta, *, policy=None, rtol=1e-12):
    """F built with the unnormalised occupancy: ∇̃J = A − rowmean A, the 1/(1 − γ) missing."""
    pi = policy_table(mdp, theta, policy).detach()
    return natural_gradient(mdp, theta, policy=policy) / mdp.discounted_occupancy(pi).sum()


def ng_damped(mdp, theta, *, policy=None, rtol=1e-12):
    """(F + 0.1 I)⁻¹ ∇J: conjugate-gradient damping left in the 'natural gradient'."""
    F = fisher_information(mdp, theta, policy=policy)
    g = (mdp.exact_policy_gradient(theta) if policy is None else mdp.exact_policy_gradient(policy, theta))
    eye = torch.eye(F.shape[0], dtype=F64, device=F.device)
    return torch.linalg.solve(F + 0.1 * eye, g.reshape(-1)).reshape(torch.as_tensor(theta).shape)


def ng_vanilla_gradient(mdp, theta, *, policy=None, rtol=1e-12):
    """∇J itself (the Fisher never applied)."""
    return mdp.exact_policy_gradient(theta) if policy is None else mdp.exact_policy_gradient(policy, theta)


NATURAL_GRADIENT = Spec(
    name="natural_gradient",
    title="natural gradient F⁺∇J (exact)",
    area="mdp",
    formula="∇̃J = F⁺∇J;  tabular softmax: ∇̃J = L(A^π − rowmean A^π), L = Σₛ d(s) = 1/(1 − γ) without terminal states",
    source="Kakade (NeurIPS 2001), Theorem 1; Agarwal, Kakade, Lee & Mahajan (JMLR 2021), §5.3, eq. (19)",
    function=natural_gradient,
    reference=natural_gradient_reference,
    implementations={"closed_form": natural_gradient, "reference": natural_gradient_reference},
    properties=(
        Property("advantage", "tabular: == Σd·(A^π − rowmean A^π); Σd = 1/(1 − γ) without terminals", _ng_advantage),
        Property("normal_equations", "F w = ∇J (autograd), Σₐ w(s, a) = 0 (minimum norm)", _ng_normal_equations),
        Property("linear_softmax", "linear softmax: F w = ∇J (autograd)", _ng_linear_softmax),
    ),
    wrong_variants=(
        WrongVariant("ng_unnormalised_fisher", "Fisher under the unnormalised occupancy: the 1/(1 − γ) factor missing",
                     "derivation (Kakade 2001's unnormalised ρ^π vs Agarwal et al. 2021's η/(1 − γ) step)",
                     ng_unnormalised_fisher),
        WrongVariant("ng_damped", "(F + 0.1 I)⁻¹∇J: CG damping left in", "derivation (the cg_damping term of "
                     "practical TRPO implementations, e.g. sb3-contrib's TRPO)", ng_damped),
        WrongVariant("ng_vanilla_gradient", "∇J returned: the Fisher never applied", "derivation",
                     ng_vanilla_gradient),
    ),
    bad_inputs=(*_theta_bad_inputs(),
                BadInput("rtol = 0", lambda f, d: f(_small(d), torch.zeros(3, 2, dtype=F64, device=d), rtol=0.0),
                         "rtol")),
    inputs=_logit_inputs,
    tolerance=1e-8,
    doc="docs/mdp/natural_gradient.md",
)

FAMILY: tuple[Spec, ...] = (VTRACE_FIXED_POINT, RETRACE_FIXED_POINT, FISHER_INFORMATION, NATURAL_GRADIENT)
