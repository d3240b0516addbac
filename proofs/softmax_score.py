"""The softmax score: ∂log π(a)/∂θ_b = [a = b] − π(b).

For π = softmax(θ): log π(a) = θₐ − log Σ_c exp θ_c, so
∂log π(a)/∂θ_b = [a = b] − exp θ_b / Σ_c exp θ_c = [a = b] − π(b).
Consequence (the Jacobian): ∂π(a)/∂θ_b = π(a)([a = b] − π(b)).

Proven for 3 actions with symbolic logits θ₀, θ₁, θ₂, every pair (a, b). A wrong claim is
rejected, e.g. ``claimed=lambda a, b, pi: sp.KroneckerDelta(a, b)`` (the −π(b) term dropped) or
``lambda a, b, pi: sp.KroneckerDelta(a, b) - pi[a]`` (π(a) instead of π(b)).

This is the gradient autograd computes through pgmath.categorical_log_prob (logits input);
tests: tests/test_distributions.py, tests/test_proofs.py.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import sympy as sp

from proofs._core import ProofResult, exp_to_positive, identity, logits, run_module, softmax

TITLE = "softmax score"
STATEMENT = "∂log π(a)/∂θ_b = [a = b] − π(b)"
N_ACTIONS = 3

Score = Callable[[int, int, Sequence[sp.Expr]], sp.Expr]


def true_score(a: int, b: int, pi: Sequence[sp.Expr]) -> sp.Expr:
    return sp.KroneckerDelta(a, b) - pi[b]


def true_jacobian(a: int, b: int, pi: Sequence[sp.Expr]) -> sp.Expr:
    return pi[a] * (sp.KroneckerDelta(a, b) - pi[b])


def prove(claimed: Score = true_score, jacobian: Score = true_jacobian) -> ProofResult:
    thetas = logits("theta", N_ACTIONS)
    pi = softmax(thetas)
    pairs = [(a, b) for a in range(N_ACTIONS) for b in range(N_ACTIONS)]

    def rational(e: sp.Expr) -> sp.Expr:
        return exp_to_positive(e, thetas)

    claims = (
        identity(
            "∂log π(a)/∂θ_b = claimed score, all (a, b)",
            [sp.diff(sp.log(pi[a]), thetas[b]) for a, b in pairs],
            [claimed(a, b, pi) for a, b in pairs],
            transform=rational,
        ),
        identity(
            "∂π(a)/∂θ_b = claimed Jacobian, all (a, b)",
            [sp.diff(pi[a], thetas[b]) for a, b in pairs],
            [jacobian(a, b, pi) for a, b in pairs],
            transform=rational,
        ),
    )
    return ProofResult(
        name=TITLE,
        statement=STATEMENT,
        claims=claims,
        method="sympy: symbolic softmax(θ₀,θ₁,θ₂), exp(θ)→x>0, cancel to 0",
    )


if __name__ == "__main__":
    run_module(prove())
