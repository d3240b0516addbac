"""Discounted returns and the generic reverse discounted cumulative sum (symbolic T = 4).

    yₜ = xₜ + cₜ yₜ₊₁,  y_T = b                     (pgmath.discounted_cumsum with b = 0)
    yₜ = Σₖ (Π_{j<k} cₜ₊ⱼ) xₜ₊ₖ + (Π_{j≥t} cⱼ) b      (its closed form)

Returns are the case xₜ = rₜ, cₜ = γ mₜ (mₜ = 1 − terminatedₜ), b = V(s_T) (or 0):
Gₜ = rₜ + γ mₜ Gₜ₊₁ = Σₖ γᵏ (Π_{j<k} mₜ₊ⱼ) rₜ₊ₖ + γ^{T−t} (Π_{j≥t} mⱼ) V(s_T)
(Sutton & Barto 2018, eq. 3.9). All symbols are free (cₜ, mₜ, b arbitrary), so the identities
hold for every discount/mask pattern.

The claimed recursion step is the input ``step(x, c, y_next)``; wrong steps are rejected, e.g.
``lambda x, c, y: c * (x + y)`` (discounting the current reward) or
``lambda x, c, y: x + y`` (no discount). Implementations: pgmath.discounted_cumsum,
pgmath.discounted_returns(_reference); tests: tests/test_returns.py, tests/test_proofs.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sympy as sp

from proofs._core import ProofResult, identity, run_module

TITLE = "discounted returns / cumsum"
STATEMENT = "yₜ = xₜ + cₜyₜ₊₁ ⇔ yₜ = Σₖ(Πcₜ₊ⱼ)xₜ₊ₖ + (Πc)b;  Gₜ = rₜ + γmₜGₜ₊₁"
T = 4

Step = Callable[[Any, Any, Any], Any]


def cumsum_step(x: Any, c: Any, y_next: Any) -> Any:
    """yₜ = xₜ + cₜ yₜ₊₁."""
    return x + c * y_next


def _run(step: Step, x: list, c: list, b: Any) -> list:
    y: list[Any] = [0] * (T + 1)
    y[T] = b
    # backward in time: t = T-1 … 0
    for t in reversed(range(T)):
        y[t] = step(x[t], c[t], y[t + 1])
    return y[:T]


def prove(step: Step = cumsum_step) -> ProofResult:
    x = list(sp.symbols(f"x_0:{T}", real=True))
    c = list(sp.symbols(f"c_0:{T}", real=True))
    b = sp.Symbol("b", real=True)
    gamma = sp.Symbol("gamma", positive=True)
    m = list(sp.symbols(f"m_0:{T}", real=True))
    r = list(sp.symbols(f"r_0:{T}", real=True))
    v_last = sp.Symbol("V_T", real=True)

    closed = [
        sum(sp.Mul(*c[t : t + k]) * x[t + k] for k in range(T - t)) + sp.Mul(*c[t:]) * b
        for t in range(T)
    ]
    returns = [
        sum(gamma**k * sp.Mul(*m[t : t + k]) * r[t + k] for k in range(T - t))
        + gamma ** (T - t) * sp.Mul(*m[t:]) * v_last
        for t in range(T)
    ]
    domains = {s: [0, 1] for s in m}
    claims = (
        identity("recursion = closed form (free cₜ, b)", _run(step, x, c, b), closed),
        identity(
            "Gₜ = Σγᵏ Πm rₜ₊ₖ + γ^{T−t} Πm V_T (cₜ = γmₜ, b = V_T)",
            _run(step, r, [gamma * mt for mt in m], v_last),
            returns,
            domains=domains,
        ),
        identity(
            "no bootstrap (b = 0): Gₜ = Σγᵏ Πm rₜ₊ₖ",
            _run(step, r, [gamma * mt for mt in m], sp.Integer(0)),
            [e.subs(v_last, 0) for e in returns],
            domains=domains,
        ),
    )
    return ProofResult(
        name=TITLE,
        statement=STATEMENT,
        claims=claims,
        method="sympy: polynomial identities in x, c, b (T = 4), expand to 0",
    )


if __name__ == "__main__":
    run_module(prove())
