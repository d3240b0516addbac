"""The value loss ½(V − G)²: its minimiser is the conditional mean, its gradient V − G.

For a return G taking values g₀, g₁, g₂ with probabilities pᵢ = uᵢ/Σu (symbolic, positive):

1. ∂/∂V ½(V − g)² = V − g (the gradient pgmath.value_loss produces per sample, so SGD on it is
   the Monte-Carlo / TD update V ← V + α(G − V));
2. L(V) = E[loss(V, G)] is stationary at V = E[G] = Σ pᵢgᵢ, and
3. L''(V) > 0 everywhere, so V = E[G] is the unique minimiser: regression on returns estimates
   V^π(s) = E[Gₜ | sₜ = s] (Sutton & Barto 2018, §9.2–9.3).

Wrong claims are rejected: ``loss=lambda v, g: sp.Abs(v - g)`` (its minimiser is a median,
not the mean) or ``loss=lambda v, g: (v - g)**2`` (minimiser right, gradient 2(V − g)).
Implementation: pgmath.value_loss; tests: tests/test_losses.py, tests/test_proofs.py.
"""

from __future__ import annotations

from collections.abc import Callable

import sympy as sp

from proofs._core import Claim, ProofResult, identity, run_module, to_text

TITLE = "value loss ½(V − G)²"
STATEMENT = "∂/∂V ½(V − G)² = V − G;  argmin_V E[½(V − G)²] = E[G]"
N = 3

Loss = Callable[[sp.Expr, sp.Expr], sp.Expr]


def half_squared_error(v: sp.Expr, g: sp.Expr) -> sp.Expr:
    return (v - g) ** 2 / 2


def prove(loss: Loss = half_squared_error) -> ProofResult:
    v = sp.Symbol("V", real=True)
    g = sp.symbols(f"g_0:{N}", real=True)
    u = sp.symbols(f"u_0:{N}", positive=True)
    p = [ui / sum(u) for ui in u]
    mean = sum(pi * gi for pi, gi in zip(p, g))
    expected = sum(pi * loss(v, gi) for pi, gi in zip(p, g))
    curvature = sp.simplify(sp.diff(expected, v, 2))
    claims = (
        identity("∂loss/∂V = V − g", sp.diff(loss(v, g[0]), v), v - g[0]),
        identity("dL/dV = 0 at V = E[G]", sp.diff(expected, v).subs(v, mean), 0),
        Claim(
            "L''(V) > 0 for all V (unique minimiser)",
            curvature.is_positive is True,
            f"L''(V) = {to_text(curvature)}",
        ),
    )
    return ProofResult(
        name=TITLE,
        statement=STATEMENT,
        claims=claims,
        method="sympy: symbolic 3-point return distribution, exact derivatives",
    )


if __name__ == "__main__":
    run_module(prove())
