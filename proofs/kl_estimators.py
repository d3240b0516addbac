"""Schulman's KL estimators k1, k2, k3 for a symbolic categorical with 3 outcomes.

Samples x ∼ p (the policy), q the reference, log-ratio ℓ = log p(x) − log q(x) and
ρ = q(x)/p(x) = e^{−ℓ} (Schulman 2020, "Approximating KL divergence"; the convention of
pgmath.kl_estimate):

    k1 = ℓ        k2 = ½ ℓ²        k3 = (ρ − 1) − log ρ = (e^{−ℓ} − 1) + ℓ

Statements (p = u/Σu, q = v/Σv with positive symbols u, v — every categorical with full
support on 3 outcomes):

1. E_p[k1] = KL(p‖q) exactly (unbiased);
2. E_p[k3] = KL(p‖q) exactly (unbiased: E_p[ρ − 1] = Σq − Σp = 0);
3. k3 ≥ 0 for every sample. sympy cannot simplify "x − 1 − log x ≥ 0" directly, so the proof is
   by calculus on f(x) = k3 at ratio ρ = x > 0: f'(x) has the unique root x = 1 on (0, ∞),
   f''(x) > 0 on all of (0, ∞) (decided from x > 0), and f(1) = 0; a strictly convex function
   is minimal at its stationary point, so f ≥ 0. (With claim 2 this also proves KL ≥ 0.)
   The estimator is first checked to depend on the sample only through the log-ratio.
4. k2 agrees with KL to second order: with q_ε = p(1 + εh)/Σp(1 + εh) (symbolic h, so ℓ = O(ε)),
   D(ε) = E_p[k2] − KL(p‖q_ε) has D(0) = D'(0) = D''(0) = 0; D'''(0) ≠ 0 at a rational
   point shows k2 is biased at third order (it is not unbiased). The log-ratios log ρᵢ(ε) enter
   through their exact Taylor polynomials to order 3 (sympy derivatives at ε = 0), which leaves
   every derivative of D up to order 3 at ε = 0 unchanged.

Wrong claims are rejected, e.g. k3 with the sign of its log flipped (``k3_sign_flipped``),
k1 as log q − log p, or k2 without the ½.

Numeric claims — the code: ``impl`` (pgmath.kl_estimate, ``impl(log_probs, ref_log_probs,
estimator)``) must equal the lambdified k1, k2, k3 sample by sample, at random categoricals
p, q over 3 outcomes (log-ratios from tiny to large), and for k1 and k3 the exact expectation
Σₓ p(x) impl(log p(x), log q(x)) must equal the lambdified KL(p‖q).
Implementation: pgmath.kl_estimate(log_probs, ref_log_probs, estimator) and
pgmath.kl_categorical; tests: tests/test_kl.py, tests/test_proofs.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
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
    as_float64,
    identity,
    lambdify,
    numpy_rng,
    run_module,
    to_text,
)

TITLE = "KL estimators k1, k2, k3"
STATEMENT = "E_p[k1] = E_p[k3] = KL(p‖q);  k3 ≥ 0;  E_p[k2] = KL + O(ε³)"
IMPL = "pgmath.kl_estimate"
N = 3
SEED = 20253

Estimator = Callable[[sp.Expr, sp.Expr], sp.Expr]


def k1(logp: sp.Expr, logq: sp.Expr) -> sp.Expr:
    """ℓ = log p − log q."""
    return logp - logq


def k2(logp: sp.Expr, logq: sp.Expr) -> sp.Expr:
    """½ ℓ²."""
    return (logp - logq) ** 2 / 2


def k3(logp: sp.Expr, logq: sp.Expr) -> sp.Expr:
    """(ρ − 1) − log ρ with ρ = q/p."""
    log_rho = logq - logp
    return sp.exp(log_rho) - 1 - log_rho


def k3_sign_flipped(logp: sp.Expr, logq: sp.Expr) -> sp.Expr:
    """WRONG: (ρ − 1) + log ρ."""
    log_rho = logq - logp
    return sp.exp(log_rho) - 1 + log_rho


def _k3_nonnegative(est: Estimator) -> list[Claim]:
    lp, lq = sp.symbols("logp logq", real=True)
    x = sp.Symbol("x", positive=True)
    claims = [identity("k3 depends on the sample only through the log-ratio", est(lp, lq), est(0, lq - lp))]
    f = est(sp.Integer(0), sp.log(x))  # k3 at ratio ρ = q/p = x
    f1 = sp.simplify(sp.diff(f, x))
    f2 = sp.simplify(sp.diff(f, x, 2))
    roots = sp.solveset(f1, x, sp.Interval.open(0, sp.oo))
    unique_one = roots == sp.FiniteSet(1)
    claims.append(Claim("f'(x) = 0 on x > 0 only at x = 1", unique_one, f"f'(x) = {to_text(f1)}; roots: {roots}"))
    claims.append(
        Claim(
            "f''(x) > 0 for all x > 0 (strictly convex)",
            f2.is_positive is True,
            f"f''(x) = {to_text(f2)}; positive: {f2.is_positive}",
        )
    )
    f_at_1 = sp.simplify(f.subs(x, 1))
    conclusion = f_at_1 == 0 and unique_one and f2.is_positive is True
    claims.append(
        Claim(
            "f(1) = 0, hence f(x) ≥ 0 on x > 0",
            conclusion,
            f"f(1) = {f_at_1}" + ("; minimum of a strictly convex f" if conclusion else "; the two claims above are needed"),
        )
    )
    return claims


def _categoricals(seed: int) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """(label, u, v): 8 batches of 16 unnormalised positive weights of p and q (3 outcomes); the
    log-ratio scale runs from 1e-6 (p ≈ q) to 3."""
    rng = numpy_rng(seed)
    for i, scale in enumerate([1e-6, 1e-3, 0.1, 0.5, 1.0, 2.0, 3.0, 1.0]):
        u = np.exp(rng.standard_normal((16, N)))
        v = u * np.exp(scale * rng.standard_normal((16, N)))
        yield f"batch {i}, log-ratio scale {scale:g}", u, v


def _numeric(
    u: Sequence[sp.Symbol], v: Sequence[sp.Symbol], kl: sp.Expr,
    estimators: dict[str, Estimator], impl: Callable[..., Any],
) -> list[Claim]:
    """impl(log p, log q, name) == est(log p, log q) pointwise; Σ p impl == KL for k1, k3."""
    lp, lq = sp.symbols("logp logq", real=True)
    kl_fn = lambdify([u, v], [kl])

    def comparisons(name: str, est: Estimator) -> Callable[[], Iterator[Comparison]]:
        fn = lambdify([lp, lq], [est(lp, lq)])

        def run() -> Iterator[Comparison]:
            for label, uu, vv in _categoricals(SEED):
                logp = np.log(uu / uu.sum(-1, keepdims=True))
                logq = np.log(vv / vv.sum(-1, keepdims=True))
                got = impl(torch.from_numpy(logp), torch.from_numpy(logq), name)
                yield label, got, fn(logp, logq)[0]
                if name != "k2":
                    yield label + ", E_p", (np.exp(logp) * as_float64(got)).sum(-1), kl_fn(uu.T, vv.T)[0]

        return run

    return [
        agree(f"impl(log p, log q, {name!r}) = {name}" + (" and E_p[impl] = KL" if name != "k2" else "") + " (8 batches)",
              comparisons(name, est))
        for name, est in estimators.items()
    ]


def prove(
    est1: Estimator = k1,
    est2: Estimator = k2,
    est3: Estimator = k3,
    *,
    impl: Callable[..., Any] = pgmath.kl_estimate,
) -> ProofResult:
    """``est1`` … ``est3``: the claimed estimators; ``impl``: an implementation in the signature of
    pgmath.kl_estimate."""
    u = sp.symbols(f"u_0:{N}", positive=True)
    v = sp.symbols(f"v_0:{N}", positive=True)
    p = [ui / sum(u) for ui in u]
    q = [vi / sum(v) for vi in v]
    kl = sum(pi * (sp.log(pi) - sp.log(qi)) for pi, qi in zip(p, q))

    def expectation(est: Estimator, qq: list[sp.Expr]) -> sp.Expr:
        return sum(pi * est(sp.log(pi), sp.log(qi)) for pi, qi in zip(p, qq))

    claims = [
        identity("E_p[k1] = KL(p‖q)", expectation(est1, q), kl),
        identity("E_p[k3] = KL(p‖q)", expectation(est3, q), kl),
    ]
    claims += _k3_nonnegative(est3)

    # second-order agreement of k2. log ρᵢ(ε) = log q_ε(i) − log p(i) is replaced by its Taylor
    # polynomial to order 3 (exact for every derivative up to order 3 at ε = 0).
    eps = sp.Symbol("epsilon", real=True)
    h = sp.symbols(f"h_0:{N}", real=True)
    z = sum(pi * (1 + eps * hi) for pi, hi in zip(p, h))
    taylor = []
    for hi in h:
        log_rho = sp.log(1 + eps * hi) - sp.log(z)  # log(p(1 + εh)/z) − log p
        coeffs, d = [], log_rho
        for k in range(4):
            coeffs.append(sp.cancel(d.subs(eps, 0)) / sp.factorial(k))
            d = sp.diff(d, eps)
        taylor.append(sum(c * eps**k for k, c in enumerate(coeffs)))
    kl_eps = -sum(pi * lr for pi, lr in zip(p, taylor))  # KL(p‖q_ε) = −E_p[log ρ]
    gap = sum(pi * est2(sp.log(pi), sp.log(pi) + lr) for pi, lr in zip(p, taylor)) - kl_eps
    d = gap
    for order in range(3):
        claims.append(identity(f"d^{order}/dε^{order} (E_p[k2] − KL) at ε = 0 is 0", d.subs(eps, 0), 0))
        d = sp.diff(d, eps)
    point = {u[0]: 1, u[1]: 2, u[2]: 3, h[0]: 1, h[1]: -1, h[2]: 2}
    third = sp.simplify(d.subs(eps, 0).subs(point))
    claims.append(
        Claim(
            "third-order term nonzero at a rational point (k2 is biased, not unbiased)",
            bool(abs(sp.N(third, 20)) > 1e-12),
            f"d³/dε³ at u=(1,2,3), h=(1,−1,2): {third} ≈ {sp.N(third, 6)}",
        )
    )
    claims += _numeric(u, v, kl, {"k1": est1, "k2": est2, "k3": est3}, impl)
    return ProofResult(
        name=TITLE,
        statement=STATEMENT,
        claims=tuple(claims),
        method="sympy: exact expectations over 3 symbolic outcomes; calculus for k3 ≥ 0; ε-derivatives for k2; "
        "impl vs lambdified estimators and KL in float64",
    )


if __name__ == "__main__":
    run_module(prove())
