"""Specs of the exact tabular-MDP quantities of :mod:`pgmath.mdp` (verify area ``"mdp"``).

    (I − γ P_π) V = r_π                         V^π        (Bellman equation)
    Q(s, a) = R(s, a) + γ Σₛ' P(s'|s, a) V(s')   Q^π
    (I − γ P_π)ᵀ d = μ₀                          d(s) = Σₜ γᵗ Pr(sₜ = s)    (discounted occupancy)
    ∇J = Σₛ d(s) Σₐ ∇π(a|s) Q(s, a)              (policy gradient theorem)
    Vₜ = r_{πₜ} + γ P_{πₜ} Vₜ₊₁,  V_H = 0         (finite horizon, backward induction)

Sources: Sutton & Barto (2nd ed., 2018), §3.5, §4.1 (Figure 4.1), §13.2 (Example 13.1); Sutton,
McAllester, Singh & Mansour (NeurIPS 1999), Theorem 1; Puterman (1994), §4.2.

Each spec's function is a linear solve of :class:`pgmath.mdp.TabularMDP`, called unbound
(``TabularMDP.state_values(mdp, pi)``); its reference is a plain loop of
:mod:`pgmath.mdp.iterative_evaluation` (sweeps to a fixed point) or
:func:`pgmath.mdp.backward_induction_values`. Properties compare an implementation with those
loops, with equations checked directly on the tables (Bellman residuals, J computed two ways),
with autograd and central finite differences, with closed forms (bandit, two-step horizon), and
with published numbers (Figure 4.1, Example 13.1). The statistical checks (the episode sampler,
bootstrapped returns) are rows of :mod:`pgmath.mdp.verify`, not properties: they are not
deterministic functions of an implementation.

Tolerances: :data:`TOL` = 1e-9 absolute on quantities of size 1–100. The iterative references
stop when a sweep moves the iterate by ≤ 1e-12, which puts them within about 1e-10 of the fixed
point on these MDPs (γ ≤ 0.99, or γ = 1 with a termination probability ≥ 0.1 per step); every
wrong variant below is off by far more (≥ 1e-3 on the suites).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import torch

from pgmath.mdp import (
    EXAMPLE_13_1,
    FIGURE_4_1,
    LinearSoftmaxPolicy,
    TabularMDP,
    backward_induction_values,
    bandit,
    central_difference_gradient,
    finite_horizon_values,
    gridworld,
    iterative_action_values,
    iterative_occupancy,
    iterative_policy_evaluation,
    iterative_policy_gradient,
    random_mdp,
    short_corridor,
    short_corridor_features,
    short_corridor_optimum,
    short_corridor_value,
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

__all__ = ["FAMILY", "TOL", "discounted_occupancy_reference", "mdp_suite"]

F64 = torch.float64
#: Absolute tolerance of the properties (float64; the iterative references are within ~1e-10).
TOL = 1e-9
#: Relative tolerance against central finite differences (h = 1e-5): error / (1 + max |∇J|).
FD_TOL = 1e-6

#: (S, A, γ, number of terminal states) of the random MDPs; quick runs use the first three
#: (continuing γ = 0.5, episodic γ = 1, episodic γ = 0.9: where discounting and termination
#: both matter).
_CASES = ((5, 3, 0.5, 0), (6, 2, 1.0, 2), (7, 3, 0.9, 3), (8, 4, 0.99, 0), (4, 5, 0.0, 0))


def mdp_suite(ctx: VerifyContext, offset: int) -> list[tuple[TabularMDP, torch.Tensor]]:
    """Random MDPs on ``ctx.device`` with random softmax logits ``[S, A]`` (seed ``ctx.seed + offset``)."""
    g = ctx.generator(offset)
    out = []
    for S, A, gamma, K in _CASES[:3] if ctx.quick else _CASES:
        mdp = random_mdp(S, A, generator=g, gamma=gamma, num_terminal=K)
        out.append((mdp, 2 * torch.randn(S, A, generator=g, device=g.device, dtype=F64)))
    return out


def _policy_suite(ctx: VerifyContext, offset: int) -> list[tuple[TabularMDP, torch.Tensor]]:
    return [(mdp, mdp.policy(logits)) for mdp, logits in mdp_suite(ctx, offset)]


def _look_ahead(mdp: TabularMDP, V: torch.Tensor) -> torch.Tensor:
    """R[s, a] + γ Σₛ' P[s, a, s'] V(s'), ``[S, A]``."""
    return mdp.R + mdp.gamma * torch.einsum("sat,t->sa", mdp.P, V)


# ---------------------------------------------------------------------------------------------
# inputs (Hypothesis strategies, imported lazily) and bad inputs shared by the specs


def _mdp_inputs(build: Callable[..., Call], extra: Callable[[TabularMDP], object] | None = None):
    """Calls on small random MDPs (:func:`pgmath.testing.strategies.tabular_mdps`) with a table
    ``x [S, A]`` of quarter-integers in [−3, 3]: ``build(mdp, x)``, or ``build(mdp, x, e)`` with
    ``e`` drawn from the strategy ``extra(mdp)``."""
    import numpy as np
    from hypothesis import strategies as st
    from hypothesis.extra.numpy import arrays

    from pgmath.testing.strategies import tabular_mdps

    def calls(mdp: TabularMDP):
        table = arrays(np.float64, (mdp.num_states, mdp.num_actions),
                       elements=st.integers(-12, 12).map(lambda i: i / 4))
        more = st.tuples() if extra is None else st.tuples(extra(mdp))
        return st.tuples(table, more).map(lambda tm: build(mdp, torch.as_tensor(tm[0]), *tm[1]))

    return tabular_mdps().flatmap(calls)


def _policy_call(mdp: TabularMDP, x: torch.Tensor) -> Call:
    return Call((mdp, softmax(x)))


def _occupancy_call(mdp: TabularMDP, x: torch.Tensor, normalized: bool) -> Call:
    return Call((mdp, softmax(x)), {"normalized": normalized})


def _booleans(mdp: TabularMDP):
    from hypothesis import strategies as st

    return st.booleans()


def _small_mdp(device: torch.device) -> TabularMDP:
    return random_mdp(3, 2, generator=torch.Generator(device=device).manual_seed(0), num_terminal=1)


def _policy_bad_inputs() -> tuple[BadInput, ...]:
    m = _small_mdp
    def full(d, shape, value):
        return torch.full(shape, value, dtype=F64, device=d)

    return (
        BadInput("pi of the wrong shape", lambda f, d: f(m(d), full(d, (3, 3), 1 / 3)), "pi"),
        BadInput("pi rows that do not sum to 1", lambda f, d: f(m(d), full(d, (3, 2), 0.9)), "pi"),
        BadInput("integer pi", lambda f, d: f(m(d), torch.ones(3, 2, dtype=torch.long, device=d)), "pi"),
        BadInput("NaN in pi", lambda f, d: f(m(d), full(d, (3, 2), float("nan"))), "pi"),
    )


# ---------------------------------------------------------------------------------------------
# V^π


def _v_iterative(impl: Callable, ctx: VerifyContext) -> Outcome:
    err = 0.0
    for mdp, pi in _policy_suite(ctx, 1):
        err = max(err, max_abs_error(impl(mdp, pi), iterative_policy_evaluation(mdp, pi)))
    return outcome_within(err, TOL)


def _v_bellman(impl: Callable, ctx: VerifyContext) -> Outcome:
    """V(s) − Σₐ π(a|s)(R[s, a] + γ Σₛ' P[s, a, s'] V(s')) = 0 on non-terminal s, V = 0 on terminal s."""
    err = 0.0
    for mdp, pi in _policy_suite(ctx, 2):
        V = impl(mdp, pi)
        residual = torch.where(mdp.terminal, V, V - (pi * _look_ahead(mdp, V)).sum(-1))
        err = max(err, float(residual.abs().max()))
    return outcome_within(err, TOL, "max |Bellman residual|")


def _v_figure_4_1(impl: Callable, ctx: VerifyContext) -> Outcome:
    """The 4 × 4 grid of Example 4.1, equiprobable policy, γ = 1: the k = ∞ table of Figure 4.1."""
    V = impl(gridworld(device=ctx.device), torch.full((16, 4), 0.25, dtype=F64, device=ctx.device))
    return outcome_within(max_abs_error(V.reshape(4, 4), torch.tensor(FIGURE_4_1, dtype=F64)), TOL)


def _v_example_13_1(impl: Callable, ctx: VerifyContext) -> Outcome:
    """Short corridor: V(start) == (2p − 4)/(p(1 − p)); its maximum is the book's p* ≈ 0.59, J* ≈ −11.6."""
    mdp = short_corridor(device=ctx.device)
    err = 0.0
    for p in (0.1, 0.3, 0.5, 2 - math.sqrt(2), 0.9):
        pi = torch.tensor([[1 - p, p]] * 4, dtype=F64, device=ctx.device)
        err = max(err, abs(float(impl(mdp, pi)[0]) - short_corridor_value(p)))
    p_star, J_star = short_corridor_optimum(impl, ctx.device)
    book = abs(p_star - EXAMPLE_13_1["p_right"]) <= 0.005 and abs(J_star - EXAMPLE_13_1["value"]) <= 0.06
    return Outcome(err <= TOL and book,
                   f"p* = {p_star:.4f}, J* = {J_star:.4f} (book 0.59, −11.6); closed form |err| = {err:.1e}",
                   {"p_star": p_star, "J_star": J_star, "closed_form_error": err, "tol": TOL})


def values_transposed_dynamics(mdp: TabularMDP, pi: torch.Tensor) -> torch.Tensor:
    """Solves (I − γ P_πᵀ) V = r_π: P_π indexed [s', s] (an einsum/transpose slip)."""
    live = ~mdp.terminal
    M = torch.eye(int(live.sum()), dtype=F64, device=mdp.device) - mdp.gamma * mdp.transition_matrix(pi)[live][:, live].T
    V = torch.zeros(mdp.num_states, dtype=F64, device=mdp.device)
    V[live] = torch.linalg.solve(M, mdp.expected_rewards(pi)[live])
    return V


def values_fixed_sweeps(mdp: TabularMDP, pi: torch.Tensor) -> torch.Tensor:
    """Iterative evaluation stopped after a fixed 20 sweeps (a truncated evaluation used as V^π)."""
    live = (~mdp.terminal).to(F64)
    V = torch.zeros(mdp.num_states, dtype=F64, device=mdp.device)
    for _ in range(20):  # 20 synchronous sweeps, whatever the remaining change
        V = (pi * _look_ahead(mdp, V)).sum(-1) * live
    return V


def values_discounted_first_reward(mdp: TabularMDP, pi: torch.Tensor) -> torch.Tensor:
    """V = γ (r_π + P_π V): the first reward discounted too (Σₜ γᵗ⁺¹ rₜ)."""
    return mdp.gamma * mdp.state_values(pi)


STATE_VALUES = Spec(
    name="state_values",
    title="V^π (linear solve)",
    area="mdp",
    formula="(I − γ P_π) V = r_π on non-terminal states, V = 0 on terminal states",
    source="Sutton & Barto (2nd ed.), §3.5 (Bellman equation), §4.1 (iterative policy evaluation, Figure 4.1)",
    function=TabularMDP.state_values,
    reference=iterative_policy_evaluation,
    implementations={"solve": TabularMDP.state_values, "reference": iterative_policy_evaluation},
    properties=(
        Property("iterative", "== iterative policy evaluation (S&B §4.1)", _v_iterative),
        Property("bellman", "Bellman residual V − r_π − γP_πV = 0", _v_bellman),
        Property("figure_4_1", "S&B Fig. 4.1: 4×4 grid, random policy, γ = 1, table to 1e-9", _v_figure_4_1),
        Property("example_13_1", "S&B Ex. 13.1: J(p) closed form; maximize J: p* ≈ 0.59, J* ≈ −11.6",
                 _v_example_13_1),
    ),
    wrong_variants=(
        WrongVariant("values_transposed_dynamics", "solves (I − γP_πᵀ)V = r_π (transition matrix transposed)",
                     "derivation", values_transposed_dynamics),
        WrongVariant("values_fixed_sweeps", "iterative evaluation stopped after a fixed 20 sweeps",
                     "derivation (the k = 10 column of S&B Figure 4.1 read as v_π)", values_fixed_sweeps),
        WrongVariant("values_discounted_first_reward", "V = γ(r_π + P_πV): the first reward discounted",
                     "derivation (the slip of scan_discount_applied_after, tabular form)",
                     values_discounted_first_reward),
    ),
    bad_inputs=_policy_bad_inputs(),
    inputs=lambda: _mdp_inputs(_policy_call),
    tolerance=1e-8,
    doc="docs/mdp/policy-evaluation.md",
)

# ---------------------------------------------------------------------------------------------
# Q^π


def _q_look_ahead(impl: Callable, ctx: VerifyContext) -> Outcome:
    err = 0.0
    for mdp, pi in _policy_suite(ctx, 3):
        err = max(err, max_abs_error(impl(mdp, pi), iterative_action_values(mdp, pi)))
    return outcome_within(err, TOL)


def _q_averages_to_v(impl: Callable, ctx: VerifyContext) -> Outcome:
    err = 0.0
    for mdp, pi in _policy_suite(ctx, 4):
        err = max(err, max_abs_error((pi * impl(mdp, pi)).sum(-1), iterative_policy_evaluation(mdp, pi)))
    return outcome_within(err, TOL)


def _q_bellman(impl: Callable, ctx: VerifyContext) -> Outcome:
    """Q(s, a) − R[s, a] − γ Σₛ' P[s, a, s'] Σₐ' π(a'|s') Q(s', a') = 0 everywhere."""
    err = 0.0
    for mdp, pi in _policy_suite(ctx, 5):
        Q = impl(mdp, pi)
        err = max(err, float((Q - _look_ahead(mdp, (pi * Q).sum(-1))).abs().max()))
    return outcome_within(err, TOL, "max |Bellman residual|")


def q_missing_discount(mdp: TabularMDP, pi: torch.Tensor) -> torch.Tensor:
    """Q = R + P V: γ dropped from the one-step look-ahead."""
    return mdp.R + torch.einsum("sat,t->sa", mdp.P, mdp.state_values(pi))


def q_current_state_value(mdp: TabularMDP, pi: torch.Tensor) -> torch.Tensor:
    """Q(s, a) = R(s, a) + γ V(s): bootstraps from the current state instead of the next."""
    return mdp.R + mdp.gamma * mdp.state_values(pi)[:, None]


ACTION_VALUES = Spec(
    name="action_values",
    title="Q^π",
    area="mdp",
    formula="Q(s, a) = R(s, a) + γ Σₛ' P(s'|s, a) V^π(s')",
    source="Sutton & Barto (2nd ed.), §3.5, eq. 3.13 and the Bellman equation for q_π",
    function=TabularMDP.action_values,
    reference=iterative_action_values,
    implementations={"solve": TabularMDP.action_values, "reference": iterative_action_values},
    properties=(
        Property("look_ahead", "== R + γ Σ P V, V by iterative evaluation, loop over (s, a)", _q_look_ahead),
        Property("averages_to_v", "Σₐ π(a|s) Q(s, a) == V^π(s) (iterative evaluation)", _q_averages_to_v),
        Property("bellman", "Bellman residual Q − R − γ P (π·Q) = 0", _q_bellman),
    ),
    wrong_variants=(
        WrongVariant("q_missing_discount", "γ dropped from the look-ahead: Q = R + PV", "derivation",
                     q_missing_discount),
        WrongVariant("q_current_state_value", "Q(s, a) = R(s, a) + γV(s): current state's value bootstrapped",
                     "derivation (the tabular form of gae_next_value_off_by_one, leggedrobotics/rsl_rl#151)",
                     q_current_state_value),
    ),
    bad_inputs=_policy_bad_inputs(),
    inputs=lambda: _mdp_inputs(_policy_call),
    tolerance=1e-8,
    doc="docs/mdp/action-values.md",
)

# ---------------------------------------------------------------------------------------------
# d^π


def discounted_occupancy_reference(mdp: TabularMDP, pi: torch.Tensor, normalized: bool = False) -> torch.Tensor:
    """d^π by iterative sweeps dₖ₊₁ = μ₀ + γ P_πᵀ dₖ; divided by Σₛ d(s) when ``normalized``."""
    d = iterative_occupancy(mdp, pi)
    return d / d.sum() if normalized else d


def _d_iterative(impl: Callable, ctx: VerifyContext) -> Outcome:
    err = 0.0
    for mdp, pi in _policy_suite(ctx, 6):
        err = max(err, max_abs_error(impl(mdp, pi), iterative_occupancy(mdp, pi)))
    return outcome_within(err, TOL)


def _d_objective(impl: Callable, ctx: VerifyContext) -> Outcome:
    """Σₛ d(s) r_π(s) == μ₀ · V^π (V by iterative evaluation): J computed two ways."""
    err = 0.0
    for mdp, pi in _policy_suite(ctx, 7):
        J_d = float(impl(mdp, pi) @ mdp.expected_rewards(pi))
        err = max(err, abs(J_d - float(mdp.mu0 @ iterative_policy_evaluation(mdp, pi))))
    return outcome_within(err, TOL)


def _d_normalized(impl: Callable, ctx: VerifyContext) -> Outcome:
    """normalized=True: a distribution; without terminal states it is (1 − γ) d (Σ d = 1/(1 − γ))."""
    err = 0.0
    for mdp, pi in _policy_suite(ctx, 8):
        dn = impl(mdp, pi, normalized=True)
        err = max(err, abs(float(dn.sum()) - 1.0), float((-dn).clamp(min=0).max()))
        if not bool(mdp.terminal.any()):
            err = max(err, max_abs_error(dn, (1 - mdp.gamma) * iterative_occupancy(mdp, pi)))
    return outcome_within(err, TOL)


def occupancy_missing_normalization(mdp: TabularMDP, pi: torch.Tensor, normalized: bool = False) -> torch.Tensor:
    """normalized=True returns Σₜ γᵗ Pr(sₜ = s) without the (1 − γ) factor (sums to 1/(1 − γ))."""
    return mdp.discounted_occupancy(pi)


def occupancy_normalized_by_default(mdp: TabularMDP, pi: torch.Tensor, normalized: bool = False) -> torch.Tensor:
    """(1 − γ) Σₜ γᵗ Pr(sₜ = s) returned where the unnormalised d is asked for."""
    return mdp.discounted_occupancy(pi, normalized=True) if normalized else (1 - mdp.gamma) * mdp.discounted_occupancy(pi)


def occupancy_undiscounted(mdp: TabularMDP, pi: torch.Tensor, normalized: bool = False) -> torch.Tensor:
    """d₁(s) = Σₜ Pr(sₜ = s): γᵗ dropped (infinite, a singular solve, without terminal states)."""
    return mdp.with_gamma(1.0).discounted_occupancy(pi, normalized=normalized)


def occupancy_not_transposed(mdp: TabularMDP, pi: torch.Tensor, normalized: bool = False) -> torch.Tensor:
    """Solves (I − γ P_π) d = μ₀ instead of (I − γ P_π)ᵀ d = μ₀."""
    live = ~mdp.terminal
    M = torch.eye(int(live.sum()), dtype=F64, device=mdp.device) - mdp.gamma * mdp.transition_matrix(pi)[live][:, live]
    d = torch.zeros(mdp.num_states, dtype=F64, device=mdp.device)
    d[live] = torch.linalg.solve(M, mdp.mu0[live])
    return d / d.sum() if normalized else d


_CONVENTIONS = ("derivation (two conventions: Agarwal et al. 2021 normalise d by (1 − γ), "
                "Sutton & Barto §13.2 do not)")

DISCOUNTED_OCCUPANCY = Spec(
    name="discounted_occupancy",
    title="discounted occupancy d^π",
    area="mdp",
    formula="(I − γ P_π)ᵀ d = μ₀  ⇔  d(s) = Σₜ γᵗ Pr(sₜ = s); normalized: d / Σₛ d(s)",
    source="Sutton & Barto (2nd ed.), §13.2 (on-policy distribution); Agarwal et al. (JMLR 2021), §2",
    function=TabularMDP.discounted_occupancy,
    reference=discounted_occupancy_reference,
    implementations={"solve": TabularMDP.discounted_occupancy, "reference": discounted_occupancy_reference},
    properties=(
        Property("iterative", "== iterative dₖ₊₁ = μ₀ + γP_πᵀdₖ", _d_iterative),
        Property("objective", "Σ d·r_π == μ₀·V^π (J two ways)", _d_objective),
        Property("normalized", "normalized: sums to 1; = (1 − γ)d without terminal states", _d_normalized),
    ),
    wrong_variants=(
        WrongVariant("occupancy_missing_normalization", "normalized=True without the (1 − γ) factor",
                     _CONVENTIONS, occupancy_missing_normalization),
        WrongVariant("occupancy_normalized_by_default", "(1 − γ)·d returned where the unnormalised d is asked for",
                     _CONVENTIONS, occupancy_normalized_by_default),
        WrongVariant("occupancy_undiscounted", "γᵗ dropped: d₁(s) = Σₜ Pr(sₜ = s)",
                     "Nota & Thomas (AAMAS 2020), 'Is the Policy Gradient a Gradient?'", occupancy_undiscounted),
        WrongVariant("occupancy_not_transposed", "solves (I − γP_π)d = μ₀ (transpose missing)", "derivation",
                     occupancy_not_transposed),
    ),
    bad_inputs=_policy_bad_inputs(),
    inputs=lambda: _mdp_inputs(_occupancy_call, _booleans),
    tolerance=1e-8,
    doc="docs/mdp/discounted-occupancy.md",
)

# ---------------------------------------------------------------------------------------------
# the exact policy gradient ∇J


def _autograd_gradient(mdp: TabularMDP, logits_or_fn, params: torch.Tensor | None = None) -> torch.Tensor:
    """Reverse-mode autograd of J = μ₀ · solve(I − γP_π, r_π), here, independently of ``impl``."""
    theta = (logits_or_fn if params is None else params).detach().clone().requires_grad_(True)
    with torch.enable_grad():
        J = mdp.objective(theta) if params is None else mdp.objective(logits_or_fn, theta)
        (g,) = torch.autograd.grad(J, theta)
    return g


def _pg_autograd(impl: Callable, ctx: VerifyContext) -> Outcome:
    err = 0.0
    for mdp, logits in mdp_suite(ctx, 9):
        err = max(err, max_abs_error(impl(mdp, logits), _autograd_gradient(mdp, logits)))
    return outcome_within(err, TOL)


def _fd_error(got: torch.Tensor, J: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> float:
    fd = central_difference_gradient(J, x)
    return max_abs_error(got, fd) / (1 + float(fd.abs().max()))


def _pg_finite_differences(impl: Callable, ctx: VerifyContext) -> Outcome:
    err = 0.0
    for mdp, logits in mdp_suite(ctx, 10):
        err = max(err, _fd_error(impl(mdp, logits), lambda x, m=mdp: m.objective(x), logits))
    return outcome_within(err, FD_TOL, "max |err| / (1 + max|∇J|)")


def _pg_linear_softmax(impl: Callable, ctx: VerifyContext) -> Outcome:
    """A linear-softmax policy θ ↦ π: impl(mdp, policy, θ) == autograd == finite differences."""
    g = ctx.generator(11)
    err_ad = err_fd = 0.0
    for mdp, _ in mdp_suite(ctx, 12):
        S, A = mdp.num_states, mdp.num_actions
        policy = LinearSoftmaxPolicy(torch.randn(S, A, 3, generator=g, device=g.device, dtype=F64))
        theta = torch.randn(3, generator=g, device=g.device, dtype=F64)
        got = impl(mdp, policy, theta)
        err_ad = max(err_ad, max_abs_error(got, _autograd_gradient(mdp, policy, theta)))
        err_fd = max(err_fd, _fd_error(got, lambda th, m=mdp, p=policy: m.objective(p, th), theta))
    return Outcome(err_ad <= TOL and err_fd <= FD_TOL, f"vs autograd {err_ad:.1e}, vs FD {err_fd:.1e}",
                   {"autograd": err_ad, "fd_rel": err_fd, "tol": TOL, "fd_tol": FD_TOL})


def _pg_bandit(impl: Callable, ctx: VerifyContext) -> Outcome:
    """A bandit (one step, γ = 1): ∂J/∂θₐ = π(a)(mₐ − J), J = Σₐ π(a) mₐ; 0 in the terminal state."""
    g = ctx.generator(13)
    err = 0.0
    for A in (1, 2, 5):
        means = torch.randn(A, generator=g, device=g.device, dtype=F64)
        logits = torch.randn(2, A, generator=g, device=g.device, dtype=F64)
        pi = softmax(logits[0])
        want = torch.zeros(2, A, dtype=F64, device=g.device)
        want[0] = pi * (means - (pi * means).sum())
        err = max(err, max_abs_error(impl(bandit(means, device=g.device), logits), want))
    return outcome_within(err, TOL)


def _pg_example_13_1(impl: Callable, ctx: VerifyContext) -> Outcome:
    """Short corridor, P(right) = σ(θ): dJ/dθ = 0 at the optimum p* = 2 − √2 (book: ≈ 0.59), > 0 at
    p = 0.5, < 0 at p = 0.7."""
    mdp = short_corridor(device=ctx.device)
    policy = LinearSoftmaxPolicy(short_corridor_features(1, device=ctx.device))

    def slope(p: float) -> float:
        return float(impl(mdp, policy, torch.tensor([math.log(p / (1 - p))], dtype=F64, device=ctx.device))[0])

    at_opt, below, above = slope(2 - math.sqrt(2)), slope(0.5), slope(0.7)
    ok = abs(at_opt) <= TOL and below > 0 > above
    return Outcome(ok, f"dJ/dθ(p*) = {at_opt:.1e}; at p = 0.5: {below:+.3f}, at 0.7: {above:+.3f}",
                   {"at_optimum": at_opt, "at_0.5": below, "at_0.7": above, "tol": TOL})


def _discounted(m: TabularMDP, pi: torch.Tensor) -> torch.Tensor:
    return m.discounted_occupancy(pi)


def _surrogate_gradient(mdp: TabularMDP, logits_or_fn, params: torch.Tensor | None,
                        occupancy: Callable[[TabularMDP, torch.Tensor], torch.Tensor] = _discounted,
                        score: str = "pi") -> torch.Tensor:
    """∇θ of Σₛ occ(s) Σₐ f_θ(s, a) Q(s, a) with occ, Q and π held fixed, where the θ-dependent
    factor f is ``score``: "pi" — π_θ(a|s) (the theorem); "logit" — π(a|s) h_θ(s, a), h the
    logits (a callable policy must be a :class:`~pgmath.mdp.LinearSoftmaxPolicy`,
    h = x(s, a) · θ); "log_pi" — log π_θ(a|s), with A in place of Q.

    The wrong variants below take ``method`` for the signature of
    :meth:`TabularMDP.exact_policy_gradient` (the proof calls both methods); their bug is the
    same whichever method is asked for."""
    theta = (logits_or_fn if params is None else params).detach().clone().requires_grad_(True)
    with torch.enable_grad():
        if params is None:
            h, pi = theta, softmax(theta)
        else:
            h, pi = logits_or_fn.features.to(F64) @ theta, logits_or_fn(theta)
        pd = pi.detach()
        table = mdp.advantages(pd) if score == "log_pi" else mdp.action_values(pd)
        factor = {"pi": pi, "logit": pd * h, "log_pi": torch.log(pi)}[score]
        (g,) = torch.autograd.grad((occupancy(mdp, pd)[:, None] * table * factor).sum(), theta)
    return g


def pg_normalized_occupancy(mdp: TabularMDP, logits_or_fn, params: torch.Tensor | None = None, *,
                            method: str = "theorem") -> torch.Tensor:
    """Σₛ d̄(s) Σₐ ∇π(a|s) Q(s, a) with d̄ = d / Σd: the 1/(1 − γ) factor missing."""
    return _surrogate_gradient(mdp, logits_or_fn, params, lambda m, pi: m.discounted_occupancy(pi, normalized=True))


def pg_undiscounted_occupancy(mdp: TabularMDP, logits_or_fn, params: torch.Tensor | None = None, *,
                              method: str = "theorem") -> torch.Tensor:
    """Σₛ d₁(s) Σₐ ∇π(a|s) Q(s, a) with d₁(s) = Σₜ Pr(sₜ = s): γᵗ dropped from the state weights."""
    return _surrogate_gradient(mdp, logits_or_fn, params, lambda m, pi: m.with_gamma(1.0).discounted_occupancy(pi))


def pg_score_without_normalizer(mdp: TabularMDP, logits_or_fn, params: torch.Tensor | None = None, *,
                                method: str = "theorem") -> torch.Tensor:
    """∇log π(a|s) taken as ∇h(s, a) (logits' gradient): tabular ∂J/∂θ[s, a] = d(s) π(a|s) Q(s, a)."""
    return _surrogate_gradient(mdp, logits_or_fn, params, score="logit")


def pg_score_unweighted(mdp: TabularMDP, logits_or_fn, params: torch.Tensor | None = None, *,
                        method: str = "theorem") -> torch.Tensor:
    """Σₛ d(s) Σₐ ∇log π(a|s) A(s, a): the score summed over actions without the weight π(a|s)."""
    return _surrogate_gradient(mdp, logits_or_fn, params, score="log_pi")


def _pg_bad_inputs() -> tuple[BadInput, ...]:
    m = _small_mdp
    policy = LinearSoftmaxPolicy(torch.ones(3, 2, 1, dtype=F64))
    return (
        BadInput("logits of the wrong shape", lambda f, d: f(m(d), torch.zeros(3, 3, dtype=F64, device=d)), "logits"),
        BadInput("NaN logits", lambda f, d: f(m(d), torch.full((3, 2), float("nan"), dtype=F64, device=d)), "logits"),
        BadInput("a policy callable without params", lambda f, d: f(m(d), policy), "params"),
    )


EXACT_POLICY_GRADIENT = Spec(
    name="exact_policy_gradient",
    title="exact ∇J (policy gradient theorem)",
    area="mdp",
    formula="∇J = Σₛ d(s) Σₐ ∇π(a|s) Q(s, a);  tabular softmax: ∂J/∂θ[s, a] = d(s) π(a|s) A(s, a)",
    source="Sutton, McAllester, Singh & Mansour (NeurIPS 1999), Theorem 1; Sutton & Barto (2nd ed.), §13.2",
    function=TabularMDP.exact_policy_gradient,
    reference=iterative_policy_gradient,
    implementations={
        "theorem": TabularMDP.exact_policy_gradient,
        "autograd": functools.partial(TabularMDP.exact_policy_gradient, method="autograd"),
        "reference": iterative_policy_gradient,
    },
    properties=(
        Property("autograd", "tabular softmax: == autograd through the linear solve of J", _pg_autograd),
        Property("finite_differences", "tabular softmax: == central finite differences of J", _pg_finite_differences),
        Property("linear_softmax", "linear softmax θ: Σ d Σ ∇π Q == autograd == finite differences",
                 _pg_linear_softmax),
        Property("bandit", "bandit: ∂J/∂θₐ = π(a)(mₐ − J)", _pg_bandit),
        Property("example_13_1", "S&B Ex. 13.1: dJ/dθ = 0 at p* = 2 − √2 ≈ 0.59, sign change around it",
                 _pg_example_13_1),
    ),
    wrong_variants=(
        WrongVariant("pg_normalized_occupancy", "state weights d/Σd: the 1/(1 − γ) factor missing",
                     _CONVENTIONS, pg_normalized_occupancy),
        WrongVariant("pg_undiscounted_occupancy", "states weighted by the undiscounted visitation Σₜ Pr(sₜ = s)",
                     "Nota & Thomas (AAMAS 2020), 'Is the Policy Gradient a Gradient?' (the γᵗ most "
                     "implementations drop)", pg_undiscounted_occupancy),
        WrongVariant("pg_score_without_normalizer",
                     "score ∇log π(a|s) taken as ∇h(s, a), the log-normaliser's −Σ_b π(b|s)∇h(s, b) "
                     "dropped: d·π·Q (with the full score Q and A give the same ∇J; here they do not)",
                     "derivation", pg_score_without_normalizer),
        WrongVariant("pg_score_unweighted", "Σₐ ∇log π(a|s) A(s, a): the sum over actions not weighted by π(a|s) "
                     "(∇log π of the sampled form copied where ∇π belongs)", "derivation", pg_score_unweighted),
    ),
    bad_inputs=_pg_bad_inputs(),
    inputs=lambda: _mdp_inputs(lambda mdp, x: Call((mdp, x))),
    tolerance=1e-8,
    doc="docs/mdp/policy-gradient-theorem.md",
    proof="pgmath.proofs.policy_gradient_theorem",
)

# ---------------------------------------------------------------------------------------------
# finite horizon


def _horizon_cases(ctx: VerifyContext, offset: int) -> list[tuple[TabularMDP, torch.Tensor, int]]:
    """(mdp, time-dependent π [H, S, A], H) for H = 1 and 6 on the random MDPs."""
    g = ctx.generator(offset)
    out = []
    for mdp, _ in mdp_suite(ctx, offset + 1):
        for H in (1, 6):
            logits = 2 * torch.randn(H, mdp.num_states, mdp.num_actions, generator=g, device=g.device, dtype=F64)
            out.append((mdp, softmax(logits), H))
    return out


def _fh_backward_induction(impl: Callable, ctx: VerifyContext) -> Outcome:
    err = 0.0
    for mdp, pi, H in _horizon_cases(ctx, 14):
        err = max(err, max_abs_error(impl(mdp, pi, H), backward_induction_values(mdp, pi, H)))
    return outcome_within(err, TOL)


def _fh_two_steps(impl: Callable, ctx: VerifyContext) -> Outcome:
    """H = 2: V₁ = r_{π₁}, V₀ = r_{π₀} + γ P_{π₀} r_{π₁}, V₂ = 0 (0 on terminal states)."""
    err = 0.0
    for mdp, pi, H in _horizon_cases(ctx, 16):
        if H == 1:
            continue
        pi2 = pi[:2]
        live = (~mdp.terminal).to(F64)
        r1 = mdp.expected_rewards(pi2[1]) * live
        r0 = mdp.expected_rewards(pi2[0]) * live
        want = torch.stack([r0 + mdp.gamma * (mdp.transition_matrix(pi2[0]) @ r1) * live, r1, torch.zeros_like(r1)])
        err = max(err, max_abs_error(impl(mdp, pi2, 2), want))
    return outcome_within(err, TOL)


def _fh_long_horizon(impl: Callable, ctx: VerifyContext) -> Outcome:
    """Stationary π, γ < 1: |V₀ − V^π| ≤ γᴴ max|V^π| (V^π by iterative evaluation), H = 1, 5, 20."""
    worst = 0.0
    for mdp, pi in _policy_suite(ctx, 18):
        if mdp.gamma == 1.0:
            continue
        V = iterative_policy_evaluation(mdp, pi)
        for H in (1, 5, 20):
            excess = float((impl(mdp, pi, H)[0] - V).abs().max()) - mdp.gamma**H * float(V.abs().max())
            worst = max(worst, excess)
    return Outcome(worst <= TOL, f"max(|V₀ − V^π| − γᴴ max|V^π|) = {worst:.1e}", {"excess": worst, "tol": TOL})


def finite_horizon_time_reversed(mdp: TabularMDP, pi: torch.Tensor, horizon: int) -> torch.Tensor:
    """πₜ read at index H − 1 − t (steps-to-go used as the time index)."""
    pi_t = pi if pi.dim() == 3 else pi.expand(horizon, *pi.shape)
    return backward_induction_values(mdp, pi_t.flip(0), horizon)


def finite_horizon_one_step_short(mdp: TabularMDP, pi: torch.Tensor, horizon: int) -> torch.Tensor:
    """The backward loop runs over t = H−2 … 0 (range(H − 1)): the last decision is never backed up."""
    pi_t = pi if pi.dim() == 3 else pi.expand(horizon, *pi.shape)
    V = torch.zeros(horizon + 1, mdp.num_states, dtype=F64, device=mdp.device)
    live = (~mdp.terminal).to(F64)
    # backward in time: t = H-2, …, 0 (one step short)
    for t in range(horizon - 2, -1, -1):
        V[t] = (pi_t[t] * _look_ahead(mdp, V[t + 1])).sum(-1) * live
    return V


def finite_horizon_undiscounted(mdp: TabularMDP, pi: torch.Tensor, horizon: int) -> torch.Tensor:
    """γ dropped: a finite horizon taken to mean an undiscounted sum."""
    return backward_induction_values(mdp.with_gamma(1.0), pi, horizon)


def _fh_bad_inputs() -> tuple[BadInput, ...]:
    m = _small_mdp
    def pi(d, *shape):
        return torch.full(shape, 0.5, dtype=F64, device=d)

    return (
        BadInput("horizon 0", lambda f, d: f(m(d), pi(d, 3, 2), 0), "horizon"),
        BadInput("pi for another horizon", lambda f, d: f(m(d), pi(d, 3, 3, 2), 2), "pi"),
        BadInput("pi rows that do not sum to 1", lambda f, d: f(m(d), pi(d, 2, 3, 2) * 1.5, 2), "pi"),
    )


def _fh_inputs():
    from hypothesis import strategies as st

    def build(mdp: TabularMDP, x: torch.Tensor, extra: tuple[int, bool, int]) -> Call:
        H, time_dependent, seed = extra
        if not time_dependent:
            return Call((mdp, softmax(x), H))
        g = torch.Generator().manual_seed(seed)
        logits = x + torch.randn(H, *x.shape, generator=g, dtype=F64)
        return Call((mdp, softmax(logits), H))

    return _mdp_inputs(build, lambda mdp: st.tuples(st.integers(1, 4), st.booleans(), st.integers(0, 2**16)))


FINITE_HORIZON_VALUES = Spec(
    name="finite_horizon_values",
    title="finite-horizon V (time-expanded solve)",
    area="mdp",
    formula="Vₜ(s) = Σₐ πₜ(a|s)(R[s, a] + γ Σₛ' P[s, a, s'] Vₜ₊₁(s')),  V_H = 0",
    source="Puterman, Markov Decision Processes (1994), §4.2 (backward induction)",
    function=finite_horizon_values,
    reference=backward_induction_values,
    implementations={"solve": finite_horizon_values, "reference": backward_induction_values},
    properties=(
        Property("backward_induction", "time-expanded solve == backward induction", _fh_backward_induction),
        Property("two_steps", "H = 2: V₀ = r_{π₀} + γP_{π₀}r_{π₁}, V₁ = r_{π₁}", _fh_two_steps),
        Property("long_horizon", "stationary π: |V₀ − V^π| ≤ γᴴ max|V^π|", _fh_long_horizon),
    ),
    wrong_variants=(
        WrongVariant("finite_horizon_time_reversed", "πₜ read at index H − 1 − t", "derivation",
                     finite_horizon_time_reversed),
        WrongVariant("finite_horizon_one_step_short", "backward loop over range(H − 1): V_{H−1} = 0",
                     "derivation", finite_horizon_one_step_short),
        WrongVariant("finite_horizon_undiscounted", "γ dropped in the finite-horizon backup", "derivation",
                     finite_horizon_undiscounted),
    ),
    bad_inputs=_fh_bad_inputs(),
    inputs=_fh_inputs,
    tolerance=1e-8,
    doc="docs/mdp/finite-horizon.md",
)

FAMILY: tuple[Spec, ...] = (
    STATE_VALUES,
    ACTION_VALUES,
    DISCOUNTED_OCCUPANCY,
    EXACT_POLICY_GRADIENT,
    FINITE_HORIZON_VALUES,
)
