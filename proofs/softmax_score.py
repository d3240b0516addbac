"""The softmax score: ∂log π(a)/∂θ_b = [a = b] − π(b).

For π = softmax(θ): log π(a) = θₐ − log Σ_c exp θ_c, so
∂log π(a)/∂θ_b = [a = b] − exp θ_b / Σ_c exp θ_c = [a = b] − π(b).
Consequence (the Jacobian): ∂π(a)/∂θ_b = π(a)([a = b] − π(b)).

Proven for 3 actions with symbolic logits θ₀, θ₁, θ₂, every pair (a, b). A wrong claim is
rejected, e.g. ``claimed=lambda a, b, pi: sp.KroneckerDelta(a, b)`` (the −π(b) term dropped) or
``lambda a, b, pi: sp.KroneckerDelta(a, b) - pi[a]`` (π(a) instead of π(b)).

Numeric claim: the gradient autograd computes through ``impl`` (pgmath.categorical_log_prob,
called as ``impl(logits, actions)`` on float64 ``[B, 3]`` and ``[2, 8, 3]`` logits) equals the
lambdified score at random logits; tests: tests/test_distributions.py, tests/test_proofs.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import sympy as sp
import torch

import pgmath

from .core import (
    Claim,
    Comparison,
    ProofResult,
    agree,
    exp_to_positive,
    gradient,
    identity,
    lambdify,
    logits,
    numpy_rng,
    run_module,
    softmax,
)

TITLE = "softmax score"
STATEMENT = "∂log π(a)/∂θ_b = [a = b] − π(b)"
IMPL = "pgmath.categorical_log_prob"
N_ACTIONS = 3
SEED = 20241

Score = Callable[[int, int, Sequence[sp.Expr]], sp.Expr]


def true_score(a: int, b: int, pi: Sequence[sp.Expr]) -> sp.Expr:
    return sp.KroneckerDelta(a, b) - pi[b]


def true_jacobian(a: int, b: int, pi: Sequence[sp.Expr]) -> sp.Expr:
    return pi[a] * (sp.KroneckerDelta(a, b) - pi[b])


def score_points(seed: int) -> Iterator[tuple[str, torch.Tensor, torch.Tensor]]:
    """(label, logits ``[*B, A]`` float64, actions ``[*B]``): 128 random points in two batch
    shapes, logits N(0, 3²)."""
    rng = numpy_rng(seed)
    for i, shape in enumerate([(64,), (4, 16)]):
        z = 3.0 * rng.standard_normal((*shape, N_ACTIONS))
        a = rng.integers(0, N_ACTIONS, size=shape)
        yield f"batch {i} {shape}", torch.from_numpy(z), torch.from_numpy(a)


def _numeric(thetas: Sequence[sp.Symbol], score: Callable[[int, int], sp.Expr], impl: Callable[..., Any]) -> Claim:
    """∂impl(logits, actions)/∂logits (autograd) == the lambdified score at every (a, b)."""
    fns = [lambdify([thetas], [score(a, b) for b in range(N_ACTIONS)]) for a in range(N_ACTIONS)]

    def comparisons() -> Iterator[Comparison]:
        for label, z, a in score_points(SEED):
            z = z.clone().requires_grad_(True)
            grad = gradient(impl(z, a).sum(), z)
            zt = np.moveaxis(z.detach().numpy(), -1, 0)  # [A, *B]
            every = np.stack([fn(zt) for fn in fns])  # [a, b, *B]
            want = np.take_along_axis(every, a.numpy()[None, None], axis=0)[0]  # [b, *B]
            yield label, grad, np.moveaxis(want, 0, -1)

    return agree("autograd ∂impl(logits, actions)/∂logits = [a = b] − π(b) (128 random points)", comparisons)


def prove(
    claimed: Score = true_score,
    jacobian: Score = true_jacobian,
    *,
    impl: Callable[..., Any] = pgmath.categorical_log_prob,
) -> ProofResult:
    """``claimed`` / ``jacobian``: the claimed formulas; ``impl``: a log-prob implementation in the
    signature of pgmath.categorical_log_prob, whose autograd gradient must be the score."""
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
        _numeric(thetas, lambda a, b: claimed(a, b, pi), impl),
    )
    return ProofResult(
        name=TITLE,
        statement=STATEMENT,
        claims=claims,
        method="sympy: symbolic softmax(θ₀,θ₁,θ₂), exp(θ)→x>0, cancel to 0; autograd of impl vs lambdified score",
    )


if __name__ == "__main__":
    run_module(prove())
