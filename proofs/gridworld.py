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
Listed in docs/reference-values.md; the exact-MDP area reproduces it by policy evaluation.
"""

from __future__ import annotations

from collections.abc import Sequence

import sympy as sp

from proofs._core import ProofResult, identity, run_module

TITLE = "gridworld values (S&B Fig. 4.1)"
STATEMENT = "v_π of the 4×4 gridworld, random policy, γ = 1, equals Figure 4.1 (k = ∞)"

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


def prove(claimed: Sequence[Sequence[int]] = FIGURE_4_1, gamma: sp.Expr = UNDISCOUNTED) -> ProofResult:
    v = {s: (sp.Integer(0) if s in TERMINAL else sp.Symbol(f"v_{s}")) for s in range(16)}
    moves = ((-1, 0), (1, 0), (0, 1), (0, -1))
    equations = [
        sp.Eq(v[s], sum(sp.Rational(1, 4) * (-1 + gamma * v[_next_state(s, m)]) for m in moves))
        for s in range(16)
        if s not in TERMINAL
    ]
    unknowns = [v[s] for s in range(16) if s not in TERMINAL]
    solution = sp.solve(equations, unknowns, dict=True)[0]
    values = [solution.get(v[s], v[s]) for s in range(16)]
    claims = (
        identity(
            "exact v_π = claimed table (16 states)",
            values,
            [sp.Integer(x) for row in claimed for x in row],
        ),
    )
    return ProofResult(
        name=TITLE,
        statement=STATEMENT,
        claims=claims,
        method="sympy: exact rational linear solve of the Bellman expectation equations",
        data={"values": [[int(values[4 * r + c]) if values[4 * r + c].is_integer else str(values[4 * r + c]) for c in range(4)] for r in range(4)]},
    )


if __name__ == "__main__":
    run_module(prove())
