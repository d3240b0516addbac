"""The importance-sampled surrogate of PPO/TRPO is a first-order approximation of J.

On the symbolic 2-state, 2-action discounted MDP of proofs/policy_gradient_theorem.py, with
new logits θ and old logits θ_old (both symbolic), A_old = Q^{π_old} − V^{π_old} and
d_π = μ₀ᵀ(I − γP_π)⁻¹ the discounted occupancy:

1. Performance difference lemma (Kakade & Langford 2002, Lemma 6.1):
   J(θ) − J(θ_old) = Σₛ d_{π_θ}(s) Σₐ π_θ(a|s) A_old(s, a) — exact, with the NEW policy's
   state distribution;
2. the surrogate L(θ) = J(θ_old) + Σₛ d_{π_old}(s) Σₐ π_θ(a|s) A_old(s, a)
   = J(θ_old) + E_{s∼d_old, a∼π_old}[ρ(θ) A_old(s, a)] (ρ = π_θ/π_old, up to the 1/(1−γ)
   normalisation of d_old) equals J at θ = θ_old, and
3. ∇L(θ_old) = ∇J(θ_old) (Schulman et al. 2015, TRPO §2–3) — only to first order:
   replacing d_{π_θ} by d_{π_old} in (1) is rejected as an exact identity
   (``occupancy_of="old"``). The source article calls the ratio term an importance-sampling
   estimate without saying that it estimates this local surrogate, not J(θ) − J(θ_old).

Exact arithmetic in the rational-function field over exp θ, exp θ_old and γ.
Tests: tests/test_proofs.py; docs/formulas/ppo-clip.md and docs/errata.md.
"""

from __future__ import annotations

from typing import Any, Literal

import sympy as sp
from sympy.polys.fields import field

from proofs._core import ProofResult, identity, run_module
from proofs.policy_gradient_theorem import MU0, REWARDS, TRANSITIONS, inverse_2x2

TITLE = "PPO/TRPO surrogate (first order)"
STATEMENT = "J(θ) − J(θ_old) = Σ d_θ Σ π_θ A_old;  L = J and ∇L = ∇J at θ_old (d_old in place of d_θ)"


def prove(occupancy_of: Literal["new", "old"] = "new") -> ProofResult:
    """``occupancy_of``: whose discounted occupancy the claimed exact identity (1) uses."""
    names = [sp.Symbol(f"exp(theta_{i})") for i in range(4)]
    old_names = [sp.Symbol(f"exp(theta_old_{i})") for i in range(4)]
    gname = sp.Symbol("gamma")
    k, *gens = field([*names, *old_names, gname], sp.QQ)
    x, y, gamma = gens[:4], gens[4:8], gens[8]
    ring = k.ring

    def c(v: sp.Rational) -> Any:
        return k(v)

    def at_old(f: Any) -> Any:  # substitute θ = θ_old (xᵢ → yᵢ)
        pairs = [(ring.gens[i], ring.gens[4 + i]) for i in range(4)]
        return k(f.numer.compose(pairs)) / k(f.denom.compose(pairs))

    def solve(z: list[Any]) -> dict[str, Any]:
        pi = [[z[2 * s + a] / (z[2 * s] + z[2 * s + 1]) for a in range(2)] for s in range(2)]
        p_pi = [
            [sum(pi[s][a] * c(TRANSITIONS[(s, a)][s2]) for a in range(2)) for s2 in range(2)]
            for s in range(2)
        ]
        r_pi = [sum(pi[s][a] * c(REWARDS[s][a]) for a in range(2)) for s in range(2)]
        inv = inverse_2x2([[(1 if i == j else 0) - gamma * p_pi[i][j] for j in range(2)] for i in range(2)])
        v = [sum(inv[i][j] * r_pi[j] for j in range(2)) for i in range(2)]
        d = [sum(c(MU0[i]) * inv[i][j] for i in range(2)) for j in range(2)]
        q = [
            [c(REWARDS[s][a]) + gamma * sum(c(TRANSITIONS[(s, a)][s2]) * v[s2] for s2 in range(2)) for a in range(2)]
            for s in range(2)
        ]
        return {"pi": pi, "v": v, "d": d, "q": q, "J": sum(c(MU0[i]) * v[i] for i in range(2))}

    new, old = solve(list(x)), solve(list(y))
    adv_old = [[old["q"][s][a] - old["v"][s] for a in range(2)] for s in range(2)]

    def weighted_advantage(d: list[Any]) -> Any:
        return sum(d[s] * sum(new["pi"][s][a] * adv_old[s][a] for a in range(2)) for s in range(2))

    def surrogate_grad(i: int) -> Any:  # ∂/∂θᵢ = xᵢ ∂/∂xᵢ
        return sum(
            old["d"][s] * sum(x[i] * new["pi"][s][a].diff(x[i]) * adv_old[s][a] for a in range(2))
            for s in range(2)
        )

    d_claimed = new["d"] if occupancy_of == "new" else old["d"]
    surrogate = old["J"] + weighted_advantage(old["d"])
    domains = {n: [sp.Rational(1, 2), sp.Integer(2), sp.Rational(3, 7)] for n in [*names, *old_names]}
    domains[gname] = [sp.Rational(1, 2), sp.Rational(9, 10)]
    claims = (
        identity(
            f"J(θ) − J(θ_old) = Σₛ d(s) Σₐ π_θ(a|s) A_old(s,a) with d of the {occupancy_of} policy",
            new["J"] - old["J"],
            weighted_advantage(d_claimed),
            domains=domains,
        ),
        identity("L(θ_old) = J(θ_old)", at_old(surrogate), old["J"], domains=domains),
        identity(
            "∇L(θ_old) = ∇J(θ_old), all 4 logits",
            # J(θ_old), d_old and A_old do not depend on θ: ∂L/∂θᵢ = Σₛ d_old Σₐ ∂π_θ/∂θᵢ A_old
            [at_old(surrogate_grad(i)) for i in range(4)],
            [at_old(x[i] * new["J"].diff(x[i])) for i in range(4)],
            domains=domains,
        ),
    )
    return ProofResult(
        name=TITLE,
        statement=STATEMENT,
        claims=claims,
        method="sympy rational-function field ℚ(exp θ, exp θ_old, γ): exact J, A_old, occupancies",
    )


if __name__ == "__main__":
    run_module(prove())
