"""The value loss ½(V − G)²: its minimiser is the conditional mean, its gradient V − G.

For a return G taking values g₀, g₁, g₂ with probabilities pᵢ = uᵢ/Σu (symbolic, positive):

1. ∂/∂V ½(V − g)² = V − g (the gradient pgmath.value_loss produces per sample, so SGD on it is
   the Monte-Carlo / TD update V ← V + α(G − V));
2. L(V) = E[loss(V, G)] is stationary at V = E[G] = Σ pᵢgᵢ, and
3. L''(V) > 0 everywhere, so V = E[G] is the unique minimiser: regression on returns estimates
   V^π(s) = E[Gₜ | sₜ = s] (Sutton & Barto 2018, §9.2–9.3).

Wrong claims are rejected: ``loss=lambda v, g: sp.Abs(v - g)`` (its minimiser is a median,
not the mean) or ``loss=lambda v, g: (v - g)**2`` (minimiser right, gradient 2(V − g)).

Numeric claim — the code: ``impl`` (pgmath.value_loss, ``impl(values, returns, mask=…)``, no value
clipping) must return mean loss(Vᵢ, Gᵢ) over the selected entries and the gradient
∂/∂Vᵢ = (Vᵢ − Gᵢ)/n there (0 on masked entries), from the lambdified claimed loss and the proven
gradient V − G, at random batches. Implementation: pgmath.value_loss; tests: tests/test_losses.py,
tests/test_proofs.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
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
    gradient,
    identity,
    lambdify,
    numpy_rng,
    run_module,
    to_text,
)

TITLE = "value loss ½(V − G)²"
STATEMENT = "∂/∂V ½(V − G)² = V − G;  argmin_V E[½(V − G)²] = E[G]"
IMPL = "pgmath.value_loss"
N = 3
SEED = 20252

Loss = Callable[[sp.Expr, sp.Expr], sp.Expr]


def half_squared_error(v: sp.Expr, g: sp.Expr) -> sp.Expr:
    return (v - g) ** 2 / 2


def _numeric(loss: Loss, impl: Callable[..., Any]) -> Claim:
    """impl(values, returns[, mask]) == mean loss over the selection; ∂/∂V == (V − G)/n there."""
    v, g = sp.symbols("V G", real=True)
    fn = lambdify([v, g], [loss(v, g), v - g])

    def comparisons() -> Iterator[Comparison]:
        rng = numpy_rng(SEED)
        for i in range(8):
            values, returns = 3.0 * rng.standard_normal((2, 32))
            mask = rng.uniform(size=32) < 0.6 if i % 2 else None
            sel = np.ones(32, bool) if mask is None else mask
            sel[0] = True
            per_entry, grad = fn(values, returns)
            vt = torch.from_numpy(values).requires_grad_(True)
            kwargs = {} if mask is None else {"mask": torch.from_numpy(sel)}
            got = impl(vt, torch.from_numpy(returns), **kwargs)
            got_grad = gradient(got, vt)
            n = sel.sum()
            yield f"batch {i}: loss", got, per_entry[sel].sum() / n
            yield f"batch {i}: ∂/∂V", got_grad, np.where(sel, grad / n, 0.0)

    return agree("impl(values, returns[, mask]) = mean loss, ∂/∂V = (V − G)/n (8 random batches)", comparisons)


def prove(loss: Loss = half_squared_error, *, impl: Callable[..., Any] = pgmath.value_loss) -> ProofResult:
    """``loss``: the claimed per-sample loss; ``impl``: an implementation in the signature of
    pgmath.value_loss."""
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
        _numeric(loss, impl),
    )
    return ProofResult(
        name=TITLE,
        statement=STATEMENT,
        claims=claims,
        method="sympy: symbolic 3-point return distribution, exact derivatives; impl vs lambdified in float64",
    )


if __name__ == "__main__":
    run_module(prove())
