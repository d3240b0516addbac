"""PPO's clip does not bound the policy update (an exact counterexample).

The source article says the min/clip "limits the size of the policy update". It does not: the
clip only zeroes the gradient of a sample whose ratio is already outside [1 − ε, 1 + ε] in the
advantageous direction. With shared parameters the *other* samples' gradients keep moving that
sample's ratio — further out. Empirically the ratio leaves the band routinely (Engstrom et al.
2020; Ilyas et al. 2020); Wang et al. 2020 ("Truly PPO") prove PPO does not bound the ratio
and propose a rollback to do so.

Example (all numbers exact): binary action, π(1|s) = σ(θ·φ(s)); old policy θ_old = 0, so
π_old(1|s) = 1/2 in every state. Two samples, both action 1 with advantage A = 1, in states
with features φ(s₁) = 1 and φ(s₂) = 2 (one shared parameter). At θ = 3/10, ε = 1/5:
ρ₁ = 2σ(0.3) ≈ 1.149 is inside the band, ρ₂ = 2σ(0.6) ≈ 1.291 is already above 1 + ε. The
gradient of the clipped batch objective L₁ + L₂ is L₁'s alone (L₂ is clipped, its gradient is 0)
and is positive, and ∂ρ₂/∂θ > 0, so ascent moves ρ₂ further out: the directional derivative of
ρ₂ along the gradient is > 0, and a step of size 1 lands at ρ₂ ≈ 1.41.

With tabular features (φ(s₁) = (1, 0), φ(s₂) = (0, 1), θ = (3/10, 3/5): the same two ratios)
the samples share no parameter, ρ₂'s directional derivative is 0, and the statement is
correctly *rejected*: the escape needs parameter sharing — which every neural policy has.
Errata: docs/errata.md; tests: tests/test_proofs.py.
"""

from __future__ import annotations

from collections.abc import Sequence

import sympy as sp

from proofs._core import Claim, ProofResult, run_module

TITLE = "PPO clip does not bound the ratio"
STATEMENT = "∃ shared-parameter batch where ascent on the clipped objective pushes ρ₂ > 1+ε further out"

R = sp.Rational
SHARED_FEATURES: tuple[tuple[int, ...], ...] = ((1,), (2,))
SHARED_THETA: tuple[sp.Rational, ...] = (R(3, 10),)
TABULAR_FEATURES: tuple[tuple[int, ...], ...] = ((1, 0), (0, 1))
TABULAR_THETA: tuple[sp.Rational, ...] = (R(3, 10), R(3, 5))
CLIP_EPS = R(1, 5)


def _check(statement: str, verdict: sp.Basic, value: sp.Expr) -> Claim:
    ok = verdict is sp.true
    return Claim(statement, ok, f"value = {sp.N(value, 8)}" + ("" if ok else " — does not hold"))


def prove(
    features: Sequence[Sequence[int]] = SHARED_FEATURES,
    theta: Sequence[sp.Rational] = SHARED_THETA,
    eps: sp.Rational = CLIP_EPS,
) -> ProofResult:
    dim = len(theta)
    th = sp.symbols(f"theta_0:{dim}", real=True)
    advantages = (1, 1)
    point = dict(zip(th, theta))

    def ratio(i: int) -> sp.Expr:  # π_θ(1|sᵢ) / π_old(1|sᵢ), π_old = 1/2
        z = sum(f * t for f, t in zip(features[i], th))
        return 2 / (1 + sp.exp(-z))

    def surrogate(i: int) -> sp.Expr:
        rho, adv = ratio(i), advantages[i]
        return sp.Min(rho * adv, sp.Max(1 - eps, sp.Min(rho, 1 + eps)) * adv)

    rho1, rho2 = (ratio(i).subs(point) for i in range(2))
    objective = surrogate(0) + surrogate(1)  # the batch's clipped objective
    grad = [sp.diff(objective, t).subs(point) for t in th]
    drho2 = [sp.diff(ratio(1), t).subs(point) for t in th]
    directional = sum(a * b for a, b in zip(drho2, grad))
    stepped = ratio(1).subs({t: theta[k] + grad[k] for k, t in enumerate(th)})
    claims = (
        _check("sample 2 clipped: ρ₂ > 1 + ε", sp.simplify(rho2 > 1 + eps), rho2),
        _check("sample 1 inside the band: 1 − ε < ρ₁ < 1 + ε", sp.And(rho1 > 1 - eps, rho1 < 1 + eps), rho1),
        _check("the batch gradient is nonzero", sp.Or(*[g > 0 for g in grad], *[g < 0 for g in grad]), sum(g**2 for g in grad)),
        _check("ascent pushes ρ₂ further out: ∇ρ₂ · ∇L > 0", directional > 0, directional),
        _check("a unit ascent step increases ρ₂ beyond its clipped value", stepped > rho2, stepped),
    )
    return ProofResult(
        name=TITLE,
        statement=STATEMENT,
        claims=claims,
        method="sympy: exact σ(θ·φ), exact derivatives at a rational point, signs certified by evalf",
        data={"rho1": float(rho1), "rho2": float(rho2), "rho2_after_step": float(stepped)},
    )


if __name__ == "__main__":
    run_module(prove())
