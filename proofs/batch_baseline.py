"""Batch-mean baselines (advantage normalisation) scale the policy gradient by (N − 1)/N.

N i.i.d. samples aᵢ ∼ π = softmax(θ₀, θ₁) with action values q(a) (symbolic); the estimator
ĝ = Σᵢ ∇log π(aᵢ) (q(aᵢ) − bᵢ). Because E[∇log π(aᵢ) q(aⱼ)] = 0 for j ≠ i (independence and the
zero-mean score), a baseline bᵢ built from the *other* samples leaves ĝ unbiased, while the
batch mean b = (1/N) Σⱼ q(aⱼ) — what subtracting the mean in advantage normalisation does —
contains the sample itself and gives E[ĝ] = (1 − 1/N) · N ∇J: the right direction, shrunk by
a factor (N − 1)/N. (Dividing by the batch standard deviation rescales the step per batch.)
Exact for N = 3 by enumerating all 2³ joint samples.

Inputs: the baseline ``baseline(i, qs)`` and the ``claimed_factor``; the claim
"batch-mean baseline is exactly unbiased" (``claimed_factor=1``) is rejected, while the
leave-one-out baseline (``baseline=leave_one_out``) with factor 1 is proven.
Numeric claim — the code: ``impl`` (pgmath.normalize_advantages, ``impl(adv, mask=None,
eps=1e-8)``) subtracts exactly this batch mean (over the selected entries) and divides by the
unbiased sample standard deviation plus eps: impl(q) = (q − batch_mean(q)) / (s(q) + eps), the
lambdified closed form, at random batches of N = 3 and 5 (and 3 of 5 selected by a mask, the
others returned as 0). Whatever ``baseline`` the algebra is asked about, the code is compared
with the batch mean, the baseline it implements (docs/formulas/normalize-advantages.md);
tests: tests/test_proofs.py.
"""

from __future__ import annotations

import itertools
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
    identity,
    lambdify,
    logits,
    numpy_rng,
    run_module,
    softmax,
)

TITLE = "batch-mean baseline factor"
STATEMENT = "E[Σᵢ ∇log π(aᵢ)(q(aᵢ) − mean q)] = (N − 1)/N · N∇J;  leave-one-out: unbiased"
IMPL = "pgmath.normalize_advantages"
N = 3
SEED = 20246
EPS = 1e-8

Baseline = Callable[[int, Sequence[sp.Expr]], sp.Expr]


def batch_mean(i: int, qs: Sequence[sp.Expr]) -> sp.Expr:
    return sum(qs) / len(qs)


def leave_one_out(i: int, qs: Sequence[sp.Expr]) -> sp.Expr:
    return (sum(qs) - qs[i]) / (len(qs) - 1)


BATCH_MEAN_FACTOR = sp.Rational(N - 1, N)


def normalized(n: int) -> tuple[list[sp.Symbol], list[sp.Expr]]:
    """Symbols q₀…q_{n−1} and (qᵢ − batch_mean(q)) / (s(q) + eps), s the unbiased std."""
    q = list(sp.symbols(f"q_0:{n}", real=True))
    centered = [q[i] - batch_mean(i, q) for i in range(n)]
    s = sp.sqrt(sum(c**2 for c in centered) / (n - 1))
    return q, [c / (s + EPS) for c in centered]


def _numeric(impl: Callable[..., Any]) -> Claim:
    """impl(q[, mask]) == the lambdified batch-mean normalisation (random batches, N = 3, 5)."""
    fns = {n: lambdify([q], exprs) for n in (3, 5) for q, exprs in [normalized(n)]}

    def comparisons() -> Iterator[Comparison]:
        rng = numpy_rng(SEED)
        for i in range(12):
            n = (3, 5)[i % 2]
            q = rng.normal(rng.uniform(-5, 5), rng.uniform(0.1, 4), size=n)
            yield f"batch {i} (N = {n})", impl(torch.from_numpy(q)), fns[n](q)
            if n == 5:
                mask = np.zeros(5, bool)
                mask[rng.choice(5, size=3, replace=False)] = True
                want = np.zeros(5)
                want[mask] = fns[3](q[mask])
                yield f"batch {i}, 3 of 5 selected", impl(torch.from_numpy(q), mask=torch.from_numpy(mask)), want

    return agree("impl(q) = (q − batch mean) / (std + eps) (12 batches, some masked)", comparisons)


def prove(
    baseline: Baseline = batch_mean,
    claimed_factor: sp.Expr = BATCH_MEAN_FACTOR,
    *,
    impl: Callable[..., Any] = pgmath.normalize_advantages,
) -> ProofResult:
    """``baseline`` / ``claimed_factor``: the claim; ``impl``: an implementation in the signature of
    pgmath.normalize_advantages (compared with the batch-mean normalisation)."""
    theta = logits("theta", 2)
    pi = softmax(theta)
    q = sp.symbols("q_0:2", real=True)
    score = [[sp.diff(sp.log(pi[a]), t) for t in theta] for a in range(2)]
    grad_j = [sp.diff(sum(pi[a] * q[a] for a in range(2)), t) for t in theta]

    mean = [sp.Integer(0), sp.Integer(0)]
    for actions in itertools.product(range(2), repeat=N):
        prob = sp.Mul(*[pi[a] for a in actions])
        qs = [q[a] for a in actions]
        for k in range(2):
            mean[k] += prob * sum(score[a][k] * (qs[i] - baseline(i, qs)) for i, a in enumerate(actions))

    def rational(e: sp.Expr) -> sp.Expr:
        return exp_to_positive(e, theta)

    claims = (
        identity(
            f"E[ĝ] = claimed factor · N ∇J (N = {N}, all 2^{N} joint samples)",
            mean,
            [claimed_factor * N * g for g in grad_j],
            transform=rational,
        ),
        _numeric(impl),
    )
    return ProofResult(
        name=TITLE,
        statement=STATEMENT,
        claims=claims,
        method="sympy: exact expectation over all joint samples, exp(θ)→x>0, cancel to 0; "
        "impl vs lambdified normalisation in float64",
    )


if __name__ == "__main__":
    run_module(prove())
