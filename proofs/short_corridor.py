"""The short corridor with switched actions (Sutton & Barto 2018, Example 13.1, Exercise 13.1).

Three non-terminal states s₁ (start), s₂, s₃ and the goal G, reward −1 per step, undiscounted.
Right moves right and left moves left, except: in s₁ left does not move; in s₂ the actions are
reversed. All states look alike, so the policy is one number p = Pr(right).

The proof *derives* J(p) = v_p(s₁) by solving the Bellman equations
v(s) = Σₐ π(a) (−1 + v(next(s, a))), v(G) = 0, with symbolic p (sympy linear solve), and then:

1. J(p) equals the claimed closed form (default (2p − 4) / (p(1 − p)), the solution of Exercise
   13.1 in the book's convention);
2. dJ/dp has exactly one root p* in (0, 1), and it equals the claimed maximiser (default
   2 − √2 ≈ 0.5858);
3. d²J/dp² < 0 at p*, and J → −∞ as p → 0⁺ and p → 1⁻, so p* is the global maximiser on (0, 1);
4. J(p*) equals the claimed maximum (default −6 − 4√2 ≈ −11.657).

The book reports "about 0.59" and "about −11.6" (Example 13.1); tests/test_proofs.py compares the
derived p* and J(p*) to those published figures. Wrong claims are rejected (e.g.
``claimed_argmax=sp.Rational(1, 2)``, or a corridor whose second state is not reversed).

Numeric claim — the code: the MDP of ``impl`` (pgmath.mdp.short_corridor, ``impl()``) with the
all-states-alike features of ``features_impl`` (pgmath.mdp.short_corridor_features,
``features_impl(num_params)``, 1 and 2 parameters) and pgmath's linear-softmax policy must give
J(p) = mdp.objective and ∇θJ = mdp.exact_policy_gradient equal to the lambdified derived J(p)
and J'(p) p(1 − p) (∂p/∂θ of p = σ(θ)), at p* and random p. The exact-MDP area reproduces the same
numbers by policy evaluation (pgmath.mdp).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
import sympy as sp
import torch

import pgmath.mdp
from pgmath.mdp import LinearSoftmaxPolicy

from .core import (
    Claim,
    Comparison,
    ProofResult,
    agree,
    identity,
    lambdify,
    numpy_rng,
    run_module,
    to_text,
)

TITLE = "short corridor (S&B Ex. 13.1)"
STATEMENT = "J(p) = (2p − 4)/(p(1 − p)),  argmax p* = 2 − √2,  J(p*) = −6 − 4√2"
IMPL = "pgmath.mdp.short_corridor"
IMPLS = {"impl": "pgmath.mdp.short_corridor", "features_impl": "pgmath.mdp.short_corridor_features"}
SEED = 20254

GOAL = "G"
#: next state for (state, action); the corridor of Example 13.1
CORRIDOR: dict[tuple[str, str], str] = {
    ("s1", "left"): "s1",  # left does not move in the first state
    ("s1", "right"): "s2",
    ("s2", "left"): "s3",  # reversed: left moves right
    ("s2", "right"): "s1",  # reversed: right moves left
    ("s3", "left"): "s2",
    ("s3", "right"): GOAL,
}
#: WRONG dynamics for the tests: a plain corridor (nothing reversed)
PLAIN_CORRIDOR: dict[tuple[str, str], str] = {
    **CORRIDOR,
    ("s2", "left"): "s1",
    ("s2", "right"): "s3",
}


#: Exercise 13.1: the maximiser and the maximum, in the book's convention
ARGMAX = 2 - sp.sqrt(2)
MAXIMUM = -6 - 4 * sp.sqrt(2)


def _closed_form(p: sp.Symbol) -> sp.Expr:
    return (2 * p - 4) / (p * (1 - p))


def derive_objective(p: sp.Symbol, dynamics: Mapping[tuple[str, str], str] = CORRIDOR) -> tuple[sp.Expr, dict]:
    """Solve the Bellman equations of the corridor for π(right) = p; returns (J = v(s₁), v)."""
    states = sorted({s for s, _ in dynamics})
    v = {s: sp.Symbol(f"v_{s}") for s in states}
    v[GOAL] = sp.Integer(0)
    prob = {"right": p, "left": 1 - p}
    equations = [
        sp.Eq(v[s], sum(prob[a] * (-1 + v[dynamics[(s, a)]]) for a in ("left", "right")))
        for s in states
    ]
    solution = sp.solve(equations, [v[s] for s in states], dict=True)[0]
    values = {s: sp.factor(solution[v[s]]) for s in states}
    return values["s1"], values


def _numeric(p: sp.Symbol, objective: sp.Expr, impl: Callable[..., Any], features_impl: Callable[..., Any]) -> Claim:
    """mdp.objective / exact_policy_gradient with impl's MDP and features == J(p), J'(p)p(1 − p)."""
    fn = lambdify([p], [objective, sp.diff(objective, p) * p * (1 - p)])

    def comparisons() -> Iterator[Comparison]:
        rng = numpy_rng(SEED)
        mdp = impl()
        for prob in [float(ARGMAX), *rng.uniform(0.05, 0.95, size=7)]:
            j, dj = fn(prob)
            logit = float(np.log(prob / (1 - prob)))
            for k, theta, sign in [(1, [logit], [1.0]), (2, [logit, 0.0], [1.0, -1.0])]:
                policy = LinearSoftmaxPolicy(features_impl(k))
                th = torch.tensor(theta, dtype=torch.float64)
                label = f"p = {prob:.4f}, {k} parameter(s)"
                yield label + ": J", mdp.objective(policy, th), j
                yield label + ": ∇θJ", mdp.exact_policy_gradient(policy, th), dj * np.array(sign)

    return agree("impl()'s J(θ), ∇θJ with features_impl(k) = J(p), J'(p)p(1−p) (8 p, k = 1, 2)", comparisons)


def prove(
    claimed_objective: Callable[[sp.Symbol], sp.Expr] = _closed_form,
    claimed_argmax: sp.Expr = ARGMAX,
    claimed_max: sp.Expr = MAXIMUM,
    dynamics: Mapping[tuple[str, str], str] = CORRIDOR,
    *,
    impl: Callable[..., Any] = pgmath.mdp.short_corridor,
    features_impl: Callable[..., Any] = pgmath.mdp.short_corridor_features,
) -> ProofResult:
    """The arguments before ``*`` are the claims and the dynamics; ``impl`` / ``features_impl``:
    implementations in the signatures of pgmath.mdp.short_corridor / short_corridor_features."""
    p = sp.Symbol("p", positive=True)
    objective, values = derive_objective(p, dynamics)
    claims = [
        identity(
            "J(p) from the Bellman equations = claimed closed form",
            objective,
            claimed_objective(p),
            domains={p: [sp.Rational(1, 2), sp.Rational(1, 3), sp.Rational(4, 5)]},
        )
    ]
    d1 = sp.together(sp.diff(objective, p))
    roots = sp.solveset(sp.numer(d1), p, sp.Interval.open(0, 1))
    unique = isinstance(roots, sp.FiniteSet) and len(roots) == 1
    p_star = next(iter(roots)) if unique else None
    claims.append(
        Claim(
            "dJ/dp = 0 has exactly one root p* in (0, 1), equal to the claimed argmax",
            bool(unique and sp.simplify(p_star - claimed_argmax) == 0),
            f"dJ/dp = {to_text(sp.factor(d1))}; roots in (0, 1): {roots}",
        )
    )
    if p_star is not None:
        d2 = sp.simplify(sp.diff(objective, p, 2).subs(p, p_star))
        left = sp.limit(objective, p, 0, "+")
        right = sp.limit(objective, p, 1, "-")
        claims.append(
            Claim(
                "d²J/dp² < 0 at p* and J → −∞ at both ends: global maximum",
                bool(d2.is_negative and left == -sp.oo and right == -sp.oo),
                f"J''(p*) = {to_text(d2)} ≈ {sp.N(d2, 6)}; J(0⁺) = {left}, J(1⁻) = {right}",
            )
        )
        j_star = sp.simplify(objective.subs(p, p_star))
        claims.append(identity("J(p*) = claimed maximum", j_star, claimed_max))
    else:
        j_star = sp.nan
    claims.append(_numeric(p, objective, impl, features_impl))
    data = {
        "J": to_text(objective),
        "values": {s: to_text(e) for s, e in values.items()},
        "p_star": float(p_star) if p_star is not None else None,
        "p_star_exact": to_text(p_star),
        "J_star": float(j_star) if p_star is not None else None,
        "J_star_exact": to_text(j_star),
    }
    return ProofResult(
        name=TITLE,
        statement=STATEMENT,
        claims=tuple(claims),
        method="sympy: Bellman linear solve in symbolic p, solveset on (0,1), second derivative, limits; "
        "pgmath.mdp objective and gradient vs lambdified J",
        data=data,
    )


if __name__ == "__main__":
    run_module(prove())
