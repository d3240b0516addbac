"""Causality (reward-to-go) and the γᵗ weight, on a symbolic two-step decision tree.

Tree: s₀ → a₀ ∈ {0, 1} (π(·|s₀) = softmax(θ₀, θ₁)), reward r₀(a₀); then s₁ ∈ {A, B} with
fixed rational P(s₁|a₀); then a₁ ∈ {0, 1} (π(·|s₁) = softmax of that state's two logits),
reward r₁(s₁, a₁); end. J(θ) = E[r₀ + γ r₁]. All six rewards, all six logits and γ are symbols.

Statements (Williams 1992; Sutton & Barto 2018, §13.3; Peters & Schaal 2008):

1. Causality: E[∇log π(a₁|s₁) r₀] = 0 — a reward that happened before an action carries no
   information about the gradient of that action's log-probability (the reward is fixed given
   the history, and the score has conditional mean 0).
2. Reward-to-go: ∇J = E[Σₜ γᵗ ∇log π(aₜ|sₜ) Gₜ], Gₜ = Σ_{t'≥t} γ^{t'−t} r_{t'}; without the γᵗ
   weight it is not ∇J (the weight the source article omits).
3. Whole-trajectory form (the log-derivative trick on p_θ(τ)):
   ∇J = E[(Σₜ ∇log π(aₜ|sₜ)) (Σₜ γᵗ rₜ)].

Wrong claims are rejected: ``vanishing_pairs=((0, 1),)`` (claims the *future* reward r₁ does not
correlate with ∇log π(a₀)), ``time_weight=lambda t, g: 1`` (drops γᵗ).

The computation is exact arithmetic in the rational-function field over the rewards, γ and
xₖ = exp θₖ (∂/∂θₖ = xₖ ∂/∂xₖ; ∇log π = ∇π / π). Tests: tests/test_proofs.py; the estimator
area checks the same facts by Monte Carlo.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import sympy as sp
from sympy.polys.fields import field

from proofs._core import ProofResult, identity, run_module

TITLE = "causality / reward-to-go"
STATEMENT = "E[∇log π(a₁|s₁) r₀] = 0;  ∇J = E[Σₜ γᵗ ∇log π(aₜ|sₜ) Gₜ]"

R = sp.Rational
#: P(s₁ | a₀) over s₁ ∈ {A, B}
TRANSITIONS = ((R(1, 3), R(2, 3)), (R(3, 4), R(1, 4)))


def discount_weight(t: int, gamma: Any) -> Any:
    """γᵗ: the weight of the time-t term in the discounted policy gradient."""
    return gamma**t


def prove(
    vanishing_pairs: Sequence[tuple[int, int]] = ((1, 0),),
    time_weight: Callable[[int, Any], Any] = discount_weight,
) -> ProofResult:
    """``vanishing_pairs``: claimed (t, t') with E[∇log π(aₜ|sₜ) r_{t'}] = 0 for every θ."""
    names = [sp.Symbol(f"exp(theta_{i})") for i in range(6)]
    rnames = [sp.Symbol(f"r0_{a}") for a in range(2)] + [
        sp.Symbol(f"r1_{s}{a}") for s in "AB" for a in range(2)
    ]
    gname = sp.Symbol("gamma")
    k, *gens = field([*names, *rnames, gname], sp.QQ)
    x, rew, gamma = gens[:6], gens[6:12], gens[12]
    r0 = rew[0:2]
    r1 = [rew[2:4], rew[4:6]]

    def d_theta(f: Any, i: int) -> Any:  # ∂/∂θᵢ = xᵢ ∂/∂xᵢ, xᵢ = exp θᵢ
        return x[i] * f.diff(x[i])

    # states: 0 = s₀, 1 = A, 2 = B; logits of state s are θ_{2s}, θ_{2s+1}
    pi = [[x[2 * s + a] / (x[2 * s] + x[2 * s + 1]) for a in range(2)] for s in range(3)]

    # enumerate the 8 trajectories (a₀, s₁, a₁)
    trajectories = []
    for a0 in range(2):
        for s1 in range(2):
            for a1 in range(2):
                prob = pi[0][a0] * k(TRANSITIONS[a0][s1]) * pi[1 + s1][a1]
                trajectories.append(
                    {"p": prob, "steps": [(0, a0), (1 + s1, a1)], "r": [r0[a0], r1[s1][a1]]}
                )

    def expect(f: Callable[[dict[str, Any]], Any]) -> Any:
        return sum(tr["p"] * f(tr) for tr in trajectories)

    def score(tr: dict[str, Any], t: int, i: int) -> Any:
        s, a = tr["steps"][t]
        return d_theta(pi[s][a], i) / pi[s][a]

    objective = expect(lambda tr: tr["r"][0] + gamma * tr["r"][1])
    grad = [d_theta(objective, i) for i in range(6)]

    domains: dict[sp.Symbol, list[Any]] = {n: [R(1, 2), R(2), R(3, 7)] for n in names}
    domains[gname] = [R(1, 2), R(9, 10)]
    claims = []
    for t, t2 in vanishing_pairs:
        claims.append(
            identity(
                f"E[∇log π(a{t}|s{t}) r{t2}] = 0 for all θ, rewards, γ",
                [expect(lambda tr, t=t, t2=t2, i=i: score(tr, t, i) * tr["r"][t2]) for i in range(6)],
                [0] * 6,
                domains=domains,
            )
        )

    def reward_to_go(tr: dict[str, Any], t: int) -> Any:
        return sum(gamma ** (t2 - t) * tr["r"][t2] for t2 in range(t, 2))

    claims.append(
        identity(
            "∇J = E[Σₜ w(t) ∇log π(aₜ|sₜ) Gₜ] with the claimed w(t)",
            grad,
            [
                expect(
                    lambda tr, i=i: sum(
                        time_weight(t, gamma) * score(tr, t, i) * reward_to_go(tr, t) for t in range(2)
                    )
                )
                for i in range(6)
            ],
            domains=domains,
        )
    )
    claims.append(
        identity(
            "∇J = E[∇log p_θ(τ) Σₜ γᵗ rₜ] (log-derivative trick on trajectories)",
            grad,
            [
                expect(
                    lambda tr, i=i: sum(score(tr, t, i) for t in range(2))
                    * (tr["r"][0] + gamma * tr["r"][1])
                )
                for i in range(6)
            ],
            domains=domains,
        )
    )
    return ProofResult(
        name=TITLE,
        statement=STATEMENT,
        claims=tuple(claims),
        method="sympy rational-function field over rewards, γ, exp θ: exact expectations over 8 paths",
    )


if __name__ == "__main__":
    run_module(prove())
