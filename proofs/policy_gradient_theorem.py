"""The policy gradient theorem on a symbolic 2-state, 2-action discounted MDP.

Statement (Sutton et al. 2000; Sutton & Barto 2018, §13.2 — the discounted form):

    J(θ) = μ₀ᵀ V^π = μ₀ᵀ (I − γP_π)⁻¹ r_π
    ∇J(θ) = Σₛ d_γ(s) Σₐ ∇π(a|s) Q^π(s, a),   d_γᵀ = μ₀ᵀ (I − γP_π)⁻¹ = Σₜ γᵗ Pr(sₜ = ·)

with Q^π(s, a) = r(s, a) + γ Σ_{s'} P(s'|s, a) V^π(s'). The weight d_γ is the *discounted*
occupancy: state s at time t counts with γᵗ. In trajectory form
∇J = E_τ[Σₜ γᵗ ∇log π(aₜ|sₜ) Q^π(sₜ, aₜ)].

The proof builds J in closed form by the linear solve (Cramer's rule for the 2×2 system),
differentiates it with respect to each of the four logits θ[s, a] (π(·|s) = softmax(θ[s, ·])),
and checks that the derivative equals the theorem's expression identically in the logits *and*
in γ. It computes in the field of rational functions ℚ(x₀, x₁, x₂, x₃, γ) with xₖ = exp θₖ
(sympy.polys.fields), where ∂/∂θₖ = xₖ ∂/∂xₖ and equality of reduced fractions is equality
of functions — an exact symbolic proof, just faster than expression trees. Rewards,
transitions and μ₀ are fixed rationals (any would do; they keep the fractions small).

A wrong weighting is rejected: ``occupancy=stationary_visitation`` (states weighted by the
on-policy stationary distribution, i.e. the undiscounted visitation frequency, rescaled to the
same total mass 1/(1−γ)) — what the source article's formula amounts to, as it drops γᵗ — and
``occupancy=initial_only`` (μ₀ alone, as if only the first step mattered).

Numeric claim — the code: ``impl`` (pgmath.mdp.TabularMDP.exact_policy_gradient, called as
``impl(mdp, logits)`` and ``impl(mdp, logits, method="autograd")`` on a
:class:`pgmath.mdp.TabularMDP` holding this MDP) equals the lambdified exact ∂J/∂θ at random
logits and γ. The exact-MDP area (pgmath.mdp) checks the same theorem numerically on larger MDPs;
tests: tests/test_proofs.py. See docs/formulas/policy-gradient-theorem.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import sympy as sp
import torch
from sympy.polys.fields import field

from pgmath.mdp import TabularMDP

from .core import Claim, Comparison, ProofResult, agree, identity, lambdify, numpy_rng, run_module

TITLE = "policy gradient theorem (discounted)"
STATEMENT = "∂J/∂θ = Σₛ d_γ(s) Σₐ ∂π(a|s)/∂θ Q(s,a),  d_γᵀ = μ₀ᵀ(I − γP_π)⁻¹"
IMPL = "pgmath.mdp.TabularMDP.exact_policy_gradient"
SEED = 20247

R = sp.Rational
#: P(s' | s, a) for s, a in {0, 1}
TRANSITIONS: dict[tuple[int, int], tuple[sp.Rational, sp.Rational]] = {
    (0, 0): (R(1, 3), R(2, 3)),
    (0, 1): (R(3, 4), R(1, 4)),
    (1, 0): (R(1, 2), R(1, 2)),
    (1, 1): (R(1, 5), R(4, 5)),
}
REWARDS = ((R(1), R(-1, 2)), (R(2), R(0)))  # r(s, a)
MU0 = (R(2, 3), R(1, 3))  # initial state distribution

Mat = list[list[Any]]
Occupancy = Callable[[Sequence[Any], Mat, Any], list[Any]]


def inverse_2x2(m: Mat) -> Mat:
    det = m[0][0] * m[1][1] - m[0][1] * m[1][0]
    return [[m[1][1] / det, -m[0][1] / det], [-m[1][0] / det, m[0][0] / det]]


def discounted_occupancy(mu0: Sequence[Any], p_pi: Mat, gamma: Any) -> list[Any]:
    """d_γᵀ = μ₀ᵀ (I − γ P_π)⁻¹ = Σₜ γᵗ μ₀ᵀ P_πᵗ."""
    m = [[(1 if i == j else 0) - gamma * p_pi[i][j] for j in range(2)] for i in range(2)]
    inv = inverse_2x2(m)
    return [sum(mu0[i] * inv[i][j] for i in range(2)) for j in range(2)]


def stationary_visitation(mu0: Sequence[Any], p_pi: Mat, gamma: Any) -> list[Any]:
    """WRONG: the stationary distribution of P_π (undiscounted visitation), scaled to mass 1/(1−γ)."""
    z = p_pi[0][1] + p_pi[1][0]
    return [p_pi[1][0] / z / (1 - gamma), p_pi[0][1] / z / (1 - gamma)]


def initial_only(mu0: Sequence[Any], p_pi: Mat, gamma: Any) -> list[Any]:
    """WRONG: μ₀ alone, scaled to mass 1/(1−γ)."""
    return [m / (1 - gamma) for m in mu0]


def tabular_mdp(gamma: float) -> TabularMDP:
    """This 2-state, 2-action MDP as a float64 :class:`pgmath.mdp.TabularMDP`."""
    P = [[[float(p) for p in TRANSITIONS[(s, a)]] for a in range(2)] for s in range(2)]
    R = [[float(r) for r in row] for row in REWARDS]
    return TabularMDP(P, R, gamma, [float(m) for m in MU0])


def _numeric(names: Sequence[sp.Symbol], grad_j: Sequence[Any], impl: Callable[..., Any]) -> Claim:
    """impl(mdp, logits[, method]) == the lambdified ∂J/∂θ[s, a] (θ[s, a] = θ_{2s+a})."""
    fn = lambdify([names[:4], names[4]], [g.as_expr() for g in grad_j])

    def comparisons() -> Iterator[Comparison]:
        rng = numpy_rng(SEED)
        for i in range(10):
            gamma = float(rng.uniform(0.0, 0.99)) if i else 0.99
            logits = 2.0 * rng.standard_normal((2, 2))
            want = fn(np.exp(logits.reshape(4)), gamma).reshape(2, 2)
            mdp = tabular_mdp(gamma)
            yield f"point {i}, γ = {gamma:.3f}", impl(mdp, torch.from_numpy(logits)), want
            yield f"point {i}, γ = {gamma:.3f}, autograd", impl(mdp, torch.from_numpy(logits), method="autograd"), want

    return agree("impl(mdp, logits[, method]) = exact ∂J/∂θ (10 random logits, γ)", comparisons)


def prove(occupancy: Occupancy = discounted_occupancy, *, impl: Callable[..., Any] = TabularMDP.exact_policy_gradient) -> ProofResult:
    """``occupancy``: the claimed state weighting; ``impl``: a function in the signature of
    pgmath.mdp.TabularMDP.exact_policy_gradient (``impl(mdp, logits, params=None, *, method)``)."""
    names = [sp.Symbol(f"exp(theta_{i})") for i in range(4)] + [sp.Symbol("gamma")]
    k, *gens = field(names, sp.QQ)
    x, gamma = gens[:4], gens[4]

    def c(v: sp.Rational) -> Any:
        return k(v)

    def d_theta(f: Any, i: int) -> Any:  # ∂/∂θᵢ = xᵢ ∂/∂xᵢ since xᵢ = exp θᵢ
        return x[i] * f.diff(x[i])

    # π(a|s) = softmax(θ[s, 0], θ[s, 1])[a],  θ[s, a] = θ_{2s+a}
    pi = [[x[2 * s + a] / (x[2 * s] + x[2 * s + 1]) for a in range(2)] for s in range(2)]
    p_pi = [
        [sum(pi[s][a] * c(TRANSITIONS[(s, a)][s2]) for a in range(2)) for s2 in range(2)]
        for s in range(2)
    ]
    r_pi = [sum(pi[s][a] * c(REWARDS[s][a]) for a in range(2)) for s in range(2)]
    mu0 = [c(m) for m in MU0]

    # closed-form value and objective: V = (I − γP_π)⁻¹ r_π, J = μ₀ᵀ V
    inv = inverse_2x2([[(1 if i == j else 0) - gamma * p_pi[i][j] for j in range(2)] for i in range(2)])
    v = [sum(inv[i][j] * r_pi[j] for j in range(2)) for i in range(2)]
    objective = sum(mu0[i] * v[i] for i in range(2))
    q = [
        [c(REWARDS[s][a]) + gamma * sum(c(TRANSITIONS[(s, a)][s2]) * v[s2] for s2 in range(2)) for a in range(2)]
        for s in range(2)
    ]
    d = occupancy(mu0, p_pi, gamma)

    lhs = [d_theta(objective, i) for i in range(4)]
    rhs = [
        sum(d[s] * sum(d_theta(pi[s][a], i) * q[s][a] for a in range(2)) for s in range(2))
        for i in range(4)
    ]
    domains = {names[4]: [R(1, 2), R(9, 10), R(1, 3)]}
    domains.update({n: [R(1, 2), R(2), R(3, 7), R(5)] for n in names[:4]})  # xᵢ = exp θᵢ > 0
    claims = (
        identity(
            "Bellman: V = r_π + γ P_π V for the solved V",
            v,
            [r_pi[s] + gamma * sum(p_pi[s][s2] * v[s2] for s2 in range(2)) for s in range(2)],
            domains=domains,
        ),
        identity(
            "∂J/∂θ[s,a] = Σₛ d(s) Σₐ ∂π(a|s)/∂θ Q(s,a), all 4 logits, symbolic γ",
            lhs,
            rhs,
            domains=domains,
        ),
        _numeric(names, lhs, impl),
    )
    return ProofResult(
        name=TITLE,
        statement=STATEMENT,
        claims=claims,
        method="sympy rational-function field ℚ(exp θ, γ): J by linear solve, exact ∂J/∂θ vs theorem; "
        "impl vs lambdified ∂J/∂θ in float64",
        data={"J": str(objective.as_expr())[:2000]},
    )


if __name__ == "__main__":
    run_module(prove())
