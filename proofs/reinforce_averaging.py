"""REINFORCE: the per-episode sum is unbiased; dividing by the episode length is not.

The source article averages the per-step terms of an episode, ĝ = (1/T) Σₜ ∇log π(aₜ|sₜ) Gₜ.
Because the episode length T is random and correlated with the returns, E[ĝ] is not a constant
multiple of ∇J — it can even point downhill. (Dividing by a *constant*, e.g. the number of
episodes or a fixed horizon, only rescales the step and is harmless.)

Episode (undiscounted): in s₀ choose "stop" (probability 1 − p) and receive 1, episode length 1;
or "go" (probability p = σ(θ)) and receive 0, then one forced step in s₁ (a single action, no
parameter) with reward R, episode length 2. J(θ) = (1 − p) + pR, ∇J = p(1 − p)(R − 1).

Statement: E[w(T) Σₜ ∇log π(aₜ|sₜ) Gₜ] = c ∇J for a constant c > 0 that depends on neither θ nor
R — true for every constant weight w, false for w(T) = 1/T: then
E[ĝ] = p(1 − p)(R/2 − 1), which for 1 < R < 2 is negative while ∇J is positive (the details
show the witness). ``length_weight`` is the claimed weight.

Implementation: pgmath.policy_gradient_loss sums over time (then averages over a fixed batch),
see docs/formulas/policy-gradient-loss.md and docs/errata.md; tests: tests/test_proofs.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sympy as sp

from proofs._core import Claim, ProofResult, run_module, to_text

TITLE = "REINFORCE per-episode sum vs 1/T average"
STATEMENT = "E[w(T) Σₜ ∇log π(aₜ|sₜ) Gₜ] ∝ ∇J (constant factor) iff w does not depend on T here"


def constant_weight(length: int) -> Any:
    return sp.Integer(1)


def article_average(length: int) -> Any:
    """WRONG (the source article, §3.1 step 4): divide by the episode length."""
    return sp.Rational(1, length)


def prove(length_weight: Callable[[int], Any] = constant_weight) -> ProofResult:
    theta = sp.Symbol("theta", real=True)
    big_r = sp.Symbol("R", real=True)
    p = 1 / (1 + sp.exp(-theta))  # π(go | s₀)
    objective = (1 - p) * 1 + p * big_r
    grad = sp.diff(objective, theta)
    score_go = sp.diff(sp.log(p), theta)
    score_stop = sp.diff(sp.log(1 - p), theta)
    # episodes: (probability, length, Σₜ score · Gₜ)
    episodes = [
        (1 - p, 1, score_stop * 1),  # t=0: G₀ = 1
        (p, 2, score_go * big_r),  # t=0: G₀ = R; t=1: forced action, score 0
    ]
    mean = sum(prob * length_weight(length) * term for prob, length, term in episodes)
    ratio = sp.simplify(sp.factor(mean / grad))
    constant = not (ratio.free_symbols & {theta, big_r})
    positive = bool(constant and ratio.is_positive)
    witness = ""
    if not constant:
        point = {theta: 0, big_r: sp.Rational(3, 2)}
        witness = (
            f"; at θ = 0, R = 3/2: ∇J = {sp.simplify(grad.subs(point))}, "
            f"E[estimate] = {sp.simplify(mean.subs(point))}"
        )
    claims = (
        Claim(
            "E[estimate] / ∇J is a positive constant (free of θ and R)",
            positive,
            f"E[estimate] / ∇J = {to_text(ratio)}{witness}",
        ),
    )
    return ProofResult(
        name=TITLE,
        statement=STATEMENT,
        claims=claims,
        method="sympy: exact expectation over the two episodes, ratio to ∇J simplified",
        data={"ratio": to_text(ratio)},
    )


if __name__ == "__main__":
    run_module(prove())
