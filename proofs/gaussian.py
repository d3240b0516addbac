"""Gaussian policy: log-density, entropy and KL in closed form (one dimension).

For N(μ, σ²) with σ = exp(log σ) > 0:

1. log N(x; μ, σ) = −(x − μ)²/(2σ²) − log σ − ½ log 2π integrates to a density: ∫ exp(log N) dx = 1;
2. entropy H = −E[log N(x)] = log σ + ½(1 + log 2π);
3. KL(N(μ₁, σ₁²) ‖ N(μ₂, σ₂²)) = log(σ₂/σ₁) + (σ₁² + (μ₁ − μ₂)²)/(2σ₂²) − ½.

Expectations are exact integrals after the change of variable x = μ + σz (dx = σ dz), so the
integrand is a polynomial times exp(−z²/2) — symbolic in μ, σ (and μ₂, σ₂). A diagonal Gaussian
over d dimensions is a product of such factors, so its log-density and entropy are the sums over
the last axis that pgmath.gaussian_log_prob / pgmath.gaussian_entropy compute.

Wrong claims are rejected, e.g. ``entropy=lambda log_std: log_std + log(2π)/2`` (the ½ from
E[z²] missing) or a log-density without the −log σ term.

Numeric claims: ``impl`` (pgmath.gaussian_log_prob, ``impl(mean, log_std, actions)``) and
``entropy_impl`` (pgmath.gaussian_entropy, ``entropy_impl(log_std)``) equal the lambdified
log-density and entropy summed over the last axis, at random float64 ``[B, D]`` inputs (log_std
``[B, D]`` or a shared ``[D]``). The KL statement has no pgmath function (pgmath has no Gaussian
KL); it is checked symbolically only. Tests: tests/test_distributions.py, tests/test_proofs.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import sympy as sp
import torch

import pgmath

from .core import Claim, Comparison, ProofResult, agree, identity, lambdify, numpy_rng, run_module

TITLE = "Gaussian log-prob, entropy, KL"
STATEMENT = "∫N = 1;  H = log σ + ½(1 + log 2π);  KL(N₁‖N₂) = log(σ₂/σ₁) + (σ₁² + Δμ²)/(2σ₂²) − ½"
IMPL = "pgmath.gaussian_log_prob"
IMPLS = {"impl": "pgmath.gaussian_log_prob", "entropy_impl": "pgmath.gaussian_entropy"}
SEED = 20243

LogProb = Callable[[sp.Expr, sp.Expr, sp.Expr], sp.Expr]


def log_prob(x: sp.Expr, mean: sp.Expr, log_std: sp.Expr) -> sp.Expr:
    return -((x - mean) ** 2) / (2 * sp.exp(2 * log_std)) - log_std - sp.log(2 * sp.pi) / 2


def entropy(log_std: sp.Expr) -> sp.Expr:
    return log_std + (1 + sp.log(2 * sp.pi)) / 2


def kl(m1: sp.Expr, s1: sp.Expr, m2: sp.Expr, s2: sp.Expr) -> sp.Expr:
    return sp.log(s2 / s1) + (s1**2 + (m1 - m2) ** 2) / (2 * s2**2) - sp.Rational(1, 2)


def _points(seed: int) -> Iterator[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
    """(label, mean ``[B, D]``, log_std ``[B, D]`` or ``[D]``, actions ``[B, D]``): 8 random draws."""
    rng = numpy_rng(seed)
    for i in range(8):
        d = 1 + i % 4
        mean = 2.0 * rng.standard_normal((16, d))
        log_std = rng.uniform(-3.0, 2.0, size=(16, d) if i % 2 == 0 else (d,))
        actions = mean + np.exp(log_std) * 2.0 * rng.standard_normal((16, d))
        yield f"draw {i}, D = {d}, log_std {log_std.shape}", mean, log_std, actions


def _numeric(
    log_density: LogProb, entropy_formula: Callable[[sp.Expr], sp.Expr],
    impl: Callable[..., Any], entropy_impl: Callable[..., Any],
) -> list[Claim]:
    """impl / entropy_impl == Σ over the last axis of the lambdified per-dimension formulas."""
    x, m, ls = sp.symbols("x m log_sigma", real=True)
    logp_fn = lambdify([x, m, ls], [log_density(x, m, ls)])
    h_fn = lambdify([ls], [entropy_formula(ls)])

    def log_prob_comparisons() -> Iterator[Comparison]:
        for label, mean, log_std, actions in _points(SEED):
            want = logp_fn(actions, mean, np.broadcast_to(log_std, mean.shape))[0].sum(-1)
            yield label, impl(torch.from_numpy(mean), torch.from_numpy(log_std), torch.from_numpy(actions)), want

    def entropy_comparisons() -> Iterator[Comparison]:
        for label, _, log_std, _ in _points(SEED):
            yield label, entropy_impl(torch.from_numpy(log_std)), h_fn(log_std)[0].sum(-1)

    return [
        agree("impl(mean, log_std, actions) = Σᵢ log N(aᵢ; μᵢ, σᵢ) (8 random batches)", log_prob_comparisons),
        agree("entropy_impl(log_std) = Σᵢ (log σᵢ + ½(1 + log 2π)) (8 random batches)", entropy_comparisons),
    ]


def prove(
    log_density: LogProb = log_prob,
    entropy_formula: Callable[[sp.Expr], sp.Expr] = entropy,
    kl_formula: Callable[[sp.Expr, sp.Expr, sp.Expr, sp.Expr], sp.Expr] = kl,
    *,
    impl: Callable[..., Any] = pgmath.gaussian_log_prob,
    entropy_impl: Callable[..., Any] = pgmath.gaussian_entropy,
) -> ProofResult:
    """The arguments before ``*`` are the claimed formulas; ``impl`` / ``entropy_impl``:
    implementations in the signatures of pgmath.gaussian_log_prob / pgmath.gaussian_entropy."""
    z = sp.Symbol("z", real=True)
    mu, mu2 = sp.symbols("mu mu_2", real=True)
    sigma, sigma2 = sp.symbols("sigma sigma_2", positive=True)
    phi = sp.exp(-(z**2) / 2) / sp.sqrt(2 * sp.pi)  # standard normal density
    x = mu + sigma * z

    def expect(g: sp.Expr) -> sp.Expr:  # E_{x∼N(μ,σ²)}[g(x)] = ∫ φ(z) g(μ + σz) dz
        return sp.integrate(sp.expand(phi * g), (z, -sp.oo, sp.oo))

    def density(xx: sp.Expr, m: sp.Expr, s: sp.Expr) -> sp.Expr:
        return sp.exp(sp.expand(sp.expand_log(log_density(xx, m, sp.log(s)), force=True)))

    mass = sp.integrate(sp.simplify(density(x, mu, sigma) * sigma), (z, -sp.oo, sp.oo))
    neg_log = -sp.expand(sp.expand_log(log_density(x, mu, sp.log(sigma)), force=True))
    log_ratio = sp.expand(
        sp.expand_log(log_density(x, mu, sp.log(sigma)) - log_density(x, mu2, sp.log(sigma2)), force=True)
    )
    claims = (
        identity("∫ exp(log N(x)) dx = 1", mass, 1),
        identity("H = −E[log N] = claimed entropy", expect(neg_log), entropy_formula(sp.log(sigma))),
        identity(
            "E₁[log N₁ − log N₂] = claimed KL closed form",
            expect(log_ratio),
            kl_formula(mu, sigma, mu2, sigma2),
        ),
        *_numeric(log_density, entropy_formula, impl, entropy_impl),
    )
    return ProofResult(
        name=TITLE,
        statement=STATEMENT,
        claims=claims,
        method="sympy: exact Gaussian integrals after x = μ + σz, symbolic μ, σ; impl vs lambdified in float64",
    )


if __name__ == "__main__":
    run_module(prove())
