"""Generalized advantage estimation on a symbolic length-4 rollout.

Symbols: rewards r₀…r₃, values V₀…V₄ (V₄ = V(s_T), the bootstrap value of the state after the
rollout), continuation masks m₀…m₃ (mₜ = 1 − terminatedₜ: 0 cuts the bootstrap and the
recursion), γ and λ. All identities are polynomial identities in these symbols, so they hold
for every 0/1 mask pattern at once.

    δₜ = rₜ + γ mₜ Vₜ₊₁ − Vₜ
    Aₜ = δₜ + γλ mₜ Aₜ₊₁,  A_T = 0                               (recursion, pgmath.gae)
    Aₜ = Σₖ (γλ)ᵏ (Π_{j<k} mₜ₊ⱼ) δₜ₊ₖ                              (series, Schulman et al. 2016 eq. 16)

Statements: (1) the recursion equals the series; (2) λ = 0 gives Aₜ = δₜ; (3) λ = 1 telescopes
to Aₜ = Gₜ − Vₜ with the bootstrapped discounted return
Gₜ = Σₖ γᵏ (Π_{j<k} mₜ₊ⱼ) rₜ₊ₖ + γ^{T−t} (Π_{j≥t} mⱼ) V_T; (4) with all masks 1, Aₜ + Vₜ is the
λ-return (1 − λ) Σ_{n=1}^{N−1} λⁿ⁻¹ Gₜ⁽ⁿ⁾ + λᴺ⁻¹ Gₜ⁽ᴺ⁾ (N = T − t, Gₜ⁽ⁿ⁾ the n-step
bootstrapped return; Sutton & Barto 2018, §12.1) — the identity behind pgmath.lambda_returns.

The claimed step of the backward recursion is the input ``step(r, v, v_next, mask, a_next, γ, λ)``.
Wrong steps are rejected, e.g. ``article_step`` — the source article's
``running_advantage = rewards[t] + gamma * running_advantage * masks[t] - values[t]``, which
never forms δₜ and has no λ — and ``lambda_on_wrong_term`` (λδₜ + γ mₜ Aₜ₊₁).

Implementations: pgmath.gae / pgmath.gae_reference / pgmath.lambda_returns / pgmath.td_errors;
tests: tests/test_advantages.py, tests/test_proofs.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sympy as sp

from proofs._core import ProofResult, identity, run_module

TITLE = "GAE(γ, λ)"
STATEMENT = "recursion = Σ(γλ)ᵏδₜ₊ₖ;  λ=0 → δₜ;  λ=1 → Gₜ − Vₜ;  A + V = λ-return"
T = 4

Step = Callable[[Any, Any, Any, Any, Any, Any, Any], Any]


def gae_step(r: Any, v: Any, v_next: Any, mask: Any, a_next: Any, gamma: Any, lam: Any) -> Any:
    """Aₜ = δₜ + γλ mₜ Aₜ₊₁ with δₜ = rₜ + γ mₜ Vₜ₊₁ − Vₜ."""
    delta = r + gamma * mask * v_next - v
    return delta + gamma * lam * mask * a_next


def article_step(r: Any, v: Any, v_next: Any, mask: Any, a_next: Any, gamma: Any, lam: Any) -> Any:
    """WRONG (the source article's PPO code): rₜ + γ Aₜ₊₁ mₜ − Vₜ."""
    return r + gamma * a_next * mask - v


def lambda_on_wrong_term(r: Any, v: Any, v_next: Any, mask: Any, a_next: Any, gamma: Any, lam: Any) -> Any:
    """WRONG: λ multiplies δₜ instead of the carried advantage."""
    return lam * (r + gamma * mask * v_next - v) + gamma * mask * a_next


def missing_gamma(r: Any, v: Any, v_next: Any, mask: Any, a_next: Any, gamma: Any, lam: Any) -> Any:
    """WRONG: the carried advantage decays by λ only."""
    return (r + gamma * mask * v_next - v) + lam * mask * a_next


def _run(step: Step, r: list, v: list, m: list, gamma: Any, lam: Any) -> list:
    adv: list[Any] = [0] * (T + 1)  # adv[T] = 0
    # backward in time: t = T-1 … 0
    for t in reversed(range(T)):
        adv[t] = step(r[t], v[t], v[t + 1], m[t], adv[t + 1], gamma, lam)
    return adv[:T]


def prove(step: Step = gae_step) -> ProofResult:
    gamma, lam = sp.symbols("gamma lambda", positive=True)
    r = list(sp.symbols(f"r_0:{T}", real=True))
    v = list(sp.symbols(f"V_0:{T + 1}", real=True))
    m = list(sp.symbols(f"m_0:{T}", real=True))
    delta = [r[t] + gamma * m[t] * v[t + 1] - v[t] for t in range(T)]

    def prod_m(t: int, k: int) -> Any:
        return sp.Mul(*m[t : t + k])

    series = [
        sum((gamma * lam) ** k * prod_m(t, k) * delta[t + k] for k in range(T - t)) for t in range(T)
    ]
    ret = [
        sum(gamma**k * prod_m(t, k) * r[t + k] for k in range(T - t))
        + gamma ** (T - t) * prod_m(t, T - t) * v[T]
        for t in range(T)
    ]
    recursion = _run(step, r, v, m, gamma, lam)
    at0 = _run(step, r, v, m, gamma, sp.Integer(0))
    at1 = _run(step, r, v, m, gamma, sp.Integer(1))

    # (4) λ-return with all masks 1
    ones = [sp.Integer(1)] * T
    adv1 = _run(step, r, v, ones, gamma, lam)

    def n_step(t: int, n: int) -> Any:
        return sum(gamma**k * r[t + k] for k in range(n)) + gamma**n * v[t + n]

    lam_return = [
        (1 - lam) * sum(lam ** (n - 1) * n_step(t, n) for n in range(1, T - t))
        + lam ** (T - t - 1) * n_step(t, T - t)
        for t in range(T)
    ]
    domains = {m_: [0, 1] for m_ in m}
    domains.update({gamma: [sp.Rational(1, 2), sp.Rational(9, 10)], lam: [sp.Rational(1, 3), sp.Rational(19, 20)]})
    claims = (
        identity("recursion = series Σₖ(γλ)ᵏ Πm δₜ₊ₖ (t = 0…3)", recursion, series, domains=domains),
        identity("λ = 0: Aₜ = δₜ", at0, delta, domains=domains),
        identity("λ = 1: Aₜ = Gₜ − Vₜ (bootstrapped return)", at1, [ret[t] - v[t] for t in range(T)], domains=domains),
        identity("Aₜ + Vₜ = λ-return (masks 1)", [adv1[t] + v[t] for t in range(T)], lam_return, domains=domains),
    )
    return ProofResult(
        name=TITLE,
        statement=STATEMENT,
        claims=claims,
        method="sympy: polynomial identities in r, V, masks, γ, λ (T = 4), expand to 0",
    )


if __name__ == "__main__":
    run_module(prove())
