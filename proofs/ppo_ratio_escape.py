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

Numeric claim — the code: the batch loss of ``impl`` (pgmath.ppo_clip_loss, the mean over the two
samples, so −2 × the objective above) is differentiated by autograd through log π_θ(1|sᵢ) =
log σ(θ·φ(sᵢ)); −2 ∇θ loss must equal the lambdified ∇θ(L₁ + L₂) at the statement's point and at
random θ, so the gradient that pushes ρ₂ out is the one pgmath's loss produces.
Errata: docs/errata.md; tests: tests/test_proofs.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import sympy as sp
import torch

import pgmath

from .core import Claim, Comparison, ProofResult, agree, gradient, lambdify, numpy_rng, run_module

TITLE = "PPO clip does not bound the ratio"
STATEMENT = "∃ shared-parameter batch where ascent on the clipped objective pushes ρ₂ > 1+ε further out"
IMPL = "pgmath.ppo_clip_loss"
SEED = 20250

R = sp.Rational
SHARED_FEATURES: tuple[tuple[int, ...], ...] = ((1,), (2,))
SHARED_THETA: tuple[sp.Rational, ...] = (R(3, 10),)
TABULAR_FEATURES: tuple[tuple[int, ...], ...] = ((1, 0), (0, 1))
TABULAR_THETA: tuple[sp.Rational, ...] = (R(3, 10), R(3, 5))
CLIP_EPS = R(1, 5)


def _check(statement: str, verdict: sp.Basic, value: sp.Expr) -> Claim:
    ok = verdict is sp.true
    return Claim(statement, ok, f"value = {sp.N(value, 8)}" + ("" if ok else " — does not hold"))


def _minus_two_grad(impl: Callable[..., Any], features: Sequence[Sequence[int]], theta: np.ndarray, eps: float) -> torch.Tensor:
    """−2 ∇θ impl(log π_θ(1|sᵢ), log ½, A = 1, clip_eps=ε) for the two samples."""
    th = torch.from_numpy(theta).requires_grad_(True)
    z = torch.tensor(features, dtype=torch.float64) @ th
    old = torch.full((len(features),), -float(np.log(2.0)), dtype=torch.float64)
    loss, _ = impl(torch.nn.functional.logsigmoid(z), old, torch.ones(len(features), dtype=torch.float64), clip_eps=eps)
    grad = gradient(loss, th)
    return -len(features) * grad


def _numeric(th: Sequence[sp.Symbol], objective: sp.Expr, features: Sequence[Sequence[int]],
             theta: Sequence[sp.Rational], eps: sp.Rational, impl: Callable[..., Any]) -> Claim:
    """−2 ∇θ impl == the lambdified ∇θ(L₁ + L₂), at the statement's θ and 9 random θ."""
    fn = lambdify([th], [sp.diff(objective, t) for t in th])

    def comparisons() -> Iterator[Comparison]:
        rng = numpy_rng(SEED)
        points = [np.array([float(t) for t in theta])] + [rng.uniform(-1.0, 1.0, size=len(th)) for _ in range(9)]
        for i, point in enumerate(points):
            label = "the statement's θ" if i == 0 else f"random θ {i}"
            yield label, _minus_two_grad(impl, features, point, float(eps)), fn(point)

    return agree("−2 ∇θ impl(log π_θ, log π_old, A, ε) = ∇θ(L₁ + L₂) (10 points)", comparisons)


def prove(
    features: Sequence[Sequence[int]] = SHARED_FEATURES,
    theta: Sequence[sp.Rational] = SHARED_THETA,
    eps: sp.Rational = CLIP_EPS,
    *,
    impl: Callable[..., Any] = pgmath.ppo_clip_loss,
) -> ProofResult:
    """``features`` / ``theta`` / ``eps``: the example; ``impl``: an implementation in the signature
    of pgmath.ppo_clip_loss, whose batch-loss gradient must be the one used here."""
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
        _numeric(th, objective, features, theta, eps, impl),
    )
    return ProofResult(
        name=TITLE,
        statement=STATEMENT,
        claims=claims,
        method="sympy: exact σ(θ·φ), exact derivatives at a rational point, signs certified by evalf; "
        "autograd of impl vs lambdified ∇θ(L₁ + L₂)",
        data={"rho1": float(rho1), "rho2": float(rho2), "rho2_after_step": float(stepped)},
    )


if __name__ == "__main__":
    run_module(prove())
