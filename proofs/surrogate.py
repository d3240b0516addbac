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

Numeric claims — the code: ``impl`` (pgmath.ppo_clip_loss, a mean over entries of
min(ρA, clip(ρ)A)) is fed the N = 4 state-action pairs with log π_θ, log π_old and weighted
advantages d_old(s) π_old(a|s) A_old(s, a) (d_old A_old lambdified). (a) With a clip range too
wide to bind, −N · loss = L(θ) − J(θ_old) = Σₛₐ π_θ(a|s) d_old(s) A_old(s, a) at random θ, θ_old, γ; (b) with the default clip, at θ = θ_old,
−N ∇θ loss = ∇J(θ_old) (the lambdified exact gradient): the ratio term pgmath differentiates is
this surrogate. Tests: tests/test_proofs.py; docs/formulas/ppo-clip.md and docs/errata.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal

import numpy as np
import sympy as sp
import torch
from sympy.polys.fields import field

import pgmath

from .core import (
    Claim,
    Comparison,
    ProofResult,
    agree,
    gradient,
    identity,
    lambdify,
    log_softmax,
    numpy_rng,
    run_module,
)
from .policy_gradient_theorem import MU0, REWARDS, TRANSITIONS, inverse_2x2

TITLE = "PPO/TRPO surrogate (first order)"
STATEMENT = "J(θ) − J(θ_old) = Σ d_θ Σ π_θ A_old;  L = J and ∇L = ∇J at θ_old (d_old in place of d_θ)"
IMPL = "pgmath.ppo_clip_loss"
SEED = 20251


def _log_pi(logits: torch.Tensor) -> torch.Tensor:
    """log π(a|s) of the tabular softmax, flattened over (s, a): ``[2, 2]`` → ``[4]``."""
    return log_softmax(logits).reshape(4)


def _numeric(
    old_names: Sequence[sp.Symbol], gname: sp.Symbol, d_adv: Sequence[Any], grad_old: Sequence[Any],
    impl: Callable[..., Any],
) -> list[Claim]:
    """(a) −N impl (wide clip) == L(θ) − J(θ_old) = Σₛₐ π_θ(a|s) d_old(s) A_old(s, a);
    (b) −N ∇θ impl at θ_old == ∇J(θ_old). ``d_adv``: d_old(s) A_old(s, a), (s, a) flattened."""
    d_adv_fn = lambdify([old_names, gname], [w.as_expr() for w in d_adv])
    grad_fn = lambdify([old_names, gname], [g.as_expr() for g in grad_old])

    def weighted(old: np.ndarray, gamma: float) -> tuple[np.ndarray, torch.Tensor]:
        """(d_old A_old, d_old π_old A_old) flattened over (s, a)."""
        d_adv_old = d_adv_fn(np.exp(old.reshape(4)), gamma)
        return d_adv_old, torch.from_numpy(d_adv_old * np.exp(_log_pi(torch.from_numpy(old)).numpy()))

    def points() -> Iterator[tuple[int, np.ndarray, np.ndarray, float]]:
        rng = numpy_rng(SEED)
        for i in range(8):
            old = rng.uniform(-0.5, 0.5, size=(2, 2))
            yield i, old, old + rng.uniform(-0.5, 0.5, size=(2, 2)), float(rng.uniform(0.1, 0.95))

    def values() -> Iterator[Comparison]:
        for i, old, new, gamma in points():
            d_adv_old, adv = weighted(old, gamma)
            log_pi_new = _log_pi(torch.from_numpy(new))
            loss, _ = impl(log_pi_new, _log_pi(torch.from_numpy(old)), adv, clip_eps=0.95, clip_eps_high=1e3)
            yield f"point {i}, γ = {gamma:.3f}", -4 * loss, (np.exp(log_pi_new.numpy()) * d_adv_old).sum()

    def gradients() -> Iterator[Comparison]:
        for i, old, _, gamma in points():
            _, adv = weighted(old, gamma)
            theta = torch.from_numpy(old).requires_grad_(True)
            loss, _ = impl(_log_pi(theta), _log_pi(torch.from_numpy(old)), adv)
            grad = gradient(loss, theta)
            yield f"point {i}, γ = {gamma:.3f}", -4 * grad.reshape(4), grad_fn(np.exp(old.reshape(4)), gamma)

    return [
        agree("−N impl(log π_θ, log π_old, d_old π_old A_old; wide clip) = L(θ) − J(θ_old) (8 points)", values),
        agree("−N ∇θ impl(…) at θ = θ_old = ∇J(θ_old) (default clip, 8 points)", gradients),
    ]


def prove(
    occupancy_of: Literal["new", "old"] = "new", *, impl: Callable[..., Any] = pgmath.ppo_clip_loss
) -> ProofResult:
    """``occupancy_of``: whose discounted occupancy the claimed exact identity (1) uses; ``impl``:
    an implementation in the signature of pgmath.ppo_clip_loss."""
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
        *_numeric(
            old_names,
            gname,
            [old["d"][s] * adv_old[s][a] for s in range(2) for a in range(2)],
            [at_old(x[i] * new["J"].diff(x[i])) for i in range(4)],
            impl,
        ),
    )
    return ProofResult(
        name=TITLE,
        statement=STATEMENT,
        claims=claims,
        method="sympy rational-function field ℚ(exp θ, exp θ_old, γ): exact J, A_old, occupancies; "
        "impl vs lambdified surrogate and ∇J in float64",
    )


if __name__ == "__main__":
    run_module(prove())
