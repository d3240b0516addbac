"""PPO's clipped surrogate: a pessimistic bound with a piecewise gradient.

    L(ρ, A) = min(ρA, clip(ρ, 1 − ε_lo, 1 + ε_hi) A)        (Schulman et al. 2017, eq. 7)

with ε_lo = ε_hi = ε for PPO and ε_hi > ε_lo for "clip-higher" (Yu et al. 2025, DAPO) — the
proof keeps ε_lo and ε_hi as independent positive symbols, so it covers both.

Statements, for A > 0 and A < 0 and each ratio range ρ < 1 − ε_lo, 1 − ε_lo < ρ < 1 + ε_hi,
ρ > 1 + ε_hi:

1. L(ρ, A) ≤ ρA: the clipped objective never exceeds the unclipped one (a lower bound);
2. ∂L/∂ρ = 0 exactly where the clip binds — A > 0 with ρ > 1 + ε_hi, A < 0 with
   ρ < 1 − ε_lo — and ∂L/∂ρ = A everywhere else (so, e.g., A > 0 with ρ < 1 − ε_lo still
   has the full gradient: the clip only removes the incentive to move further in the
   advantageous direction).

Each range is parametrised exactly by positive slack symbols (ρ = 1 − ε_lo − t;
ρ = 1 − ε_lo + s with ε_hi = s + t − ε_lo; ρ = 1 + ε_hi + t; A = ±a with a > 0), so sympy
resolves min/max/clip from the symbols' signs; no number is sampled. The kinks (ρ on a bound)
are a measure-zero set where L is not differentiable and are excluded.

Dual clip (Ye et al. 2020): for A < 0, L_dual = max(L, cA) with c > 1 + ε_hi; it bounds the
objective below by cA and its gradient is 0 for ρ > c (:func:`prove_dual_clip`).

Wrong claims are rejected: ``objective=max_instead_of_min``;
``gradient=lambda rho, adv, lo, hi: adv`` (claims the clip never zeroes the gradient).
Implementation: pgmath.ppo_clip_loss (loss = −mean L); tests: tests/test_losses.py,
tests/test_proofs.py.
"""

from __future__ import annotations

from collections.abc import Callable

import sympy as sp

from proofs._core import Claim, ProofResult, identity, nonnegative, report

TITLE = "PPO clip (incl. clip-higher)"
STATEMENT = "min(ρA, clip(ρ)A) ≤ ρA;  ∂/∂ρ = 0 iff the clip binds, else A"
TITLE_DUAL = "PPO dual clip"
STATEMENT_DUAL = "A < 0: max(L, cA) ≥ cA, = L for ρ < c, ∂/∂ρ = 0 for ρ > c;  A > 0: = L"

Objective = Callable[[sp.Expr, sp.Expr, sp.Expr, sp.Expr], sp.Expr]


def clip(x: sp.Expr, lo: sp.Expr, hi: sp.Expr) -> sp.Expr:
    return sp.Max(lo, sp.Min(x, hi))


def clipped_surrogate(rho: sp.Expr, adv: sp.Expr, eps_lo: sp.Expr, eps_hi: sp.Expr) -> sp.Expr:
    """L = min(ρA, clip(ρ, 1 − ε_lo, 1 + ε_hi) A)."""
    return sp.Min(rho * adv, clip(rho, 1 - eps_lo, 1 + eps_hi) * adv)


def max_instead_of_min(rho: sp.Expr, adv: sp.Expr, eps_lo: sp.Expr, eps_hi: sp.Expr) -> sp.Expr:
    """WRONG: an optimistic max in place of PPO's pessimistic min."""
    return sp.Max(rho * adv, clip(rho, 1 - eps_lo, 1 + eps_hi) * adv)


def clipped_gradient(rho: sp.Expr, adv: sp.Expr, eps_lo: sp.Expr, eps_hi: sp.Expr) -> sp.Expr:
    """∂L/∂ρ: 0 where the clip binds (A > 0, ρ > 1 + ε_hi or A < 0, ρ < 1 − ε_lo), A elsewhere."""
    return sp.Piecewise(
        (0, sp.And(adv > 0, rho > 1 + eps_hi)),
        (0, sp.And(adv < 0, rho < 1 - eps_lo)),
        (adv, True),
    )


def _resolve(expr: sp.Expr) -> sp.Expr:
    """Expand the arguments of Min/Max/Heaviside so sympy can decide them from signs."""
    expr = expr.replace(
        lambda e: isinstance(e, (sp.Min, sp.Max, sp.Heaviside)),
        lambda e: e.func(*[sp.expand(a) for a in e.args]),
    )
    return sp.simplify(expr)


def _at(expr: sp.Expr, sub: dict, rho: sp.Symbol, rho_r: sp.Expr) -> sp.Expr:
    """``expr`` in one ratio region: substitute the region's ε and ρ, then resolve min/max."""
    return _resolve(expr.subs(sub).subs(rho, rho_r))


