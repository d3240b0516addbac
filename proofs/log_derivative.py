"""The log-derivative trick and the zero-mean score (baseline invariance).

Statements (Williams 1992; Sutton & Barto 2018, §13.3–13.4):

1. ∇p(θ) = p(θ) ∇log p(θ) for any positive differentiable p — proven for an undefined sympy
   function p(θ), so it holds for every such p, and again for a 3-action softmax.
2. E_{a∼π}[∇_θ log π(a)] = Σₐ π(a) ∇log π(a) = ∇Σₐ π(a) = ∇1 = 0, for a symbolic softmax
   π = softmax(θ₀, θ₁, θ₂), every component θ_b.
3. Baseline invariance: E_{a∼π}[∇log π(a) (qₐ − b)] = E_{a∼π}[∇log π(a) qₐ] for symbolic
   action values qₐ and any baseline b that does not depend on the action.

A wrong claim is rejected: e.g. ``grad_identity=lambda p, logp, th: sp.diff(logp, th)`` (the
trick without the factor p), ``weights=uniform`` (the score averaged under the wrong
distribution), or ``baseline=lambda a, q: q[a]`` (an action-dependent "baseline").

Numeric claim — the code: ``impl`` (pgmath.policy_gradient_loss, ``impl(log_probs, advantages,
mask=None)``, a mean over the selected entries) is the surrogate whose gradient is the REINFORCE
estimate. For K = 32 independent random softmax policies θₖ (a ``[K]`` batch; a second one masked), with
advantages qₐ − b: Σₐ πₖ(a) · (−n ∂impl/∂θₖ) (n selected entries) equals ∇θ Σₐ π(a) qₐ, the
lambdified exact gradient, whatever the baseline b, and masked entries get no gradient. See
docs/formulas/policy-gradient-loss.md; tests: tests/test_losses.py, tests/test_proofs.py.
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
    gradient,
    identity,
    lambdify,
    log_softmax,
    logits,
    numpy_rng,
    run_module,
    softmax,
)

TITLE = "log-derivative trick, zero-mean score"
STATEMENT = "∇p = p ∇log p;  E_{a∼π}[∇log π(a)] = 0;  E[∇log π(a)(qₐ − b)] = E[∇log π(a) qₐ]"
IMPL = "pgmath.policy_gradient_loss"
N_ACTIONS = 3
SEED = 20244

GradIdentity = Callable[[sp.Expr, sp.Expr, sp.Symbol], sp.Expr]


def true_grad_identity(p: sp.Expr, logp: sp.Expr, theta: sp.Symbol) -> sp.Expr:
    """The claimed ∂p/∂θ written through the score: p · ∂log p/∂θ."""
    return p * sp.diff(logp, theta)


def on_policy_weights(pi: Sequence[sp.Expr]) -> list[sp.Expr]:
    """The sampling distribution of the expectation: a ∼ π."""
    return list(pi)


def uniform_weights(pi: Sequence[sp.Expr]) -> list[sp.Expr]:
    """WRONG: averaging the score over actions uniformly instead of under π."""
    return [sp.Rational(1, len(pi))] * len(pi)


def constant_baseline(a: int, q: Sequence[sp.Expr]) -> sp.Expr:
    """A baseline that does not depend on the action (here a free symbol b)."""
    return sp.Symbol("b", real=True)


def _expected_minus_grad(
    impl: Callable[..., Any], theta: torch.Tensor, q: np.ndarray, b: np.ndarray, mask: torch.Tensor | None
) -> torch.Tensor:
    """Σₐ πₖ(a) · (−n ∂impl(log πₖ(a), qₖₐ − bₖ)/∂θₖ) for a ``[K, A]`` batch of logits θ."""
    n = theta.shape[0] if mask is None else int(mask.sum())
    pi = torch.exp(log_softmax(theta)).detach()
    total = torch.zeros_like(theta)
    for a in range(N_ACTIONS):
        z = theta.detach().clone().requires_grad_(True)
        log_probs = log_softmax(z)[:, a]
        adv = torch.from_numpy(q[:, a] - b)
        loss = impl(log_probs, adv) if mask is None else impl(log_probs, adv, mask=mask)
        grad = gradient(loss, z)
        total = total + pi[:, a : a + 1] * (-n * grad)
    return total


def _numeric(thetas: Sequence[sp.Symbol], q_syms: Sequence[sp.Symbol], grad_j: list[sp.Expr], impl: Callable[..., Any]) -> Claim:
    """E_{a∼π}[−n ∇impl] == ∇θ Σ π q (lambdified), for any baseline b; masked entries: 0."""
    fn = lambdify([thetas, q_syms], grad_j)

    def comparisons() -> Iterator[Comparison]:
        rng = numpy_rng(SEED)
        for i in range(2):
            theta = torch.from_numpy(2.0 * rng.standard_normal((32, N_ACTIONS)))
            q = 3.0 * rng.standard_normal((32, N_ACTIONS))
            b = 5.0 * rng.standard_normal(32)
            want = fn(theta.numpy().T, q.T).T
            mask = None if i == 0 else torch.from_numpy(rng.uniform(size=32) < 0.6)
            if mask is not None:
                mask[0] = True  # never an empty selection
                want = np.where(mask.numpy()[:, None], want, 0.0)
            yield f"batch {i}" + (", masked" if mask is not None else ""), _expected_minus_grad(impl, theta, q, b, mask), want

    return agree("E_{a∼π}[−n ∇θ impl(log π(a), qₐ − b)] = ∇θ Σₐ π(a) qₐ (64 random θ, q, b)", comparisons)


def prove(
    grad_identity: GradIdentity = true_grad_identity,
    weights: Callable[[Sequence[sp.Expr]], Sequence[sp.Expr]] = on_policy_weights,
    baseline: Callable[[int, Sequence[sp.Expr]], sp.Expr] = constant_baseline,
    *,
    impl: Callable[..., Any] = pgmath.policy_gradient_loss,
) -> ProofResult:
    """Check the three statements; the arguments before ``*`` are the claimed formulas, ``impl`` a
    loss in the signature of pgmath.policy_gradient_loss."""
    claims = []

    # 1a. generic positive function p(θ)
    th = sp.Symbol("theta", real=True)
    p = sp.Function("p", positive=True)(th)
    claims.append(
        identity(
            "∇p = p ∇log p for an arbitrary positive p(θ)",
            sp.diff(p, th),
            grad_identity(p, sp.log(p), th),
        )
    )

    # 1b. the softmax, every (a, b)
    thetas = logits("theta", N_ACTIONS)
    pi = softmax(thetas)

    def rational(e: sp.Expr) -> sp.Expr:
        return exp_to_positive(e, thetas)

    lhs = [sp.diff(pi[a], thetas[b]) for a in range(N_ACTIONS) for b in range(N_ACTIONS)]
    rhs = [
        grad_identity(pi[a], sp.log(pi[a]), thetas[b])
        for a in range(N_ACTIONS)
        for b in range(N_ACTIONS)
    ]
    claims.append(
        identity("∂π(a)/∂θ_b = π(a) ∂log π(a)/∂θ_b (softmax, 3 actions)", lhs, rhs, transform=rational)
    )

    # 2. zero-mean score under the sampling weights
    w = list(weights(pi))
    score = [[sp.diff(sp.log(pi[a]), thetas[b]) for b in range(N_ACTIONS)] for a in range(N_ACTIONS)]
    mean_score = [sum(w[a] * score[a][b] for a in range(N_ACTIONS)) for b in range(N_ACTIONS)]
    claims.append(
        identity(
            "E_{a∼π}[∂log π(a)/∂θ_b] = 0 for every b",
            mean_score,
            [0] * N_ACTIONS,
            transform=rational,
        )
    )

    # 3. baseline invariance
    q = list(sp.symbols(f"q_0:{N_ACTIONS}", real=True))
    with_b = [
        sum(pi[a] * score[a][bb] * (q[a] - baseline(a, q)) for a in range(N_ACTIONS))
        for bb in range(N_ACTIONS)
    ]
    without_b = [sum(pi[a] * score[a][bb] * q[a] for a in range(N_ACTIONS)) for bb in range(N_ACTIONS)]
    claims.append(
        identity(
            "E[∇log π(a)(qₐ − b)] = E[∇log π(a) qₐ] (baseline invariance)",
            with_b,
            without_b,
            transform=rational,
        )
    )
    grad_j = [sp.diff(sum(pi[a] * q[a] for a in range(N_ACTIONS)), t) for t in thetas]
    claims.append(_numeric(thetas, q, grad_j, impl))
    return ProofResult(
        name=TITLE,
        statement=STATEMENT,
        claims=tuple(claims),
        method="sympy: symbolic p(θ) and softmax(θ₀,θ₁,θ₂), exp(θ)→x>0, cancel/simplify to 0; "
        "autograd of impl vs lambdified ∇J",
    )


if __name__ == "__main__":
    run_module(prove())
