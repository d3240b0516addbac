"""The log-derivative trick and the zero-mean score (baseline invariance).

Statements (Williams 1992; Sutton & Barto 2018, §13.3–13.4):

1. ∇p(θ) = p(θ) ∇log p(θ) for any positive differentiable p — proven for an undefined sympy
   function p(θ), so it holds for every such p, and again for a 3-action softmax.
2. E_{a∼π}[∇_θ log π(a)] = Σₐ π(a) ∇log π(a) = ∇Σₐ π(a) = ∇1 = 0, for a symbolic softmax
   π = softmax(θ₀, θ₁, θ₂), every component θ_b.
3. Baseline invariance: E_{a∼π}[∇log π(a) (qₐ − b)] = E_{a∼π}[∇log π(a) qₐ] for symbolic
   action values qₐ and any baseline b that does not depend on the action.

A wrong claim is rejected: e.g. ``grad_identity=lambda p, logp, th: sp.diff(logp, th)`` (the
trick without the factor p), ``weights=uniform`` (the score averaged under the wrong
distribution), or ``baseline=lambda a, q: q[a]`` (an action-dependent "baseline").

Checks pgmath.policy_gradient_loss (its gradient is the REINFORCE estimate) — see
docs/formulas/policy-gradient-loss.md; tests: tests/test_losses.py, tests/test_proofs.py.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import sympy as sp

from proofs._core import ProofResult, exp_to_positive, identity, logits, run_module, softmax

TITLE = "log-derivative trick, zero-mean score"
STATEMENT = "∇p = p ∇log p;  E_{a∼π}[∇log π(a)] = 0;  E[∇log π(a)(qₐ − b)] = E[∇log π(a) qₐ]"
N_ACTIONS = 3

GradIdentity = Callable[[sp.Expr, sp.Expr, sp.Symbol], sp.Expr]


def true_grad_identity(p: sp.Expr, logp: sp.Expr, theta: sp.Symbol) -> sp.Expr:
    """The claimed ∂p/∂θ written through the score: p · ∂log p/∂θ."""
    return p * sp.diff(logp, theta)


def on_policy_weights(pi: Sequence[sp.Expr]) -> list[sp.Expr]:
    """The sampling distribution of the expectation: a ∼ π."""
    return list(pi)


def uniform_weights(pi: Sequence[sp.Expr]) -> list[sp.Expr]:
    """WRONG: averaging the score over actions uniformly instead of under π."""
    return [sp.Rational(1, len(pi))] * len(pi)


def constant_baseline(a: int, q: Sequence[sp.Expr]) -> sp.Expr:
    """A baseline that does not depend on the action (here a free symbol b)."""
    return sp.Symbol("b", real=True)


def prove(
    grad_identity: GradIdentity = true_grad_identity,
    weights: Callable[[Sequence[sp.Expr]], Sequence[sp.Expr]] = on_policy_weights,
    baseline: Callable[[int, Sequence[sp.Expr]], sp.Expr] = constant_baseline,
) -> ProofResult:
    """Check the three statements; the arguments are the claimed formulas."""
    claims = []

    # 1a. generic positive function p(θ)
    th = sp.Symbol("theta", real=True)
    p = sp.Function("p", positive=True)(th)
    claims.append(
        identity(
            "∇p = p ∇log p for an arbitrary positive p(θ)",
            sp.diff(p, th),
            grad_identity(p, sp.log(p), th),
        )
    )

    # 1b. the softmax, every (a, b)
    thetas = logits("theta", N_ACTIONS)
    pi = softmax(thetas)

    def rational(e: sp.Expr) -> sp.Expr:
        return exp_to_positive(e, thetas)

    lhs = [sp.diff(pi[a], thetas[b]) for a in range(N_ACTIONS) for b in range(N_ACTIONS)]
    rhs = [
        grad_identity(pi[a], sp.log(pi[a]), thetas[b])
        for a in range(N_ACTIONS)
        for b in range(N_ACTIONS)
    ]
    claims.append(
        identity("∂π(a)/∂θ_b = π(a) ∂log π(a)/∂θ_b (softmax, 3 actions)", lhs, rhs, transform=rational)
    )

    # 2. zero-mean score under the sampling weights
    w = list(weights(pi))
    score = [[sp.diff(sp.log(pi[a]), thetas[b]) for b in range(N_ACTIONS)] for a in range(N_ACTIONS)]
    mean_score = [sum(w[a] * score[a][b] for a in range(N_ACTIONS)) for b in range(N_ACTIONS)]
    claims.append(
        identity(
            "E_{a∼π}[∂log π(a)/∂θ_b] = 0 for every b",
            mean_score,
            [0] * N_ACTIONS,
            transform=rational,
        )
    )

    # 3. baseline invariance
    q = list(sp.symbols(f"q_0:{N_ACTIONS}", real=True))
    with_b = [
        sum(pi[a] * score[a][bb] * (q[a] - baseline(a, q)) for a in range(N_ACTIONS))
        for bb in range(N_ACTIONS)
    ]
    without_b = [sum(pi[a] * score[a][bb] * q[a] for a in range(N_ACTIONS)) for bb in range(N_ACTIONS)]
    claims.append(
        identity(
            "E[∇log π(a)(qₐ − b)] = E[∇log π(a) qₐ] (baseline invariance)",
            with_b,
            without_b,
            transform=rational,
        )
    )
    return ProofResult(
        name=TITLE,
        statement=STATEMENT,
        claims=tuple(claims),
        method="sympy: symbolic p(θ) and softmax(θ₀,θ₁,θ₂), exp(θ)→x>0, cancel/simplify to 0",
    )


if __name__ == "__main__":
    run_module(prove())
