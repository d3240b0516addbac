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
Implementation: pgmath.normalize_advantages (docs/formulas/normalize-advantages.md);
tests: tests/test_proofs.py.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import sympy as sp

from proofs._core import ProofResult, exp_to_positive, identity, logits, run_module, softmax

TITLE = "batch-mean baseline factor"
STATEMENT = "E[Σᵢ ∇log π(aᵢ)(q(aᵢ) − mean q)] = (N − 1)/N · N∇J;  leave-one-out: unbiased"
N = 3

Baseline = Callable[[int, Sequence[sp.Expr]], sp.Expr]


def batch_mean(i: int, qs: Sequence[sp.Expr]) -> sp.Expr:
    return sum(qs) / len(qs)


def leave_one_out(i: int, qs: Sequence[sp.Expr]) -> sp.Expr:
    return (sum(qs) - qs[i]) / (len(qs) - 1)


BATCH_MEAN_FACTOR = sp.Rational(N - 1, N)


def prove(baseline: Baseline = batch_mean, claimed_factor: sp.Expr = BATCH_MEAN_FACTOR) -> ProofResult:
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
    )
    return ProofResult(
        name=TITLE,
        statement=STATEMENT,
        claims=claims,
        method="sympy: exact expectation over all joint samples, exp(θ)→x>0, cancel to 0",
    )


if __name__ == "__main__":
    run_module(prove())
