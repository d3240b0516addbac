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

Numeric claims — the code: ``impl`` (pgmath.ppo_clip_loss, ``impl(log_probs, old_log_probs,
advantages, clip_eps=ε_lo, clip_eps_high=ε_hi, dual_clip=c, mask=…)`` → ``(loss, info)``) must
return loss = −mean L(ρ, A) with ρ = exp(log_probs − old_log_probs), and the gradient
∂loss/∂log_probs = −(1/n) ρ ∂L/∂ρ (the chain rule through ρ), both from the lambdified claimed
objective and gradient, at random batches (symmetric and clip-higher ranges, some masked); the
dual clip likewise with the lambdified L_dual and its derivative.
Implementation: pgmath.ppo_clip_loss (loss = −mean L); tests: tests/test_losses.py,
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
    nonnegative,
    numpy_rng,
    report,
)

TITLE = "PPO clip (incl. clip-higher)"
STATEMENT = "min(ρA, clip(ρ)A) ≤ ρA;  ∂/∂ρ = 0 iff the clip binds, else A"
TITLE_DUAL = "PPO dual clip"
STATEMENT_DUAL = "A < 0: max(L, cA) ≥ cA, = L for ρ < c, ∂/∂ρ = 0 for ρ > c;  A > 0: = L"
IMPL = "pgmath.ppo_clip_loss"
IMPL_DUAL = "pgmath.ppo_clip_loss"
SEED = 20249

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


# ---------------------------------------------------------------------------------------------
# numeric claims: pgmath.ppo_clip_loss against the lambdified objective and gradient


def _batches(seed: int, dual: bool) -> Iterator[dict[str, Any]]:
    """8 random batches of 64: log-probs, ratios spread across the clip range, ±A, ε_lo, ε_hi, c."""
    rng = numpy_rng(seed)
    for i in range(8):
        eps_lo = float(rng.uniform(0.05, 0.4))
        eps_hi = None if i % 2 == 0 else float(rng.uniform(0.05, 0.5))
        old = rng.standard_normal(64) - 1.0
        log_ratio = (0.8 if dual else 0.4) * rng.standard_normal(64)
        adv = rng.standard_normal(64) - (0.5 if dual else 0.0)
        c = float(1 + (eps_hi or eps_lo) + rng.uniform(0.05, 1.0)) if dual else None
        mask = rng.uniform(size=64) < 0.7 if i % 4 == 3 else None
        yield {"old": old, "new": old + log_ratio, "adv": adv, "eps_lo": eps_lo, "eps_hi": eps_hi, "c": c, "mask": mask}


def _loss_and_grad(impl: Callable[..., Any], b: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """impl's loss and its autograd gradient with respect to log_probs."""
    log_probs = torch.from_numpy(b["new"]).requires_grad_(True)
    kwargs: dict[str, Any] = {"clip_eps": b["eps_lo"]}
    if b["eps_hi"] is not None:
        kwargs["clip_eps_high"] = b["eps_hi"]
    if b["c"] is not None:
        kwargs["dual_clip"] = b["c"]
    if b["mask"] is not None:
        kwargs["mask"] = torch.from_numpy(b["mask"])
    out = impl(log_probs, torch.from_numpy(b["old"]), torch.from_numpy(b["adv"]), **kwargs)
    loss = out[0] if isinstance(out, tuple) else out  # (loss, info) or the loss alone
    grad = gradient(loss, log_probs)
    return loss, grad


def _numeric(statement: str, objective: Callable[..., sp.Expr], gradient: Callable[..., sp.Expr] | None,
             impl: Callable[..., Any], dual: bool) -> Claim:
    """loss = −mean L(ρ, A), ∂loss/∂log π = −ρ ∂L/∂ρ / n, L and ∂L/∂ρ lambdified."""
    rho, adv, lo, hi, c = sp.symbols("rho A epsilon_lo epsilon_hi c", real=True)
    args = (rho, adv, lo, hi, c) if dual else (rho, adv, lo, hi)
    obj = objective(*args)
    fn = lambdify(list(args), [obj, gradient(*args) if gradient is not None else sp.diff(obj, rho)])

    def comparisons() -> Iterator[Comparison]:
        for i, b in enumerate(_batches(SEED + int(dual), dual)):
            ratio = np.exp(b["new"] - b["old"])
            sel = np.ones(64, bool) if b["mask"] is None else b["mask"]
            hi_ = b["eps_lo"] if b["eps_hi"] is None else b["eps_hi"]
            extra = (np.full(64, b["c"]),) if dual else ()
            objective_, dobj = fn(ratio, b["adv"], np.full(64, b["eps_lo"]), np.full(64, hi_), *extra)
            loss, grad = _loss_and_grad(impl, b)
            n = sel.sum()
            yield f"batch {i}: loss", loss, -objective_[sel].sum() / n
            yield f"batch {i}: ∂loss/∂log π", grad, np.where(sel, -ratio * dobj / n, 0.0)

    return agree(statement, comparisons)


def prove(
    objective: Objective = clipped_surrogate,
    gradient: Objective = clipped_gradient,
    *,
    impl: Callable[..., Any] = pgmath.ppo_clip_loss,
) -> ProofResult:
    """``objective`` / ``gradient``: the claimed L and ∂L/∂ρ; ``impl``: an implementation in the
    signature of pgmath.ppo_clip_loss."""
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
    claims.append(
        _numeric("impl: loss = −mean L, ∂loss/∂log π = −ρ ∂L/∂ρ / n (8 random batches)", objective, gradient, impl, False)
    )
    return ProofResult(
        name=TITLE,
        statement=STATEMENT,
        claims=tuple(claims),
        method="sympy: 6 sign/ratio regions with positive slack symbols; Min/Max/diff resolved exactly; "
        "impl vs lambdified L, ∂L/∂ρ in float64",
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
    *,
    impl: Callable[..., Any] = pgmath.ppo_clip_loss,
) -> ProofResult:
    """``objective``: the claimed L_dual; ``impl``: an implementation in the signature of
    pgmath.ppo_clip_loss, called with ``dual_clip=c``."""
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
    claims.append(
        _numeric("impl(dual_clip=c): loss = −mean L_dual, ∂loss/∂log π = −ρ ∂L_dual/∂ρ / n (8 batches)",
                 objective, None, impl, True)
    )
    return ProofResult(
        name=TITLE_DUAL,
        statement=STATEMENT_DUAL,
        claims=tuple(claims),
        method="sympy: sign/ratio regions with positive slack symbols; Max/diff resolved exactly; "
        "impl vs lambdified L_dual and its derivative in float64",
    )


if __name__ == "__main__":
    status = report(prove()) | report(prove_dual_clip())
    raise SystemExit(status)
