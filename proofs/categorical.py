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
error).

Numeric claims: ``impl`` (pgmath.categorical_log_prob, ``impl(logits, actions, mask=None)``) and
``entropy_impl`` (pgmath.categorical_entropy, ``entropy_impl(logits, mask=None)``) equal the
lambdified log-softmax and entropy at random float64 logits — shifted by large constants c
(statement 2: the code must be shift invariant, not overflow) and with action 2 masked out
(statement 4: the renormalised log-probabilities and entropy); tests:
tests/test_distributions.py, tests/test_proofs.py.
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
    exp_to_positive,
    identity,
    lambdify,
    logits,
    numpy_rng,
    run_module,
    softmax,
)

TITLE = "categorical from logits"
STATEMENT = "log π = θ − logΣexp θ;  softmax(θ+c) = softmax(θ);  H = logΣexp θ − Σπθ;  masking = renormalising"
IMPL = "pgmath.categorical_log_prob"
IMPLS = {"impl": "pgmath.categorical_log_prob", "entropy_impl": "pgmath.categorical_entropy"}
N = 3
SEED = 20242

Entropy = Callable[[Sequence[sp.Expr], Sequence[sp.Expr], sp.Expr], sp.Expr]


def entropy_from_logits(theta: Sequence[sp.Expr], pi: Sequence[sp.Expr], log_z: sp.Expr) -> sp.Expr:
    """H = log Z − Σₐ π(a) θₐ."""
    return log_z - sum(p * t for p, t in zip(pi, theta))


SHIFTS = np.array([0.0, 0.0, 600.0, -600.0, 35.5, -1e3 / 3, 0.0, 1e-3])


def _logits(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Logits θ ``[8, 16, N]`` ~ N(0, 2²) (128 random points) and θ + c, c per group up to ±600."""
    z = 2.0 * numpy_rng(seed).standard_normal((len(SHIFTS), 16, N))
    return z, z + SHIFTS[:, None, None]


def _numeric(
    theta: Sequence[sp.Symbol], log_probs: list[sp.Expr], h: sp.Expr, masked_log_probs: list[sp.Expr],
    h_masked: sp.Expr, impl: Callable[..., Any], entropy_impl: Callable[..., Any],
) -> list[Claim]:
    """impl / entropy_impl at θ + c (and with action 2 masked) == the closed forms at θ."""
    logp_fn, h_fn = lambdify([theta], log_probs), lambdify([theta], [h])
    masked_fn, h_masked_fn = lambdify([theta], masked_log_probs), lambdify([theta], [h_masked])
    z, shifted = _logits(SEED)
    zt = np.moveaxis(z, -1, 0)
    every = torch.from_numpy(shifted)[..., None, :].expand(*z.shape, N)  # the logits once per action
    actions = torch.arange(N).expand(z.shape)  # every action of every row
    mask = torch.tensor([True, True, False]).expand(z.shape)

    def log_prob_comparisons() -> Iterator[Comparison]:
        yield "every action", impl(every, actions), np.moveaxis(logp_fn(zt), 0, -1)
        masked = impl(every[..., :2, :], actions[..., :2], mask=mask[..., None, :].expand(*z.shape[:-1], 2, N))
        yield "actions 0, 1 with action 2 masked", masked, np.moveaxis(masked_fn(zt), 0, -1)

    def entropy_comparisons() -> Iterator[Comparison]:
        yield "unmasked", entropy_impl(torch.from_numpy(shifted)), h_fn(zt)[0]
        yield "action 2 masked", entropy_impl(torch.from_numpy(shifted), mask=mask), h_masked_fn(zt)[0]

    return [
        agree("impl(logits + c, a[, mask]) = θₐ − log Σ exp θ, renormalised when masked (128 points)", log_prob_comparisons),
        agree("entropy_impl(logits + c[, mask]) = H(π), over the allowed actions when masked (128 points)", entropy_comparisons),
    ]


def prove(
    entropy: Entropy = entropy_from_logits,
    *,
    impl: Callable[..., Any] = pgmath.categorical_log_prob,
    entropy_impl: Callable[..., Any] = pgmath.categorical_entropy,
) -> ProofResult:
    """``entropy``: the claimed entropy formula; ``impl`` / ``entropy_impl``: implementations in the
    signatures of pgmath.categorical_log_prob / pgmath.categorical_entropy."""
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
    claims += _numeric(
        theta,
        [t - log_z for t in theta],
        entropy(theta, pi, log_z),
        [t - sp.log(sum(sp.exp(u) for u in allowed)) for t in allowed],
        h_masked,
        impl,
        entropy_impl,
    )
    return ProofResult(
        name=TITLE,
        statement=STATEMENT,
        claims=tuple(claims),
        method="sympy: symbolic logits (3 actions), log expansion, exp(θ)→x>0, limits θ₂ → −∞; "
        "impl vs lambdified closed forms in float64",
    )


if __name__ == "__main__":
    run_module(prove())
