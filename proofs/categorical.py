"""Categorical distribution from logits: log-softmax, shift invariance, entropy, masking.

For π = softmax(θ) over 3 actions with symbolic logits:

1. log π(a) = θₐ − log Σ_b exp θ_b (the log-softmax pgmath computes from logits directly,
   never as log(softmax(θ)), which underflows to −inf — see docs/errata.md);
2. shift invariance: softmax(θ + c) = softmax(θ) for any c (why subtracting max θ is exact);
3. entropy H(π) = −Σₐ π(a) log π(a) = log Σ_b exp θ_b − Σₐ π(a) θₐ;
4. masking: sending a logit to −∞ gives the distribution renormalised over the allowed actions,
   lim_{θ₂→−∞} π(a) = exp θₐ / (exp θ₀ + exp θ₁) for a ∈ {0, 1}, and 0 for a = 2; the entropy
   tends to the entropy of the renormalised distribution.

Wrong claims are rejected, e.g. ``entropy=lambda th, pi, logz: logz + sum(p*t ...)`` (sign
error). Implementation: pgmath.categorical_log_prob, pgmath.categorical_entropy (mask =
allowed actions); tests: tests/test_distributions.py, tests/test_proofs.py.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import sympy as sp

from proofs._core import ProofResult, exp_to_positive, identity, logits, run_module, softmax

TITLE = "categorical from logits"
STATEMENT = "log π = θ − logΣexp θ;  softmax(θ+c) = softmax(θ);  H = logΣexp θ − Σπθ;  masking = renormalising"
N = 3

Entropy = Callable[[Sequence[sp.Expr], Sequence[sp.Expr], sp.Expr], sp.Expr]


def entropy_from_logits(theta: Sequence[sp.Expr], pi: Sequence[sp.Expr], log_z: sp.Expr) -> sp.Expr:
    """H = log Z − Σₐ π(a) θₐ."""
    return log_z - sum(p * t for p, t in zip(pi, theta))


def prove(entropy: Entropy = entropy_from_logits) -> ProofResult:
    theta = logits("theta", N)
    c = sp.Symbol("c", real=True)
    pi = softmax(theta)
    log_z = sp.log(sum(sp.exp(t) for t in theta))

    def rational(e: sp.Expr) -> sp.Expr:
        return exp_to_positive(sp.expand_log(sp.expand(e), force=True), [*theta, c])

    true_h = -sum(p * sp.log(p) for p in pi)
    claims = [
        identity(
            "log π(a) = θₐ − log Σ exp θ",
            [sp.expand_log(sp.log(p), force=True) for p in pi],
            [t - log_z for t in theta],
        ),
        identity(
            "softmax(θ + c) = softmax(θ)",
            softmax([t + c for t in theta]),
            pi,
            transform=lambda e: exp_to_positive(sp.expand(sp.powsimp(e)), [*theta, c]),
        ),
        identity("H(π) = claimed entropy formula", true_h, entropy(theta, pi, log_z), transform=rational),
    ]
    # masking by a logit → −∞
    allowed = theta[:2]
    renorm = softmax(allowed)
    limits = [sp.limit(pi[a], theta[2], -sp.oo) for a in range(N)]
    claims.append(identity("lim_{θ₂→−∞} π = renormalised over {0, 1}", limits, [*renorm, 0], transform=rational))
    h_limit = sp.limit(entropy(theta, pi, log_z), theta[2], -sp.oo)
    h_masked = -sum(p * sp.log(p) for p in renorm)
    claims.append(identity("lim_{θ₂→−∞} H = entropy over the allowed actions", h_limit, h_masked, transform=rational))
    return ProofResult(
        name=TITLE,
        statement=STATEMENT,
        claims=tuple(claims),
        method="sympy: symbolic logits (3 actions), log expansion, exp(θ)→x>0, limits θ₂ → −∞",
    )


if __name__ == "__main__":
    run_module(prove())