def _regions() -> list[tuple[str, dict, sp.Expr]]:
    """(label, substitution for ε_hi/ε_lo, ρ) for the three ratio ranges."""
    lo, hi, s, t = sp.symbols("epsilon_lo epsilon_hi s t", positive=True)
    return [
        ("ρ < 1−ε_lo", {}, 1 - lo - t),
        ("1−ε_lo < ρ < 1+ε_hi", {hi: s + t - lo}, 1 - lo + s),
        ("ρ > 1+ε_hi", {}, 1 + hi + t),
    ]


def prove(objective: Objective = clipped_surrogate, gradient: Objective = clipped_gradient) -> ProofResult:
    lo, hi = sp.symbols("epsilon_lo epsilon_hi", positive=True)
    a = sp.Symbol("a", positive=True)
    rho = sp.Symbol("rho", positive=True)
    claims: list[Claim] = []
    for sign, sign_label in ((1, "A > 0"), (-1, "A < 0")):
        adv = sign * a
        for label, sub, rho_r in _regions():
            where = f"{sign_label}, {label}"
            obj = _at(objective(rho, adv, lo, hi), sub, rho, rho_r)
            claims.append(nonnegative(f"ρA − L ≥ 0 ({where})", _at(rho * adv, sub, rho, rho_r) - obj))
            grad = _at(sp.diff(objective(rho, adv, lo, hi), rho), sub, rho, rho_r)
            claimed = _at(gradient(rho, adv, lo, hi), sub, rho, rho_r)
            claims.append(identity(f"∂L/∂ρ = claimed gradient ({where})", grad, claimed))
    return ProofResult(
        name=TITLE,
        statement=STATEMENT,
        claims=tuple(claims),
        method="sympy: 6 sign/ratio regions with positive slack symbols; Min/Max/diff resolved exactly",
    )


def dual_clip_surrogate(rho: sp.Expr, adv: sp.Expr, eps_lo: sp.Expr, eps_hi: sp.Expr, c: sp.Expr) -> sp.Expr:
    """L_dual = max(L, cA) for A < 0; L for A ≥ 0."""
    base = clipped_surrogate(rho, adv, eps_lo, eps_hi)
    return sp.Piecewise((sp.Max(base, c * adv), adv < 0), (base, True))


def dual_clip_all_signs(rho: sp.Expr, adv: sp.Expr, eps_lo: sp.Expr, eps_hi: sp.Expr, c: sp.Expr) -> sp.Expr:
    """WRONG: max(L, cA) applied for positive advantages too."""
    return sp.Max(clipped_surrogate(rho, adv, eps_lo, eps_hi), c * adv)


def prove_dual_clip(
    objective: Callable[[sp.Expr, sp.Expr, sp.Expr, sp.Expr, sp.Expr], sp.Expr] = dual_clip_surrogate,
) -> ProofResult:
    lo, hi, a, t, u, w = sp.symbols("epsilon_lo epsilon_hi a t u w", positive=True)
    rho = sp.Symbol("rho", positive=True)
    c = 1 + hi + u  # the dual-clip constant, c > 1 + ε_hi
    claims: list[Claim] = []

    # A < 0: ranges below the upper bound, between it and c, above c
    neg_regions = [*_regions()[:2], ("1+ε_hi < ρ < c", {u: t + w}, 1 + hi + t), ("ρ > c", {}, 1 + hi + u + t)]
    for label, sub, rho_r in neg_regions:
        obj = _at(objective(rho, -a, lo, hi, c), sub, rho, rho_r)
        base = _at(clipped_surrogate(rho, -a, lo, hi), sub, rho, rho_r)
        grad = _at(sp.diff(objective(rho, -a, lo, hi, c), rho), sub, rho, rho_r)
        claims.append(nonnegative(f"L_dual − cA ≥ 0 (A < 0, {label})", obj - (c * -a).subs(sub)))
        if label == "ρ > c":
            claims.append(identity(f"∂L_dual/∂ρ = 0 (A < 0, {label})", grad, 0))
        else:
            claims.append(identity(f"L_dual = L (A < 0, {label})", obj, base))
    # A > 0: the dual clip changes nothing
    for label, sub, rho_r in _regions():
        obj = _at(objective(rho, a, lo, hi, c), sub, rho, rho_r)
        base = _at(clipped_surrogate(rho, a, lo, hi), sub, rho, rho_r)
        claims.append(identity(f"L_dual = L (A > 0, {label})", obj, base))
    return ProofResult(
        name=TITLE_DUAL,
        statement=STATEMENT_DUAL,
        claims=tuple(claims),
        method="sympy: sign/ratio regions with positive slack symbols; Max/diff resolved exactly",
    )


if __name__ == "__main__":
    status = report(prove()) | report(prove_dual_clip())
    raise SystemExit(status)
