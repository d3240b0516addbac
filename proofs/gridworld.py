"""Sutton & Barto Figure 4.1: the 4×4 gridworld under the equiprobable random policy.

States 1…14 are non-terminal, the two shaded corners (0 and 15) terminal; the four actions
up/down/right/left are taken with probability ¼ each, an action that would leave the grid leaves
the state unchanged, every transition gives reward −1, no discounting (Example 4.1).

The proof solves the Bellman expectation equations v = r_π + P_π v exactly over the rationals
(sympy linear solve, 14 unknowns) and checks the solution against the claimed table: the
converged (k = ∞) values printed in Figure 4.1, which are integers:

     0 −14 −20 −22
   −14 −18 −20 −20
   −20 −20 −18 −14
   −22 −20 −14   0

A wrong table (e.g. one entry changed) or a discount γ < 1 is rejected.

Numeric claim — the code: the MDP built by ``impl`` (pgmath.mdp.gridworld, ``impl(gamma=γ)``,
defaults otherwise) evaluated under the equiprobable policy (``mdp.state_values``) must equal the
exact Bellman solution, for γ = 1 (the figure) and three random rational γ < 1.
Listed in docs/reference-values.md; the exact-MDP area reproduces it by policy evaluation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import sympy as sp
import torch

import pgmath.mdp

from .core import Claim, Comparison, ProofResult, agree, identity, numpy_rng, run_module

TITLE = "gridworld values (S&B Fig. 4.1)"
STATEMENT = "v_π of the 4×4 gridworld, random policy, γ = 1, equals Figure 4.1 (k = ∞)"
IMPL = "pgmath.mdp.gridworld"
SEED = 20255

FIGURE_4_1: tuple[tuple[int, ...], ...] = (
    (0, -14, -20, -22),
    (-14, -18, -20, -20),
    (-20, -20, -18, -14),
    (-22, -20, -14, 0),
)
TERMINAL = (0, 15)


def _next_state(s: int, move: tuple[int, int]) -> int:
    row, col = divmod(s, 4)
    r2, c2 = row + move[0], col + move[1]
    return r2 * 4 + c2 if 0 <= r2 < 4 and 0 <= c2 < 4 else s


UNDISCOUNTED = sp.Integer(1)


def exact_values(gamma: sp.Expr) -> list[sp.Expr]:
    """v_π(s), s = 0…15, of the equiprobable policy: the exact rational solution of
    v(s) = Σ_moves ¼ (−1 + γ v(next(s, move))) over the non-terminal states, v = 0 on terminal ones."""
    live = [s for s in range(16) if s not in TERMINAL]
    index = {s: i for i, s in enumerate(live)}
    quarter = sp.Rational(1, 4)
    a, b = sp.eye(len(live)), sp.zeros(len(live), 1)
    for s in live:
        for move in ((-1, 0), (1, 0), (0, 1), (0, -1)):
            b[index[s]] -= quarter
            nxt = _next_state(s, move)
            if nxt not in TERMINAL:
                a[index[s], index[nxt]] -= quarter * gamma
    solution = a.LUsolve(b)
    return [sp.Integer(0) if s in TERMINAL else solution[index[s]] for s in range(16)]


def _numeric(values: Sequence[sp.Expr], gamma: sp.Expr, impl: Callable[..., Any]) -> Claim:
    """impl(gamma=γ).state_values(uniform π) == the exact v_π, at γ and three random γ < 1."""

    def comparisons() -> Iterator[Comparison]:
        rng = numpy_rng(SEED)
        cases = [(gamma, values)] + [
            (g, exact_values(g)) for g in (sp.Rational(int(k), 100) for k in rng.integers(50, 100, size=3))
        ]
        for g, exact in cases:
            mdp = impl(gamma=float(g))
            uniform = torch.full((mdp.num_states, mdp.num_actions), 1.0 / mdp.num_actions, dtype=torch.float64)
            yield f"γ = {g}", mdp.state_values(uniform), np.array([float(x) for x in exact])

    return agree("impl(gamma=γ).state_values(equiprobable π) = exact v_π (γ = 1 and 3 random γ)", comparisons)


def prove(
    claimed: Sequence[Sequence[int]] = FIGURE_4_1,
    gamma: sp.Expr = UNDISCOUNTED,
    *,
    impl: Callable[..., Any] = pgmath.mdp.gridworld,
) -> ProofResult:
    """``claimed``: the table; ``gamma``: the discount; ``impl``: an implementation in the
    signature of pgmath.mdp.gridworld."""
    values = exact_values(gamma)
    claims = (
        identity(
            "exact v_π = claimed table (16 states)",
            values,
            [sp.Integer(x) for row in claimed for x in row],
        ),
        _numeric(values, gamma, impl),
    )
    return ProofResult(
        name=TITLE,
        statement=STATEMENT,
        claims=claims,
        method="sympy: exact rational linear solve of the Bellman expectation equations; "
        "pgmath.mdp state values vs the exact solution",
        data={"values": [[int(values[4 * r + c]) if values[4 * r + c].is_integer else str(values[4 * r + c]) for c in range(4)] for r in range(4)]},
    )


if __name__ == "__main__":
    run_module(prove())
